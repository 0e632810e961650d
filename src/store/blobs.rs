//! Blob content addressed by SHA-256 and stored in chunks, once however often it is uploaded,
//! and the blob rows that give content a name.
//!
//! Writing a new content writes its chunks one statement at a time (so a large upload never
//! holds the database's write lock for long), then the content row and the blob row together.
//! A crash between the two leaves chunks without a content row: harmless, and reused when the
//! same bytes come again.

use std::io::SeekFrom;

use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

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

/// Where the bytes of an upload are: in memory, or spooled to a file whose hash is known.
pub enum ContentSource<'a> {
    Bytes(&'a [u8]),
    File { file: &'a mut tokio::fs::File, sha256: String, size: u64 },
}

impl ContentSource<'_> {
    fn sha256_and_size(&self) -> (String, u64) {
        match self {
            ContentSource::Bytes(bytes) => (sha256_hex(bytes), bytes.len() as u64),
            ContentSource::File { sha256, size, .. } => (sha256.clone(), *size),
        }
    }

    async fn chunk(&mut self, index: u64, chunk_size: u64, size: u64) -> Result<Vec<u8>, StoreError> {
        let start = index * chunk_size;
        let len = chunk_size.min(size - start) as usize;
        match self {
            ContentSource::Bytes(bytes) => Ok(bytes[start as usize..start as usize + len].to_vec()),
            ContentSource::File { file, .. } => {
                let io = |source| StoreError::Io { doing: "reading the spooled upload", source };
                file.seek(SeekFrom::Start(start)).await.map_err(io)?;
                let mut buf = vec![0; len];
                file.read_exact(&mut buf).await.map_err(io)?;
                Ok(buf)
            }
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

const COLUMNS: &str = "b.id, b.name, b.remark, b.time_stamp, b.created_at, b.sha256, c.size, c.chunk_count";

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
    let content = Content { sha256, size, chunk_count: row.try_get("chunk_count").map_err(get)? };
    Ok((blob, content))
}

impl Store {
    /// Stores a blob, writing its content only if no blob has the same bytes yet.
    pub async fn put_blob(
        &self,
        upload: &BlobUpload,
        mut source: ContentSource<'_>,
        chunk_size: u64,
    ) -> Result<Blob, StoreError> {
        let (sha256, size) = source.sha256_and_size();
        let chunk_count = size.div_ceil(chunk_size);
        let known = sqlx::query("SELECT sha256 FROM blob_contents WHERE sha256 = $1")
            .bind(&sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("looking up blob content"))?
            .is_some();
        if !known {
            for index in 0..chunk_count {
                let data = source.chunk(index, chunk_size, size).await?;
                sqlx::query(
                    "INSERT INTO blob_chunks (sha256, idx, data) VALUES ($1, $2, $3) ON CONFLICT (sha256, idx) DO NOTHING",
                )
                .bind(&sha256)
                .bind(index as i64)
                .bind(data)
                .execute(&self.pool)
                .await
                .map_err(StoreError::db("writing a blob chunk"))?;
            }
        }
        let id = Uuid::new_v4();
        let now = now_millis();
        let mut tx = self.pool.begin().await.map_err(StoreError::db("storing a blob"))?;
        sqlx::query(
            "INSERT INTO blob_contents (sha256, size, chunk_count, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&sha256)
        .bind(size as i64)
        .bind(chunk_count as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("storing blob content"))?;
        sqlx::query(
            "INSERT INTO blobs (id, sha256, name, remark, time_stamp, seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(&sha256)
        .bind(&upload.name)
        .bind(&upload.remark)
        .bind(upload.time_stamp)
        .bind(crate::model::next_seq())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::db("storing a blob"))?;
        tx.commit().await.map_err(StoreError::db("storing a blob"))?;
        Ok(Blob {
            id,
            name: upload.name.clone(),
            remark: upload.remark.clone(),
            time_stamp: upload.time_stamp,
            size: size as i64,
            sha256,
            created_at: to_time(now),
        })
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

    /// One chunk of stored content.
    pub async fn blob_chunk(&self, sha256: &str, index: i64) -> Result<Vec<u8>, StoreError> {
        let data = sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM blob_chunks WHERE sha256 = $1 AND idx = $2")
            .bind(sha256)
            .bind(index)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db("reading a blob chunk"))?;
        data.ok_or_else(|| StoreError::Corrupt {
            what: "blob content",
            detail: format!("chunk {index} of {sha256} is missing"),
        })
    }

    /// The whole content of a blob, for callers that need it in memory (base64 replies, small files).
    pub async fn read_blob(&self, content: &Content) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::with_capacity(content.size.max(0) as usize);
        for index in 0..content.chunk_count {
            bytes.extend(self.blob_chunk(&content.sha256, index).await?);
        }
        Ok(bytes)
    }

    /// How many distinct contents and chunks are stored (for tests and metrics).
    pub async fn content_stats(&self) -> Result<(i64, i64), StoreError> {
        let contents = self.count("blob_contents").await?;
        let chunks = self.count("blob_chunks").await?;
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
