//! Collecting an actor's outputs: one archive read of `/workdir`, parsed as it streams (the
//! `tar` crate on a blocking thread), each wanted file's bytes handed to an [`OutputSink`]
//! piece by piece, so no output is ever held whole. The number of outputs and their total
//! size are capped; collection stops at a deadline and at once on cancel.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::DockerError;

/// Where collected outputs go, one file at a time: `begin`, `write`s, `end`.
pub trait OutputSink: Send {
    fn begin<'a>(&'a mut self, name: &'a str) -> BoxFuture<'a, Result<(), String>>;
    fn write<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, Result<(), String>>;
    fn end(&mut self) -> BoxFuture<'_, Result<(), String>>;
}

/// What to collect, and the caps.
pub struct Wanted {
    pub names: Vec<String>,
    pub file_limit: u64,
    pub total_limit: u64,
}

/// What collection found.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files handed to the sink, in the order of `Wanted::names`.
    pub files: Vec<String>,
    pub missing: Vec<String>,
    pub too_large: Vec<String>,
    /// Why collection stopped before its end: over the total cap, or out of time.
    pub stopped: Option<String>,
    pub cancelled: bool,
}

/// One piece of the archive, as the parsing thread sees it.
enum Piece {
    Begin(String),
    Data(Bytes),
    End,
    TooLarge(String),
    OverTotal(String, u64),
}

/// Bytes handed to the sink at a time.
const PIECE: usize = 256 << 10;

/// Reads the wanted files out of `archive` (the engine's archive of `/workdir`) into `sink`.
pub async fn collect(
    node: &str,
    archive: super::ContentStream,
    wanted: Wanted,
    sink: &mut dyn OutputSink,
    cancel: &CancellationToken,
    deadline: Instant,
) -> Result<Collected, DockerError> {
    let broken =
        |message: String| DockerError::Broken { node: node.to_owned(), doing: "reading the outputs archive", message };
    let (tx, mut rx) = mpsc::channel::<Result<Piece, String>>(8);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(archive));
    let names = wanted.names.clone();
    let (file_limit, total_limit) = (wanted.file_limit, wanted.total_limit);
    let parser = tokio::task::spawn_blocking(move || {
        if let Err(err) = parse(reader, &names, file_limit, total_limit, &tx) {
            let _ = tx.blocking_send(Err(err.to_string()));
        }
    });
    let mut found = Collected::default();
    let mut seen = Vec::new();
    let result = loop {
        let piece = tokio::select! {
            piece = rx.recv() => piece,
            _ = cancel.cancelled() => {
                found.cancelled = true;
                break Ok(());
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                found.stopped = Some("timed out collecting outputs: collection counts against the execution timeout".into());
                break Ok(());
            }
        };
        let step = match piece {
            None => break Ok(()),
            Some(Err(message)) => break Err(broken(message)),
            Some(Ok(Piece::Begin(name))) => {
                let step = sink.begin(&name).await;
                seen.push(name);
                step
            }
            Some(Ok(Piece::Data(bytes))) => sink.write(&bytes).await,
            Some(Ok(Piece::End)) => sink.end().await,
            Some(Ok(Piece::TooLarge(name))) => {
                found.too_large.push(name.clone());
                seen.push(name);
                Ok(())
            }
            Some(Ok(Piece::OverTotal(name, total))) => {
                found.stopped = Some(format!(
                    "outputs hold more than {} bytes together (at least {total} with {name}; executor.max_outputs_size)",
                    wanted.total_limit
                ));
                break Ok(());
            }
        };
        if let Err(message) = step {
            break Err(broken(format!("cannot store an output: {message}")));
        }
    };
    // The parser stops at its next piece once nobody listens.
    drop(rx);
    if found.cancelled || found.stopped.is_some() || result.is_err() {
        parser.abort();
    }
    result?;
    for name in wanted.names {
        if found.too_large.contains(&name) {
            continue;
        }
        if seen.contains(&name) {
            found.files.push(name);
        } else if found.stopped.is_none() && !found.cancelled {
            found.missing.push(name);
        }
    }
    Ok(found)
}

/// Walks the archive, sending the wanted regular files of `workdir/` piece by piece.
fn parse(
    reader: impl Read,
    names: &[String],
    file_limit: u64,
    total_limit: u64,
    tx: &mpsc::Sender<Result<Piece, String>>,
) -> std::io::Result<()> {
    let gone = || std::io::Error::other("collection stopped");
    let send = |piece| tx.blocking_send(Ok(piece)).map_err(|_| gone());
    let mut total = 0u64;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(name) = path.strip_prefix("workdir/") else { continue };
        if entry.header().entry_type() != tar::EntryType::Regular || !names.iter().any(|n| n == name) {
            continue;
        }
        let name = name.to_owned();
        let size = entry.size();
        if size > file_limit {
            send(Piece::TooLarge(name))?;
            continue;
        }
        total += size;
        if total > total_limit {
            send(Piece::OverTotal(name, total))?;
            return Ok(());
        }
        send(Piece::Begin(name))?;
        let mut buf = vec![0; PIECE];
        loop {
            let read = entry.read(&mut buf)?;
            if read == 0 {
                break;
            }
            send(Piece::Data(Bytes::copy_from_slice(&buf[..read])))?;
        }
        send(Piece::End)?;
    }
    Ok(())
}

/// The engine's archive stream as the bytes `collect` reads.
pub fn archive_stream<S, E>(stream: S) -> super::ContentStream
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    stream.map(|item| item.map_err(|e| std::io::Error::other(e.to_string()))).boxed()
}
