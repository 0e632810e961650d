//! The thread that watches the running command and stops its process group at a limit:
//! the wall-clock limit, the user-time limit, or the memory ceiling.
//!
//! Every [`TICK`] it samples the group (see `group`); the wall-clock deadline is waited
//! for exactly. The user CPU time in `/proc` moves in clock ticks (10 ms on most kernels),
//! so a command is stopped within a tick or two of its user limit rather than at the next
//! whole second RLIMIT_CPU would allow. JoyOI's runner sampled every millisecond; 5 ms
//! keeps the runner's own CPU use small without giving the command measurably more.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::group::{GroupUsage, Sampler, Units};

/// How often the group is sampled.
pub const TICK: Duration = Duration::from_millis(5);

/// Why the monitor stopped the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    UserTime,
    TotalTime,
    /// A process's resident set reached the memory ceiling.
    Memory,
}

/// What the monitor watches for.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// The command's pid, which is also its process group id.
    pub pid: libc::pid_t,
    pub user_limit_ms: u64,
    /// `None` when the wall-clock limit is too far away to matter.
    pub deadline: Option<Instant>,
    pub ceiling_bytes: u64,
}

/// What the monitor saw by the time the command ended or was stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watched {
    pub stopped: Option<Stop>,
    /// The largest figures of any sample.
    pub usage: GroupUsage,
}

/// Watches until `ended` delivers or disconnects (the command ended) or a limit is hit, in
/// which case the group is killed.
pub fn watch(watch: Watch, ended: &Receiver<()>) -> Watched {
    let mut sampler = Sampler::new(watch.pid, Units::of_this_system());
    let mut watched = Watched::default();
    loop {
        let mut wait = TICK;
        if let Some(deadline) = watch.deadline {
            wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        }
        match ended.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return watched,
        }
        // JoyOI's order: when both time limits have passed, the user time is the cause.
        watched.usage = watched.usage.max(sampler.sample());
        if watched.usage.user_time_ms > watch.user_limit_ms {
            return stop(watch.pid, watched, Stop::UserTime);
        }
        if watch.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return stop(watch.pid, watched, Stop::TotalTime);
        }
        if watched.usage.peak_rss_bytes >= watch.ceiling_bytes {
            return stop(watch.pid, watched, Stop::Memory);
        }
    }
}

fn stop(pid: libc::pid_t, mut watched: Watched, why: Stop) -> Watched {
    kill_group(pid);
    watched.stopped = Some(why);
    watched
}

/// SIGKILLs the process group led by `pid`, and `pid` itself in case it left the group.
pub fn kill_group(pid: libc::pid_t) {
    // SAFETY: plain signal sends; failures (ESRCH when everything is gone) are harmless.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}
