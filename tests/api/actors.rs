//! `/api/v1/Actor`: storing, reading, listing, changing and deleting actors.

use serde_json::json;

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(actor_lifecycle, actor_bad_input_changes_nothing);

async fn actor_lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    let first = server
        .put(
            "/api/v1/Actor",
            json!({"name": "CompileActor", "body": "gcc Main.c -o Main.out", "outputs": ["Main.out"]}),
        )
        .await;
    let first_id = first.expect_ok()["id"].as_str().expect("id").to_owned();
    // JoyOI's SDK sends PascalCase.
    server
        .put(
            "/api/v1/Actor",
            json!({"Name": "RunActor", "Body": "runner < in", "Image": "wharf/full", "Limitation": {"Memory": 67108864}, "Sandbox": "warm"}),
        )
        .await
        .expect_ok();

    let compile = server.get("/api/v1/Actor/CompileActor").await;
    let compile = compile.expect_ok();
    assert_eq!(compile["id"], first_id.as_str());
    assert_eq!(compile["body"], "gcc Main.c -o Main.out");
    assert_eq!(compile["outputs"], json!(["Main.out"]));
    assert!(compile["image"].is_null());
    assert_eq!(compile["sandbox"], "fresh", "an actor runs in a container of its own unless it says otherwise");
    let run = server.get("/api/v1/Actor/RunActor").await;
    assert_eq!(run.expect_ok()["limitation"]["memory"], 67108864);
    assert_eq!(run.expect_ok()["image"], "wharf/full");
    assert_eq!(run.expect_ok()["sandbox"], "warm");

    let all = server.get("/api/v1/Actor/All").await;
    let names: Vec<_> = all.expect_ok().as_array().expect("list").iter().map(|a| a["name"].clone()).collect();
    assert_eq!(names, vec![json!("RunActor"), json!("CompileActor")], "newest first");
    assert_eq!(all.headers["x-total-count"], "2");
    let page = server.get("/api/v1/Actor/All?page=2&pageSize=1").await;
    assert_eq!(page.expect_ok().as_array().expect("list").len(), 1);
    assert_eq!(page.expect_ok()[0]["name"], "CompileActor");
    assert_eq!(page.headers["x-total-count"], "2");

    server.patch("/api/v1/Actor/CompileActor", json!({"Body": "cc Main.c"})).await.expect_ok();
    let patched = server.get("/api/v1/Actor/CompileActor").await;
    assert_eq!(patched.expect_ok()["body"], "cc Main.c");
    assert_eq!(patched.expect_ok()["outputs"], json!(["Main.out"]), "fields not in the patch stay");
    server.patch("/api/v1/Actor/CompileActor", json!({"sandbox": "warm"})).await.expect_ok();
    let warm = server.get("/api/v1/Actor/CompileActor").await;
    assert_eq!(warm.expect_ok()["sandbox"], "warm");
    assert_eq!(warm.expect_ok()["body"], "cc Main.c", "a sandbox patch keeps the body");
    assert_eq!(server.patch("/api/v1/Actor/CompileActor", json!({"name": "Compile"})).await.expect_ok()["patched"], 1);
    server.get("/api/v1/Actor/CompileActor").await.expect_error(404, "CompileActor");
    server.get("/api/v1/Actor/Compile").await.expect_ok();

    assert_eq!(server.delete("/api/v1/Actor/Compile").await.expect_ok()["deleted"], 1);
    server.get("/api/v1/Actor/Compile").await.expect_error(404, "actor `Compile` not found");
    server.delete("/api/v1/Actor/Compile").await.expect_error(404, "Compile");
    assert_eq!(server.count("/api/v1/Actor/All").await, 1);
    server.finish().await;
}

async fn actor_bad_input_changes_nothing(db: Db) {
    let server = TestServer::start(db).await;
    server.put("/api/v1/Actor", json!({"name": "taken", "body": "true"})).await.expect_ok();

    let cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        ("missing name", json!({"body": "x"}), 400, "missing field `name`"),
        ("missing body", json!({"name": "a"}), 400, "missing field `body`"),
        ("wrong type", json!({"name": "a", "body": 5}), 400, "field `body`"),
        (
            "wrong nested type",
            json!({"name": "a", "body": "x", "limitation": {"memory": "lots"}}),
            400,
            "limitation.memory",
        ),
        (
            "negative limit",
            json!({"name": "a", "body": "x", "limitation": {"cpuQuota": -1}}),
            400,
            "limitation.cpuQuota",
        ),
        ("tiny memory", json!({"name": "a", "body": "x", "limitation": {"memory": 1000}}), 400, "limitation.memory"),
        ("bad name", json!({"name": "a b", "body": "x"}), 400, "field `name`"),
        ("reserved name", json!({"name": "All", "body": "x"}), 400, "field `name`"),
        ("empty body", json!({"name": "a", "body": "  "}), 400, "field `body`"),
        ("bad output", json!({"name": "a", "body": "x", "outputs": ["../etc/passwd"]}), 400, "outputs[0]"),
        ("unknown sandbox", json!({"name": "a", "body": "x", "sandbox": "hot"}), 400, "sandbox"),
        ("not an object", json!([1, 2]), 400, "invalid request body"),
        ("duplicate", json!({"name": "taken", "body": "x"}), 409, "actor `taken` already exists"),
    ];
    for (what, body, status, needle) in cases {
        let answer = server.put("/api/v1/Actor", body).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        answer.expect_error(status, needle);
    }
    server.put_raw_json("/api/v1/Actor", "{\"name\": \"a\",").await.expect_error(400, "malformed JSON");
    server.put_raw_json("/api/v1/Actor", "").await.expect_error(400, "empty");
    server.patch("/api/v1/Actor/nobody", json!({"body": "x"})).await.expect_error(404, "actor `nobody` not found");
    server.patch("/api/v1/Actor/taken", json!({"body": false})).await.expect_error(400, "field `body`");
    server.patch("/api/v1/Actor/taken", json!({"name": "bad name"})).await.expect_error(400, "field `name`");
    server.patch("/api/v1/Actor/taken", json!({"sandbox": "tepid"})).await.expect_error(400, "sandbox");

    let all = server.get("/api/v1/Actor/All").await;
    let all = all.expect_ok().as_array().expect("list").clone();
    assert_eq!(all.len(), 1, "no failed request wrote anything: {all:?}");
    assert_eq!(all[0]["body"], "true", "failed patches left the actor as it was");
    server.finish().await;
}
