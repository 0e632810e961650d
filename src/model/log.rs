//! What actors printed: every line of a container's stdout and stderr, in the order the
//! engine received them, tagged with its stream; one `ActorLog` per actor run.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which of the container's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line (without its newline; a line longer than the engine's 16 KiB comes in parts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// When the engine received it, RFC 3339 with nanoseconds.
    pub time: String,
    pub stream: LogStream,
    pub text: String,
}

/// A container's log, bounded: the last lines that fit, and what was left out before them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLog {
    pub lines: Vec<LogLine>,
    /// Lines dropped from the start to stay within `executor.log_max_bytes`.
    pub dropped_lines: i64,
    pub dropped_bytes: i64,
}

impl ContainerLog {
    /// Keeps at most `max_bytes` of line text, dropping the oldest lines first.
    pub fn bound(&mut self, max_bytes: u64) {
        let mut total: u64 = self.lines.iter().map(|l| l.text.len() as u64).sum();
        let mut drop = 0;
        while total > max_bytes && drop < self.lines.len() {
            total -= self.lines[drop].text.len() as u64;
            self.dropped_bytes += self.lines[drop].text.len() as i64;
            drop += 1;
        }
        self.dropped_lines += drop as i64;
        self.lines.drain(..drop);
    }

    /// The last `count` lines as text, at most `max_bytes` of it, for an actor's exception.
    pub fn tail_text(&self, count: usize, max_bytes: usize) -> String {
        let start = self.lines.len().saturating_sub(count);
        let mut text = String::new();
        for line in &self.lines[start..] {
            text.push_str(&line.text);
            text.push('\n');
        }
        if text.len() > max_bytes {
            let cut = text.len() - max_bytes;
            let cut = (cut..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
            text = format!("…{}", &text[cut..]);
        }
        text.trim_end().to_owned()
    }
}

/// One actor run's log as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorLog {
    /// Where this record stands among the instance's logs; pass it as `after` to get only
    /// newer ones.
    pub cursor: i64,
    pub actor: String,
    pub tag: Option<String>,
    pub node: String,
    pub container: String,
    /// Succeeded, Failed or Cancelled.
    pub state: String,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub ended_at: i64,
    #[serde(flatten)]
    pub log: ContainerLog,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { time: String::new(), stream: LogStream::Stdout, text: text.into() }
    }

    #[test]
    fn bounding_keeps_the_tail_and_counts_what_went() {
        let mut log = ContainerLog { lines: vec![line("aaaa"), line("bbbb"), line("cc")], ..Default::default() };
        log.bound(6);
        assert_eq!(log.lines, vec![line("bbbb"), line("cc")]);
        assert_eq!((log.dropped_lines, log.dropped_bytes), (1, 4));
        assert_eq!(log.tail_text(1, 100), "cc");
        assert_eq!(log.tail_text(5, 100), "bbbb\ncc");
    }
}
