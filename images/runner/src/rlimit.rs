//! What the command inherits from the runner between fork and exec: resource limits
//! (a CPU-time backstop, its address space, no core files) and the OOM killer's preference.

use std::io;

/// The limits to set; values never exceed the hard limits the runner itself has.
#[derive(Debug, Clone, Copy)]
pub struct ChildLimits {
    cpu: libc::rlimit,
    address_space: Option<libc::rlimit>,
}

impl ChildLimits {
    /// `user_ms` is the user-time limit the runner watches; RLIMIT_CPU (user plus system
    /// time, whole seconds) sits one second above it, only for when watching failed.
    /// `address_space` is RLIMIT_AS in bytes, `None` for no limit.
    pub fn new(user_ms: u64, address_space: Option<u64>) -> ChildLimits {
        ChildLimits { cpu: cpu_rlimit(user_ms), address_space: address_space.map(as_rlimit) }
    }

    /// Applies the limits to the calling process. Meant for `pre_exec`: it is
    /// async-signal-safe, allocates nothing and takes no locks.
    pub fn apply(&self) -> io::Result<()> {
        set_rlimit(libc::RLIMIT_CPU, self.cpu)?;
        // No core files from SIGXCPU or crashes in the work directory.
        set_rlimit(libc::RLIMIT_CORE, libc::rlimit { rlim_cur: 0, rlim_max: 0 })?;
        if let Some(address_space) = self.address_space {
            set_rlimit(libc::RLIMIT_AS, address_space)?;
        }
        prefer_for_oom_kill();
        Ok(())
    }
}

/// RLIMIT_CPU for a user-time limit: whole seconds rounded up, plus one, with one more
/// second before the kernel's SIGKILL.
fn cpu_rlimit(user_ms: u64) -> libc::rlimit {
    let soft: libc::rlim_t = user_ms.div_ceil(1000).saturating_add(1);
    let hard = soft.saturating_add(1).min(current_hard_limit(libc::RLIMIT_CPU));
    libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard }
}

fn as_rlimit(bytes: u64) -> libc::rlimit {
    let limit = bytes.min(current_hard_limit(libc::RLIMIT_AS));
    libc::rlimit { rlim_cur: limit, rlim_max: limit }
}

fn current_hard_limit(resource: libc::__rlimit_resource_t) -> libc::rlim_t {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: getrlimit writes into the struct we pass; on failure we keep "infinity".
    unsafe { libc::getrlimit(resource, &mut current) };
    current.rlim_max
}

fn set_rlimit(resource: libc::__rlimit_resource_t, limit: libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the calling process (and what it starts) the OOM killer's first choice in its
/// cgroup, so that a command that fills the container dies rather than the runner, which
/// still has a report to write. Raising one's own score needs no privilege; where /proc
/// is missing, nothing changes.
fn prefer_for_oom_kill() {
    const SCORE: &[u8] = b"1000";
    // SAFETY: open, write and close are async-signal-safe; the path is a NUL-terminated
    // constant and the buffer a constant of the given length.
    unsafe {
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, SCORE.as_ptr().cast(), SCORE.len());
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backstop_is_a_second_above_the_limit() {
        for (user_ms, soft) in [(1, 2), (500, 2), (1000, 2), (1001, 3), (2500, 4)] {
            let limit = cpu_rlimit(user_ms);
            assert_eq!(limit.rlim_cur, soft, "soft CPU limit for {user_ms} ms");
            assert_eq!(limit.rlim_max, soft + 1, "hard CPU limit for {user_ms} ms");
        }
    }

    #[test]
    fn address_space_is_set_in_bytes_or_not_at_all() {
        let limits = ChildLimits::new(1000, Some(64 << 20));
        assert_eq!(limits.address_space.map(|l| (l.rlim_cur, l.rlim_max)), Some((64 << 20, 64 << 20)));
        assert!(ChildLimits::new(1000, None).address_space.is_none());
    }
}
