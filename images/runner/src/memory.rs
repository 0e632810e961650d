//! The memory the command may use and how to tell that it was killed for memory.
//!
//! The *ceiling* is JoyOI's: the smaller of 1 GiB and the memory limit of the cgroup the
//! runner is in (the container's), less 50 MiB kept for the runner. It is the default
//! address-space limit, and a process of the command whose resident set reaches it is
//! killed. The cgroup's count of OOM kills (cgroup v2 `memory.events`, v1
//! `memory.oom_control`) tells whether the kernel killed something for memory meanwhile.
//!
//! The cgroup is found from `/proc/self/cgroup` under `/sys/fs/cgroup`, falling back to the
//! mount's root: in a container with its own cgroup namespace, or with v1's per-container
//! mounts, the root *is* the container's cgroup.

use std::fs;
use std::path::{Path, PathBuf};

const MIB: u64 = 1024 * 1024;
/// The most the ceiling can be, whatever the container allows.
pub const MAX_CEILING: u64 = 1024 * MIB;
/// Kept out of the ceiling for the runner itself.
pub const RESERVE: u64 = 50 * MIB;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const SELF_CGROUP: &str = "/proc/self/cgroup";

/// The ceiling under a cgroup memory limit of `limit` bytes (`None`: no limit). A
/// container too small for the reserve keeps half its memory for the command instead.
pub fn ceiling(limit: Option<u64>) -> u64 {
    let limit = limit.map_or(MAX_CEILING, |limit| limit.min(MAX_CEILING));
    limit.saturating_sub(RESERVE).max(limit / 2)
}

/// The memory controller of the cgroup the runner is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCgroup {
    /// cgroup v2: the runner's cgroup directory and those of its ancestors up to the mount's
    /// root, nearest first.
    V2(Vec<PathBuf>),
    /// cgroup v1: the memory controller's directory for the runner.
    V1(PathBuf),
}

impl MemoryCgroup {
    /// Finds the runner's memory cgroup on this machine, if it has one.
    pub fn find() -> Option<MemoryCgroup> {
        let own = fs::read_to_string(SELF_CGROUP).unwrap_or_default();
        Self::find_in(Path::new(CGROUP_ROOT), &own)
    }

    /// Finds it under the cgroup mount `root`, given the text of `/proc/self/cgroup`.
    pub fn find_in(root: &Path, self_cgroup: &str) -> Option<MemoryCgroup> {
        let mut v2_path = None;
        let mut v1_path = None;
        for line in self_cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            if controllers.is_empty() {
                v2_path = Some(path);
            } else if controllers.split(',').any(|c| c == "memory") {
                v1_path = Some(path);
            }
        }

        if root.join("memory.max").exists() || root.join("cgroup.controllers").exists() {
            // v2: the own directory when it is visible here, else the root (a namespace's
            // root shows the container's cgroup; an own path of "/" is the root anyway).
            let own = v2_path.map(|path| root.join(path.trim_start_matches('/'))).filter(|dir| dir.is_dir());
            let mut dirs = Vec::new();
            let mut dir = own.unwrap_or_else(|| root.to_path_buf());
            loop {
                dirs.push(dir.clone());
                if dir == root || !dir.pop() || !dir.starts_with(root) {
                    break;
                }
            }
            return Some(MemoryCgroup::V2(dirs));
        }

        let v1_root = root.join("memory");
        if v1_root.join("memory.limit_in_bytes").exists() {
            let own = v1_path
                .map(|path| v1_root.join(path.trim_start_matches('/')))
                .filter(|dir| dir.join("memory.limit_in_bytes").exists());
            return Some(MemoryCgroup::V1(own.unwrap_or(v1_root)));
        }
        None
    }

    /// The memory limit in bytes that applies to the runner, `None` when there is none.
    pub fn limit(&self) -> Option<u64> {
        match self {
            // The nearest limit is not always the tightest: every ancestor's counts.
            MemoryCgroup::V2(dirs) => dirs.iter().filter_map(|dir| read_number(&dir.join("memory.max"))).min(),
            MemoryCgroup::V1(dir) => {
                let own = read_number(&dir.join("memory.limit_in_bytes"));
                let inherited = read_keyed(&dir.join("memory.stat"), "hierarchical_memory_limit");
                own.into_iter().chain(inherited).min()
            }
        }
    }

    /// How many processes of the cgroup the kernel's OOM killer has killed so far.
    pub fn oom_kills(&self) -> Option<u64> {
        match self {
            MemoryCgroup::V2(dirs) => read_keyed(&dirs.first()?.join("memory.events"), "oom_kill"),
            MemoryCgroup::V1(dir) => read_keyed(&dir.join("memory.oom_control"), "oom_kill"),
        }
    }
}

/// A file holding one number; `None` when missing, unreadable or not a number ("max").
fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The number after `key` in a file of `key value` lines.
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup mount in a temporary directory, removed when dropped.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str) -> FakeRoot {
            let path = std::env::temp_dir().join(format!("wharf-runner-cgroup-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap_or_else(|err| panic!("cannot create {path:?}: {err}"));
            FakeRoot(path)
        }

        fn write(&self, file: &str, text: &str) {
            let path = self.0.join(file);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap_or_else(|err| panic!("cannot create {parent:?}: {err}"));
            }
            fs::write(&path, text).unwrap_or_else(|err| panic!("cannot write {path:?}: {err}"));
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ceiling_is_joyois_with_room_for_small_containers() {
        assert_eq!(ceiling(None), 974 * MIB);
        assert_eq!(ceiling(Some(4096 * MIB)), 974 * MIB);
        assert_eq!(ceiling(Some(256 * MIB)), 206 * MIB);
        assert_eq!(ceiling(Some(96 * MIB)), 48 * MIB, "half of a container smaller than twice the reserve");
        assert_eq!(ceiling(Some(64 * MIB)), 32 * MIB);
        assert_eq!(ceiling(Some(0)), 0);
    }

    #[test]
    fn v2_in_a_cgroup_namespace_reads_the_root() {
        let root = FakeRoot::new("v2ns");
        root.write("cgroup.controllers", "cpu memory pids\n");
        root.write("memory.max", "100663296\n");
        root.write("memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
        let cgroup = MemoryCgroup::find_in(&root.0, "0::/\n");
        assert_eq!(cgroup, Some(MemoryCgroup::V2(vec![root.0.clone()])));
        let cgroup = cgroup.unwrap_or_else(|| unreachable!());
        assert_eq!(cgroup.limit(), Some(96 * MIB));
        assert_eq!(cgroup.oom_kills(), Some(2));
    }

    #[test]
    fn v2_takes_the_tightest_limit_of_the_own_cgroup_and_its_ancestors() {
        let root = FakeRoot::new("v2host");
        root.write("cgroup.controllers", "memory\n");
        root.write("system.slice/memory.max", "536870912\n");
        root.write("system.slice/job.scope/memory.max", "max\n");
        root.write("system.slice/job.scope/memory.events", "oom_kill 0\n");
        let cgroup = MemoryCgroup::find_in(&root.0, "0::/system.slice/job.scope\n")
            .unwrap_or_else(|| panic!("a v2 mount should be found"));
        assert_eq!(cgroup.limit(), Some(512 * MIB));
        assert_eq!(cgroup.oom_kills(), Some(0));

        // The root of a v2 hierarchy has no memory.max: no limit at all.
        let unlimited = MemoryCgroup::find_in(&root.0, "0::/\n").unwrap_or_else(|| panic!("found"));
        assert_eq!(unlimited.limit(), None);
    }

    #[test]
    fn v1_reads_the_memory_controller_and_falls_back_to_its_root() {
        let root = FakeRoot::new("v1");
        root.write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        root.write("memory/memory.stat", "cache 0\nhierarchical_memory_limit 67108864\n");
        root.write("memory/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        // Docker's v1 containers see the host's path in /proc/self/cgroup, which does
        // not exist under their own mount.
        let cgroup = MemoryCgroup::find_in(&root.0, "5:memory:/docker/0123abcd\n2:cpu,cpuacct:/docker/0123abcd\n")
            .unwrap_or_else(|| panic!("a v1 mount should be found"));
        assert_eq!(cgroup, MemoryCgroup::V1(root.0.join("memory")));
        assert_eq!(cgroup.limit(), Some(64 * MIB), "the hierarchical limit is the tighter one");
        assert_eq!(cgroup.oom_kills(), Some(3));
    }

    #[test]
    fn no_cgroup_mount_means_no_limit() {
        let root = FakeRoot::new("none");
        assert_eq!(MemoryCgroup::find_in(&root.0, ""), None);
    }
}
