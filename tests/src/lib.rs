//! Helpers shared by the end-to-end tests and benchmarks of the workspace: polling instead
//! of sleeping, and checks on processes (here); the commands that run a wrapper binary and
//! read what it printed ([`wrapper`]); free ports, and who listens on a UDP port ([`net`]); the fake
//! servers and the harnesses of the differential and reliability suites (their modules).

pub mod bench;
pub mod differential;
pub mod elf;
pub mod fake_api;
pub mod fake_aws;
pub mod fake_ecs;
pub mod fault_proxy;
pub mod lambda;
pub mod moto;
pub mod net;
pub mod reliability;
pub mod server;
pub mod wrapper;

use std::path::Path;
use std::time::{Duration, Instant};

/// A file that `tests/run.sh` built and named in the variable `var` (a static binary, a
/// layer zip). Panics with a clear message when the variable is not set.
pub fn built_file(var: &str) -> std::path::PathBuf {
    let path = std::env::var_os(var).unwrap_or_else(|| {
        panic!("{var} is not set: run the tests with tests/run.sh, which builds the release files")
    });
    let path = std::path::PathBuf::from(path);
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

/// The qemu user-mode emulator for arm64 (Debian's `qemu-user`, which `tests/run.sh`
/// installs). Panics with a clear message when it is missing.
pub fn qemu_aarch64() -> &'static str {
    ["qemu-aarch64", "qemu-aarch64-static"]
        .into_iter()
        .find(|q| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {q}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("qemu-aarch64 (Debian's qemu-user, installed by tests/run.sh)")
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
/// The limit only bounds a failing test; a passing one returns as soon as `cond` holds.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to a child process started by a test.
pub fn signal_child(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let pid = i32::try_from(child.id()).expect("UNWRAP: process IDs fit in i32");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("UNWRAP: the child exists");
}

/// The processes whose parent is `pid` (from `/proc/PID/task/*/children`); none when it
/// does not exist.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// True if `pid` no longer runs (it does not exist, or is a zombie waiting to be reaped).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

/// Reads a PID that a test command wrote to `path`, once the file is complete.
pub fn read_pid(path: &Path, limit: Duration) -> Option<i32> {
    let mut pid = None;
    wait_until(limit, || {
        pid = std::fs::read_to_string(path)
            .ok()
            .filter(|s| s.ends_with('\n'))
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_not_gone_and_a_reaped_one_is() {
        assert!(!process_gone(i32::try_from(std::process::id()).unwrap()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        assert!(process_gone(pid));
    }
}
