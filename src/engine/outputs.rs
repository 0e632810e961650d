//! An actor's outputs stored as they come out of its container: each file streams into a
//! blob writer, so an output is never held whole in memory.

use futures::future::BoxFuture;

use crate::docker::OutputSink;
use crate::model::blob::BlobRef;
use crate::store::{BlobUpload, BlobWriter, Store};

/// Stores one attempt's outputs as blobs named after the files.
pub struct StoredOutputs {
    store: Store,
    chunk_size: u64,
    remark: String,
    tag: Option<String>,
    current: Option<(String, BlobWriter)>,
    /// The outputs stored so far.
    pub stored: Vec<BlobRef>,
}

impl StoredOutputs {
    pub fn new(store: Store, chunk_size: u64, actor: &str, tag: Option<String>) -> StoredOutputs {
        let remark = format!("output of {actor}");
        StoredOutputs { store, chunk_size, remark, tag, current: None, stored: Vec::new() }
    }

    /// The stored output of each of `names` that was stored, in that order.
    pub fn in_order(&self, names: &[String]) -> Vec<BlobRef> {
        names.iter().filter_map(|name| self.stored.iter().find(|b| &b.name == name).cloned()).collect()
    }
}

impl OutputSink for StoredOutputs {
    fn begin<'a>(&'a mut self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        self.current = Some((name.to_owned(), self.store.blob_writer(self.chunk_size)));
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (name, writer) = self.current.as_mut().ok_or("output bytes before the output's name")?;
            writer.write(bytes).await.map_err(|e| format!("output {name}: {e}"))
        })
    }

    fn end(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let (name, writer) = self.current.take().ok_or("the end of an output that never began")?;
            let upload =
                BlobUpload { name: name.clone(), remark: self.remark.clone(), time_stamp: crate::model::now_secs() };
            let blob = writer.finish(&upload).await.map_err(|e| format!("output {name}: {e}"))?;
            self.stored.push(BlobRef { id: blob.id, name, tag: self.tag.clone() });
            Ok(())
        })
    }
}
