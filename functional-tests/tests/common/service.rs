//! A wharf service for a test: in-process on a loopback port (`Service::start`), or the real
//! binary (`Binary`), which a test can kill -9 and start again on the same database; and a
//! callback receiver that records what is posted to it.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wharf::config::{Config, NodeConfig};

/// The `wharf` binary of this workspace, built by `cargo test --workspace` or `cargo build`.
pub fn binary() -> std::path::PathBuf {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    let path = std::path::Path::new(&target).join("debug/wharf");
    assert!(path.exists(), "{} is missing: build it first (cargo build)", path.display());
    path
}

/// A wharf configuration for tests: a SQLite file in `dir`, the given nodes, fast probes.
pub fn config(dir: &std::path::Path, service: &str, nodes: &[(&str, &str)]) -> Config {
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}/wharf.db", dir.display());
    config.server.definitions = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/definitions").into();
    config.executor.probe_interval_secs = 1;
    // A killed service is taken for dead, and its work taken over, within seconds.
    config.executor.heartbeat_secs = 1;
    config.executor.process_lease_secs = 3;
    config.executor.service_name = service.to_owned();
    config.callbacks.initial_backoff_ms = 200;
    config.callbacks.max_backoff_secs = 1;
    config.callbacks.secret = "callback-secret".into();
    config.nodes = nodes
        .iter()
        .map(|(name, address)| NodeConfig {
            name: (*name).into(),
            address: (*address).into(),
            image: "wharf/actor:latest".into(),
            capacity: 4,
            tls: None,
        })
        .collect();
    config
}

/// HTTP calls to a service's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Api {
        wharf::install_crypto_provider();
        Api { base, client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client") }
    }

    /// Calls that send `Authorization: Bearer <token>`, for a service with `auth.tokens`.
    pub fn with_token(base: String, token: &str) -> Api {
        wharf::install_crypto_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {token}").parse().expect("a token is a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).default_headers(headers);
        Api { base, client: client.build().expect("client") }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `data` of a 200 answer.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["data"].clone()
    }

    pub async fn blob(&self, name: &str, bytes: &[u8]) -> Value {
        let response = self
            .client
            .put(format!("{}/api/v1/Blob/raw?name={name}", self.base))
            .body(bytes.to_vec())
            .send()
            .await
            .expect("upload");
        let answer: Value = response.json().await.expect("json");
        json!({"id": answer["data"]["id"], "name": name})
    }

    pub async fn blob_text(&self, id: &str) -> String {
        let response =
            self.client.get(format!("{}/api/v1/Blob/{id}/content", self.base)).send().await.expect("download");
        response.text().await.expect("text")
    }

    pub async fn start(&self, machine: &str, blobs: Vec<Value>, parameters: Value) -> String {
        let body = json!({"name": machine, "initialBlobs": blobs, "parameters": parameters});
        let data = self.ok(reqwest::Method::PUT, "/api/v1/StateMachineInstance", Some(body)).await;
        data["id"].as_str().expect("instance id").to_owned()
    }

    pub async fn instance(&self, id: &str) -> Value {
        self.ok(reqwest::Method::GET, &format!("/api/v1/StateMachineInstance/{id}"), None).await
    }

    /// Polls the instance until `ready` holds.
    pub async fn wait(&self, id: &str, what: &str, secs: u64, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok((200, answer)) = tokio::time::timeout(
                Duration::from_secs(10),
                self.call(reqwest::Method::GET, &format!("/api/v1/StateMachineInstance/{id}"), None),
            )
            .await
            {
                if ready(&answer["data"]) {
                    return answer["data"].clone();
                }
                assert!(Instant::now() < deadline, "instance never {what}: {}", answer["data"]);
            } else {
                assert!(Instant::now() < deadline, "instance never {what}: the service does not answer");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_ended(&self, id: &str, secs: u64) -> Value {
        self.wait(id, "ended", secs, |i| matches!(i["status"].as_str(), Some("Succeeded" | "Failed" | "Cancelled")))
            .await
    }
}

/// The service in this process.
pub struct Service {
    pub api: Api,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), wharf::server::ServeError>>,
}

impl Service {
    pub async fn start(config: Config) -> Service {
        wharf::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let api = match config.auth.tokens.first() {
            Some(token) => Api::with_token(base, token),
            None => Api::new(base),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(wharf::server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let service = Service { api, stop: Some(stop), task };
        service.wait_nodes_healthy().await;
        service
    }

    async fn wait_nodes_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, answer)) = tokio::time::timeout(
                Duration::from_secs(5),
                self.api.call(reqwest::Method::GET, "/api/v1/DockerNode/All", None),
            )
            .await
                && answer["data"].as_array().is_some_and(|nodes| nodes.iter().all(|n| n["health"] == "healthy"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "nodes never became healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = tokio::time::timeout(Duration::from_secs(60), self.task).await;
        ended.expect("service stops").expect("join").expect("service stops cleanly");
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Vec<u8>,
    pub signature: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Records POSTs on a loopback port; can start later than its port is handed out.
pub struct Receiver {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A port to post to, with nothing listening yet.
    pub fn reserve() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        Receiver { port, got: Arc::default() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts answering 200 to every POST.
    pub async fn listen(&self) {
        let got = self.got.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                got.lock().expect("lock").push(Received {
                    body: body.to_vec(),
                    signature: header("x-wharf-signature"),
                    idempotency_key: header("idempotency-key"),
                });
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind receiver");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits for `count` deliveries, then a little longer to see that no more come.
    pub async fn expect(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received().len() < count {
            assert!(Instant::now() < deadline, "{} of {count} deliveries arrived", self.received().len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = self.received();
        assert_eq!(got.len(), count, "exactly {count} deliveries");
        got
    }
}
