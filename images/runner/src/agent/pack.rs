//! The outputs archive: the wanted regular files of a run's work directory, as `workdir/<name>`
//! entries, read through a descriptor of the directory opened before the run started (so a
//! run that renames or replaces its directory cannot point the agent elsewhere) and never
//! through a symbolic link.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

const BLOCK: usize = 512;

/// Writes the archive of `names` (those that are regular files of `workdir`) to `out`.
pub fn pack(workdir: &File, names: &[&str], out: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    for name in names {
        if name.is_empty() || name.contains('/') || *name == "." || *name == ".." {
            continue;
        }
        let Some(mut file) = open_regular(workdir, name) else { continue };
        let size = file.metadata()?.len();
        out.write_all(&header(&format!("workdir/{name}"), size)?)?;
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                // Shrunk meanwhile: the header promised `size` bytes.
                buf[..want].fill(0);
                out.write_all(&buf[..want])?;
                left -= want as u64;
                continue;
            }
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let padding = (size.next_multiple_of(BLOCK as u64) - size) as usize;
        out.write_all(&[0u8; BLOCK][..padding])?;
    }
    out.write_all(&[0u8; 2 * BLOCK])
}

/// Opens `name` in `dir` if it is a regular file, following no link and blocking on no FIFO.
pub fn open_regular(dir: &File, name: &str) -> Option<File> {
    let path = CString::new(name).ok()?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: a valid directory fd and a NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.metadata().ok().filter(|m| m.is_file()).map(|_| file)
}

/// A ustar header, with a GNU long-name entry before it when the name needs one.
fn header(path: &str, size: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(3 * BLOCK);
    if path.len() > 100 {
        let mut name = path.as_bytes().to_vec();
        name.push(0);
        out.extend_from_slice(&block("././@LongLink", b'L', name.len() as u64));
        out.extend_from_slice(&name);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.extend_from_slice(&block(path, b'0', size));
    Ok(out)
}

fn block(name: &str, kind: u8, size: u64) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let bytes = name.as_bytes();
    let n = bytes.len().min(100);
    block[..n].copy_from_slice(&bytes[..n]);
    block[100..107].copy_from_slice(b"0000644");
    block[108..115].copy_from_slice(b"0000000");
    block[116..123].copy_from_slice(b"0000000");
    if size < 0o77777777777 {
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    } else {
        block[124] = 0x80;
        block[128..136].copy_from_slice(&size.to_be_bytes());
    }
    block[136..147].copy_from_slice(b"00000000000");
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_regular_files_and_skips_links_and_missing_ones() {
        let dir = std::env::temp_dir().join(format!("wharf-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), b"alpha").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let long = "l".repeat(120);
        std::fs::write(dir.join(&long), b"long").unwrap();
        let handle = File::open(&dir).unwrap();
        let mut archive = Vec::new();
        pack(&handle, &["a.txt", "link", "missing", &long, "../x"], &mut archive).unwrap();
        // Entries: a.txt (header + 1 block), the long name (link header, name, header, data), the end (2).
        assert_eq!(archive.len(), BLOCK * (2 + 4 + 2));
        assert_eq!(&archive[BLOCK..BLOCK + 5], b"alpha");
        assert_eq!(&archive[..13], b"workdir/a.txt");
        let sum: u32 = archive[..BLOCK]
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
            .sum();
        let stored = u32::from_str_radix(std::str::from_utf8(&archive[148..154]).unwrap(), 8).unwrap();
        assert_eq!(sum, stored, "the checksum is right");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
