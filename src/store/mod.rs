//! The database: one `Store` handle over a sqlx `Any` pool, so SQLite (embedded, the default)
//! and PostgreSQL (for production and several replicas) share one code path and one schema.
//! Each resource has its own file; this one connects, migrates and maps driver errors.

mod actors;
mod blob_writer;
mod blobs;
mod callbacks;
mod chunk_file;
mod chunks;
mod counts;
mod events;
mod instances;
mod logs;
mod migrate;
mod nodes;
mod processes;
mod slots;
mod started_actors;
mod state_machines;
mod timeline;

pub use actors::ActorFields;
pub use blob_writer::BlobWriter;
pub use blobs::{BlobUpload, sha256_hex};
pub use callbacks::{Callback, CallbackView};
pub use counts::ESTIMATE_ABOVE;
pub use instances::{InstanceFilter, NewInstance};
pub use logs::{LogFilter, NewActorLog};
pub use nodes::NodePatch;
pub use processes::{MAX_SUSPECT_RUNS, Recovered};
pub use state_machines::StateMachineFields;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} `{key}` not found")]
    NotFound { kind: &'static str, key: String },
    #[error("{kind} `{key}` already exists")]
    Duplicate { kind: &'static str, key: String },
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply migration {version} ({name}): {source}")]
    Migrate { version: i64, name: &'static str, source: sqlx::Error },
    #[error("database error while {doing}: {source}")]
    Database { doing: &'static str, source: sqlx::Error },
    #[error("{0}")]
    Conflict(String),
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("{doing}: {source}")]
    Io { doing: &'static str, source: std::io::Error },
}

impl StoreError {
    fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Database { doing, source }
    }

    /// Maps a unique-constraint violation to `Duplicate`, anything else to `Database`.
    fn unique(kind: &'static str, key: &str, doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        let key = key.to_owned();
        move |source| {
            let unique = source.as_database_error().is_some_and(|e| e.is_unique_violation());
            if unique { StoreError::Duplicate { kind, key } } else { StoreError::Database { doing, source } }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A cheap-to-clone handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Blob chunks: in `pool` on PostgreSQL, in a file of their own beside a SQLite file.
    chunks: chunks::Chunks,
}

impl Store {
    /// Opens the database named by `url`, creating a SQLite file and its folder when needed,
    /// and brings the schema up to date.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_err = |source| StoreError::Connect { url: redact(url), source };
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_owned())
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(connect_err)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        migrate::run(&pool, backend).await?;
        let chunks = chunks::Chunks::open(&pool, backend, &url, max_connections).await?;
        let store = Store { pool, backend, chunks };
        let swept = store.sweep_abandoned_chunks().await?;
        if swept > 0 {
            tracing::info!(uploads = swept, "deleted the chunks of uploads abandoned more than a day ago");
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers whether the database takes queries.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::db("checking the database"))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.chunks.close().await;
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` so the file is created, and creates the folder it lives in.
fn prepare_sqlite_url(url: &str) -> Result<String, StoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if !path.is_empty()
        && path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|source| StoreError::Io { doing: "creating the database folder", source })?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A page of a listing: `limit` rows after skipping `offset`, newest first.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    pub const ALL: Page = Page { offset: 0, limit: i64::MAX };

    fn sql(self) -> String {
        if self.limit == i64::MAX { String::new() } else { format!(" LIMIT {} OFFSET {}", self.limit, self.offset) }
    }
}

/// Decodes a JSON column, naming what it holds when it cannot.
fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { what, detail: e.to_string() })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data structs to a string cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse_uuid(what: &'static str, text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| StoreError::Corrupt { what, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("sqlite://data/wharf.db"), "sqlite://data/wharf.db");
    }
}
