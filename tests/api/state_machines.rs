//! `/api/v1/StateMachine`: scripts are compiled when stored; errors carry line and column.

use serde_json::json;

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(state_machine_lifecycle, state_machine_script_errors_are_refused);

const JUDGE: &str = "set_stage(\"Compile\");\nlet x = 1 + 1;\n#{ verdict: \"Accepted\", x: x }";

async fn state_machine_lifecycle(db: Db) {
    let server = TestServer::start(db).await;
    let id = server
        .put("/api/v1/StateMachine", json!({"Name": "judge", "Body": JUDGE, "Limitation": {"ExecutionTimeout": 1000}}))
        .await
        .expect_ok()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stored = server.get("/api/v1/StateMachine/judge").await;
    assert_eq!(stored.expect_ok()["id"], id.as_str());
    assert_eq!(stored.expect_ok()["body"], JUDGE);
    assert_eq!(stored.expect_ok()["limitation"]["executionTimeout"], 1000);
    server.put("/api/v1/StateMachine", json!({"name": "hello", "body": "42"})).await.expect_ok();
    assert_eq!(server.count("/api/v1/StateMachine/All").await, 2);
    assert_eq!(server.count("/api/v1/StateMachine/All?pageSize=1").await, 1);

    server.patch("/api/v1/StateMachine/judge", json!({"limitation": {"memory": 268435456}})).await.expect_ok();
    let patched = server.get("/api/v1/StateMachine/judge").await;
    assert_eq!(
        patched.expect_ok()["limitation"],
        json!({
            "cpuPeriod": null, "cpuQuota": null, "memory": 268435456, "memorySwap": null,
            "blkioDeviceReadBps": null, "blkioDeviceWriteBps": null, "executionTimeout": null,
            "enableNetwork": null, "ulimit": null, "pidsLimit": null, "outputLimit": null
        })
    );
    assert_eq!(patched.expect_ok()["body"], JUDGE);

    server.put("/api/v1/StateMachine", json!({"name": "hello", "body": "1"})).await.expect_error(409, "hello");
    assert_eq!(server.delete("/api/v1/StateMachine/hello").await.expect_ok()["deleted"], 1);
    server.get("/api/v1/StateMachine/hello").await.expect_error(404, "state machine `hello` not found");
    server.delete("/api/v1/StateMachine/hello").await.expect_error(404, "hello");
    server.finish().await;
}

async fn state_machine_script_errors_are_refused(db: Db) {
    let server = TestServer::start(db).await;
    let answer =
        server.put("/api/v1/StateMachine", json!({"name": "broken", "body": "let a = 1;\nlet b = (a + ;"})).await;
    answer.expect_error(400, "line 2, column");
    assert!(answer.msg().contains("field `body`"), "{}", answer.msg());
    server
        .put("/api/v1/StateMachine", json!({"name": "sneaky", "body": "import \"fs\" as fs; 1"}))
        .await
        .expect_error(400, "field `body`");
    assert_eq!(server.count("/api/v1/StateMachine/All").await, 0, "nothing stored");

    server.put("/api/v1/StateMachine", json!({"name": "ok", "body": "1"})).await.expect_ok();
    server.patch("/api/v1/StateMachine/ok", json!({"body": "fn ("})).await.expect_error(400, "line 1");
    assert_eq!(server.get("/api/v1/StateMachine/ok").await.expect_ok()["body"], "1", "a refused patch changes nothing");
    server.patch("/api/v1/StateMachine/missing", json!({"body": "1"})).await.expect_error(404, "missing");
    server.finish().await;
}

#[tokio::test]
async fn shipped_definitions_are_loaded_at_start() {
    let definitions = concat!(env!("CARGO_MANIFEST_DIR"), "/config/definitions");
    let server = TestServer::start_with(Db::Sqlite, |c| c.server.definitions = definitions.into()).await;
    for name in [
        "hello",
        "judge-compile",
        "judge-compile-c",
        "judge-run",
        "CompileActor",
        "RunUserProgramActor",
        "CompareActor",
    ] {
        server.get(&format!("/api/v1/Actor/{name}")).await.expect_ok();
    }
    for name in ["JudgeStateMachine", "CompileOnlyStateMachine"] {
        server.get(&format!("/api/v1/StateMachine/{name}")).await.expect_ok();
    }
    let judge = server.get("/api/v1/StateMachine/judge").await;
    assert!(judge.expect_ok()["body"].as_str().expect("body").contains("run_actors"));
    assert_eq!(server.get("/api/v1/Actor/judge-compile-c").await.expect_ok()["image"], "wharf/full:latest");
    server.finish().await;
}
