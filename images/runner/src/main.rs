//! `runner`: JoyOI's Linux runner protocol. Reads a time limit (ms) and a command line on
//! stdin, runs the command with `stdin.txt`, `stdout.txt` and `stderr.txt` of the current
//! directory, and writes what it measured to `runner.json` there.
//!
//! Exit status: 0 once `runner.json` describes the command, including a command that
//! could not be started (its `Error` says why); 1 when the runner itself failed (files,
//! waiting, writing the report); 2 when the request on stdin was malformed.
//!
//! Layout: `request` parses stdin, `run` starts, limits and measures the command,
//! `report` writes `runner.json`.

mod report;
mod request;
mod run;

use std::io;
use std::path::Path;
use std::process::ExitCode;

use report::Report;

const REPORT_FILE: &str = "runner.json";

fn main() -> ExitCode {
    let request = match request::read_request(io::stdin().lock()) {
        Ok(request) => request,
        Err(err) => {
            eprintln!("runner: {err}");
            write_report(&Report::failed("", err.to_string()));
            return ExitCode::from(2);
        }
    };

    let (report, status) = match run::run(&request.argv, request.time_limit) {
        Ok(measured) => (
            Report {
                command: request.command_line,
                user_time_ms: measured.user_time_ms,
                total_time_ms: measured.total_time_ms,
                peak_memory_bytes: measured.peak_memory_bytes,
                exit_code: measured.exit_code,
                is_timeout: measured.is_timeout,
                error: String::new(),
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
