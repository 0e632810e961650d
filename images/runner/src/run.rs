//! Runs the measured command: files in the current directory as its stdin, stdout and
//! stderr, its own process group, a wall-clock watchdog and RLIMIT_CPU as a backstop,
//! and `wait4` for its CPU time and peak memory.
//!
//! The command is waited for in two steps: `waitid(WNOWAIT)` notices that it ended but
//! leaves it a zombie, so its pid, which is also its process group id, cannot be reused
//! while the watchdog may still signal that group; `wait4` then reaps it and reads its
//! resource use.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

pub const STDIN_FILE: &str = "stdin.txt";
pub const STDOUT_FILE: &str = "stdout.txt";
pub const STDERR_FILE: &str = "stderr.txt";

/// What was measured about a command that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurement {
    pub user_time_ms: u64,
    pub total_time_ms: u64,
    pub peak_memory_bytes: u64,
    /// The exit status, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    pub is_timeout: bool,
}

#[derive(Debug)]
pub enum RunError {
    OpenStdin(io::Error),
    CreateOutput {
        file: &'static str,
        err: io::Error,
    },
    /// The command itself could not be started (not found, not executable, ...).
    Start {
        program: String,
        err: io::Error,
    },
    StartWatchdog(io::Error),
    Wait(io::Error),
}

impl RunError {
    /// True when the failure belongs to the measured command rather than to the runner.
    pub fn is_start_failure(&self) -> bool {
        matches!(self, Self::Start { .. })
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenStdin(err) => write!(f, "cannot open {STDIN_FILE}: {err}"),
            Self::CreateOutput { file, err } => write!(f, "cannot create {file}: {err}"),
            Self::Start { program, err } => write!(f, "cannot start {program:?}: {err}"),
            Self::StartWatchdog(err) => write!(f, "cannot start the time-limit watchdog: {err}"),
            Self::Wait(err) => write!(f, "cannot wait for the command: {err}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `argv` (program first; never empty) under `time_limit` in the current directory.
pub fn run(argv: &[String], time_limit: Duration) -> Result<Measurement, RunError> {
    let (program, args) = argv.split_first().ok_or_else(|| RunError::Start {
        program: String::new(),
        err: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let stdin = match File::open(STDIN_FILE) {
        Ok(file) => Stdio::from(file),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Stdio::null(),
        Err(err) => return Err(RunError::OpenStdin(err)),
    };
    let create =
        |file: &'static str| File::create(file).map(Stdio::from).map_err(|err| RunError::CreateOutput { file, err });
    let (stdout, stderr) = (create(STDOUT_FILE)?, create(STDERR_FILE)?);

    let limit_ms = u64::try_from(time_limit.as_millis()).unwrap_or(u64::MAX);
    let cpu_limit = cpu_rlimit(limit_ms);
    let mut command = Command::new(program);
    command.args(args).stdin(stdin).stdout(stdout).stderr(stderr).process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls setrlimit, which is
    // async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            set_rlimit(libc::RLIMIT_CPU, cpu_limit)?;
            // No core files from SIGXCPU or crashes in the work directory.
            set_rlimit(libc::RLIMIT_CORE, libc::rlimit { rlim_cur: 0, rlim_max: 0 })
        });
    }

    let start = Instant::now();
    let child = command.spawn().map_err(|err| RunError::Start { program: program.clone(), err })?;
    // Process ids are positive and fit in pid_t.
    let pid = child.id() as libc::pid_t;

    let (ended, ended_rx) = mpsc::channel::<()>();
    // A limit too large for the clock means no wall-clock limit at all.
    let deadline = start.checked_add(time_limit);
    let watchdog = thread::Builder::new().name("watchdog".into()).spawn(move || {
        let Some(deadline) = deadline else {
            let _ = ended_rx.recv();
            return false;
        };
        match ended_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {
                kill_group(pid);
                true
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
        }
    });
    let watchdog = match watchdog {
        Ok(handle) => handle,
        Err(err) => {
            kill_group(pid);
            let _ = reap(pid);
            return Err(RunError::StartWatchdog(err));
        }
    };

    let waited = wait_until_ended(pid);
    let wall = start.elapsed();
    // Whatever the command left running in its group goes with it.
    kill_group(pid);
    drop(ended);
    // The watchdog cannot panic; if it somehow did, it had not reported a timeout.
    let killed_by_watchdog = watchdog.join().unwrap_or(false);
    waited?;
    let (status, usage) = reap(pid)?;

    let user_time_ms = timeval_ms(usage.ru_utime);
    let cpu_time_ms = user_time_ms + timeval_ms(usage.ru_stime);
    let total_time_ms = u64::try_from(wall.as_millis()).unwrap_or(u64::MAX);
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    let exit_code = match signal {
        Some(signal) => 128 + signal,
        None if libc::WIFEXITED(status) => libc::WEXITSTATUS(status),
        None => -1,
    };
    Ok(Measurement {
        user_time_ms,
        total_time_ms,
        // ru_maxrss is in KiB on Linux.
        peak_memory_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0).saturating_mul(1024),
        exit_code,
        is_timeout: killed_by_watchdog
            || signal == Some(libc::SIGXCPU)
            || cpu_time_ms > limit_ms
            || total_time_ms > limit_ms,
    })
}

/// The CPU-time rlimit for a time limit: whole seconds, rounded up, with one more second
/// before the kernel's SIGKILL. Never raises the hard limit the runner itself has.
fn cpu_rlimit(limit_ms: u64) -> libc::rlimit {
    let soft: libc::rlim_t = limit_ms.div_ceil(1000).max(1);
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: getrlimit writes into the struct we pass; on failure we keep "infinity".
    unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut current) };
    let hard = (soft + 1).min(current.rlim_max);
    libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, limit: libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILLs the process group led by `pid`, and `pid` itself in case it left the group.
fn kill_group(pid: libc::pid_t) {
    // SAFETY: plain signal sends; failures (ESRCH when everything is gone) are harmless.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Blocks until `pid` has ended, leaving it unreaped.
fn wait_until_ended(pid: libc::pid_t) -> Result<(), RunError> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a local siginfo_t.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(RunError::Wait(err));
        }
    }
}

/// Reaps `pid`, returning its wait status and resource use (its own and its waited-for
/// children's, with ru_maxrss the largest of them).
fn reap(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage), RunError> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(RunError::Wait(err));
        }
    }
}

fn timeval_ms(time: libc::timeval) -> u64 {
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_usec).unwrap_or(0);
    secs * 1000 + micros / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rlimit_rounds_up_to_whole_seconds() {
        for (limit_ms, soft) in [(1, 1), (500, 1), (1000, 1), (1001, 2), (2500, 3)] {
            let limit = cpu_rlimit(limit_ms);
            assert_eq!(limit.rlim_cur, soft, "soft CPU limit for {limit_ms} ms");
            assert_eq!(limit.rlim_max, soft + 1, "hard CPU limit for {limit_ms} ms");
        }
    }

    #[test]
    fn timeval_converts_to_milliseconds() {
        assert_eq!(timeval_ms(libc::timeval { tv_sec: 2, tv_usec: 345_999 }), 2345);
    }
}
