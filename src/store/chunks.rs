//! Blob chunks: the bytes of stored content, in pieces of `blobs.chunk_size`, under the key
//! the content row names.
//!
//! On PostgreSQL they are a table beside the others. On SQLite they live in a file of their
//! own next to the main one (`chunk_file.rs`), with pages sixteen times as large and a write
//! lock and write-ahead log of their own; the main file keeps small pages for its small rows.

use bytes::Bytes;
use sqlx::{AnyPool, SqlitePool};

use super::chunk_file::{self, Checkpointer};
use super::{Backend, StoreError};

/// Where chunks are read and written.
#[derive(Clone)]
pub(super) struct Chunks {
    pools: Pools,
    /// On a SQLite file: copies the chunk file's log back when the file is left alone.
    checkpointer: Option<Checkpointer>,
    backend: Backend,
}

/// The pools of the chunks' table.
#[derive(Clone)]
enum Pools {
    /// The main pool: on PostgreSQL, and for an in-memory SQLite database.
    Main(AnyPool),
    /// A chunk file's own pools.
    File {
        /// Reads chunks.
        readers: SqlitePool,
        /// Writes and deletes chunks: one connection with a page cache large enough for a
        /// transaction, so that writes queue here instead of polling for the file's write lock.
        writer: SqlitePool,
    },
}

/// Runs `$body` with `$pool` bound to the pool that `$role` (`readers` or `writer`) names;
/// the body is checked once per driver, so one query text serves both.
macro_rules! on_pool {
    ($pools:expr, $role:ident, |$pool:ident| $body:expr) => {
        match &$pools {
            Pools::Main($pool) => $body,
            Pools::File { $role: $pool, .. } => $body,
        }
    };
}

impl Chunks {
    /// The chunks of the database `main` opened from `url`: the same pool on PostgreSQL and
    /// for an in-memory SQLite database, a file of their own beside a SQLite file.
    pub(super) async fn open(
        main: &AnyPool,
        backend: Backend,
        url: &str,
        max_connections: u32,
    ) -> Result<Chunks, StoreError> {
        let path = match backend {
            Backend::Sqlite => chunk_file::path_beside(url),
            Backend::Postgres => None,
        };
        let Some(path) = path else {
            return Ok(Chunks { pools: Pools::Main(main.clone()), checkpointer: None, backend });
        };
        let writer = chunk_file::open(&path, chunk_file::Role::Writer).await?;
        let readers = chunk_file::open(&path, chunk_file::Role::Readers(max_connections)).await?;
        chunk_file::move_from_main(main, &path).await?;
        let checkpointer = Checkpointer::start(readers.clone(), &path);
        Ok(Chunks { pools: Pools::File { readers, writer }, checkpointer: Some(checkpointer), backend })
    }

    /// How many chunk transactions of one upload run at once: one on SQLite, whose file has
    /// one writer at a time; two on PostgreSQL, whose server then works on two cores.
    pub(super) fn parallel_writes(&self) -> usize {
        if self.backend == Backend::Sqlite { 1 } else { 2 }
    }

    /// Writes chunks under `key`, in one transaction. A chunk no one else holds reaches a chunk
    /// file's driver without a copy (the `Any` driver copies every chunk it is given).
    pub(super) async fn insert(&self, key: &str, chunks: Vec<(i64, Bytes)>) -> Result<(), StoreError> {
        const INSERT: &str =
            "INSERT INTO blob_chunks (sha256, idx, data) VALUES ($1, $2, $3) ON CONFLICT (sha256, idx) DO NOTHING";
        let bytes = chunks.iter().map(|(_, data)| data.len() as u64).sum();
        on_pool!(self.pools, writer, |pool| {
            let mut tx = pool.begin().await.map_err(StoreError::db("writing blob chunks"))?;
            for (index, data) in chunks {
                let query = sqlx::query(INSERT).bind(key).bind(index).bind(Vec::from(data));
                query.execute(&mut *tx).await.map_err(StoreError::db("writing a blob chunk"))?;
            }
            tx.commit().await.map_err(StoreError::db("writing blob chunks"))?;
        });
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wrote(bytes);
        }
        Ok(())
    }

    /// Makes every chunk written so far survive a power loss. A content row in the main file
    /// must never outlive its chunks, and two files give no order between their writes: on a
    /// SQLite chunk file this syncs its log (whatever was copied out of the log was synced by
    /// the copy). On PostgreSQL, chunks and content rows share one log, which keeps the order.
    pub(super) async fn make_durable(&self) -> Result<(), StoreError> {
        match &self.checkpointer {
            Some(checkpointer) => checkpointer.sync_log().await,
            None => Ok(()),
        }
    }

    /// One chunk of the content stored under `key`.
    pub(super) async fn read(&self, key: &str, index: i64) -> Result<Vec<u8>, StoreError> {
        const SELECT: &str = "SELECT data FROM blob_chunks WHERE sha256 = $1 AND idx = $2";
        let data = on_pool!(self.pools, readers, |pool| {
            sqlx::query_scalar::<_, Vec<u8>>(SELECT).bind(key).bind(index).fetch_optional(pool).await
        })
        .map_err(StoreError::db("reading a blob chunk"))?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.read();
        }
        data.ok_or_else(|| StoreError::Corrupt {
            what: "blob content",
            detail: format!("chunk {index} of {key} is missing"),
        })
    }

    /// Deletes the chunks stored under `key`.
    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        const DELETE: &str = "DELETE FROM blob_chunks WHERE sha256 = $1";
        on_pool!(self.pools, writer, |pool| sqlx::query(DELETE).bind(key).execute(pool).await.map(drop))
            .map_err(StoreError::db("deleting the chunks of an unused upload"))
    }

    /// The keys starting with `prefix` that sort before `before`.
    pub(super) async fn keys_between(&self, prefix: &str, before: &str) -> Result<Vec<String>, StoreError> {
        const KEYS: &str = "SELECT DISTINCT sha256 FROM blob_chunks WHERE sha256 >= $1 AND sha256 < $2";
        on_pool!(self.pools, readers, |pool| {
            sqlx::query_scalar::<_, String>(KEYS).bind(prefix).bind(before).fetch_all(pool).await
        })
        .map_err(StoreError::db("listing the chunks of unfinished uploads"))
    }

    /// How many chunks are stored.
    pub(super) async fn count(&self) -> Result<i64, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM blob_chunks";
        on_pool!(self.pools, readers, |pool| sqlx::query_scalar::<_, i64>(COUNT).fetch_one(pool).await)
            .map_err(StoreError::db("counting blob chunks"))
    }

    /// Closes the chunk file, when there is one (the main pool is closed by its owner).
    pub(super) async fn close(&self) {
        if let Pools::File { readers, writer } = &self.pools {
            writer.close().await;
            readers.close().await;
        }
    }
}
