//! Writing blob content as it streams in, at the speed of the disk: the bytes are cut into
//! chunks, and each chunk is hashed (ring's assembly SHA-256, on a blocking thread) and
//! written to the database (several chunks per transaction, on a task of its own) at the same
//! time, so neither waits for the other and nothing is spooled to a file.
//!
//! Chunks are written before the content's SHA-256 is known, under a key of this upload
//! (`upload-<epoch ms>-<uuid>`); the content row names that key. Content of at most one chunk
//! is held until the end and stored under its SHA-256, once however often it comes. An
//! upload given up leaves its chunks to a task that deletes them; a crash leaves them to
//! [`Store::sweep_abandoned_chunks`].

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::blobs::{BlobUpload, Written};
use super::{Store, StoreError};
use crate::model::blob::Blob;
use crate::model::now_millis;

/// Chunks queued for the database, and at most this many per transaction: a few large
/// transactions instead of one per chunk.
const CHUNKS_PER_TRANSACTION: usize = 3;

/// Key prefix of chunks written before their content's hash was known.
pub(super) const UPLOAD_KEY_PREFIX: &str = "upload-";

/// One blob's content being written. Call [`BlobWriter::finish`] to store it; dropping the
/// writer instead throws away what was written.
pub struct BlobWriter {
    store: Store,
    chunk_size: usize,
    pending: BytesMut,
    size: u64,
    spill: Option<Spill>,
}

/// The channel to the database writer task, and the task.
type ChunkWriter = (mpsc::Sender<(i64, Bytes)>, JoinHandle<Result<(), StoreError>>);

/// The chunks already sent off: to the hasher and to the database writer.
struct Spill {
    key: String,
    chunks: i64,
    hash: Option<(mpsc::Sender<Bytes>, JoinHandle<String>)>,
    db: Option<ChunkWriter>,
}

impl BlobWriter {
    pub(super) fn new(store: Store, chunk_size: u64) -> BlobWriter {
        let chunk_size = chunk_size.max(1) as usize;
        BlobWriter { store, chunk_size, pending: BytesMut::new(), size: 0, spill: None }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds bytes to the content; waits while the hasher or the database is behind.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        self.size += data.len() as u64;
        while !data.is_empty() {
            if self.pending.len() == self.chunk_size {
                // A full chunk goes once more bytes follow: content of one chunk stays small.
                let chunk = self.pending.split().freeze();
                let store = self.store.clone();
                self.spill.get_or_insert_with(|| Spill::start(store)).send(chunk).await?;
            }
            if self.pending.capacity() < self.chunk_size {
                self.pending.reserve(self.chunk_size - self.pending.len());
            }
            let take = (self.chunk_size - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Stores the content and a blob row naming it; gives back the blob.
    pub async fn finish(mut self, upload: &BlobUpload) -> Result<Blob, StoreError> {
        let Some(mut spill) = self.spill.take() else {
            let bytes = self.pending.split().freeze();
            return self.store.put_small_content(upload, &bytes).await;
        };
        let result = self.finish_spilled(&mut spill, upload).await;
        if result.is_err() {
            // Dropping the writer deletes the chunks written so far.
            self.spill = Some(spill);
        }
        result
    }

    async fn finish_spilled(&mut self, spill: &mut Spill, upload: &BlobUpload) -> Result<Blob, StoreError> {
        if !self.pending.is_empty() {
            spill.send(self.pending.split().freeze()).await?;
        }
        let sha256 = spill.hash_result().await?;
        spill.db_result().await?;
        let written = Written { sha256, size: self.size, chunk_count: spill.chunks, chunk_key: spill.key.clone() };
        // The chunks become the content's, or are deleted when the same bytes were stored before.
        self.store.commit_content(upload, &written).await
    }
}

impl Spill {
    fn start(store: Store) -> Spill {
        let key = format!("{UPLOAD_KEY_PREFIX}{:013}-{}", now_millis(), Uuid::new_v4().simple());
        // The hasher is the faster of the two: a short queue is enough to keep it busy.
        let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(2);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            while let Some(chunk) = hash_rx.blocking_recv() {
                context.update(&chunk);
            }
            hex::encode(context.finish())
        });
        let (db_tx, db_rx) = mpsc::channel(CHUNKS_PER_TRANSACTION);
        let writer = tokio::spawn(write_chunks(store, key.clone(), db_rx));
        Spill { key, chunks: 0, hash: Some((hash_tx, hasher)), db: Some((db_tx, writer)) }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let index = self.chunks;
        self.chunks += 1;
        if let Some((hash, _)) = &self.hash {
            // The hasher only stops when its sender is dropped.
            let _ = hash.send(chunk.clone()).await;
        }
        let sent = match &self.db {
            Some((db, _)) => db.send((index, chunk)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its result says why.
        Err(self.db_result().await.err().unwrap_or_else(|| lost("chunk writer")))
    }

    async fn hash_result(&mut self) -> Result<String, StoreError> {
        let (sender, task) = self.hash.take().ok_or_else(|| lost("hasher"))?;
        drop(sender);
        task.await.map_err(|e| StoreError::Corrupt { what: "blob upload", detail: format!("hashing failed: {e}") })
    }

    async fn db_result(&mut self) -> Result<(), StoreError> {
        let (sender, task) = self.db.take().ok_or_else(|| lost("chunk writer"))?;
        drop(sender);
        task.await
            .map_err(|e| StoreError::Corrupt { what: "blob upload", detail: format!("writing chunks failed: {e}") })?
    }
}

fn lost(what: &str) -> StoreError {
    StoreError::Corrupt { what: "blob upload", detail: format!("the {what} was already stopped") }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        let Some(mut spill) = self.spill.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        runtime.spawn(async move {
            if let Some((sender, task)) = spill.db.take() {
                drop(sender);
                task.abort();
                let _ = task.await;
            }
            if let Err(err) = store.chunks.delete(&spill.key).await {
                tracing::warn!(key = %spill.key, error = %err, "cannot delete the chunks of an abandoned upload");
            }
        });
    }
}

/// Writes chunks as they come, as many as are waiting (up to a batch) in one transaction, and
/// as many transactions at once as the database can run side by side.
async fn write_chunks(store: Store, key: String, chunks: mpsc::Receiver<(i64, Bytes)>) -> Result<(), StoreError> {
    let parallel = store.chunks.parallel_writes();
    let batches = futures::stream::unfold(chunks, |mut chunks| async move {
        let mut batch = Vec::with_capacity(CHUNKS_PER_TRANSACTION);
        (chunks.recv_many(&mut batch, CHUNKS_PER_TRANSACTION).await > 0).then_some((batch, chunks))
    });
    batches
        .map(|batch| {
            let (store, key) = (&store, &key);
            async move { store.chunks.insert(key, batch).await }
        })
        .buffer_unordered(parallel)
        .try_for_each(|()| std::future::ready(Ok(())))
        .await
}
