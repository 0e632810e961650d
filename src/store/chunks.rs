//! Blob chunks: the bytes of stored content, in pieces of `blobs.chunk_size`, under the key
//! the content row names.
//!
//! On PostgreSQL they are a table beside the others. On SQLite they live in a file of their
//! own next to the main one (`chunk_file.rs`), with pages sixteen times as large and a write
//! lock and write-ahead log of their own; the main file keeps small pages for its small rows.

use bytes::Bytes;
use sqlx::AnyPool;

use super::chunk_file::{self, Checkpointer};
use super::{Backend, StoreError};

/// Where chunks are read and written.
#[derive(Clone)]
pub(super) struct Chunks {
    /// Reads chunks.
    pool: AnyPool,
    /// Writes and deletes chunks: `pool` itself, or on a SQLite file one connection with a
    /// page cache large enough for a transaction, so that writes queue here instead of
    /// polling for the file's write lock.
    writer: AnyPool,
    /// On a SQLite file: copies the chunk file's log back when the file is left alone.
    checkpointer: Option<Checkpointer>,
    backend: Backend,
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
            return Ok(Chunks { pool: main.clone(), writer: main.clone(), checkpointer: None, backend });
        };
        let writer = chunk_file::open(&path, chunk_file::Role::Writer).await?;
        let pool = chunk_file::open(&path, chunk_file::Role::Readers(max_connections)).await?;
        chunk_file::move_from_main(main, &path).await?;
        let checkpointer = Checkpointer::start(pool.clone(), &path);
        Ok(Chunks { pool, writer, checkpointer: Some(checkpointer), backend })
    }

    /// How many chunk transactions of one upload run at once: one on SQLite, whose file has
    /// one writer at a time; two on PostgreSQL, whose server then works on two cores.
    pub(super) fn parallel_writes(&self) -> usize {
        if self.backend == Backend::Sqlite { 1 } else { 2 }
    }

    /// Writes chunks under `key`, in one transaction.
    pub(super) async fn insert(&self, key: &str, chunks: &[(i64, Bytes)]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(StoreError::db("writing blob chunks"))?;
        for (index, data) in chunks {
            sqlx::query(
                "INSERT INTO blob_chunks (sha256, idx, data) VALUES ($1, $2, $3) ON CONFLICT (sha256, idx) DO NOTHING",
            )
            .bind(key)
            .bind(*index)
            .bind(&data[..])
            .execute(&mut *tx)
            .await
            .map_err(StoreError::db("writing a blob chunk"))?;
        }
        tx.commit().await.map_err(StoreError::db("writing blob chunks"))?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wrote(chunks.iter().map(|(_, data)| data.len() as u64).sum());
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
        let data = sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM blob_chunks WHERE sha256 = $1 AND idx = $2")
            .bind(key)
            .bind(index)
            .fetch_optional(&self.pool)
            .await
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
        sqlx::query("DELETE FROM blob_chunks WHERE sha256 = $1")
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(StoreError::db("deleting the chunks of an unused upload"))?;
        Ok(())
    }

    /// The keys starting with `prefix` that sort before `before`.
    pub(super) async fn keys_between(&self, prefix: &str, before: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>("SELECT DISTINCT sha256 FROM blob_chunks WHERE sha256 >= $1 AND sha256 < $2")
            .bind(prefix)
            .bind(before)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing the chunks of unfinished uploads"))
    }

    /// How many chunks are stored.
    pub(super) async fn count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blob_chunks")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting blob chunks"))
    }

    /// Closes the chunk file, when there is one (the main pool is closed by its owner).
    pub(super) async fn close(&self) {
        if self.checkpointer.is_some() {
            self.writer.close().await;
            self.pool.close().await;
        }
    }
}
