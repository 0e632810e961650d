//! Runs the built `runner` binary in a fresh directory on real commands and checks the
//! files it leaves there, as a judge actor would read them.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory under the system temp dir, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wharf-runner-test-{}-{n}", std::process::id()));
        // A leftover from an earlier run with the same pid may exist.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|err| panic!("cannot create {path:?}: {err}"));
        WorkDir(path)
    }

    fn read(&self, name: &str) -> String {
        let path = self.0.join(name);
        fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {path:?}: {err}"))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What one run of the runner left behind.
struct Run {
    dir: WorkDir,
    status: i32,
    json: String,
}

impl Run {
    /// The raw JSON text of a top-level field of runner.json.
    fn field(&self, key: &str) -> &str {
        let marker = format!("\"{key}\":");
        let start = self.json.find(&marker).unwrap_or_else(|| panic!("no {key} in {}", self.json)) + marker.len();
        let rest = &self.json[start..];
        let end = if rest.starts_with('"') {
            // A string value: up to the first quote not escaped by a backslash.
            let bytes = rest.as_bytes();
            let mut i = 1;
            while bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i + 1
        } else {
            rest.find([',', '}']).unwrap_or(rest.len())
        };
        &rest[..end]
    }

    fn number(&self, key: &str) -> i64 {
        let raw = self.field(key);
        raw.parse().unwrap_or_else(|err| panic!("{key} = {raw:?} is not a number: {err}"))
    }
}

/// Runs the runner with `limit_ms` and `command`, after writing `stdin` to stdin.txt.
fn run(limit_ms: u64, command: &str, stdin: Option<&str>) -> Run {
    let dir = WorkDir::new();
    if let Some(input) = stdin {
        fs::write(dir.0.join("stdin.txt"), input).unwrap_or_else(|err| panic!("stdin.txt: {err}"));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(&dir.0)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start the runner: {err}"));
    let request = format!("{limit_ms}\n{command}\n");
    child
        .stdin
        .take()
        .map(|mut pipe| pipe.write_all(request.as_bytes()))
        .unwrap_or_else(|| panic!("runner has no stdin pipe"))
        .unwrap_or_else(|err| panic!("cannot send the request: {err}"));
    let status = child.wait().unwrap_or_else(|err| panic!("cannot wait for the runner: {err}"));
    let json = dir.read("runner.json");
    Run { status: status.code().unwrap_or(-1), json, dir }
}

const MB: i64 = 1_000_000;

#[test]
fn echo_writes_stdout_and_exits_zero() {
    let run = run(1000, "echo hi", None);
    assert_eq!(run.status, 0, "{}", run.json);
    assert_eq!(run.dir.read("stdout.txt"), "hi\n");
    assert_eq!(run.dir.read("stderr.txt"), "");
    assert_eq!(run.field("Command"), r#""echo hi""#);
    assert_eq!(run.number("ExitCode"), 0);
    assert_eq!(run.field("IsTimeout"), "false");
    assert_eq!(run.field("Error"), r#""""#);
    assert!(run.number("PeakMemory") > 0, "{}", run.json);
}

#[test]
fn stdin_txt_feeds_the_command_and_its_absence_means_empty_input() {
    let fed = run(1000, "cat", Some("1 2\n3\n"));
    assert_eq!(fed.dir.read("stdout.txt"), "1 2\n3\n");
    let empty = run(1000, "cat", None);
    assert_eq!(empty.dir.read("stdout.txt"), "");
    assert_eq!(empty.number("ExitCode"), 0, "{}", empty.json);
}

#[test]
fn exit_status_and_stderr_are_reported() {
    let run = run(1000, r#"sh -c "echo oops >&2; exit 3""#, None);
    assert_eq!(run.status, 0);
    assert_eq!(run.number("ExitCode"), 3, "{}", run.json);
    assert_eq!(run.dir.read("stderr.txt"), "oops\n");
    assert_eq!(run.field("IsTimeout"), "false");
}

#[test]
fn killed_by_a_signal_reports_128_plus_signal() {
    let run = run(1000, "sh -c 'kill -TERM $$'", None);
    assert_eq!(run.number("ExitCode"), 128 + 15, "{}", run.json);
}

#[test]
fn busy_loop_is_stopped_at_the_time_limit() {
    let run = run(500, "sh -c 'while :; do :; done'", None);
    assert_eq!(run.field("IsTimeout"), "true", "{}", run.json);
    let total = run.number("TotalTime");
    assert!((500..3000).contains(&total), "TotalTime {total}: {}", run.json);
    assert!(run.number("UserTime") > 100, "the loop should have burnt CPU: {}", run.json);
    assert_eq!(run.number("ExitCode"), 128 + 9, "{}", run.json);
}

#[test]
fn timeout_kills_the_whole_process_group() {
    // The backgrounded job would create the marker file a second after starting,
    // unless it was killed with the rest of the group at the 300 ms limit.
    let run = run(300, "sh -c 'sleep 1 && touch survived & sleep 5'", None);
    assert_eq!(run.field("IsTimeout"), "true", "{}", run.json);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!run.dir.0.join("survived").exists(), "a background child survived the timeout");
}

#[test]
fn peak_memory_counts_children() {
    // GNU tail keeps the whole last line, here 100 MB of NULs without a newline.
    let run = run(10_000, "sh -c 'head -c 100000000 /dev/zero | tail > /dev/null'", None);
    assert_eq!(run.number("ExitCode"), 0, "{}", run.json);
    let peak = run.number("PeakMemory");
    assert!(peak >= 50 * MB, "PeakMemory {peak}: {}", run.json);
}

#[test]
fn missing_program_is_reported_not_fatal() {
    let run = run(1000, "./no-such-program --flag", None);
    assert_eq!(run.status, 0, "the report describes the failure: {}", run.json);
    assert_eq!(run.number("ExitCode"), -1);
    assert_ne!(run.field("Error"), r#""""#, "{}", run.json);
    assert_eq!(run.field("Command"), r#""./no-such-program --flag""#);
}

#[test]
fn malformed_request_exits_two_with_an_error_report() {
    let run = run(0, "echo hi", None);
    assert_eq!(run.status, 2);
    assert!(run.field("Error").contains("time limit"), "{}", run.json);
    assert!(!run.dir.0.join("stdout.txt").exists(), "the command must not run");
}
