//! The runner's output: `runner.json`, in the exact shape JoyOI's runner writes, encoded by
//! hand so that the runner needs no JSON library.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// What the runner measured, or why it could not measure anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub command: String,
    /// User CPU time of the command and its waited-for children, in milliseconds.
    pub user_time_ms: u64,
    /// Wall-clock time, in milliseconds.
    pub total_time_ms: u64,
    /// Peak resident set size, in bytes.
    pub peak_memory_bytes: u64,
    /// The exit status, 128 + signal number when killed by a signal, -1 when not started.
    pub exit_code: i32,
    pub is_timeout: bool,
    /// Killed for memory: at the memory ceiling or by the kernel's OOM killer.
    pub is_oom: bool,
    /// Empty when the command ran and succeeded; otherwise what went wrong: why it could
    /// not start, which limit stopped it, or the end of its stderr when it failed.
    pub error: String,
}

impl Report {
    /// The report for a command that could not be run at all.
    pub fn failed(command: impl Into<String>, error: impl Into<String>) -> Self {
        Report {
            command: command.into(),
            user_time_ms: 0,
            total_time_ms: 0,
            peak_memory_bytes: 0,
            exit_code: -1,
            is_timeout: false,
            is_oom: false,
            error: error.into(),
        }
    }

    /// The report as one line of JSON, fields in JoyOI's order.
    pub fn to_json(&self) -> String {
        let mut json = String::with_capacity(160 + self.command.len() + self.error.len());
        json.push_str("{\"Command\":");
        push_json_string(&mut json, &self.command);
        // Writing to a String cannot fail.
        let _ = write!(
            json,
            ",\"UserTime\":{},\"TotalTime\":{},\"PeakMemory\":{},\"ExitCode\":{},\"IsTimeout\":{},\"IsOOM\":{},\"Error\":",
            self.user_time_ms, self.total_time_ms, self.peak_memory_bytes, self.exit_code, self.is_timeout, self.is_oom,
        );
        push_json_string(&mut json, &self.error);
        json.push('}');
        json
    }

    /// Writes the report to `path`.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_json())
    }
}

/// Appends `value` to `out` as a quoted JSON string.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Other control characters, and the two separators that old JavaScript
            // parsers reject inside strings.
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: &str) {
        let mut out = String::new();
        push_json_string(&mut out, value);
        assert_eq!(out, expected, "escaping {value:?}");
    }

    #[test]
    fn escapes_json_strings() {
        check("", r#""""#);
        check("./Main.out", r#""./Main.out""#);
        check(r#"say "hi""#, r#""say \"hi\"""#);
        check(r"C:\x", r#""C:\\x""#);
        check("a\nb\r\tc", r#""a\nb\r\tc""#);
        check("\u{08}\u{0c}\u{00}\u{1f}", r#""\b\f\u0000\u001f""#);
        check("\u{2028}", r#""\u2028""#);
        check("héllo 世界 /", "\"héllo 世界 /\"");
    }

    #[test]
    fn writes_joyoi_field_order() {
        let report = Report {
            command: "./Main.out".into(),
            user_time_ms: 15,
            total_time_ms: 20,
            peak_memory_bytes: 1234567,
            exit_code: 137,
            is_timeout: false,
            is_oom: true,
            error: "killed by OOM".into(),
        };
        assert_eq!(
            report.to_json(),
            r#"{"Command":"./Main.out","UserTime":15,"TotalTime":20,"PeakMemory":1234567,"ExitCode":137,"IsTimeout":false,"IsOOM":true,"Error":"killed by OOM"}"#
        );
    }

    #[test]
    fn failed_report_has_exit_code_minus_one() {
        let json = Report::failed("nosuch \"x\"", "cannot start: not found").to_json();
        assert_eq!(
            json,
            r#"{"Command":"nosuch \"x\"","UserTime":0,"TotalTime":0,"PeakMemory":0,"ExitCode":-1,"IsTimeout":false,"IsOOM":false,"Error":"cannot start: not found"}"#
        );
    }
}
