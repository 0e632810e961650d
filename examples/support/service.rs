//! A wharf service in this process for the benchmarks: on a loopback port, with the shipped
//! definitions, the machine's engine as its node, and a database of its own (a new
//! PostgreSQL database, dropped at the end, or a SQLite file).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A wharf service in this process on a loopback port, with the shipped definitions, the
/// machine's engine as its node, and a database of its own.
pub struct ApiService {
    pub base: String,
    pub backend: &'static str,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), wharf::server::ServeError>>,
    database: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl ApiService {
    pub async fn start(
        postgres: Option<&str>,
        capacity: usize,
        tweak: impl FnOnce(&mut wharf::config::Config),
    ) -> anyhow::Result<ApiService> {
        use sqlx::Connection;
        let dir = tempfile::tempdir()?;
        let mut config = wharf::config::Config::default();
        let (backend, database) = match postgres {
            Some(url) => {
                let name = format!("wharf_bench_{}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
                let base = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(url);
                config.database.url = format!("{base}/{name}");
                ("PostgreSQL", Some((url.to_owned(), name)))
            }
            None => {
                config.database.url = format!("sqlite://{}/wharf.db", dir.path().display());
                ("SQLite", None)
            }
        };
        config.server.definitions = concat!(env!("CARGO_MANIFEST_DIR"), "/config/definitions").into();
        config.executor.service_name = super::service_name();
        config.nodes = vec![wharf::config::NodeConfig {
            name: "local".into(),
            address: super::ENGINE.into(),
            image: super::IMAGE.into(),
            capacity: capacity as u32,
            tls: None,
        }];
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}/api/v1", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(wharf::server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let service = ApiService { base, backend, client, stop, task, database, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while service.get("/Actor/judge-run").await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the service did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(service)
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self.client.request(method, format!("{}{path}", self.base)).json(&body).send().await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {answer}");
        Ok(answer["data"].clone())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.client.get(format!("{}{path}", self.base)).send().await?;
        anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
        Ok(response.json::<Value>().await?["data"].clone())
    }

    pub async fn blob(&self, name: &str, bytes: &[u8]) -> anyhow::Result<Value> {
        let url = format!("{}/Blob/raw?name={name}", self.base);
        let answer: Value = self.client.put(url).body(bytes.to_vec()).send().await?.json().await?;
        Ok(json!({"id": answer["data"]["id"], "name": name}))
    }

    /// Starts an instance of `machine` and waits until it ended; the instance as it ended.
    pub async fn run(&self, machine: &str, blobs: &[Value]) -> anyhow::Result<(Duration, Value)> {
        let clock = Instant::now();
        let body = json!({"name": machine, "initialBlobs": blobs, "parameters": {}});
        let id = self.call(reqwest::Method::PUT, "/StateMachineInstance", body).await?["id"].clone();
        let id = id.as_str().unwrap_or_default().to_owned();
        loop {
            let instance = self.get(&format!("/StateMachineInstance/{id}")).await?;
            match instance["status"].as_str() {
                Some("Succeeded" | "Failed" | "Cancelled") => return Ok((clock.elapsed(), instance)),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        if let Some((url, name)) = self.database {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await?;
        }
        Ok(())
    }
}
