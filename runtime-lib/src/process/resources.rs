//! Memory of the supervised process tree, for `max_memory_mb` (final update) and
//! `current_memory_mb` (heartbeats). README "Reporting" says which source each mode uses:
//!
//! * A wrapper that owns its cgroup (PID 1 of a container with its own cgroup namespace, as
//!   in ECS and Docker) reads the cgroup v2 files: `memory.peak` and `memory.current`, the
//!   numbers the container's memory limit is enforced on.
//! * Otherwise the peak is the largest resident set of a process the wrapper waited for
//!   (`getrusage(RUSAGE_CHILDREN)`, which holds the `wait4` figures of every attempt and of
//!   what each child waited for), and the current figure is the resident memory of the
//!   child's process group (the child alone without `--process-group-termination`), read
//!   from `/proc`.
//!
//! Everything here is best effort: a figure that cannot be read is `None`, and is not sent.

use std::path::{Path, PathBuf};

/// The cgroup v2 folder of the wrapper, when the wrapper owns it: it is PID 1 and its
/// cgroup is the root of its cgroup namespace (`0::/`), so the cgroup holds only the
/// wrapper and what it runs.
fn owned_cgroup() -> Option<PathBuf> {
    if std::process::id() != 1 {
        return None;
    }
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    (cgroup.trim() == "0::/").then(|| PathBuf::from("/sys/fs/cgroup"))
}

/// A cgroup file holding a number of bytes, in MB (rounded up).
fn cgroup_mb(dir: &Path, file: &str) -> Option<u64> {
    let bytes: u64 = std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(bytes.div_ceil(1024 * 1024))
}

/// The peak memory of the process tree so far, in MB.
pub(crate) fn peak_mb() -> Option<u64> {
    if let Some(mb) = owned_cgroup().and_then(|dir| cgroup_mb(&dir, "memory.peak")) {
        return Some(mb);
    }
    children_peak_mb()
}

/// The largest resident set of a process waited for, in MB (rounded up); `None` before
/// any.
fn children_peak_mb() -> Option<u64> {
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).ok()?;
    // Linux gives kilobytes.
    let kb = u64::try_from(usage.max_rss()).ok().filter(|kb| *kb > 0)?;
    Some(kb.div_ceil(1024))
}

/// The memory the process tree uses now, in MB: the owned cgroup's, else the resident
/// memory of process group `pid` (with `group`) or of process `pid` alone.
pub(crate) fn current_mb(pid: u32, group: bool) -> Option<u64> {
    if let Some(mb) = owned_cgroup().and_then(|dir| cgroup_mb(&dir, "memory.current")) {
        return Some(mb);
    }
    let kb = if group {
        let entries = std::fs::read_dir("/proc").ok()?;
        let mut total = 0u64;
        let mut found = false;
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let in_group = std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| group_of(&stat))
                == Some(pid);
            if in_group && let Some(kb) = rss_kb(p) {
                total += kb;
                found = true;
            }
        }
        found.then_some(total)?
    } else {
        rss_kb(pid)?
    };
    Some(kb.div_ceil(1024))
}

/// The peak resident memory of this process (`VmHWM`), in MB: what the Lambda handler
/// wrapper reports, like Lambda's `maxMemoryUsedMB`, the peak of the environment so far.
pub(crate) fn own_peak_mb() -> Option<u64> {
    status_kb(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmHWM:",
    )
    .map(|kb| kb.div_ceil(1024))
}

/// `VmRSS` of process `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS:",
    )
}

/// The kB figure of line `key` of a `/proc/<pid>/status` text.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The process group of a `/proc/<pid>/stat` line.
fn group_of(stat: &str) -> Option<u32> {
    // Fields after the parenthesised command name: state, ppid, pgrp, ...
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stat_lines_are_read() {
        let status = "Name:\tsleep\nVmHWM:\t   2048 kB\nVmRSS:\t    1500 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(1500));
        assert_eq!(status_kb(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kb(status, "VmSwap:"), None);
        assert_eq!(group_of("42 (a (b) c) S 1 42 42 0 -1"), Some(42));
        assert_eq!(group_of("garbage"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let me = std::process::id();
        assert!(current_mb(me, false).is_some_and(|mb| mb > 0));
        assert!(own_peak_mb().is_some_and(|mb| mb > 0));
    }

    #[test]
    fn a_child_that_was_waited_for_has_a_peak() {
        let status = std::process::Command::new("true").status().unwrap();
        assert!(status.success());
        assert!(children_peak_mb().is_some_and(|mb| mb > 0));
    }
}
