//! The tar archives the engine's archive API speaks: one archive with an actor's inputs and
//! its script going in, and `return.json` coming out (outputs come out in one archive of the
//! work directory, read as it streams by `outputs.rs`).

use std::io::Read;

use bytes::Bytes;
use futures::StreamExt;

use super::container::{ContentStream, InputContent};

/// The user actors run as, and owner of what is uploaded.
pub const ACTOR_UID: u64 = 1000;

/// The archive unpacked at `/` — `/actor/run`, then `/workdir/<name>` for each input — as a
/// stream: headers are made here, each input's bytes come from its own source.
pub fn inputs_archive(script: &str, inputs: &[super::InputFile]) -> std::io::Result<ContentStream> {
    let mut head = tar::Builder::new(Vec::new());
    directory(&mut head, "workdir/", 0o777)?;
    directory(&mut head, "actor/", 0o755)?;
    file(&mut head, "actor/run", script.as_bytes(), 0o755)?;
    let mut parts: Vec<ContentStream> = vec![once(head.get_ref().clone())];
    for input in inputs {
        parts.push(once(file_header(&format!("workdir/{}", input.name), input.size)?));
        parts.push(match &input.content {
            InputContent::Bytes(bytes) => futures::stream::iter([Ok(bytes.clone())]).boxed(),
            InputContent::Stream(make) => make(),
        });
        let padding = (512 - input.size % 512) % 512;
        parts.push(once(vec![0; padding as usize]));
    }
    // Two empty blocks end an archive.
    parts.push(once(vec![0; 1024]));
    Ok(futures::stream::iter(parts).flatten().boxed())
}

fn once(bytes: Vec<u8>) -> ContentStream {
    futures::stream::iter([Ok(Bytes::from(bytes))]).boxed()
}

/// The header block(s) of a regular file of `size` bytes, long names included; its data and
/// padding follow separately.
fn file_header(path: &str, size: u64) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = header(tar::EntryType::Regular, size, 0o644);
    // The builder writes the header blocks and copies no data: exactly what is wanted here.
    builder.append_data(&mut header, path, std::io::empty())?;
    Ok(builder.get_ref().clone())
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(ACTOR_UID);
    header.set_gid(ACTOR_UID);
    header.set_mtime(0);
    header
}

fn directory(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0, mode);
    builder.append_data(&mut header, path, std::io::empty())
}

fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8], mode: u32) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Regular, content.len() as u64, mode);
    builder.append_data(&mut header, path, content)
}

/// What became of one requested output file.
#[derive(Debug, PartialEq)]
pub enum Extracted {
    File(Vec<u8>),
    NotAFile,
    TooLarge,
}

/// Takes the single file out of an archive the engine sent for one path.
pub fn single_file(archive: &[u8], limit: u64) -> std::io::Result<Extracted> {
    let mut archive = tar::Archive::new(archive);
    let mut entries = archive.entries()?;
    let Some(entry) = entries.next() else { return Ok(Extracted::NotAFile) };
    let mut entry = entry?;
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Ok(Extracted::NotAFile);
    }
    if entry.size() > limit {
        return Ok(Extracted::TooLarge);
    }
    let mut content = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut content)?;
    Ok(Extracted::File(content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::InputFile;
    use crate::docker::container::InputContent;

    #[tokio::test]
    async fn inputs_and_outputs_round_trip() {
        let long_name = format!("{}.txt", "n".repeat(150));
        let streamed: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<Bytes> = streamed.chunks(700).map(Bytes::copy_from_slice).collect();
        let inputs = vec![
            InputFile::bytes("in.txt", b"1 2\n".to_vec()),
            InputFile {
                name: long_name.clone(),
                size: streamed.len() as u64,
                content: InputContent::Stream(std::sync::Arc::new(move || {
                    futures::stream::iter(chunks.clone().into_iter().map(Ok)).boxed()
                })),
            },
        ];
        let mut stream = inputs_archive("echo hi", &inputs).expect("archive");
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(bytes.len() % 512, 0, "whole blocks");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("content");
            if name == format!("workdir/{long_name}") {
                assert!(content == streamed, "a streamed input arrives whole");
            }
            if name == "workdir/in.txt" {
                assert_eq!(content, b"1 2\n");
            }
            names.push(name);
        }
        assert_eq!(names, ["workdir/", "actor/", "actor/run", "workdir/in.txt", &format!("workdir/{long_name}")]);

        let mut one = tar::Builder::new(Vec::new());
        file(&mut one, "out.txt", b"hello", 0o644).expect("append");
        let one = one.into_inner().expect("finish");
        assert_eq!(single_file(&one, 100).expect("read"), Extracted::File(b"hello".to_vec()));
        assert_eq!(single_file(&one, 4).expect("read"), Extracted::TooLarge);
    }
}
