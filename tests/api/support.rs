//! A real wharf server on a loopback port, on a fresh SQLite file or a fresh PostgreSQL
//! database, and a small client that speaks its envelope.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;
use wharf::config::Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests may use; under CI its absence is a failure.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("WHARF_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("WHARF_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests (see scripts/test.sh)")
        }
        _ => {
            eprintln!("skipping: WHARF_TEST_POSTGRES_URL is not set (scripts/test.sh starts PostgreSQL)");
            None
        }
    }
}

/// A fresh, empty database of the given kind; dropped (PostgreSQL) or deleted with the folder.
pub struct TestDb {
    pub url: String,
    /// Holds the SQLite file; removed when dropped.
    pub _dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match db {
            Db::Sqlite => {
                TestDb { url: format!("sqlite://{}/wharf.db", dir.path().display()), _dir: dir, pg_name: None }
            }
            Db::Postgres => {
                let base = postgres_base_url().expect("checked by the caller");
                let name = format!("wharf_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to test PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let url = match base.rfind('/') {
                    Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &base[..slash]),
                    _ => format!("{base}/{name}"),
                };
                TestDb { url, _dir: dir, pg_name: Some(name) }
            }
        }
    }

    /// Another handle on a database a running test already made (it is not dropped by this one).
    pub fn existing(url: &str) -> TestDb {
        TestDb { url: url.to_owned(), _dir: tempfile::tempdir().expect("temp dir"), pg_name: None }
    }

    pub async fn drop_database(&self) {
        if let (Some(name), Some(base)) = (&self.pg_name, postgres_base_url())
            && let Ok(mut conn) = sqlx::PgConnection::connect(&base).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut conn)
                .await;
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), wharf::server::ServeError>>>,
}

/// A reply: HTTP status, the envelope, and the headers.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn msg(&self) -> String {
        self.body["msg"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the envelope says `status` and its message contains `needle`.
    pub fn expect_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "expected {status} mentioning `{needle}`, got {} {}", self.status, self.body);
        assert_eq!(self.body["code"], status, "envelope code equals HTTP status: {}", self.body);
        assert!(self.msg().contains(needle), "message `{}` should mention `{needle}`", self.msg());
        assert!(self.body["data"].is_null(), "errors carry no data: {}", self.body);
    }

    pub fn expect_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {} {}", self.status, self.body);
        assert_eq!(self.body["code"], 200);
        assert!(self.body["msg"].is_null());
        &self.body["data"]
    }
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDb::new(db).await;
        Self::start_on(db, tweak).await
    }

    /// Starts a server on an existing database (to test what survives a restart).
    pub async fn start_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_reached_by(db, None, tweak).await
    }

    /// Starts a server, on HTTPS when `tweak` sets `server.tls`, that tests call with
    /// `client` (a plain client when `None`).
    pub async fn start_reached_by(
        db: TestDb,
        client: Option<reqwest::Client>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config::default();
        config.database.url = db.url.clone();
        config.database.max_connections = 4;
        config.server.shutdown_grace_secs = 5;
        // Tests start from an empty catalogue unless they ask for the shipped definitions.
        config.server.definitions = String::new();
        tweak(&mut config);
        let token = config.auth.tokens.first().cloned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let scheme = if config.server.tls.enabled() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(wharf::server::run(config, listener, async move {
            let _ = rx.await;
        }));
        wharf::install_crypto_provider();
        let client = client
            .unwrap_or_else(|| reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"));
        let server = TestServer { base, client, db, token, shutdown: Some(tx), task: Some(task) };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            // Any answer means it listens (an allow list may refuse this very check).
            if self.client.get(format!("{}/healthz", self.base)).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server at {} did not become healthy", self.base);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("answer is not JSON ({status}): {text}"));
        Answer { status, body, headers }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Sends raw bytes as the body with a JSON content type.
    pub async fn put_raw_json(&self, path: &str, body: &'static str) -> Answer {
        let request = self.request(Method::PUT, path).header("content-type", "application/json").body(body);
        self.send(request).await
    }

    /// Stores a blob from bytes and returns its id.
    pub async fn blob(&self, name: &str, bytes: &[u8]) -> String {
        let request = self.request(Method::PUT, &format!("/api/v1/Blob/raw?name={name}")).body(bytes.to_vec());
        let answer = self.send(request).await;
        answer.expect_ok()["id"].as_str().expect("id").to_owned()
    }

    /// How many items `GET path` lists.
    pub async fn count(&self, path: &str) -> usize {
        self.get(path).await.expect_ok().as_array().expect("a list").len()
    }

    /// Stops the server and keeps its database for another start.
    pub async fn stop(mut self) -> TestDb {
        self.halt().await;
        self.db
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let outcome = tokio::time::timeout(Duration::from_secs(20), task).await;
            let outcome = outcome.expect("server stops within 20 s").expect("server task");
            outcome.expect("server ends without error");
        }
    }

    /// Stops the server and removes its database.
    pub async fn finish(mut self) {
        self.halt().await;
        self.db.drop_database().await;
    }
}

/// Declares each listed `async fn name(db: Db)` as a test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() {
                if $crate::support::postgres_base_url().is_none() { return; }
                super::$name($crate::support::Db::Postgres).await
            } )*
        }
    };
}
