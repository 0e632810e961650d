//! The tar archives the engine's archive API speaks: one archive with an actor's inputs and
//! its script going in, one archive per output file coming out.

use std::io::Read;

/// The user actors run as, and owner of what is uploaded.
pub const ACTOR_UID: u64 = 1000;

/// Builds the archive unpacked at `/`: `/workdir/<name>` for each input, `/actor/run`.
pub fn inputs_archive(script: &str, inputs: &[super::InputFile]) -> std::io::Result<Vec<u8>> {
    let size: usize = inputs.iter().map(|i| i.content.len() + 1024).sum::<usize>() + script.len() + 4096;
    let mut builder = tar::Builder::new(Vec::with_capacity(size));
    directory(&mut builder, "workdir/", 0o777)?;
    directory(&mut builder, "actor/", 0o755)?;
    file(&mut builder, "actor/run", script.as_bytes(), 0o755)?;
    for input in inputs {
        file(&mut builder, &format!("workdir/{}", input.name), &input.content, 0o644)?;
    }
    builder.into_inner()
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

    #[test]
    fn inputs_and_outputs_round_trip() {
        let inputs = vec![InputFile { name: "in.txt".into(), content: b"1 2\n".to_vec().into() }];
        let bytes = inputs_archive("echo hi", &inputs).expect("archive");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").path().expect("path").display().to_string())
            .collect();
        assert_eq!(names, ["workdir/", "actor/", "actor/run", "workdir/in.txt"]);

        let mut one = tar::Builder::new(Vec::new());
        file(&mut one, "out.txt", b"hello", 0o644).expect("append");
        let one = one.into_inner().expect("finish");
        assert_eq!(single_file(&one, 100).expect("read"), Extracted::File(b"hello".to_vec()));
        assert_eq!(single_file(&one, 4).expect("read"), Extracted::TooLarge);
    }
}
