//! What a newcomer and an operator notice first, against real engines: every actor's stdout
//! and stderr kept in order and tagged by stream, through the API and `wharf instance logs`;
//! `wharf instance wait` on an existing instance.

#[path = "common/service.rs"]
mod service;

use std::process::Command;

use functional_tests::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use service::{Service, config};

/// The `wharf` binary of this workspace, built by `cargo test --workspace` or `cargo build`.
fn binary() -> std::path::PathBuf {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let path = std::path::Path::new(&target).join("debug/wharf");
    assert!(path.exists(), "{} is missing: build it first (cargo build)", path.display());
    path
}

/// Runs the client binary against `base`; gives (exit code, stdout, stderr). Blocks its
/// thread: the test runs on a multi-threaded runtime so the service keeps answering.
fn wharf(base: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary()).args(args).env("WHARF_SERVER", base).output().expect("run wharf");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Prints 20 lines alternating between stdout and stderr, then fails if told to. The two
/// streams are two pipes, so the order between them is the order the engine read them in:
/// lines a tenth of a second apart keep theirs.
const CHATTY: &str = "i=0; while [ $i -lt 20 ]; do if [ $((i % 2)) = 0 ]; then echo \"line $i\"; \
    else echo \"line $i\" >&2; fi; i=$((i + 1)); sleep 0.1; done; [ \"$(cat mode.txt)\" = ok ]";

const MACHINE: &str = r#"
let runs = run_actors([
    #{actor: "chatty", inputs: [upload_text("mode.txt", "ok")], tag: "good"},
    #{actor: "chatty", inputs: [upload_text("mode.txt", "bad")], tag: "bad"},
], #{keep_failed: true});
runs.len()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_actors_output_is_kept_in_order_by_stream() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    if !engine.has_image_or_skip("wharf/actor:latest", "bash images/build.sh").await {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let service = Service::start(config(
        dir.path(),
        &format!("wharf-logs-{}", std::process::id()),
        &[("local", &engine.address)],
    ))
    .await;
    let api = &service.api;
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "chatty", "body": CHATTY}))).await;
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "chatter", "body": MACHINE}))).await;
    let id = api.start("chatter", vec![], json!({})).await;

    let (code, stdout, stderr) = wharf(&api.base, &["instance", "wait", &id]);
    assert_eq!(code, 0, "wait exits 0 for a succeeded instance: {stdout}{stderr}");
    assert!(stdout.contains("status:    Succeeded"), "{stdout}");

    let logs = api.ok(Method::GET, &format!("/api/v1/StateMachineInstance/{id}/logs"), None).await;
    let logs = logs.as_array().expect("a list of records");
    assert_eq!(logs.len(), 2, "both actors, the succeeded one too: {logs:?}");
    for record in logs {
        let lines = record["lines"].as_array().expect("lines");
        let seen: Vec<(String, String)> = lines
            .iter()
            .map(|l| (l["stream"].as_str().unwrap_or("").to_owned(), l["text"].as_str().unwrap_or("").to_owned()))
            .collect();
        let expected: Vec<(String, String)> =
            (0..20).map(|i| ((if i % 2 == 0 { "stdout" } else { "stderr" }).to_owned(), format!("line {i}"))).collect();
        assert_eq!(seen, expected, "every line, in order, with its stream ({})", record["tag"]);
        assert!(lines.iter().all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z'))), "{record}");
    }
    let states: Vec<(&str, &str)> =
        logs.iter().map(|r| (r["tag"].as_str().unwrap_or(""), r["state"].as_str().unwrap_or(""))).collect();
    assert!(states.contains(&("good", "Succeeded")) && states.contains(&("bad", "Failed")), "{states:?}");

    let bad = api.ok(Method::GET, &format!("/api/v1/StateMachineInstance/{id}/logs?actor=chatty&tag=bad"), None).await;
    assert_eq!(bad.as_array().map(Vec::len), Some(1), "{bad}");
    let after = logs[0]["cursor"].as_i64().expect("cursor");
    let newer = api.ok(Method::GET, &format!("/api/v1/StateMachineInstance/{id}/logs?after={after}"), None).await;
    assert_eq!(newer.as_array().map(Vec::len), Some(1), "only the record after the cursor: {newer}");

    let (code, stdout, stderr) = wharf(&api.base, &["instance", "logs", &id, "--tag", "good", "-f"]);
    assert_eq!(code, 0, "{stderr}");
    let printed: Vec<&str> = stdout.lines().filter(|l| l.contains("line ")).collect();
    assert_eq!(printed.len(), 20, "{stdout}");
    assert_eq!(printed[0], "chatty[good] stdout: line 0");
    assert_eq!(printed[1], "chatty[good] stderr: line 1");

    let followed = reqwest::get(format!("{}/api/v1/StateMachineInstance/{id}/logs?follow=true", api.base))
        .await
        .expect("follow")
        .text()
        .await
        .expect("body");
    let records: Vec<Value> =
        followed.lines().map(|l| serde_json::from_str(l).expect("one JSON record per line")).collect();
    assert_eq!(records.len(), 2, "follow of an ended instance gives its records and ends: {followed}");

    let (code, _, stderr) = wharf(&api.base, &["instance", "logs", "00000000-0000-0000-0000-000000000000"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not found"), "{stderr}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_named_with_the_fix_and_nodes_say_whether_they_have_it() {
    let Some(empty) = Engine::second_or_skip().await else { return };
    // Only an image no engine here has: the machine's own images stay untouched.
    let image = format!("wharf/absent-{}:latest", std::process::id());
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config(dir.path(), &format!("wharf-absent-{}", std::process::id()), &[("empty", &empty.address)]);
    config.nodes[0].image = image.clone();
    let service = Service::start(config).await;
    let api = &service.api;
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "hi", "body": "echo hi"}))).await;
    api.ok(Method::PUT, "/api/v1/StateMachine", Some(json!({"name": "greet", "body": "let r = \"ran\";\ntry { run_actor(\"hi\", []); } catch (e) { r = \"caught\"; }\nr"}))).await;
    let id = api.start("greet", vec![], json!({})).await;
    let ended = api.wait_ended(&id, 60).await;
    let exception = ended["exception"].as_str().unwrap_or_default();
    assert_eq!(ended["state"], "Failed", "{ended}");
    assert!(
        exception.starts_with(&format!("actor hi could not run: image {image} is on no reachable node")),
        "{exception}"
    );
    assert!(exception.contains("images/build.sh") && !exception.contains("script error"), "{exception}");

    let nodes = api.ok(Method::GET, "/api/v1/DockerNode/All", None).await;
    assert_eq!(nodes[0]["imagePresent"], false, "{nodes}");
    let (code, stdout, stderr) = wharf(&api.base, &["node", "list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("{image} (missing)")), "{stdout}");
    assert!(stdout.contains("queued actors: none"), "{stdout}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_describes_each_running_actor() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    if !engine.has_image_or_skip("wharf/actor:latest", "bash images/build.sh").await {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let service = Service::start(config(
        dir.path(),
        &format!("wharf-desc-{}", std::process::id()),
        &[("local", &engine.address)],
    ))
    .await;
    let api = &service.api;
    api.ok(Method::PUT, "/api/v1/Actor", Some(json!({"name": "nap", "body": "sleep 30"}))).await;
    api.ok(
        Method::PUT,
        "/api/v1/StateMachine",
        Some(json!({"name": "naps", "body": "run_actor(\"nap\", [], #{tag: \"t1\"}); 1"})),
    )
    .await;
    let id = api.start("naps", vec![], json!({})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let description = loop {
        let nodes = api.ok(Method::GET, "/api/v1/DockerNode/All", None).await;
        if let Some(text) = nodes[0]["runningJobDescriptions"][0].as_str()
            && text.contains("container=")
        {
            break text.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no running actor described: {nodes}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(description.starts_with(&format!("actor=nap tag=t1 instance={id} container=")), "{description}");
    assert!(description.contains(" since=20"), "{description}");
    let (code, stdout, _) = wharf(&api.base, &["node", "list"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("local: actor=nap tag=t1 instance={id}")), "{stdout}");
    api.ok(Method::DELETE, &format!("/api/v1/StateMachineInstance/{id}"), None).await;
    api.wait_ended(&id, 60).await;
    service.stop().await;
}
