//! The service as an operator sees its nodes: `GET /api/v1/DockerNode/All` on a real server
//! shows a reachable engine healthy and an unreachable one unhealthy with the reason, and a
//! node registered over HTTP is probed and takes its place.

use std::time::{Duration, Instant};

use functional_tests::Engine;
use serde_json::Value;
use wharf::config::{Config, NodeConfig};

async fn nodes(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let answer: Value =
        client.get(format!("{base}/api/v1/DockerNode/All")).send().await.expect("list").json().await.expect("json");
    answer["data"].as_array().expect("list of nodes").clone()
}

async fn wait_for(client: &reqwest::Client, base: &str, name: &str, health: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = nodes(client, base).await;
        if let Some(node) = all.iter().find(|n| n["name"] == name && n["health"] == health) {
            return node.clone();
        }
        assert!(Instant::now() < deadline, "{name} never became {health}: {all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn node_list_shows_health_and_errors() {
    let Some(engine) = Engine::primary_or_skip().await else { return };
    wharf::install_crypto_provider();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}/wharf.db", dir.path().display());
    config.executor.probe_interval_secs = 1;
    config.executor.service_name = format!("wharf-svc-{}", std::process::id());
    config.nodes = vec![
        NodeConfig {
            name: "local".into(),
            address: engine.address.clone(),
            image: "wharf/actor:latest".into(),
            capacity: 8,
            tls: None,
        },
        NodeConfig {
            name: "gone".into(),
            address: "unix:///nonexistent/docker.sock".into(),
            image: "wharf/actor:latest".into(),
            capacity: 8,
            tls: None,
        },
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wharf::server::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let local = wait_for(&client, &base, "local", "healthy").await;
    assert_eq!(local["nodeInfo"]["capacity"], 8);
    assert_eq!(local["runningJobs"], 0);
    assert!(local["lastError"].is_null());
    let gone = wait_for(&client, &base, "gone", "unhealthy").await;
    let error = gone["lastError"].as_str().expect("an error is shown");
    assert!(error.contains("gone") && error.contains("/nonexistent/docker.sock"), "{error}");
    assert!(gone["errorFlags"].as_i64().expect("errorFlags") >= 1);

    let added = client
        .put(format!("{base}/api/v1/DockerNode"))
        .json(&serde_json::json!({"name": "again", "address": engine.address, "capacity": 2}))
        .send()
        .await
        .expect("register");
    assert_eq!(added.status(), 200);
    let again = wait_for(&client, &base, "again", "healthy").await;
    assert_eq!(again["source"], "api");
    assert_eq!(again["nodeInfo"]["capacity"], 2);

    let _ = stop.send(());
    server.await.expect("join").expect("server stops cleanly");
}
