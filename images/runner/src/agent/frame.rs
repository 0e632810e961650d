//! The agent's framing on its attached stdin and stdout: a kind byte, the payload's length as
//! four little-endian bytes, the payload. The service's side lives in wharf's
//! `src/docker/agent.rs`; the two must agree on every kind below.

use std::io::{self, Read, Write};

/// Service to agent: start a run (`key=value` lines: uid, timeout_ms, log_max, shebang).
pub const GO: u8 = b'G';
/// Service to agent: a piece of the run's input archive; an empty one ends it.
pub const INPUT: u8 = b'I';
/// Service to agent: the output files wanted, one name a line (may be none).
pub const OUTPUTS: u8 = b'O';
/// Agent to service: `exit <code> <timed_out> <oom>` once the run's processes are gone.
pub const STATUS: u8 = b'S';
/// Agent to service: the run's `return.json` (empty when it wrote none).
pub const RETURNED: u8 = b'R';
/// Agent to service: one log line, its stream byte (1 stdout, 2 stderr) then its text.
pub const LOG_LINE: u8 = b'L';
/// Agent to service: the log ends; `<dropped_lines> <dropped_bytes>`.
pub const LOG_END: u8 = b'l';
/// Agent to service: a piece of the outputs archive; an empty one ends it.
pub const ARCHIVE: u8 = b'T';
/// Agent to service: the run is cleaned up; `clean` or `left <what>`.
pub const DONE: u8 = b'D';
/// Agent to service: the run could not be served; the container serves no further run.
pub const FAILED: u8 = b'X';

/// Largest payload the agent accepts.
const MAX_PAYLOAD: usize = 64 << 20;

pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Reads the next frame; `None` at a clean end of the stream.
pub fn read(input: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 5];
    let mut filled = 0;
    while filled < head.len() {
        match input.read(&mut head[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside a frame")),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes is too large")));
    }
    let mut payload = vec![0; len];
    input.read_exact(&mut payload)?;
    Ok(Some(Frame { kind: head[0], payload }))
}

/// Writes one frame (not flushed).
pub fn write(output: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut head = [kind, 0, 0, 0, 0];
    head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    output.write_all(&head)?;
    output.write_all(payload)
}

/// The payloads of consecutive `kind` frames as one byte stream, ending at an empty one.
pub struct Payloads<'a, R: Read> {
    input: &'a mut R,
    kind: u8,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<'a, R: Read> Payloads<'a, R> {
    pub fn new(input: &'a mut R, kind: u8) -> Self {
        Payloads { input, kind, current: Vec::new(), at: 0, ended: false }
    }

    /// Reads and drops whatever is left, up to the ending frame.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 8192];
        while self.read(&mut sink)? > 0 {}
        Ok(())
    }
}

impl<R: Read> Read for Payloads<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            let frame = read(self.input)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside an archive"))?;
            if frame.kind != self.kind {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected frames of kind {:?}, got {:?}", self.kind as char, frame.kind as char),
                ));
            }
            self.ended = frame.payload.is_empty();
            self.current = frame.payload;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_payloads_join() {
        let mut bytes = Vec::new();
        write(&mut bytes, INPUT, b"abc").unwrap();
        write(&mut bytes, INPUT, b"de").unwrap();
        write(&mut bytes, INPUT, b"").unwrap();
        write(&mut bytes, OUTPUTS, b"x").unwrap();
        let mut input = &bytes[..];
        let mut joined = Vec::new();
        Payloads::new(&mut input, INPUT).read_to_end(&mut joined).unwrap();
        assert_eq!(joined, b"abcde");
        let next = read(&mut input).unwrap().unwrap();
        assert_eq!((next.kind, next.payload.as_slice()), (OUTPUTS, &b"x"[..]));
        assert!(read(&mut input).unwrap().is_none());
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_an_error() {
        let mut bytes = Vec::new();
        write(&mut bytes, STATUS, b"exit 0").unwrap();
        bytes.truncate(7);
        assert!(read(&mut &bytes[..]).is_err());
    }
}
