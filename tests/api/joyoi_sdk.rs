//! JoyOI's own clients against wharf: every call of `ManagementServiceClient.cs` sent the way
//! it sends it (lower-case paths, compact PascalCase JSON with its nulls, `application/json;
//! charset=utf-8`, success meaning HTTP 200), each answer bound to the SDK's DTOs by
//! Newtonsoft's rules (`newtonsoft.rs`); and OnlineJudge's side of a judge: polling every
//! second as `StateMachineAwaiter` does, the callback at `management/judge/stagechange/{id}`
//! read back by GETting the instance, rejudging with `{"Stage":"Start"}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::newtonsoft::{self, assert_binds};
use crate::on_both_databases;
use crate::support::{Answer, Db, TestServer};

on_both_databases!(sdk_calls_bind_to_its_dtos, onlinejudge_is_told_at_its_own_endpoint);

/// Sends what the SDK sends: `body` is the exact text `JsonConvert.SerializeObject` makes.
async fn sdk(server: &TestServer, method: Method, path: &str, body: Option<String>) -> Answer {
    let mut request = server.request(method, path);
    if let Some(body) = body {
        request = request.header("content-type", "application/json; charset=utf-8").body(body);
    }
    server.send(request).await
}

/// `data` of an answer the SDK takes as a success (HTTP 200 exactly).
fn data(answer: &Answer, call: &str) -> Value {
    assert_eq!(answer.status, 200, "{call}: the SDK throws on anything but 200: {}", answer.body);
    answer.body["data"].clone()
}

/// `PutStateMachineInstanceAsync(name, host, blobs, priority)`.
fn put_instance_body(name: &str, host: Option<&str>, blobs: Option<&[(&str, &str)]>) -> String {
    let blobs = blobs
        .map(|blobs| blobs.iter().map(|(id, name)| json!({"Id": id, "Name": name, "Tag": null})).collect::<Vec<_>>());
    json!({"Name": name, "InitialBlobs": blobs, "Parameters": {"Host": host}, "Priority": 1}).to_string()
}

/// `GetStateMachineInstanceAsync(id)`, checked as the SDK binds it.
async fn get_instance(server: &TestServer, id: &str) -> Value {
    let instance = data(&sdk(server, Method::GET, &format!("/api/v1/statemachineinstance/{id}"), None).await, "get");
    assert_binds(&instance, &newtonsoft::instance_output(), "GetStateMachineInstanceAsync");
    instance
}

/// `StateMachineAwaiter` in polling mode: a GET every second, 30 at most, until not Running.
async fn await_like_onlinejudge(server: &TestServer, id: &str) -> Value {
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let instance = get_instance(server, id).await;
        if instance["status"] != "Running" {
            return instance;
        }
    }
    panic!("instance {id} still Running after 30 polls: OnlineJudge gives up here");
}

async fn sdk_calls_bind_to_its_dtos(db: Db) {
    // No node: actors wait for a slot, which is what a busy deployment shows.
    let server = TestServer::start_with(db, |c| c.nodes.clear()).await;

    // Actors: PutActorAsync, GetAllActorsAsync, GetActorAsync, PatchActorAsync.
    let put = sdk(&server, Method::PUT, "/api/v1/actor", Some(r#"{"Name":"Echo","Body":"cat *"}"#.into())).await;
    data(&put, "PutActorAsync");
    let all = data(&sdk(&server, Method::GET, "/api/v1/actor/all", None).await, "GetAllActorsAsync");
    assert_binds(&all, &newtonsoft::list_of(newtonsoft::actor_output()), "GetAllActorsAsync");
    let actor = data(&sdk(&server, Method::GET, "/api/v1/actor/Echo", None).await, "GetActorAsync");
    assert_binds(&actor, &newtonsoft::actor_output(), "GetActorAsync");
    assert_eq!(actor["body"], "cat *");
    let patch = sdk(&server, Method::PATCH, "/api/v1/actor/Echo", Some(r#"{"Body":"cat * > out"}"#.into())).await;
    data(&patch, "PatchActorAsync");

    // State machines, with the ContainerLimitation the SDK sends (every property, nulls too).
    let limitation = r#"{"CPUPeriod":null,"CPUQuota":null,"Memory":134217728,"MemorySwap":null,"BlkioDeviceReadBps":null,"BlkioDeviceWriteBps":null,"ExecutionTimeout":5000,"EnableNetwork":null,"Ulimit":{"nproc":64}}"#;
    let waits = r#"set_stage(\"Run\");\nrun_actor(\"Echo\", instance.initial_blobs)"#;
    let body = format!(r#"{{"Name":"Waits","Body":"{waits}","ContainerLimitation":{limitation}}}"#);
    data(&sdk(&server, Method::PUT, "/api/v1/statemachine", Some(body)).await, "PutStateMachineDefinitionAsync");
    let quick = r#"{"Name":"Quick","Body":"upload_text(\"r.txt\", \"ok\");\n1","ContainerLimitation":null}"#;
    data(
        &sdk(&server, Method::PUT, "/api/v1/statemachine", Some(quick.into())).await,
        "PutStateMachineDefinitionAsync",
    );
    let machine = data(&sdk(&server, Method::GET, "/api/v1/statemachine/Waits", None).await, "get");
    assert_binds(&machine, &newtonsoft::state_machine_output(), "GetStateMachineDefinitionAsync");
    assert_eq!(machine["limitation"]["memory"], 134217728, "the SDK's ContainerLimitation is kept");
    assert_eq!(machine["limitation"]["ulimit"]["nproc"], 64);
    let all = data(&sdk(&server, Method::GET, "/api/v1/statemachine/all", None).await, "all");
    assert_binds(&all, &newtonsoft::list_of(newtonsoft::state_machine_output()), "GetAllStateMachineDefinitionsAsync");

    // Blobs: PutBlobAsync sends {Remark, Body}; the same content gives back the same id.
    let source = b"int main() { return 0; }\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(source);
    let put_blob = format!(r#"{{"Remark":"Main.cpp","Body":"{encoded}"}}"#);
    let first = data(&sdk(&server, Method::PUT, "/api/v1/blob", Some(put_blob.clone())).await, "PutBlobAsync");
    let first = first["id"].as_str().expect("id").to_owned();
    let again = data(&sdk(&server, Method::PUT, "/api/v1/blob", Some(put_blob)).await, "PutBlobAsync");
    assert_eq!(again["id"], first.as_str(), "identical content gives back the existing blob");
    let blob = data(&sdk(&server, Method::GET, &format!("/api/v1/blob/{first}"), None).await, "GetBlobAsync");
    assert_binds(&blob, &newtonsoft::blob_output(), "GetBlobAsync");
    assert_eq!(blob["remark"], "Main.cpp");
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(blob["body"].as_str().expect("body")).ok(),
        Some(source.to_vec())
    );
    let now = chrono::Utc::now().timestamp();
    let stamp = blob["timeStamp"].as_i64().expect("timeStamp");
    assert!((now - 60..=now + 1).contains(&stamp), "timeStamp {stamp} is in Unix seconds (now {now})");
    // A gzip body (IsCompressed) is stored as its plain content.
    let plain = b"1 2\n".repeat(100);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).expect("gzip");
    let gz = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
    let body = format!(r#"{{"Body":"{gz}","TimeStamp":1500000000,"Remark":"input_0.txt","IsCompressed":true}}"#);
    let input = data(&sdk(&server, Method::PUT, "/api/v1/blob", Some(body)).await, "PUT /Blob compressed");
    let input = input["id"].as_str().expect("id").to_owned();
    let stored = data(&sdk(&server, Method::GET, &format!("/api/v1/blob/{input}"), None).await, "GetBlobAsync");
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(stored["body"].as_str().expect("body")).ok(),
        Some(plain)
    );
    assert_eq!(stored["timeStamp"], 1500000000, "the caller's TimeStamp is kept as sent");
    let not_gzip = r#"{"Body":"aGVsbG8=","Remark":"x","IsCompressed":true}"#;
    sdk(&server, Method::PUT, "/api/v1/blob", Some(not_gzip.into())).await.expect_error(400, "not valid gzip");
    let all = data(&sdk(&server, Method::GET, "/api/v1/blob/all", None).await, "GetAllBlobsAsync");
    assert_binds(&all, &newtonsoft::list_of(newtonsoft::blob_output()), "GetAllBlobsAsync");

    // An instance whose actor waits for a node: listed, with a start time, as Running.
    let blobs = [(first.as_str(), "Main.cpp"), (input.as_str(), "input_0.txt")];
    let put =
        sdk(&server, Method::PUT, "/api/v1/statemachineinstance", Some(put_instance_body("Waits", None, Some(&blobs))))
            .await;
    let id = data(&put, "PutStateMachineInstanceAsync")["id"].as_str().expect("id").to_owned();
    let mut waiting = get_instance(&server, &id).await;
    for _ in 0..100 {
        if waiting["startedActors"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waiting = get_instance(&server, &id).await;
    }
    assert_eq!(waiting["parameters"], json!({}), "Host: null is no Host");
    assert_eq!((waiting["status"].as_str(), waiting["stage"].as_str()), (Some("Running"), Some("Run")));
    let actor = &waiting["startedActors"][0];
    assert_eq!((actor["status"].as_str(), actor["state"].as_str()), (Some("Running"), Some("Queued")), "{actor}");
    assert!(actor["startTime"].is_string(), "a waiting actor carries the time it was asked for");
    let listed = data(&sdk(&server, Method::GET, "/api/v1/statemachineinstance/all?status=Running", None).await, "all");
    assert_binds(&listed, &newtonsoft::list_of(newtonsoft::instance_output()), "GetAllStateMachineInstancesAsync");
    assert_eq!(listed[0]["startedActors"], waiting["startedActors"], "a listing shows what a GET shows");
    let nodes = data(&sdk(&server, Method::GET, "/api/v1/dockernode/waitingtasks", None).await, "WaitingTasks");
    assert_binds(&nodes, &newtonsoft::waiting_tasks(), "WaitingTasks");
    assert_eq!(nodes, json!({"1": 1}), "one actor waits, at the SDK's priority 1");
    let timeouts = data(&sdk(&server, Method::GET, "/api/v1/dockernode/timeouterrors", None).await, "TimeoutErrors");
    assert_binds(&timeouts, &newtonsoft::strings(), "TimeoutErrors");
    let all_nodes = data(&sdk(&server, Method::GET, "/api/v1/dockernode/all", None).await, "DockerNode/All");
    assert_binds(&all_nodes, &newtonsoft::list_of(newtonsoft::docker_node_output()), "DockerNode/All");

    // OnlineJudge's rejudge: PatchStateMachineInstanceAsync(id, "Start") runs it anew.
    let key = waiting["executionKey"].as_str().expect("executionKey").to_owned();
    let path = format!("/api/v1/statemachineinstance/{id}");
    data(
        &sdk(&server, Method::PATCH, &path, Some(r#"{"Stage":"Start"}"#.into())).await,
        "PatchStateMachineInstanceAsync",
    );
    let rejudged = get_instance(&server, &id).await;
    assert_ne!(rejudged["executionKey"], key.as_str(), "a new execution key on every PATCH");

    // DeleteStateMachineInstanceAsync: a running instance is cancelled (Failed to JoyOI's
    // clients, its actors too); an ended one is removed.
    data(&sdk(&server, Method::DELETE, &path, None).await, "DeleteStateMachineInstanceAsync");
    let cancelled = get_instance(&server, &id).await;
    assert_eq!((cancelled["status"].as_str(), cancelled["state"].as_str()), (Some("Failed"), Some("Cancelled")));
    for actor in cancelled["startedActors"].as_array().expect("actors") {
        assert_eq!((actor["status"].as_str(), actor["state"].as_str()), (Some("Failed"), Some("Cancelled")), "{actor}");
        assert!(actor["endTime"].is_string(), "a cancelled actor has ended: {actor}");
    }
    data(&sdk(&server, Method::DELETE, &path, None).await, "DeleteStateMachineInstanceAsync");
    sdk(&server, Method::GET, &path, None).await.expect_error(404, &id);

    // An instance with no blobs at all (InitialBlobs: null), polled as OnlineJudge does.
    let put =
        sdk(&server, Method::PUT, "/api/v1/statemachineinstance", Some(put_instance_body("Quick", None, None))).await;
    let id = data(&put, "PutStateMachineInstanceAsync")["id"].as_str().expect("id").to_owned();
    let done = await_like_onlinejudge(&server, &id).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(done["endTime"].is_string());
    server.finish().await;
}

/// What OnlineJudge's `management/judge/stagechange/{id}` endpoint saw: the path it was
/// posted at, and the instance as its handler read it back.
#[derive(Default)]
struct Seen {
    posts: Vec<(String, Value)>,
}

/// A stand-in for OnlineJudge's callback endpoint, answering `status` to each post.
async fn onlinejudge(server_base: String, status: u16) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/management/judge/stagechange/{id}",
        axum::routing::post(move |axum::extract::Path(id): axum::extract::Path<String>| {
            let record = record.clone();
            let server_base = server_base.clone();
            async move {
                // The handler ignores the body and GETs the instance, as OnlineJudge's does.
                let url = format!("{server_base}/api/v1/statemachineinstance/{id}");
                let instance = match reqwest::get(url).await {
                    Ok(response) => response.json::<Value>().await.unwrap_or_default()["data"].clone(),
                    Err(_) => Value::Null,
                };
                record.lock().expect("lock").posts.push((id, instance));
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK)
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

async fn onlinejudge_is_told_at_its_own_endpoint(db: Db) {
    let server = TestServer::start_with(db, |c| {
        c.nodes.clear();
        c.callbacks.path = "/management/judge/stagechange/{id}".into();
        c.callbacks.initial_backoff_ms = 50;
    })
    .await;
    let judge = r#"{"Name":"Judge","Body":"set_stage(\"Finally\");\nfail(\"validator missing\")"}"#;
    data(
        &sdk(&server, Method::PUT, "/api/v1/statemachine", Some(judge.into())).await,
        "PutStateMachineDefinitionAsync",
    );

    let (host, seen) = onlinejudge(server.base.clone(), 200).await;
    let put =
        sdk(&server, Method::PUT, "/api/v1/statemachineinstance", Some(put_instance_body("Judge", Some(&host), None)))
            .await;
    let id = data(&put, "PutStateMachineInstanceAsync")["id"].as_str().expect("id").to_owned();
    let told = wait_for_post(&seen).await;
    assert_eq!(told.0, id, "posted at management/judge/stagechange/{{id}}");
    assert_binds(&told.1, &newtonsoft::instance_output(), "the handler's GetStateMachineInstanceAsync");
    assert_eq!(told.1["status"], "Failed", "a failed instance is already Failed when it is told");
    assert!(told.1["exception"].as_str().unwrap_or_default().contains("validator missing"), "{}", told.1);

    // A receiver that refuses with a 4xx other than 408/429 is not tried again for ten minutes.
    let (refusing, refused) = onlinejudge(server.base.clone(), 404).await;
    let put = sdk(
        &server,
        Method::PUT,
        "/api/v1/statemachineinstance",
        Some(put_instance_body("Judge", Some(&refusing), None)),
    )
    .await;
    let id = data(&put, "PutStateMachineInstanceAsync")["id"].as_str().expect("id").to_owned();
    wait_for_post(&refused).await;
    let mut delivery = Value::Null;
    for _ in 0..100 {
        delivery = server.get(&format!("/api/v1/StateMachineInstance/{id}")).await.expect_ok()["callbacks"][0].clone();
        if delivery["attempts"] == 1 && delivery["lastError"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let next =
        chrono::DateTime::parse_from_rfc3339(delivery["nextAttemptAt"].as_str().expect("next try")).expect("time");
    let wait = next.signed_duration_since(chrono::Utc::now());
    assert!(wait > chrono::Duration::minutes(9), "next try in {wait}, not before ten minutes: {delivery}");
    assert_eq!(refused.lock().expect("lock").posts.len(), 1, "no second try");
    server.finish().await;
}

async fn wait_for_post(seen: &Arc<Mutex<Seen>>) -> (String, Value) {
    for _ in 0..200 {
        if let Some(post) = seen.lock().expect("lock").posts.first() {
            return post.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("OnlineJudge's endpoint was never posted to");
}
