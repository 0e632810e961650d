//! Blob content addressed by SHA-256 and stored in chunks, once however often it is uploaded,
//! and the blob rows that give content a name.
//!
//! Content comes in through a [`BlobWriter`] (`blob_writer.rs`), which writes its chunks while
//! it hashes them, a few chunks per transaction; the content row and the blob row are
//! written together at the end, so a content row always has all its chunks. Chunks without
//! a content row are an interrupted upload's: deleted when it is given up, or at a later
//! start ([`Store::sweep_abandoned_chunks`]).

use bytes::Bytes;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::blob_writer::{BlobWriter, UPLOAD_KEY_PREFIX};
use super::{Page, Store, StoreError, parse_uuid};
use crate::model::blob::{Blob, Content};
use crate::model::{now_millis, to_time};

/// What a caller says about a blob it uploads.
#[derive(Debug, Clone)]
pub struct BlobUpload {
    pub name: String,
    pub remark: String,
    pub time_stamp: i64,
}

/// Content whose chunks are all written, ready for its content row.
pub(super) struct Written {
    pub sha256: String,
    pub size: u64,
    pub chunk_count: i64,
    pub chunk_key: String,
}

/// How long the chunks of an upload that never finished are kept (it may still be running
/// in another service sharing the database).
const ABANDONED_AFTER_MS: i64 = 24 * 3600 * 1000;

/// SHA-256 in hex, by ring's assembly implementation (SHA extensions or AVX2 where the CPU has them).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

const COLUMNS: &str = "b.id, b.name, b.remark, b.time_stamp, b.created_at, b.sha256, c.size, c.chunk_count, COALESCE(c.chunk_key, c.sha256) AS chunk_key";

fn blob(row: &AnyRow) -> Result<(Blob, Content), StoreError> {
    let get = |e: sqlx::Error| StoreError::Database { doing: "reading a blob", source: e };
    let sha256: String = row.try_get("sha256").map_err(get)?;
    let size: i64 = row.try_get("size").map_err(get)?;
    let blob = Blob {
        id: parse_uuid("blob id", &row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        remark: row.try_get("remark").map_err(get)?,
        time_stamp: row.try_get("time_stamp").map_err(get)?,
        size,
        sha256: sha256.clone(),
        created_at: to_time(row.try_get("created_at").map_err(get)?),
    };
    let content = Content {
        sha256,
        size,
        chunk_count: row.try_get("chunk_count").map_err(get)?,
        chunk_key: row.try_get("chunk_key").map_err(get)?,
    };
    Ok((blob, content))
}

impl Store {
    /// A writer for one blob's content, `chunk_size` bytes per stored chunk.
    pub fn blob_writer(&self, chunk_size: u64) -> BlobWriter {
        BlobWriter::new(self.clone(), chunk_size)
    }

    /// Stores a blob whose bytes are in memory.
    pub async fn put_blob(&self, upload: &BlobUpload, bytes: &[u8], chunk_size: u64) -> Result<Blob, StoreError> {
        let mut writer = self.blob_writer(chunk_size);
        writer.write(bytes).await?;
        writer.finish(upload).await
    }

    /// Stores content of at most one chunk under its SHA-256, unless the same bytes are stored.
    pub(super) async fn put_small_content(&self, upload: &BlobUpload, bytes: &Bytes) -> Result<Blob, StoreError> {
        let sha256 = sha256_hex(bytes);
        let known = sqlx::query("SELECT sha256 FROM blob_contents WHERE sha256 = $1")
            .bind(&sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("looking up blob content"))?
            .is_some();
        let chunk_count = if bytes.is_empty() { 0 } else { 1 };
        if !known && chunk_count == 1 {
            self.chunks.insert(&sha256, vec![(0, bytes.clone())]).await?;
        }
        let written = Written { chunk_key: sha256.clone(), sha256, size: bytes.len() as u64, chunk_count };
        self.commit_content(upload, &written).await
    }

    /// Writes the content row (unless the same bytes are stored) and the blob row together.
    /// Chunks written under an upload's key that turn out not to be needed are deleted.
    pub(super) async fn commit_content(&self, upload: &BlobUpload, written: &Written) -> Result<Blob, StoreError> {
        let id = Uuid::new_v4();
        let now = now_millis();
        let chunk_key = (written.chunk_key != written.sha256).then_some(written.chunk_key.as_str());
        self.chunks.make_durable().await?;
        let mut tx = self.pool.begin().await.map_err(StoreError::db("storing a blob"))?;
        let inserted = sqlx::query(
            "INSERT INTO blob_contents (sha256, size, chunk_count, created_at, chunk_key) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&written.sha256)
        .bind(written.size as i64)
        .bind(written.chunk_count)
        .bind(now)
        .bind(chunk_key)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("storing blob content"))?
        .rows_affected();
        sqlx::query(
            "INSERT INTO blobs (id, sha256, name, remark, time_stamp, seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(&written.sha256)
        .bind(&upload.name)
        .bind(&upload.remark)
        .bind(upload.time_stamp)
        .bind(crate::model::next_seq())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("storing a blob"))?;
        tx.commit().await.map_err(StoreError::db("storing a blob"))?;
        if inserted == 0
            && let Some(key) = chunk_key
            && let Err(err) = self.chunks.delete(key).await
        {
            tracing::warn!(key, error = %err, "cannot delete the chunks of content stored twice");
        }
        Ok(Blob {
            id,
            name: upload.name.clone(),
            remark: upload.remark.clone(),
            time_stamp: upload.time_stamp,
            size: written.size as i64,
            sha256: written.sha256.clone(),
            created_at: to_time(now),
        })
    }

    /// Deletes the chunks of uploads that started more than a day ago and never finished;
    /// gives back how many uploads they were.
    pub async fn sweep_abandoned_chunks(&self) -> Result<u64, StoreError> {
        let cutoff = format!("{UPLOAD_KEY_PREFIX}{:013}", now_millis() - ABANDONED_AFTER_MS);
        let mut swept = 0;
        for key in self.chunks.keys_between(UPLOAD_KEY_PREFIX, &cutoff).await? {
            let named = sqlx::query("SELECT sha256 FROM blob_contents WHERE chunk_key = $1")
                .bind(&key)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("looking up the content of an unfinished upload"))?;
            if named.is_none() {
                self.chunks.delete(&key).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// The first blob stored with this content, if any.
    pub async fn first_blob_with(&self, sha256: &str) -> Result<Option<Blob>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM blobs b JOIN blob_contents c ON c.sha256 = b.sha256 \
             WHERE b.sha256 = $1 ORDER BY b.seq LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("looking up a blob by its content"))?;
        row.map(|row| blob(&row).map(|(blob, _)| blob)).transpose()
    }

    pub async fn get_blob(&self, id: Uuid) -> Result<(Blob, Content), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM blobs b JOIN blob_contents c ON c.sha256 = b.sha256 WHERE b.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading a blob"))?;
        match row {
            Some(row) => blob(&row),
            None => Err(StoreError::NotFound { kind: "blob", key: id.to_string() }),
        }
    }

    /// Which of `ids` name no stored blob.
    pub async fn missing_blobs(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        let mut missing = Vec::new();
        for id in ids {
            let found = sqlx::query("SELECT id FROM blobs WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("looking up a blob"))?;
            if found.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    }

    pub async fn list_blobs(&self, page: Page) -> Result<(Vec<Blob>, i64), StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM blobs b JOIN blob_contents c ON c.sha256 = b.sha256 \
             ORDER BY b.seq DESC{}",
            page.sql()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("listing blobs"))?;
        let total = self.count("blobs").await?;
        let blobs = rows.iter().map(|row| blob(row).map(|(b, _)| b)).collect::<Result<_, _>>()?;
        Ok((blobs, total))
    }

    /// One chunk of stored content, by the content's `chunk_key`.
    pub async fn blob_chunk(&self, chunk_key: &str, index: i64) -> Result<Vec<u8>, StoreError> {
        self.chunks.read(chunk_key, index).await
    }

    /// The whole content of a blob, for callers that need it in memory (base64 replies, small files).
    pub async fn read_blob(&self, content: &Content) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::with_capacity(content.size.max(0) as usize);
        for index in 0..content.chunk_count {
            bytes.extend(self.blob_chunk(&content.chunk_key, index).await?);
        }
        Ok(bytes)
    }

    /// How many distinct contents and chunks are stored (for tests and metrics).
    pub async fn content_stats(&self) -> Result<(i64, i64), StoreError> {
        let contents = self.count("blob_contents").await?;
        let chunks = self.chunks.count().await?;
        Ok((contents, chunks))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_like_sha256sum() {
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
