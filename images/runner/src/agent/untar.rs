//! Unpacks a run's input archive (the service's `inputs_archive`: directories, regular files,
//! GNU long names) into the run's directory, every entry owned by the run's uid. Nothing of the
//! run is running yet, so no path can change under the unpacking; paths are still checked to
//! stay inside the directory. Other entry kinds are skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
use std::path::{Component, Path, PathBuf};

const BLOCK: usize = 512;

/// Unpacks `archive` under `root`, giving every entry to `uid`.
pub fn unpack(archive: &mut impl Read, root: &Path, uid: u32) -> io::Result<()> {
    let mut long_name: Option<Vec<u8>> = None;
    let mut block = [0u8; BLOCK];
    loop {
        if !read_block(archive, &mut block)? || block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let size = parse_size(&block[124..136])?;
        let kind = block[156];
        let name = match long_name.take() {
            Some(name) => name,
            None => header_name(&block),
        };
        match kind {
            b'L' => {
                let mut name = read_data(archive, size)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            b'5' => {
                let path = inside(root, &name)?;
                fs::create_dir_all(&path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode(&block) | 0o700))?;
                chown(&path, Some(uid), Some(uid))?;
            }
            b'0' | 0 => {
                let path = inside(root, &name)?;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode(&block))
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)?;
                copy_exact(archive, &mut file, size)?;
                skip_padding(archive, size)?;
                file.set_permissions(fs::Permissions::from_mode(mode(&block)))?;
                chown(&path, Some(uid), Some(uid))?;
                continue;
            }
            _ => {}
        }
        // Directories carry no data; anything else skipped still has its data to pass.
        if kind != b'5' {
            read_data(archive, size)?;
        }
    }
}

/// Fills `block`; false at the end of the stream before a block starts.
fn read_block(archive: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match archive.read(&mut block[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a header")),
            n => filled += n,
        }
    }
    Ok(true)
}

/// An entry's data and padding, as bytes (only for small entries: long names).
fn read_data(archive: &mut impl Read, size: u64) -> io::Result<Vec<u8>> {
    if size > 1 << 20 {
        let mut rest = archive.take(size.next_multiple_of(BLOCK as u64));
        io::copy(&mut rest, &mut io::sink())?;
        return Ok(Vec::new());
    }
    let mut data = vec![0; size.next_multiple_of(BLOCK as u64) as usize];
    archive.read_exact(&mut data)?;
    data.truncate(size as usize);
    Ok(data)
}

fn copy_exact(archive: &mut impl Read, file: &mut File, size: u64) -> io::Result<()> {
    let copied = io::copy(&mut archive.take(size), file)?;
    if copied != size {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a file"));
    }
    file.flush()
}

fn skip_padding(archive: &mut impl Read, size: u64) -> io::Result<()> {
    let padding = size.next_multiple_of(BLOCK as u64) - size;
    let mut pad = [0u8; BLOCK];
    archive.read_exact(&mut pad[..padding as usize])
}

/// The name of a ustar or GNU header: the prefix field joins the name in ustar.
fn header_name(block: &[u8; BLOCK]) -> Vec<u8> {
    let field = |bytes: &[u8]| bytes.iter().take_while(|b| **b != 0).copied().collect::<Vec<u8>>();
    let name = field(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = field(&block[345..500]);
        if !prefix.is_empty() {
            return [prefix, b"/".to_vec(), name].concat();
        }
    }
    name
}

/// Octal, or base-256 when the top bit is set (GNU, for sizes past 8 GiB).
fn parse_size(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        return Ok(field[1..].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)));
    }
    let text: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text.trim(), 8)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a bad size in the archive"))
}

fn mode(block: &[u8; BLOCK]) -> u32 {
    let text: String = block[100..108].iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    u32::from_str_radix(text.trim(), 8).unwrap_or(0o644) & 0o777
}

/// `name` under `root`, refused when it is absolute or climbs out.
fn inside(root: &Path, name: &[u8]) -> io::Result<PathBuf> {
    let text = String::from_utf8_lossy(name);
    let relative = Path::new(text.as_ref());
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the archive names {text:?}"))),
        }
    }
    if path == root {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the archive names {text:?}")));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: u64, mode: u32) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..name.len()].copy_from_slice(name.as_bytes());
        block[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        block[156] = kind;
        block
    }

    fn entry(archive: &mut Vec<u8>, name: &str, kind: u8, data: &[u8], mode: u32) {
        archive.extend_from_slice(&header(name, kind, data.len() as u64, mode));
        archive.extend_from_slice(data);
        archive.resize(archive.len().next_multiple_of(BLOCK), 0);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wharf-untar-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unpacks_directories_files_and_long_names() {
        let uid = unsafe { libc::getuid() };
        let long = format!("workdir/{}", "n".repeat(150));
        let mut archive = Vec::new();
        entry(&mut archive, "workdir/", b'5', b"", 0o777);
        entry(&mut archive, "actor/run", b'0', b"echo hi\n", 0o755);
        entry(&mut archive, "././@LongLink", b'L', format!("{long}\0").as_bytes(), 0o644);
        entry(&mut archive, "ignored", b'0', &[7u8; 700], 0o644);
        archive.extend_from_slice(&[0u8; 1024]);
        let root = scratch("ok");
        unpack(&mut &archive[..], &root, uid).unwrap();
        assert_eq!(fs::read(root.join("actor/run")).unwrap(), b"echo hi\n");
        assert_eq!(fs::metadata(root.join("actor/run")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read(root.join(&long)).unwrap(), vec![7u8; 700]);
        assert!(root.join("workdir").is_dir());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn refuses_paths_that_climb_out() {
        let uid = unsafe { libc::getuid() };
        for name in ["../evil", "/etc/evil", "workdir/../../evil"] {
            let mut archive = Vec::new();
            entry(&mut archive, name, b'0', b"x", 0o644);
            let root = scratch("climb");
            assert!(unpack(&mut &archive[..], &root, uid).is_err(), "{name}");
            fs::remove_dir_all(root).unwrap();
        }
    }
}
