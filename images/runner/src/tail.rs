//! The end of `stderr.txt`, which goes into `Error` when the command fails with nothing
//! else to explain it (JoyOI's runner copied all of stderr there; a compiler can write
//! megabytes, and the last lines say the most).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// At most this many bytes of the end of the file are kept.
pub const TAIL_BYTES: u64 = 4096;

/// The last [`TAIL_BYTES`] or so of the file at `path`, as text (invalid UTF-8 replaced).
pub fn read_tail(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(TAIL_BYTES as usize);
    file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
    Ok(tail_text(&bytes, start > 0))
}

/// `bytes` as text; when they are the end of something longer (`cut`), from the first
/// line that starts within their first half, or else from the first whole character.
fn tail_text(bytes: &[u8], cut: bool) -> String {
    let mut from = 0;
    if cut {
        let half = bytes.len() / 2;
        from = match bytes[..half].iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            // UTF-8 continuation bytes are 0b10xx_xxxx; at most three precede a character.
            None => bytes.iter().take(3).take_while(|&&b| b & 0xc0 == 0x80).count(),
        };
    }
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_text_is_kept() {
        assert_eq!(tail_text(b"", false), "");
        assert_eq!(tail_text(b"oops\n", false), "oops\n");
        assert_eq!(tail_text(b"\nfirst\nsecond", false), "\nfirst\nsecond");
    }

    #[test]
    fn a_cut_text_starts_at_a_line() {
        assert_eq!(tail_text(b"ial line\nnext line\nlast", true), "next line\nlast");
    }

    #[test]
    fn a_cut_text_without_an_early_line_starts_at_a_character() {
        // "é" is 0xc3 0xa9; the cut fell between them.
        let mut bytes = vec![0xa9];
        bytes.extend_from_slice("tat — élan\n".as_bytes());
        assert_eq!(tail_text(&bytes, true), "tat — élan\n");
        // A newline late in the text does not throw away most of it.
        assert_eq!(tail_text(b"a very long line that goes on\nend", true), "a very long line that goes on\nend");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(tail_text(b"bad \xff byte", false), "bad \u{fffd} byte");
    }

    #[test]
    fn reads_only_the_end_of_a_long_file() {
        let path = std::env::temp_dir().join(format!("wharf-runner-tail-{}", std::process::id()));
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, &text).unwrap_or_else(|err| panic!("cannot write {path:?}: {err}"));
        let tail = read_tail(&path);
        let _ = std::fs::remove_file(&path);
        let tail = tail.unwrap_or_else(|err| panic!("cannot read the tail: {err}"));
        assert!(tail.len() as u64 <= TAIL_BYTES && tail.len() > 2000, "{} bytes", tail.len());
        assert!(tail.starts_with("line ") && tail.ends_with("line 999\n"), "{tail:?}");
        assert!(text.ends_with(&tail));
    }
}
