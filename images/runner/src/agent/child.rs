//! Starts a run's script as the run's uid and watches it: its stdout and stderr into the
//! run's log as they come, its end through a pidfd, the execution timeout as a deadline.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::log::{RunLog, STDERR, STDOUT};
use super::sweep;

/// How a run's script ended.
pub struct Ended {
    /// The exit code, 128 + the signal when a signal ended it (as a shell says it).
    pub code: i32,
    pub timed_out: bool,
    /// A process of the run survived the kill.
    pub survivors: bool,
}

/// Runs `script` (directly when it starts with `#!`, else with `/bin/sh`) in `dir/workdir`.
pub fn run(dir: &Path, uid: u32, shebang: bool, timeout: Duration, log: &mut RunLog) -> io::Result<Ended> {
    let script = dir.join("actor/run");
    let mut command = if shebang { Command::new(&script) } else { Command::new("/bin/sh") };
    if !shebang {
        command.arg(&script);
    }
    command
        .current_dir(dir.join("workdir"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", dir.join("workdir"))
        .env("TMPDIR", dir.join("tmp"))
        .uid(uid)
        .gid(uid)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only writes a file; the memory killer then takes the run's processes first.
    unsafe {
        command.pre_exec(|| {
            let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
            Ok(())
        });
    }
    let deadline = Instant::now() + timeout;
    let mut child = command.spawn()?;
    let outcome = watch(&mut child, deadline, log);
    let survivors = !sweep::kill_all(uid);
    // Its processes are gone, so the pipes end; what is left in them goes to the log.
    let pipes = [child.stdout.take().map(OwnedFd::from), child.stderr.take().map(OwnedFd::from)];
    for (pipe, stream) in pipes.into_iter().zip([STDOUT, STDERR]) {
        if let Some(pipe) = pipe {
            drain(pipe, stream, log);
        }
    }
    log.finish();
    let (status, timed_out) = match outcome {
        Ok(Some(status)) => (status, false),
        Ok(None) => (child.wait()?, true),
        Err(err) => {
            let _ = child.wait();
            return Err(err);
        }
    };
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1);
    Ok(Ended { code, timed_out, survivors })
}

/// Reads the pipes until the script ends (its status) or the deadline passes (`None`).
fn watch(child: &mut Child, deadline: Instant, log: &mut RunLog) -> io::Result<Option<std::process::ExitStatus>> {
    let pidfd = pidfd_open(child.id())?;
    let out = child.stdout.as_ref().map(|p| p.as_raw_fd()).unwrap_or(-1);
    let err = child.stderr.as_ref().map(|p| p.as_raw_fd()).unwrap_or(-1);
    let mut open = [out, err];
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut fds = [
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: open[0], events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: open[1], events: libc::POLLIN, revents: 0 },
        ];
        let wait_ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: three valid pollfds (a negative fd is ignored by poll).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, wait_ms.max(1)) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for (slot, stream) in [(1, STDOUT), (2, STDERR)] {
            if fds[slot].revents != 0 && open[slot - 1] >= 0 {
                match read_fd(open[slot - 1], &mut buf) {
                    Ok(0) | Err(_) => open[slot - 1] = -1,
                    Ok(n) => log.push(stream, &buf[..n]),
                }
            }
        }
        if fds[0].revents != 0
            && let Some(status) = child.try_wait()?
        {
            return Ok(Some(status));
        }
    }
}

/// Reads what is left in a pipe whose writers are all gone (or stops after a second).
fn drain(pipe: OwnedFd, stream: u8, log: &mut RunLog) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = vec![0u8; 64 << 10];
    while Instant::now() < deadline {
        let mut fds = [libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } <= 0 {
            continue;
        }
        match read_fd(pipe.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => log.push(stream, &buf[..n]),
        }
    }
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: borrows the fd for one read without taking ownership.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    file.read(buf)
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just made and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
