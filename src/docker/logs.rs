//! Reading a container's log from the engine's multiplexed stream, which tells stdout from
//! stderr, with the engine's timestamps so that the two streams interleave as they were
//! written.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;

use super::DockerClient;
use crate::model::log::{ContainerLog, LogLine, LogStream};

impl DockerClient {
    /// Everything the container printed, in order, bounded to the last `max_bytes` of text.
    /// A log the engine cannot give in time ends where it stopped, with a note saying so.
    pub async fn read_log(&self, id: &str, max_bytes: u64) -> ContainerLog {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).timestamps(true).build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut log = ContainerLog::default();
        let mut problem = None;
        let read = async {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(LogOutput::StdOut { message }) => log.lines.push(parse_line(LogStream::Stdout, &message)),
                    Ok(LogOutput::StdErr { message }) => log.lines.push(parse_line(LogStream::Stderr, &message)),
                    Ok(_) => {}
                    Err(err) => {
                        problem = Some(format!("reading the log failed: {err}"));
                        break;
                    }
                }
                // Keep memory bounded while reading a long log, not only at the end.
                if log.lines.len() % 4096 == 0 {
                    log.bound(max_bytes);
                }
            }
        };
        if tokio::time::timeout(self.call_timeout, read).await.is_err() {
            problem = Some(format!("reading the log took longer than {} s", self.call_timeout.as_secs()));
        }
        // The engine merges the streams by time already; a stable sort keeps equal times in
        // the order they came.
        log.lines.sort_by(|a, b| a.time.cmp(&b.time));
        log.bound(max_bytes);
        if let Some(problem) = problem {
            tracing::warn!(node = %self.node, container = %id, %problem, "container log incomplete");
            log.lines.push(LogLine {
                time: String::new(),
                stream: LogStream::Stderr,
                text: format!("(wharf: {problem})"),
            });
        }
        log
    }
}

/// Splits the engine's `<RFC 3339 nano timestamp> <text>` into its parts.
fn parse_line(stream: LogStream, message: &[u8]) -> LogLine {
    let text = String::from_utf8_lossy(message);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    match text.split_once(' ') {
        Some((time, rest)) if chrono::DateTime::parse_from_rfc3339(time).is_ok() => {
            LogLine { time: normalise_time(time), stream, text: rest.to_owned() }
        }
        _ => LogLine { time: String::new(), stream, text: text.to_owned() },
    }
}

/// The engine trims trailing zeros of the nanoseconds; padding them makes times sort as text.
fn normalise_time(time: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(time) {
        Ok(parsed) => parsed.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        Err(_) => time.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_timestamp_and_text_and_pads_the_time() {
        let line = parse_line(LogStream::Stderr, b"2026-11-02T10:00:00.1Z oops: it broke\n");
        assert_eq!(line.time, "2026-11-02T10:00:00.100000000Z");
        assert_eq!(line.text, "oops: it broke");
        assert_eq!(line.stream, LogStream::Stderr);
        let bare = parse_line(LogStream::Stdout, b"no time here\n");
        assert_eq!((bare.time.as_str(), bare.text.as_str()), ("", "no time here"));
    }
}
