//! What ends a run: every process of its uid killed, every file of its uid removed, and its
//! System V IPC objects gone. What survives is reported, and the service then removes the
//! whole container.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The places a run can write: its own directory is under the first.
const WRITABLE: [&str; 3] = ["/runs", "/dev/shm", "/dev/mqueue"];

/// Kills every process of `uid`, from a child that takes that uid (so `kill(-1)` reaches those
/// and nothing else), until none but zombies is left; false when some survived a second.
pub fn kill_all(uid: u32) -> bool {
    // SAFETY: the agent is single-threaded, so the child may do anything the parent could.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return false;
    }
    if pid == 0 {
        let code = unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                2
            } else if kill_loop(uid) {
                0
            } else {
                1
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just made.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn kill_loop(uid: u32) -> bool {
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        // SAFETY: signals every process this uid may signal, which excludes the caller.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        if live_processes(uid, me) == 0 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Processes of `uid` that are not zombies, `me` aside.
fn live_processes(uid: u32, me: u32) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else { return usize::MAX };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()).is_some_and(|pid| pid != me))
        .filter(|entry| entry.metadata().is_ok_and(|m| m.uid() == uid))
        .filter(|entry| {
            // The state follows the command name's closing parenthesis.
            let stat = fs::read(entry.path().join("stat")).unwrap_or_default();
            let state = stat.iter().rposition(|b| *b == b')').and_then(|at| stat.get(at + 2)).copied();
            state.is_some_and(|s| s != b'Z' && s != b'X')
        })
        .count()
}

/// Removes the run's directory and whatever else `uid` owns where runs can write; the first
/// thing that could not be removed, if any.
pub fn remove_files(run_dir: &Path, uid: u32) -> Option<String> {
    if let Err(err) = fs::remove_dir_all(run_dir)
        && run_dir.exists()
    {
        return Some(format!("{}: {err}", run_dir.display()));
    }
    for place in WRITABLE {
        for path in owned_by(Path::new(place), uid) {
            let meta = fs::symlink_metadata(&path);
            let removed = match meta {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
            if removed.is_err() && fs::symlink_metadata(&path).is_ok() {
                return Some(path.display().to_string());
            }
        }
    }
    remove_ipc(uid);
    None
}

fn owned_by(dir: &Path, uid: u32) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid)).map(|e| e.path()).collect()
}

/// System V shared memory, queues and semaphores of `uid` (they outlive processes).
fn remove_ipc(uid: u32) {
    for (table, remove) in [
        ("/proc/sysvipc/shm", remove_shm as fn(i32)),
        ("/proc/sysvipc/msg", remove_msg),
        ("/proc/sysvipc/sem", remove_sem),
    ] {
        for id in ipc_ids(table, uid) {
            remove(id);
        }
    }
}

/// Ids of a `/proc/sysvipc` table whose owner is `uid`.
fn ipc_ids(table: &str, uid: u32) -> Vec<i32> {
    let Ok(text) = fs::read_to_string(table) else { return Vec::new() };
    let mut lines = text.lines();
    let Some(head) = lines.next() else { return Vec::new() };
    let columns: Vec<&str> = head.split_whitespace().collect();
    let (Some(id_at), Some(uid_at)) = (
        columns.iter().position(|c| c.ends_with("id") && *c != "cpid" && *c != "lpid"),
        columns.iter().position(|c| *c == "uid"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let owner: u32 = fields.get(uid_at)?.parse().ok()?;
            (owner == uid).then(|| fields.get(id_at)?.parse().ok()).flatten()
        })
        .collect()
}

fn remove_shm(id: i32) {
    // SAFETY: IPC_RMID takes no buffer.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
}

fn remove_msg(id: i32) {
    // SAFETY: IPC_RMID takes no buffer.
    unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
}

fn remove_sem(id: i32) {
    // SAFETY: IPC_RMID ignores the semaphore number and takes no argument.
    unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
}
