//! `/api/v1/DockerNode`: the configured node, nodes registered at run time, persistence.

use serde_json::json;

use crate::on_both_databases;
use crate::support::{Db, TestServer};

on_both_databases!(nodes_are_registered_and_persisted, bad_nodes_are_refused);

async fn nodes_are_registered_and_persisted(db: Db) {
    let server = TestServer::start(db).await;
    let all = server.get("/api/v1/DockerNode/All").await;
    let local = &all.expect_ok()[0];
    assert_eq!(local["name"], "local", "a fresh install has the local engine");
    assert_eq!(local["nodeInfo"]["address"], "unix:///var/run/docker.sock");
    assert_eq!(local["nodeInfo"]["capacity"], 8);
    assert_eq!(local["source"], "config");
    assert_eq!(local["runningJobs"], 0);

    let added = server
        .put("/api/v1/DockerNode", json!({"Name": "second", "Address": "tcp://127.0.0.1:2375", "Capacity": 2}))
        .await;
    assert_eq!(added.expect_ok()["name"], "second");
    server
        .put("/api/v1/DockerNode", json!({"name": "second", "address": "tcp://127.0.0.1:2376"}))
        .await
        .expect_error(409, "node `second` already exists");
    server.patch("/api/v1/DockerNode/second", json!({"drained": true, "image": "wharf/full:latest"})).await.expect_ok();
    server.patch("/api/v1/DockerNode/local", json!({"capacity": 3})).await.expect_ok();

    // Everything above survives a restart; the config node keeps its drain state but
    // takes its settings from the config file again.
    let db = server.stop().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let all = server.get("/api/v1/DockerNode/All").await;
    let nodes = all.expect_ok().as_array().expect("list").clone();
    assert_eq!(nodes.len(), 2);
    let second = nodes.iter().find(|n| n["name"] == "second").expect("second persisted");
    assert_eq!(second["nodeInfo"]["drained"], true);
    assert_eq!(second["nodeInfo"]["capacity"], 2);
    assert_eq!(second["nodeInfo"]["image"], "wharf/full:latest");
    assert_eq!(second["source"], "api");
    let local = nodes.iter().find(|n| n["name"] == "local").expect("local");
    assert_eq!(local["nodeInfo"]["capacity"], 8, "the config file wins for configured nodes");

    let page = server.get("/api/v1/DockerNode/All?page=2&pageSize=1").await;
    assert_eq!(page.expect_ok().as_array().expect("list").len(), 1);
    assert_eq!(page.headers["x-total-count"], "2");
    server.get("/api/v1/DockerNode/All?pageSize=5000").await.expect_error(400, "pageSize");

    assert_eq!(server.delete("/api/v1/DockerNode/second").await.expect_ok()["deleted"], 1);
    server.delete("/api/v1/DockerNode/second").await.expect_error(404, "node `second` not found");
    assert_eq!(server.count("/api/v1/DockerNode/All").await, 1);
    server.finish().await;
}

async fn bad_nodes_are_refused(db: Db) {
    let server = TestServer::start(db).await;
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"name": "n", "address": "ftp://host"}), "field `address`"),
        (json!({"name": "n", "address": "tcp://"}), "field `address`"),
        (json!({"name": "bad name", "address": "tcp://h:1"}), "field `name`"),
        (json!({"name": "n", "address": "tcp://h:1", "capacity": 0}), "field `capacity`"),
        (json!({"name": "n", "address": "tcp://h:1", "capacity": "many"}), "field `capacity`"),
        (json!({"name": "n", "address": "https://h:2376"}), "field `tls`"),
        (
            json!({"name": "n", "address": "https://h:2376", "tls": {"ca": "/nonexistent/ca.pem", "cert": "/x", "key": "/y"}}),
            "tls.ca",
        ),
        (json!({"name": "n", "address": "unix:///s", "tls": {"ca": "/a", "cert": "/b", "key": "/c"}}), "field `tls`"),
        (json!({"name": "n", "address": "tcp://h:1", "image": "has space"}), "field `image`"),
        (json!({"address": "tcp://h:1"}), "missing field `name`"),
    ];
    for (body, needle) in cases {
        server.put("/api/v1/DockerNode", body).await.expect_error(400, needle);
    }
    server
        .patch("/api/v1/DockerNode/ghost", json!({"drained": true}))
        .await
        .expect_error(404, "node `ghost` not found");
    server.patch("/api/v1/DockerNode/local", json!({"capacity": -1})).await.expect_error(400, "field `capacity`");
    server.patch("/api/v1/DockerNode/local", json!({"drained": "yes"})).await.expect_error(400, "field `drained`");
    let all = server.get("/api/v1/DockerNode/All").await;
    assert_eq!(all.expect_ok().as_array().expect("list").len(), 1, "nothing registered");
    assert_eq!(all.expect_ok()[0]["nodeInfo"]["capacity"], 8, "nothing changed");
    server.finish().await;
}
