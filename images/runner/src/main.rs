//! `runner`: JoyOI's Linux runner protocol. Reads a limit line (`user_ms [total_ms [vm_mb]]`)
//! and a command line on stdin, runs the command with `stdin.txt`, `stdout.txt` and
//! `stderr.txt` of the current directory, and writes what it measured to `runner.json` there.
//!
//! Exit status: 0 once `runner.json` describes the command, including a command that
//! could not be started (its `Error` says why); 1 when the runner itself failed (files,
//! waiting, writing the report); 2 when the request on stdin was malformed.
//!
//! Layout: `request` parses stdin (`limits` the limit line); `run` starts and measures the
//! command, with `rlimit` for what it inherits, `monitor` stopping it at a limit from
//! `group`'s samples of `/proc`, and `memory` for the ceiling and the cgroup's OOM kills;
//! `tail` reads the end of its stderr; `report` writes `runner.json`.

mod agent;
mod group;
mod limits;
mod memory;
mod monitor;
mod report;
mod request;
mod rlimit;
mod run;
mod tail;

use std::io;
use std::path::Path;
use std::process::ExitCode;

use report::Report;
use run::Measurement;

const REPORT_FILE: &str = "runner.json";

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--agent") {
        return agent::serve();
    }
    let request = match request::read_request(io::stdin().lock()) {
        Ok(request) => request,
        Err(err) => {
            eprintln!("runner: {err}");
            write_report(&Report::failed("", err.to_string()));
            return ExitCode::from(2);
        }
    };

    let (report, status) = match run::run(&request.argv, &request.limits) {
        Ok(measured) => (
            Report {
                command: request.command_line,
                user_time_ms: measured.user_time_ms,
                total_time_ms: measured.total_time_ms,
                peak_memory_bytes: measured.peak_memory_bytes,
                exit_code: measured.exit_code,
                is_timeout: measured.timeout.is_some(),
                is_oom: measured.is_oom,
                error: error_of(&measured),
            },
            ExitCode::SUCCESS,
        ),
        Err(err) => {
            eprintln!("runner: {err}");
            let status = if err.is_start_failure() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
            (Report::failed(request.command_line, err.to_string()), status)
        }
    };
    if write_report(&report) { status } else { ExitCode::FAILURE }
}

/// What `Error` says about a command that ran: the limit that stopped it, else the end of
/// its stderr when it failed, else nothing.
fn error_of(measured: &Measurement) -> String {
    if let Some(timeout) = measured.timeout {
        format!("killed by {timeout}")
    } else if measured.is_oom {
        "killed by OOM".to_string()
    } else if measured.exit_code != 0 {
        tail::read_tail(Path::new(run::STDERR_FILE))
            .unwrap_or_else(|err| format!("exit code {}; cannot read {}: {err}", measured.exit_code, run::STDERR_FILE))
    } else {
        String::new()
    }
}

/// Writes `runner.json`, saying on stderr when that fails; returns whether it worked.
fn write_report(report: &Report) -> bool {
    match report.write_to(Path::new(REPORT_FILE)) {
        Ok(()) => true,
        Err(err) => {
            eprintln!("runner: cannot write {REPORT_FILE}: {err}");
            false
        }
    }
}
