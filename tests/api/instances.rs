//! `/api/v1/StateMachineInstance`: starting runs in JoyOI's shape, filtering, patching, cancelling.

use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(
    instance_lifecycle,
    instance_bad_input_changes_nothing,
    scripts_that_misbehave_fail_with_a_reason,
    a_script_that_changes_its_calls_is_caught_on_replay,
    sleep_survives_a_restart,
    a_script_that_waits_many_times_goes_on_live,
    logs_of_an_instance_without_actors,
    instances_by_state_over_time
);

/// Polls an instance until `ready` holds (at most 20 s) and returns it.
pub async fn wait_instance(server: &TestServer, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = server.get(&format!("/api/v1/StateMachineInstance/{id}")).await;
        let instance = answer.expect_ok().clone();
        if ready(&instance) {
            return instance;
        }
        assert!(std::time::Instant::now() < deadline, "instance never {what}: {instance}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn instance_lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    // A script that waits (without any container) and one that ends at once.
    server
        .put("/api/v1/StateMachine", json!({"name": "judge", "body": "set_stage(\"Wait\");\nsleep(60000);\n1"}))
        .await
        .expect_ok();
    server.put("/api/v1/StateMachine", json!({"name": "other", "body": "#{ answer: 40 + 2 }"})).await.expect_ok();
    let source = server.blob("Main.c", b"int main(){}").await;
    let input = server.blob("input_1.txt", b"1 2\n").await;

    // Exactly what JoyOI's SDK sends.
    let started = server
        .put(
            "/api/v1/StateMachineInstance",
            json!({
                "Name": "judge",
                "InitialBlobs": [{"Id": source, "Name": "Main.c"}, {"Id": input, "Name": "input_1.txt", "Tag": "case1"}],
                "Parameters": {"Host": "http://127.0.0.1:9/judge", "Debug": "false"},
                "Priority": 1,
                "Limitation": {"ExecutionTimeout": 1000}
            }),
        )
        .await;
    let id = started.expect_ok()["id"].as_str().expect("id").to_owned();
    let other = server.put("/api/v1/StateMachineInstance", json!({"name": "other"})).await;
    let other_id = other.expect_ok()["id"].as_str().expect("id").to_owned();

    let instance = wait_instance(&server, &id, "reached stage Wait", |i| i["stage"] == "Wait").await;
    assert_eq!(instance["name"], "judge");
    assert_eq!(instance["status"], "Running");
    assert_eq!(instance["priority"], 1);
    assert_eq!(instance["initialBlobs"][1], json!({"id": input, "name": "input_1.txt", "tag": "case1"}));
    assert_eq!(instance["parameters"]["Host"], "http://127.0.0.1:9/judge");
    assert_eq!(instance["limitation"]["executionTimeout"], 1000);
    assert_eq!(instance["startedActors"], json!([]));
    assert_eq!(instance["reRunTimes"], 0);
    assert!(instance["startTime"].is_string());
    assert_eq!(instance["state"], "Running");
    for field in ["exception", "executionKey", "endTime", "fromManagementService", "result", "callbacks", "runBy"] {
        assert!(instance.get(field).is_some(), "field {field} is present");
    }
    let done = wait_instance(&server, &other_id, "succeeded", |i| i["status"] == "Succeeded").await;
    assert_eq!(done["result"], json!({"answer": 42}), "the script's value is the result");
    assert!(done["endTime"].is_string());

    let all = server.get("/api/v1/StateMachineInstance/All").await;
    assert_eq!(all.expect_ok()[0]["id"], other_id.as_str(), "newest first");
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?name=judge").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?status=Running").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?status=succeeded&name=other").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?status=Queued").await, 0);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?state=Running").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?begin=01/01/2000%2000:00:00").await, 2);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?end=1/1/2000%2012:00:00%20AM").await, 0);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?stage=Wait").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?begin_time=2000-01-01").await, 2);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?finish_time=2000-01-01").await, 0);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?begin_time=2999-01-01T00:00:00Z").await, 0);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?page=2&pageSize=1").await, 1);

    let path = format!("/api/v1/StateMachineInstance/{id}");
    let key = instance["executionKey"].as_str().expect("execution key").to_owned();
    // A stage never reached changes nothing: not the parameters, not the run.
    server
        .patch(&path, json!({"stage": "Never", "parameters": {"Debug": "true"}}))
        .await
        .expect_error(409, "never reached stage `Never`");
    let unchanged = server.get(&path).await.expect_ok().clone();
    assert_eq!(unchanged["parameters"]["Debug"], "false");
    assert_eq!(unchanged["executionKey"], key.as_str());
    // JoyOI's PATCH without a stage re-runs from the top, with the parameters changed.
    let patch = server.patch(&path, json!({"Parameters": {"Debug": "true", "Host": null}})).await;
    assert_eq!(patch.expect_ok()["patched"], 1);
    let rerun = server.get(&path).await.expect_ok().clone();
    assert_eq!(rerun["parameters"], json!({"Debug": "true"}));
    assert_ne!(rerun["executionKey"], key.as_str(), "a PATCH makes a new execution");
    wait_instance(&server, &id, "ran again up to Wait", |i| i["stage"] == "Wait").await;
    server.patch(&path, json!({"Stage": "Wait"})).await.expect_ok();
    wait_instance(&server, &id, "ran again from Wait", |i| i["status"] == "Running" && i["stage"] == "Wait").await;

    assert_eq!(server.delete(&path).await.expect_ok()["cancelled"], 1);
    let cancelled = server.get(&path).await;
    assert_eq!(cancelled.expect_ok()["status"], "Failed", "JoyOI's clients see a cancelled instance as failed");
    assert_eq!(cancelled.expect_ok()["state"], "Cancelled");
    assert!(cancelled.expect_ok()["endTime"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.get(&path).await.expect_ok()["state"], "Cancelled", "a cancelled run does not come back");
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?status=Cancelled").await, 1);
    assert_eq!(server.count("/api/v1/StateMachineInstance/All?status=Failed").await, 1);
    // Deleting an ended instance removes it, as JoyOI does.
    assert_eq!(server.delete(&path).await.expect_ok()["deleted"], 1);
    server.get(&path).await.expect_error(404, &id);
    server.finish().await;
}

async fn instance_bad_input_changes_nothing(db: Db) {
    let server = TestServer::start(db).await;
    server.put("/api/v1/StateMachine", json!({"name": "judge", "body": "1"})).await.expect_ok();
    let blob = server.blob("a.txt", b"a").await;
    let missing = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (json!({"name": "nope"}), 404, "state machine `nope` not found"),
        (
            json!({"name": "judge", "initialBlobs": [{"id": blob, "name": "a"}, {"id": missing, "name": "b"}]}),
            404,
            "initialBlobs[1].id",
        ),
        (json!({"name": "judge", "initialBlobs": [{"id": "123", "name": "a"}]}), 400, "initialBlobs[0].id"),
        (json!({"name": "judge", "initialBlobs": [{"id": blob}]}), 400, "missing field `name`"),
        (json!({"name": "judge", "initialBlobs": [{"id": blob, "name": "x/y"}]}), 400, "initialBlobs[0].name"),
        (json!({"name": "judge", "parameters": {"Host": "ftp://x"}}), 400, "parameters.Host"),
        (json!({"name": "judge", "parameters": {"Debug": true}}), 400, "parameters.Debug"),
        (json!({"name": "judge", "priority": "high"}), 400, "field `priority`"),
        (json!({"name": "judge", "limitation": {"executionTimeout": 0}}), 400, "limitation.executionTimeout"),
    ];
    for (body, status, needle) in cases {
        server.put("/api/v1/StateMachineInstance", body).await.expect_error(status, needle);
    }
    assert_eq!(server.count("/api/v1/StateMachineInstance/All").await, 0, "nothing stored");

    let unknown = uuid::Uuid::new_v4();
    server.get(&format!("/api/v1/StateMachineInstance/{unknown}")).await.expect_error(404, &unknown.to_string());
    server.get("/api/v1/StateMachineInstance/xyz").await.expect_error(400, "not a valid instance id");
    server.delete(&format!("/api/v1/StateMachineInstance/{unknown}")).await.expect_error(404, "not found");
    server
        .patch(&format!("/api/v1/StateMachineInstance/{unknown}"), json!({"stage": "A"}))
        .await
        .expect_error(404, "not found");
    server.get("/api/v1/StateMachineInstance/All?status=Done").await.expect_error(400, "query parameter `status`");
    server.get("/api/v1/StateMachineInstance/All?begin_time=soon").await.expect_error(400, "begin_time");
    server.get("/api/v1/StateMachineInstance/All?page=0").await.expect_error(400, "page");

    server.put("/api/v1/StateMachine", json!({"name": "waits", "body": "sleep(60000)"})).await.expect_ok();
    let id = server.put("/api/v1/StateMachineInstance", json!({"name": "waits"})).await.expect_ok()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/StateMachineInstance/{id}");
    server.patch(&path, json!({"stage": ""})).await.expect_error(400, "field `stage`");
    server.patch(&path, json!({"parameters": {"a": 1}})).await.expect_error(400, "parameters.a");
    server.patch(&path, json!({"parameters": {"Host": "ftp://x"}})).await.expect_error(400, "parameters.Host");
    let unchanged = server.get(&path).await;
    assert_eq!(unchanged.expect_ok()["stage"], "Start", "an instance starts in stage Start");
    server.delete(&path).await.expect_ok();
    assert_eq!(unchanged.expect_ok()["parameters"], json!({}));
    server.finish().await;
}

async fn scripts_that_misbehave_fail_with_a_reason(db: Db) {
    let server = TestServer::start_with(db, |c| c.scripts.max_operations = 10_000).await;
    let cases = [
        ("runaway", "let n = 0;\nloop { n += 1; }", "script exceeded 10,000 operations at line 2"),
        ("deep", "fn down(n) { down(n + 1) }\ndown(0)", "call depth of 64"),
        ("gives-up", "set_stage(\"Check\");\nfail(\"no tests given\")", "no tests given"),
        ("throws", "throw \"bad input\"", "bad input"),
        ("no-actor", "run_actor(\"ghost\", [])", "actor `ghost` not found"),
    ];
    for (name, body, _) in cases {
        server.put("/api/v1/StateMachine", json!({"name": name, "body": body})).await.expect_ok();
    }
    for (name, _, reason) in cases {
        let id = server.put("/api/v1/StateMachineInstance", json!({"name": name})).await.expect_ok()["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let ended = wait_instance(&server, &id, "failed", |i| i["status"] == "Failed").await;
        let exception = ended["exception"].as_str().unwrap_or_default();
        assert!(exception.contains(reason), "{name}: `{exception}` should say `{reason}`");
    }
    server.finish().await;
}

/// A script whose calls depend on something outside its record (here a parameter changed
/// between two runs of the service) no longer matches its history: it fails, clearly.
async fn a_script_that_changes_its_calls_is_caught_on_replay(db: Db) {
    let server = TestServer::start(db).await;
    let body = "if instance.parameters.Mode == \"a\" { set_stage(\"A\"); } else { set_stage(\"B\"); }\nsleep(3000);\n1";
    server.put("/api/v1/StateMachine", json!({"name": "fickle", "body": body})).await.expect_ok();
    let id = server
        .put("/api/v1/StateMachineInstance", json!({"name": "fickle", "parameters": {"Mode": "a"}}))
        .await
        .expect_ok()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_instance(&server, &id, "reached stage A", |i| i["stage"] == "A").await;
    // Changed behind the service's back: a PATCH would re-run the script from the top.
    let db = server.stop().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.expect("open the database");
    sqlx::query("UPDATE instances SET parameters = $1 WHERE id = $2")
        .bind(r#"{"Mode":"b"}"#)
        .bind(&id)
        .execute(&pool)
        .await
        .expect("change a parameter");
    pool.close().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let ended = wait_instance(&server, &id, "failed", |i| i["status"] == "Failed").await;
    let exception = ended["exception"].as_str().unwrap_or_default();
    assert!(exception.contains("non-deterministic script: call #1 is set_stage"), "{exception}");
    assert_eq!(ended["reRunTimes"], 0, "a clean stop is not a crash");
    server.finish().await;
}

/// `sleep` counts from when the script first asked: a restart in the middle does not start it over.
async fn sleep_survives_a_restart(db: Db) {
    let server = TestServer::start(db).await;
    server.put("/api/v1/StateMachine", json!({"name": "naps", "body": "sleep(2000);\n\"rested\""})).await.expect_ok();
    let id = server.put("/api/v1/StateMachineInstance", json!({"name": "naps"})).await.expect_ok()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_instance(&server, &id, "running", |i| i["status"] == "Running").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let db = server.stop().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let done = wait_instance(&server, &id, "succeeded", |i| i["status"] == "Succeeded").await;
    assert_eq!(done["result"], "rested");
    let start = chrono::DateTime::parse_from_rfc3339(done["startTime"].as_str().expect("start")).expect("time");
    let end = chrono::DateTime::parse_from_rfc3339(done["endTime"].as_str().expect("end")).expect("time");
    let took = (end - start).num_milliseconds();
    // Started over, it would take at least 1.5 s + 2 s.
    assert!((1900..3200).contains(&took), "2 s of sleep took {took} ms across a restart");
    server.finish().await;
}

/// A script waits on each call live and goes on, instead of running again from the top
/// after each; with no room for live scripts it is replayed, with the same result. Waiting
/// does not count against the script's wall time.
async fn a_script_that_waits_many_times_goes_on_live(db: Db) {
    let body = "let total = 0;\nfor i in 0..40 { sleep(20); total += i; }\ntotal";
    let waits = |text: &str, how: &str| -> Option<f64> {
        let series = format!("wharf_script_waits_total{{how=\"{how}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(series.as_str())?.parse().ok())
    };
    for max_live in [64, 0] {
        let server = TestServer::start_with(db, |c| {
            c.scripts.max_live = max_live;
            c.scripts.wall_time_ms = 500;
        })
        .await;
        server.put("/api/v1/StateMachine", json!({"name": "patient", "body": body})).await.expect_ok();
        let id = server.put("/api/v1/StateMachineInstance", json!({"name": "patient"})).await.expect_ok()["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let done = wait_instance(&server, &id, "ended", |i| i["status"] != "Queued" && i["status"] != "Running").await;
        assert_eq!(done["status"], "Succeeded", "max_live {max_live}: {done}");
        assert_eq!(done["result"], 780, "max_live {max_live}: the same result either way");
        let text = server.client.get(server.url("/metrics")).send().await.expect("scrape").text().await.expect("text");
        let (live, replayed) = (waits(&text, "live"), waits(&text, "replayed"));
        if max_live > 0 {
            assert_eq!((live, replayed), (Some(40.0), Some(0.0)), "each of 40 waits went on live:\n{text}");
        } else {
            assert_eq!((live, replayed), (Some(0.0), Some(40.0)), "with no room, each wait is a replay:\n{text}");
        }
        server.finish().await;
    }
}

/// Two services on one PostgreSQL database share the queue: every instance runs once, and
/// both take part.
#[tokio::test]
async fn two_replicas_share_the_work() {
    if crate::support::postgres_base_url().is_none() {
        return;
    }
    let first = TestServer::start_with(Db::Postgres, |c| c.executor.service_name = "replica-a".into()).await;
    let url = first.db.url.clone();
    let second =
        TestServer::start_on(crate::support::TestDb::existing(&url), |c| c.executor.service_name = "replica-b".into())
            .await;
    first
        .put("/api/v1/StateMachine", json!({"name": "counts", "body": "log(\"once\");\nsleep(300);\nnow()"}))
        .await
        .expect_ok();
    let mut ids = Vec::new();
    for i in 0..24 {
        let server = if i % 2 == 0 { &first } else { &second };
        let id = server.put("/api/v1/StateMachineInstance", json!({"name": "counts"})).await.expect_ok()["id"]
            .as_str()
            .expect("id")
            .to_owned();
        ids.push(id);
    }
    let mut keys = std::collections::BTreeMap::new();
    for id in &ids {
        let done = wait_instance(&first, id, "succeeded", |i| i["status"] == "Succeeded").await;
        assert_eq!(done["reRunTimes"], 0);
        *keys.entry(done["runBy"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(keys.values().sum::<i32>(), 24);
    assert_eq!(keys.len(), 2, "both replicas ran instances: {keys:?}");
    second.stop().await;
    first.finish().await;
}

/// The logs route answers for any instance (empty until an actor has run) and 404s for
/// an unknown one; a follow of an ended instance ends.
async fn logs_of_an_instance_without_actors(db: Db) {
    let server = TestServer::start(db).await;
    server.put("/api/v1/StateMachine", json!({"name": "quick", "body": "1"})).await.expect_ok();
    let started = server.put("/api/v1/StateMachineInstance", json!({"name": "quick"})).await;
    let id = started.expect_ok()["id"].as_str().expect("id").to_owned();
    wait_instance(&server, &id, "ended", |i| i["state"] == "Succeeded").await;
    let logs = server.get(&format!("/api/v1/StateMachineInstance/{id}/logs?actor=a&tag=t&after=5")).await;
    assert_eq!(logs.expect_ok(), &json!([]));
    let followed = server
        .client
        .get(server.url(&format!("/api/v1/StateMachineInstance/{id}/logs?follow=true")))
        .send()
        .await
        .expect("follow");
    assert_eq!(followed.headers()["content-type"], "application/x-ndjson");
    assert_eq!(followed.text().await.expect("body"), "", "nothing to stream, and it ends");
    let missing = server.get("/api/v1/StateMachineInstance/00000000-0000-0000-0000-000000000000/logs").await;
    missing.expect_error(404, "not found");
    server.finish().await;
}

/// The console's chart: instances created in each span of the window, by their state now.
async fn instances_by_state_over_time(db: Db) {
    let server = TestServer::start(db).await;
    server.put("/api/v1/StateMachine", json!({"name": "waits", "body": "sleep(60000);\n1"})).await.expect_ok();
    server.put("/api/v1/StateMachine", json!({"name": "ends", "body": "1"})).await.expect_ok();
    let waits = server.put("/api/v1/StateMachineInstance", json!({"name": "waits"})).await;
    let waits = waits.expect_ok()["id"].as_str().expect("id").to_owned();
    let ends = server.put("/api/v1/StateMachineInstance", json!({"name": "ends"})).await;
    let ends = ends.expect_ok()["id"].as_str().expect("id").to_owned();
    wait_instance(&server, &ends, "succeeded", |i| i["state"] == "Succeeded").await;
    wait_instance(&server, &waits, "ran", |i| i["state"] == "Running").await;

    let answer = server.get("/api/v1/StateMachineInstance/Timeline?hours=2&buckets=8").await;
    let buckets = answer.expect_ok().as_array().expect("a list").clone();
    assert_eq!(buckets.len(), 8, "{buckets:?}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339");
    let now = chrono::Utc::now().fixed_offset();
    for pair in buckets.windows(2) {
        assert_eq!(time(&pair[0]["end"]), time(&pair[1]["start"]), "spans follow each other: {pair:?}");
    }
    let first = time(&buckets[0]["start"]);
    let last = time(&buckets[7]["end"]);
    assert_eq!((last - first).num_minutes(), 120, "the window is two hours");
    assert_eq!(first.timestamp() % 900, 0, "quarter-hour spans start on the quarter hour");
    assert!(last > now && last - now <= chrono::Duration::minutes(15), "the last span holds the present: {last}");
    let total =
        |state: &str| buckets.iter().map(|b| b["counts"][state].as_i64().expect("every state counted")).sum::<i64>();
    assert_eq!((total("Running"), total("Succeeded"), total("Failed"), total("Queued")), (1, 1, 0, 0));

    // The default window is the last day, hourly.
    let answer = server.get("/api/v1/StateMachineInstance/Timeline").await;
    assert_eq!(answer.expect_ok().as_array().map(Vec::len), Some(24));
    for (query, field) in
        [("hours=0", "hours"), ("hours=721", "hours"), ("buckets=241", "buckets"), ("hours=x", "hours")]
    {
        server.get(&format!("/api/v1/StateMachineInstance/Timeline?{query}")).await.expect_error(400, field);
    }
}
