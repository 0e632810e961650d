//! A run's log as the agent keeps it: lines of stdout and stderr in the order they arrived,
//! each tagged with its stream, at most `max_bytes` of text (the tail is kept).

use std::collections::VecDeque;

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// Longest line kept whole; a longer one is cut into pieces of this size.
const MAX_LINE: usize = 16 << 10;

pub struct RunLog {
    lines: VecDeque<(u8, Vec<u8>)>,
    bytes: usize,
    max_bytes: usize,
    pub dropped_lines: u64,
    pub dropped_bytes: u64,
    /// The unfinished last line of each stream.
    partial: [Vec<u8>; 2],
}

impl RunLog {
    pub fn new(max_bytes: usize) -> Self {
        RunLog {
            lines: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped_lines: 0,
            dropped_bytes: 0,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Takes bytes a stream wrote.
    pub fn push(&mut self, stream: u8, bytes: &[u8]) {
        let slot = usize::from(stream == STDERR);
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[slot]);
            line.extend_from_slice(&rest[..at]);
            self.keep(stream, line);
            rest = &rest[at + 1..];
        }
        self.partial[slot].extend_from_slice(rest);
        while self.partial[slot].len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial[slot].drain(..MAX_LINE).collect();
            self.keep(stream, piece);
        }
    }

    /// Ends both streams: their unfinished lines become lines.
    pub fn finish(&mut self) {
        for (slot, stream) in [(0, STDOUT), (1, STDERR)] {
            let line = std::mem::take(&mut self.partial[slot]);
            if !line.is_empty() {
                self.keep(stream, line);
            }
        }
    }

    fn keep(&mut self, stream: u8, mut line: Vec<u8>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.bytes += line.len() + 1;
        self.lines.push_back((stream, line));
        while self.bytes > self.max_bytes {
            let Some((_, old)) = self.lines.pop_front() else { break };
            self.bytes -= old.len() + 1;
            self.dropped_lines += 1;
            self.dropped_bytes += old.len() as u64 + 1;
        }
    }

    pub fn lines(&self) -> impl Iterator<Item = &(u8, Vec<u8>)> {
        self.lines.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_in_order_with_their_stream_and_the_tail() {
        let mut log = RunLog::new(14);
        log.push(STDOUT, b"one\ntw");
        log.push(STDERR, b"err\n");
        log.push(STDOUT, b"o\nthree");
        log.finish();
        let lines: Vec<(u8, &[u8])> = log.lines().map(|(s, l)| (*s, l.as_slice())).collect();
        assert_eq!(lines, [(STDERR, &b"err"[..]), (STDOUT, b"two"), (STDOUT, b"three")]);
        assert_eq!((log.dropped_lines, log.dropped_bytes), (1, 4));
    }
}
