//! Several service processes on one database: a killed process's instances are taken over by
//! a live one (and ten kills in a row leave every instance Succeeded), a process runs no more
//! instances at once than it may and leaves the rest to others, a cancel sent to one process
//! stops the run in another, and `http_invoke` cut short by a stop is performed again.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::{free_port, wharf};
use crate::instances::wait_instance;
use crate::support::{Db, TestDb, TestServer, postgres_base_url};

/// The real binary on `db`, beating every second and dead for others after 3 s of silence.
struct Process {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Process {
    async fn start(db: &TestDb) -> Process {
        let port = free_port();
        let child = wharf()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", &db.url])
            .env("WHARF_SERVER_DEFINITIONS", "")
            .env("WHARF_EXECUTOR_HEARTBEAT_SECS", "1")
            .env("WHARF_EXECUTOR_PROCESS_LEASE_SECS", "3")
            .env("WHARF_LOG_FILTER", "warn")
            .spawn()
            .expect("start wharf");
        let process = Process { child, base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while process.client.get(format!("{}/healthz", process.base)).send().await.is_err() {
            assert!(Instant::now() < deadline, "wharf did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
        response.json::<Value>().await.expect("json")["data"].clone()
    }

    async fn identity(&self) -> String {
        let health = self.call(reqwest::Method::GET, "/healthz", None).await;
        assert_eq!(health["status"], "ok", "{health}");
        for worker in ["instances", "callbacks", "probes", "heartbeat"] {
            assert_eq!(health["workers"][worker]["state"], "running", "{health}");
        }
        health["process"].as_str().expect("process").to_owned()
    }

    /// SIGKILL: no clean shutdown, nothing put back in the queue.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn instance(&self, id: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/api/v1/StateMachineInstance/{id}"), None).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

async fn start_instances(process: &Process, machine: &str, body: &str, count: usize) -> Vec<String> {
    process.call(reqwest::Method::PUT, "/api/v1/StateMachine", Some(json!({"name": machine, "body": body}))).await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let put =
            process.call(reqwest::Method::PUT, "/api/v1/StateMachineInstance", Some(json!({"name": machine}))).await;
        ids.push(put["id"].as_str().expect("id").to_owned());
    }
    ids
}

async fn wait_all(process: &Process, ids: &[String], what: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = Vec::new();
        for id in ids {
            all.push(process.instance(id).await);
        }
        if all.iter().all(&done) {
            return all;
        }
        assert!(Instant::now() < deadline, "instances never all {what}: {all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_killed_process_work_is_taken_over() {
    if postgres_base_url().is_none() {
        return;
    }
    let db = TestDb::new(Db::Postgres).await;
    let first = Process::start(&db).await;
    let first_id = first.identity().await;
    let ids = start_instances(&first, "slow", "set_stage(\"Wait\");\nsleep(1500);\nlog(\"after\");\n1", 6).await;
    wait_all(&first, &ids, "running on the first process", |i| i["stage"] == "Wait" && i["runBy"] == first_id.as_str())
        .await;
    first.kill();

    let second = Process::start(&db).await;
    let second_id = second.identity().await;
    assert_ne!(first_id, second_id, "each process has its own identity");
    let ended = wait_all(&second, &ids, "succeeded", |i| i["state"] == "Succeeded").await;
    for instance in ended {
        assert_eq!(instance["reRunTimes"], 1, "a takeover is a re-run: {instance}");
        assert_eq!(instance["runBy"], second_id.as_str(), "{instance}");
    }
    drop(second);
    db.drop_database().await;
}

#[tokio::test]
async fn ten_kills_in_a_row_leave_every_instance_succeeded() {
    if postgres_base_url().is_none() {
        return;
    }
    let db = TestDb::new(Db::Postgres).await;
    // Many wake-ups each: an instance is often being evaluated when a kill comes.
    let body = "let n = 0;\nfor i in 0..12 { sleep(150); n += 1; }\nn";
    let process = Process::start(&db).await;
    let ids = start_instances(&process, "steps", body, 20).await;
    let mut process = Some(process);
    for round in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(300 + (round * 137) % 700)).await;
        if let Some(running) = process.take() {
            running.kill();
        }
        process = Some(Process::start(&db).await);
    }
    let last = process.expect("a process");
    let ended = wait_all(&last, &ids, "ended", |i| i["state"] != "Queued" && i["state"] != "Running").await;
    let failed: Vec<&Value> = ended.iter().filter(|i| i["state"] != "Succeeded").collect();
    assert!(failed.is_empty(), "ten crashes of the service are not the instances' fault: {failed:?}");
    assert!(ended.iter().all(|i| i["result"] == 12), "every script ran to its end once");
    let interrupted = ended.iter().filter(|i| i["reRunTimes"].as_i64().unwrap_or(0) > 0).count();
    assert!(interrupted > 0, "the kills came while instances ran: {ended:?}");
    drop(last);
    db.drop_database().await;
}

#[tokio::test]
async fn a_process_runs_at_most_its_share_and_leaves_the_rest() {
    let first = TestServer::start_with(Db::Sqlite, |c| {
        c.executor.max_active_instances = 2;
        c.nodes.clear();
    })
    .await;
    first
        .put("/api/v1/StateMachine", json!({"name": "long", "body": "set_stage(\"Wait\");\nsleep(60000);\n1"}))
        .await
        .expect_ok();
    for _ in 0..5 {
        first.put("/api/v1/StateMachineInstance", json!({"name": "long"})).await.expect_ok();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(first.count("/api/v1/StateMachineInstance/All?state=Running").await, 2, "at most two at once");
    assert_eq!(first.count("/api/v1/StateMachineInstance/All?state=Queued").await, 3, "the rest wait for others");

    let url = first.db.url.clone();
    let second = TestServer::start_on(TestDb::existing(&url), |c| {
        c.executor.max_active_instances = 2;
        c.nodes.clear();
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.count("/api/v1/StateMachineInstance/All?state=Running").await < 4 {
        assert!(Instant::now() < deadline, "the second process never took its share");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(second.count("/api/v1/StateMachineInstance/All?state=Queued").await, 1);
    for id in second.get("/api/v1/StateMachineInstance/All").await.expect_ok().as_array().expect("list") {
        second.delete(&format!("/api/v1/StateMachineInstance/{}", id["id"].as_str().expect("id"))).await;
    }
    second.stop().await;
    first.finish().await;
}

/// A receiver whose answers hang until the caller goes away; counts requests and how many
/// were abandoned.
async fn hanging_receiver() -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<Instant>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let abandoned = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (counter, gone) = (calls.clone(), abandoned.clone());
    let app = axum::Router::new().route(
        "/hang",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let gone = gone.clone();
            async move {
                // Dropped when the caller closes the connection.
                struct Watch(Arc<Mutex<Vec<Instant>>>);
                impl Drop for Watch {
                    fn drop(&mut self) {
                        self.0.lock().expect("lock").push(Instant::now());
                    }
                }
                let _watch = Watch(gone);
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, calls, abandoned)
}

#[tokio::test]
async fn a_cancel_sent_to_another_process_stops_the_run() {
    let (host, calls, abandoned) = hanging_receiver().await;
    let first = TestServer::start_with(Db::Sqlite, |c| c.nodes.clear()).await;
    let url = first.db.url.clone();
    let second = TestServer::start_on(TestDb::existing(&url), |c| {
        c.nodes.clear();
        c.executor.max_active_instances = 1;
    })
    .await;
    first
        .put("/api/v1/StateMachine", json!({"name": "calls", "body": "http_invoke(\"POST\", \"/hang\", #{})"}))
        .await
        .expect_ok();
    let put = json!({"name": "calls", "parameters": {"Host": host}});
    let id = first.put("/api/v1/StateMachineInstance", put).await.expect_ok()["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the script never called out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let instance = first.get(&format!("/api/v1/StateMachineInstance/{id}")).await.expect_ok().clone();
    // Whichever process runs it, the cancel goes to the other one.
    let second_process = second.get("/healthz").await.expect_ok()["process"].clone();
    let other = if instance["runBy"] == second_process { &first } else { &second };
    let sent = Instant::now();
    other.delete(&format!("/api/v1/StateMachineInstance/{id}")).await.expect_ok();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(at) = abandoned.lock().expect("lock").first() {
            assert!(
                at.duration_since(sent) < Duration::from_secs(3),
                "stopped {:?} after the cancel",
                at.duration_since(sent)
            );
            break;
        }
        assert!(Instant::now() < deadline, "the run was not stopped within 3 s of a cancel sent elsewhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
    first.finish().await;
}

#[tokio::test]
async fn http_invoke_cut_short_by_a_stop_is_performed_again() {
    let (host, calls, _) = hanging_receiver().await;
    let server = TestServer::start_with(Db::Sqlite, |c| c.nodes.clear()).await;
    let body = "let r = http_invoke(\"POST\", \"/hang\", #{});\nr.status";
    server.put("/api/v1/StateMachine", json!({"name": "calls", "body": body})).await.expect_ok();
    let put = json!({"name": "calls", "parameters": {"Host": host}});
    let id = server.put("/api/v1/StateMachineInstance", put).await.expect_ok()["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the script never called out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = server.stop().await;
    let server = TestServer::start_on(db, |c| c.nodes.clear()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the call was not made again after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let instance = server.get(&format!("/api/v1/StateMachineInstance/{id}")).await.expect_ok().clone();
    assert_eq!(instance["state"], "Running", "still waiting for its answer, not failed: {instance}");
    server.delete(&format!("/api/v1/StateMachineInstance/{id}")).await.expect_ok();
    server.finish().await;
}

#[tokio::test]
async fn http_invoke_gives_status_and_a_capped_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/small", axum::routing::post(|body: String| async move { (axum::http::StatusCode::CREATED, body) }))
        .route("/big", axum::routing::get(|| async { "x".repeat(3 << 20) }))
        .route("/elsewhere", axum::routing::get(|| async { axum::response::Redirect::temporary("/small") }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let server = TestServer::start_with(Db::Sqlite, |c| c.nodes.clear()).await;
    let body = "let a = http_invoke(\"POST\", \"/small\", #{n: 1});\n\
                let b = http_invoke(\"GET\", \"/big\");\n\
                let c = http_invoke(\"GET\", \"/elsewhere\");\n\
                #{ a: a.status, echo: a.body, big: b.body.len(), cut: b.truncated, c: c.status }";
    server.put("/api/v1/StateMachine", json!({"name": "calls", "body": body})).await.expect_ok();
    let put = json!({"name": "calls", "parameters": {"Host": host}});
    let id = server.put("/api/v1/StateMachineInstance", put).await.expect_ok()["id"].as_str().expect("id").to_owned();
    let done = wait_instance(&server, &id, "ended", |i| i["state"] == "Succeeded" || i["state"] == "Failed").await;
    assert_eq!(done["state"], "Succeeded", "{done}");
    let result = &done["result"];
    assert_eq!((result["a"].as_i64(), result["echo"].as_str()), (Some(201), Some("{\"n\":1}")), "{result}");
    assert_eq!(result["big"], 1 << 20, "the body is cut at 1 MiB: {result}");
    assert_eq!(result["cut"], true);
    assert_eq!(result["c"], 307, "redirects are not followed: {result}");
    server.finish().await;
}
