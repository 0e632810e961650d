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

/// Runs the runner with the limit line `limits` and `command`, after writing `stdin` to
/// stdin.txt.
fn run(limits: &str, command: &str, stdin: Option<&str>) -> Run {
    let dir = WorkDir::new();
    if let Some(input) = stdin {
        fs::write(dir.0.join("stdin.txt"), input).unwrap_or_else(|err| panic!("stdin.txt: {err}"));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(&dir.0)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start the runner: {err}"));
    let request = format!("{limits}\n{command}\n");
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
const MIB: i64 = 1 << 20;

#[test]
fn echo_writes_stdout_and_exits_zero() {
    let run = run("1000", "echo hi", None);
    assert_eq!(run.status, 0, "{}", run.json);
    assert_eq!(run.dir.read("stdout.txt"), "hi\n");
    assert_eq!(run.dir.read("stderr.txt"), "");
    assert_eq!(run.field("Command"), r#""echo hi""#);
    assert_eq!(run.number("ExitCode"), 0);
    assert_eq!(run.field("IsTimeout"), "false");
    assert_eq!(run.field("IsOOM"), "false");
    assert_eq!(run.field("Error"), r#""""#);
    assert!(run.number("PeakMemory") > 0, "{}", run.json);
}

#[test]
fn runner_json_has_joyois_fields_in_joyois_order() {
    let run = run("1000", "true", None);
    let keys = ["Command", "UserTime", "TotalTime", "PeakMemory", "ExitCode", "IsTimeout", "IsOOM", "Error"];
    let positions: Vec<usize> = keys
        .iter()
        .map(|key| run.json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {}", run.json)))
        .collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "fields out of order: {}", run.json);
    assert!(run.json.starts_with("{\"Command\":") && run.json.ends_with("\"Error\":\"\"}"), "{}", run.json);
    assert_eq!(run.json.matches("\":").count(), keys.len(), "no other fields: {}", run.json);
}

#[test]
fn stdin_txt_feeds_the_command_and_its_absence_means_empty_input() {
    let fed = run("1000", "cat", Some("1 2\n3\n"));
    assert_eq!(fed.dir.read("stdout.txt"), "1 2\n3\n");
    let empty = run("1000", "cat", None);
    assert_eq!(empty.dir.read("stdout.txt"), "");
    assert_eq!(empty.number("ExitCode"), 0, "{}", empty.json);
}

#[test]
fn a_failing_command_has_its_stderr_in_error() {
    let run = run("1000", r#"sh -c "echo oops >&2; exit 3""#, None);
    assert_eq!(run.status, 0);
    assert_eq!(run.number("ExitCode"), 3, "{}", run.json);
    assert_eq!(run.dir.read("stderr.txt"), "oops\n");
    assert_eq!(run.field("Error"), r#""oops\n""#);
    assert_eq!(run.field("IsTimeout"), "false");
    assert_eq!(run.field("IsOOM"), "false");
}

#[test]
fn a_succeeding_command_has_no_error_whatever_its_stderr() {
    let run = run("1000", "sh -c 'echo warning >&2'", None);
    assert_eq!(run.number("ExitCode"), 0, "{}", run.json);
    assert_eq!(run.dir.read("stderr.txt"), "warning\n");
    assert_eq!(run.field("Error"), r#""""#);
}

#[test]
fn a_long_stderr_leaves_its_last_lines_in_error() {
    let script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i\" >&2; i=$((i+1)); done; exit 1";
    let run = run("5000", &format!("sh -c '{script}'"), None);
    assert_eq!(run.number("ExitCode"), 1, "{}", run.json);
    let error = run.field("Error");
    let text = error.trim_matches('"').replace("\\n", "\n");
    assert!(text.len() <= 4096 && text.len() > 2000, "{} bytes of stderr in Error", text.len());
    assert!(text.starts_with("line ") && text.ends_with("line 1999\n"), "whole lines, the last ones: {error}");
    assert!(run.dir.read("stderr.txt").ends_with(&text));
}

#[test]
fn killed_by_a_signal_reports_128_plus_signal() {
    let run = run("1000", "sh -c 'kill -TERM $$'", None);
    assert_eq!(run.number("ExitCode"), 128 + 15, "{}", run.json);
    assert_eq!(run.field("IsTimeout"), "false");
}

#[test]
fn a_cpu_loop_is_stopped_close_to_its_user_time_limit() {
    let run = run("500 10000", "sh -c 'while :; do :; done'", None);
    assert_eq!(run.field("IsTimeout"), "true", "{}", run.json);
    assert_eq!(run.field("Error"), r#""killed by timeout(user)""#);
    let user = run.number("UserTime");
    assert!((500..=800).contains(&user), "UserTime {user}, limit 500: {}", run.json);
    assert!(run.number("TotalTime") < 5000, "stopped long before the total limit: {}", run.json);
    assert_eq!(run.number("ExitCode"), 128 + 9, "{}", run.json);
    assert_eq!(run.field("IsOOM"), "false");
}

#[test]
fn the_user_time_limit_counts_the_commands_children() {
    // The outer shell waits for the inner one, which burns the CPU: wait4 would see none
    // of it until the inner shell ended.
    let run = run("300 10000", r#"sh -c 'sh -c "while :; do :; done"; echo never'"#, None);
    assert_eq!(run.field("Error"), r#""killed by timeout(user)""#, "{}", run.json);
    let user = run.number("UserTime");
    assert!((300..=600).contains(&user), "UserTime {user}, limit 300: {}", run.json);
    assert_eq!(run.dir.read("stdout.txt"), "");
}

#[test]
fn the_user_time_limit_counts_orphans_that_ended() {
    // Each `( ... &)` leaves an orphan that burns about 100 ms of CPU and ends before the
    // next starts: no sample sees two alive, only their sum passes the limit. (Where the
    // container's init reaps orphans, only the runner being their subreaper counts them.)
    let burner = r#"sh -c "i=0; while [ \$i -lt 100000 ]; do i=\$((i+1)); done""#;
    let script = format!("for n in 1 2 3 4 5 6 7 8 9 10; do ({burner} &); sleep 0.4; done; echo finished");
    let run = run("300 10000", &format!("sh -c '{script}'"), None);
    assert_eq!(run.field("Error"), r#""killed by timeout(user)""#, "{}", run.json);
    assert_eq!(run.dir.read("stdout.txt"), "", "stopped before the end: {}", run.json);
}

#[test]
fn orphans_are_reaped_while_the_command_runs() {
    // 100 orphans end at once; a moment later none of them is left a zombie of the runner,
    // the parent of `sh`, which would otherwise hold their pids until it exits.
    let script = "for i in $(seq 100); do (true &); done; sleep 0.5; \
                  awk -v runner=$PPID '$3 ~ /^Z$/ && $4 == runner' /proc/[0-9]*/stat | wc -l";
    let run = run("5000", &format!("sh -c \"{script}\""), None);
    assert_eq!(run.number("ExitCode"), 0, "{}", run.json);
    assert_eq!(run.dir.read("stdout.txt").trim(), "0", "zombies left: {}", run.json);
}

#[test]
fn a_sleeping_command_hits_the_total_limit_not_the_user_one() {
    let run = run("100 500", "sleep 5", None);
    assert_eq!(run.field("IsTimeout"), "true", "{}", run.json);
    assert_eq!(run.field("Error"), r#""killed by timeout(total)""#);
    let total = run.number("TotalTime");
    assert!((500..=800).contains(&total), "TotalTime {total}, limit 500: {}", run.json);
    assert!(run.number("UserTime") < 100, "{}", run.json);
}

#[test]
fn the_total_limit_defaults_to_twice_the_user_limit() {
    let run = run("200", "sleep 5", None);
    assert_eq!(run.field("Error"), r#""killed by timeout(total)""#, "{}", run.json);
    let total = run.number("TotalTime");
    assert!((400..=700).contains(&total), "TotalTime {total}, default limit 400: {}", run.json);
}

/// The command's RLIMIT_AS as `/proc/self/limits` shows it: bytes, or "unlimited".
fn address_space_limit(limits: &str) -> String {
    let run = run(limits, "cat /proc/self/limits", None);
    assert_eq!(run.number("ExitCode"), 0, "{}", run.json);
    let limits_text = run.dir.read("stdout.txt");
    let line = limits_text
        .lines()
        .find(|line| line.starts_with("Max address space"))
        .unwrap_or_else(|| panic!("no address space line in {limits_text}"));
    line.split_whitespace().nth(3).unwrap_or_default().to_owned()
}

#[test]
fn vm_mb_sets_the_address_space_limit_in_every_form() {
    assert_eq!(address_space_limit("1000 2000 64"), (64 * MIB).to_string());
    assert_eq!(address_space_limit("1000 2000 0"), "unlimited");
    // The default: at most 1 GiB less 50 MiB, less where the cgroup allows less.
    let default = address_space_limit("1000");
    let bytes: i64 = default.parse().unwrap_or_else(|err| panic!("default limit {default:?}: {err}"));
    assert!(bytes > 0 && bytes <= 974 * MIB, "default address space {bytes}");
    assert_eq!(address_space_limit("1000 2000"), default);
    assert_eq!(address_space_limit("1000 2000 -1"), default);
}

#[test]
fn vm_mb_decides_whether_a_128_mib_buffer_fits() {
    let hog = "dd if=/dev/zero of=/dev/null bs=128M count=1";
    let limited = run("5000 10000 64", hog, None);
    assert_ne!(limited.number("ExitCode"), 0, "{}", limited.json);
    assert!(limited.field("Error").contains("memory"), "dd says why: {}", limited.json);
    assert_eq!(limited.field("IsOOM"), "false", "a refused allocation is no OOM kill: {}", limited.json);

    let unlimited = run("5000 10000 0", hog, None);
    assert_eq!(unlimited.number("ExitCode"), 0, "{}", unlimited.json);
    assert!(unlimited.number("PeakMemory") >= 128 * MIB, "{}", unlimited.json);
    assert_eq!(unlimited.field("IsOOM"), "false");
    assert_eq!(unlimited.field("Error"), r#""""#);
}

#[test]
fn a_process_reaching_the_memory_ceiling_is_killed_as_oom() {
    // The ceiling is at most 974 MiB; with no address-space limit, dd fills 1100 MiB.
    let run = run("10000 20000 0", "dd if=/dev/zero of=/dev/null bs=1100M count=1", None);
    assert_eq!(run.field("IsOOM"), "true", "{}", run.json);
    assert_eq!(run.field("Error"), r#""killed by OOM""#);
    assert_eq!(run.field("IsTimeout"), "false");
    assert_eq!(run.number("ExitCode"), 128 + 9, "{}", run.json);
    assert!(run.number("PeakMemory") < 1100 * MIB, "stopped before it got all: {}", run.json);
}

#[test]
fn timeout_kills_the_whole_process_group() {
    // The backgrounded job would create the marker file a second after starting,
    // unless it was killed with the rest of the group at the 300 ms limit.
    let run = run("100 300", "sh -c 'sleep 1 && touch survived & sleep 5'", None);
    assert_eq!(run.field("Error"), r#""killed by timeout(total)""#, "{}", run.json);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!run.dir.0.join("survived").exists(), "a background child survived the timeout");
}

#[test]
fn peak_memory_counts_children() {
    // GNU tail keeps the whole last line, here 100 MB of NULs without a newline.
    let run = run("10000", "sh -c 'head -c 100000000 /dev/zero | tail > /dev/null'", None);
    assert_eq!(run.number("ExitCode"), 0, "{}", run.json);
    let peak = run.number("PeakMemory");
    assert!(peak >= 50 * MB, "PeakMemory {peak}: {}", run.json);
}

#[test]
fn missing_program_is_reported_not_fatal() {
    let run = run("1000", "./no-such-program --flag", None);
    assert_eq!(run.status, 0, "the report describes the failure: {}", run.json);
    assert_eq!(run.number("ExitCode"), -1);
    assert_ne!(run.field("Error"), r#""""#, "{}", run.json);
    assert_eq!(run.field("Command"), r#""./no-such-program --flag""#);
    assert_eq!(run.field("IsOOM"), "false");
}

#[test]
fn malformed_limit_lines_exit_two_with_an_error_report() {
    for limits in ["0", "-5", "abc", "1.5", "1000 0", "1000 2000 -2", "1000 2000 0 1"] {
        let run = run(limits, "echo hi", None);
        assert_eq!(run.status, 2, "limit line {limits:?}: {}", run.json);
        assert!(run.field("Error").contains("time limit line"), "{}", run.json);
        assert!(run.field("Error").contains("user_ms [total_ms [vm_mb]]"), "says the form: {}", run.json);
        assert!(!run.dir.0.join("stdout.txt").exists(), "the command must not run for {limits:?}");
    }
}
