//! Runs the measured command: files in the current directory as its stdin, stdout and
//! stderr, its own process group, its limits (`rlimit`), a monitor thread that stops it at
//! a limit (`monitor`), and `wait4` for its CPU time and peak memory.
//!
//! The command is waited for in two steps: `waitid(WNOWAIT)` notices that it ended but
//! leaves it a zombie, so its pid, which is also its process group id, cannot be reused
//! while the monitor may still signal that group; `wait4` then reaps it and reads its
//! resource use.
//!
//! The runner makes itself a child subreaper: a process of the command whose parent dies
//! becomes the runner's child, and the monitor's samples count its CPU time and reap it
//! when it ends (see `group`).

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::group::timeval_ms;
use crate::limits::{AddressSpace, Limits};
use crate::memory::{self, MemoryCgroup};
use crate::monitor::{self, Stop, Watch};
use crate::rlimit::ChildLimits;

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
    /// Which time limit the command went over, if any.
    pub timeout: Option<Timeout>,
    /// Killed for memory: by the runner at the memory ceiling or by the kernel's OOM killer.
    pub is_oom: bool,
}

/// The time limit a command went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    User,
    Total,
}

impl fmt::Display for Timeout {
    /// JoyOI's words, as they appear in `Error`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::User => "timeout(user)",
            Timeout::Total => "timeout(total)",
        })
    }
}

#[derive(Debug)]
pub enum RunError {
    OpenStdin(io::Error),
    CreateOutput {
        file: &'static str,
        err: io::Error,
    },
    /// The command itself could not be started (not found, not executable, too little
    /// address space to load it, ...).
    Start {
        program: String,
        err: io::Error,
    },
    StartMonitor(io::Error),
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
            Self::StartMonitor(err) => write!(f, "cannot start the thread that enforces the limits: {err}"),
            Self::Wait(err) => write!(f, "cannot wait for the command: {err}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `argv` (program first; never empty) under `limits` in the current directory.
pub fn run(argv: &[String], limits: &Limits) -> Result<Measurement, RunError> {
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

    let cgroup = MemoryCgroup::find();
    let ceiling = memory::ceiling(cgroup.as_ref().and_then(MemoryCgroup::limit));
    let oom_kills_before = cgroup.as_ref().and_then(MemoryCgroup::oom_kills);
    let user_limit_ms = millis(limits.user_time);
    let total_limit_ms = millis(limits.total_time);
    let address_space = match limits.address_space {
        AddressSpace::Default => Some(ceiling),
        AddressSpace::Unlimited => None,
        AddressSpace::Mib(mib) => Some(mib.saturating_mul(1024 * 1024)),
    };
    let child_limits = ChildLimits::new(user_limit_ms, address_space);

    let mut command = Command::new(program);
    command.args(args).stdin(stdin).stdout(stdout).stderr(stderr).process_group(0);
    // SAFETY: `apply` is async-signal-safe, allocates nothing and takes no locks, as code
    // between fork and exec must.
    unsafe {
        command.pre_exec(move || child_limits.apply());
    }
    // SAFETY: a plain prctl on the runner itself. Failing (very old kernels) only means
    // orphans of the command are reaped elsewhere and drop out of the samples.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    let start = Instant::now();
    let child = command.spawn().map_err(|err| RunError::Start { program: program.clone(), err })?;
    // Process ids are positive and fit in pid_t.
    let pid = child.id() as libc::pid_t;

    let (ended, ended_rx) = mpsc::channel::<()>();
    // A limit too large for the clock means no wall-clock limit at all.
    let watch = Watch { pid, user_limit_ms, deadline: start.checked_add(limits.total_time), ceiling_bytes: ceiling };
    let monitor = thread::Builder::new().name("monitor".into()).spawn(move || monitor::watch(watch, &ended_rx));
    let monitor = match monitor {
        Ok(handle) => handle,
        Err(err) => {
            monitor::kill_group(pid);
            let _ = reap(pid);
            return Err(RunError::StartMonitor(err));
        }
    };

    let waited = wait_until_ended(pid);
    let wall = start.elapsed();
    // Whatever the command left running in its group goes with it.
    monitor::kill_group(pid);
    drop(ended);
    // The monitor cannot panic; if it somehow did, it had not stopped anything.
    let watched = monitor.join().unwrap_or_default();
    waited?;
    let (status, usage) = reap(pid)?;

    // The group's figures can exceed the command's own: children still running when it
    // was stopped have not been waited for.
    let user_time_ms = timeval_ms(usage.ru_utime).max(watched.usage.user_time_ms);
    let total_time_ms = millis(wall);
    // ru_maxrss is in KiB on Linux.
    let peak_memory_bytes =
        u64::try_from(usage.ru_maxrss).unwrap_or(0).saturating_mul(1024).max(watched.usage.peak_rss_bytes);
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    let exit_code = match signal {
        Some(signal) => 128 + signal,
        None if libc::WIFEXITED(status) => libc::WEXITSTATUS(status),
        None => -1,
    };

    let timeout = match watched.stopped {
        Some(Stop::UserTime) => Some(Timeout::User),
        Some(Stop::TotalTime) => Some(Timeout::Total),
        Some(Stop::Memory) => None,
        // Over a limit between two samples, or stopped by the RLIMIT_CPU backstop.
        None if signal == Some(libc::SIGXCPU) || user_time_ms > user_limit_ms => Some(Timeout::User),
        None if total_time_ms > total_limit_ms => Some(Timeout::Total),
        None => None,
    };
    let oom_killed = || {
        let (Some(cgroup), Some(before)) = (&cgroup, oom_kills_before) else { return false };
        let grew = || cgroup.oom_kills().is_some_and(|after| after > before);
        // The kernel counts the kill just after sending SIGKILL: look again a moment later.
        grew()
            || (signal == Some(libc::SIGKILL) && watched.stopped.is_none() && {
                thread::sleep(Duration::from_millis(10));
                grew()
            })
    };
    let is_oom = watched.stopped == Some(Stop::Memory) || peak_memory_bytes >= ceiling || oom_killed();
    Ok(Measurement { user_time_ms, total_time_ms, peak_memory_bytes, exit_code, timeout, is_oom })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_joyoi_wrote_them() {
        assert_eq!(Timeout::User.to_string(), "timeout(user)");
        assert_eq!(Timeout::Total.to_string(), "timeout(total)");
    }
}
