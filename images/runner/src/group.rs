//! What the command's process group uses right now, read from `/proc/<pid>/stat`.
//!
//! Linux has no call for a process group's CPU time while it runs: `getrusage` and
//! `wait4` count children only once they have been waited for, and the command's own
//! clock (`clock_getcpuclockid`) leaves its children out. So each sample reads the stat
//! line of every process and keeps those of the group: the sum of their user time and of
//! the user time of children they waited for (`cutime`; those children are gone, so
//! nothing counts twice), and the largest resident set.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;

/// One sample of the group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupUsage {
    /// User CPU time of the group's processes and of the children they waited for.
    pub user_time_ms: u64,
    /// The largest resident set of one process of the group, in bytes.
    pub peak_rss_bytes: u64,
}

impl GroupUsage {
    /// The larger of each figure, so that a process leaving the group between samples
    /// does not make the totals go down.
    pub fn max(self, other: GroupUsage) -> GroupUsage {
        GroupUsage {
            user_time_ms: self.user_time_ms.max(other.user_time_ms),
            peak_rss_bytes: self.peak_rss_bytes.max(other.peak_rss_bytes),
        }
    }
}

/// Clock ticks per second and bytes per page, the units of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    ticks_per_second: u64,
    page_size: u64,
}

impl Units {
    pub fn of_this_system() -> Units {
        // SAFETY: sysconf only reads system constants.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        Units {
            ticks_per_second: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
            page_size: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
        }
    }
}

/// Samples one process group. It remembers the processes it found outside the group and
/// reads only the others again, so a sample on a busy host costs a directory listing and
/// the group's own stat lines. A remembered pid is forgotten once it is gone from `/proc`;
/// for it to belong to a new process of the group before then, pids would have to wrap
/// around within one sampling interval.
///
/// The runner is the subreaper of the command's processes: those orphaned by their parent
/// become its children. Each sample reaps those that ended and keeps their use, which
/// `/proc` no longer shows, so they neither drop out of the figures nor pile up as zombies.
#[derive(Debug)]
pub struct Sampler {
    pgid: libc::pid_t,
    units: Units,
    /// Processes outside the group, with the round that last listed them.
    outsiders: HashMap<libc::pid_t, u64>,
    round: u64,
    /// Orphans of the command reaped so far: their user time added up, their largest peak.
    reaped: GroupUsage,
}

impl Sampler {
    pub fn new(pgid: libc::pid_t, units: Units) -> Sampler {
        Sampler { pgid, units, outsiders: HashMap::new(), round: 0, reaped: GroupUsage::default() }
    }

    /// What the group uses now, with its orphans that ended; processes that vanish
    /// meanwhile are skipped.
    pub fn sample(&mut self) -> GroupUsage {
        self.reap_orphans();
        let mut usage = self.reaped;
        let Ok(entries) = fs::read_dir("/proc") else { return usage };
        self.round += 1;
        // A stat line is a few hundred bytes; the command name in it is at most 64.
        let mut buffer = [0u8; 1024];
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|name| name.parse::<libc::pid_t>().ok()) else { continue };
            if let Some(round) = self.outsiders.get_mut(&pid) {
                *round = self.round;
                continue;
            }
            let Ok(mut file) = File::open(format!("/proc/{pid}/stat")) else { continue };
            let Ok(len) = file.read(&mut buffer) else { continue };
            let Some(stat) = parse_stat(&buffer[..len]) else { continue };
            if stat.pgrp != self.pgid {
                self.outsiders.insert(pid, self.round);
                continue;
            }
            usage.user_time_ms += (stat.utime + stat.cutime) * 1000 / self.units.ticks_per_second;
            usage.peak_rss_bytes = usage.peak_rss_bytes.max(stat.rss_pages * self.units.page_size);
        }
        let round = self.round;
        self.outsiders.retain(|_, seen| *seen == round);
        usage
    }

    /// Reaps the runner's children that ended, other than the command itself (which the
    /// runner waits for on its own), adding their resource use to `reaped`.
    fn reap_orphans(&mut self) {
        loop {
            // SAFETY: siginfo_t is plain data; waitid fills it in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // WNOWAIT: look first, so that the command itself is left for the runner.
            // SAFETY: valid pointer to a local siginfo_t.
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } != 0 {
                return;
            }
            // SAFETY: waitid succeeded, so si_pid is set (0 when no child has ended).
            let pid = unsafe { info.si_pid() };
            if pid == 0 || pid == self.pgid {
                return;
            }
            let mut status = 0;
            // SAFETY: rusage is plain data; wait4 fills it in.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers to locals.
            if unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) } != pid {
                return;
            }
            self.reaped.user_time_ms += timeval_ms(usage.ru_utime);
            // ru_maxrss is in KiB on Linux.
            let peak = u64::try_from(usage.ru_maxrss).unwrap_or(0).saturating_mul(1024);
            self.reaped.peak_rss_bytes = self.reaped.peak_rss_bytes.max(peak);
        }
    }
}

/// A `timeval` in whole milliseconds.
pub fn timeval_ms(time: libc::timeval) -> u64 {
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_usec).unwrap_or(0);
    secs * 1000 + micros / 1000
}

/// The fields of a stat line the sampler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    pgrp: libc::pid_t,
    utime: u64,
    cutime: u64,
    rss_pages: u64,
}

/// Parses `pid (comm) state ppid pgrp ...`; the command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(line: &[u8]) -> Option<Stat> {
    let after_name = line.iter().rposition(|&b| b == b')')? + 1;
    let rest = std::str::from_utf8(&line[after_name..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Field numbers as in proc(5), counted from `state` (field 3) at index 0.
    let field = |number: usize| fields.get(number - 3).copied();
    let number = |n: usize| field(n)?.parse::<u64>().ok();
    Some(Stat { pgrp: field(5)?.parse().ok()?, utime: number(14)?, cutime: number(16)?, rss_pages: number(24)? })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_command_names() {
        let line = b"4242 (a) b (c)) R 4200 4242 4200 0 -1 4194560 120 0 0 0 187 3 25 1 20 0 1 0 \
                     52466 8192000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(parse_stat(line), Some(Stat { pgrp: 4242, utime: 187, cutime: 25, rss_pages: 321 }));
        assert_eq!(parse_stat(b"4242 (sh) R 1 2"), None, "a cut line is skipped");
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn timeval_converts_to_milliseconds() {
        assert_eq!(timeval_ms(libc::timeval { tv_sec: 2, tv_usec: 345_999 }), 2345);
    }

    #[test]
    fn samples_the_group_of_a_busy_child() {
        let mut child =
            match std::process::Command::new("sh").args(["-c", "while :; do :; done"]).process_group(0).spawn() {
                Ok(child) => child,
                Err(err) => panic!("cannot start sh: {err}"),
            };
        let pgid = child.id() as libc::pid_t;
        let mut sampler = Sampler::new(pgid, Units::of_this_system());
        let started = Instant::now();
        let mut usage = GroupUsage::default();
        while usage.user_time_ms < 100 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
            usage = usage.max(sampler.sample());
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(usage.user_time_ms >= 100, "the loop's CPU time shows: {usage:?}");
        assert!(usage.peak_rss_bytes > 0, "its resident set shows: {usage:?}");
        assert!(!sampler.outsiders.is_empty(), "other processes were seen and remembered");
        assert!(!sampler.outsiders.contains_key(&pgid), "the group's leader is no outsider");
        assert_eq!(sampler.sample(), GroupUsage::default(), "nothing is left of the group");
    }
}
