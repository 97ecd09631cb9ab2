//! Spawning one child, waiting for it, and stopping it with its process group.
//!
//! # Theory of operation
//!
//! Children are waited for with `waitpid(WNOHANG)` each time `SIGCHLD` arrives, rather than
//! with `tokio::process`, because a wrapper running as PID 1 must also reap orphaned
//! grandchildren with `waitpid(-1)`, and that would steal the exit status from any other
//! waiter. `Reaper` owns the `SIGCHLD` stream (registered before the first spawn, so no
//! exit can be missed) and, in PID 1 mode, stashes statuses of the children it reaps on
//! behalf of others.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, warn};

use super::capture::{LogCapture, Stream};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitKind {
    /// Exited with a code.
    Code(i32),
    /// Killed by a signal number.
    Signal(i32),
}

impl ExitKind {
    /// The exit code as the API reports it: the code, or `-N` for signal N.
    pub(crate) fn api_code(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(n) => -n,
        }
    }

    /// The wrapper's own exit code for this ending: the code, or `128 + N` for signal N.
    pub(crate) fn shell_code(self) -> i32 {
        match self {
            ExitKind::Code(c) => c,
            ExitKind::Signal(n) => 128 + n,
        }
    }
}

/// Waits for children, reaping orphans as well when running as PID 1.
pub(crate) struct Reaper {
    sigchld: tokio::signal::unix::Signal,
    reap_all: bool,
    /// Children someone will ask about (PID 1 mode only); other reaped processes are orphans.
    watched: HashSet<i32>,
    stash: HashMap<i32, ExitKind>,
}

impl Reaper {
    /// Registers for `SIGCHLD`. Call before spawning. `reap_all` makes every `SIGCHLD` reap
    /// all exited children (for PID 1).
    pub(crate) fn new(reap_all: bool) -> io::Result<Self> {
        Ok(Self {
            sigchld: signal(SignalKind::child())?,
            reap_all,
            watched: HashSet::new(),
            stash: HashMap::new(),
        })
    }

    /// Reaps `pid` if it has exited, without blocking.
    pub(crate) fn try_reap(&mut self, pid: Pid) -> Option<ExitKind> {
        if self.reap_all {
            self.reap_everything();
            return self.stash.remove(&pid.as_raw());
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => exit_kind(status),
            // Somebody else reaped it; it is gone either way.
            Err(Errno::ECHILD) => Some(ExitKind::Code(-1)),
            Err(e) => {
                warn!("waitpid({pid}) failed: {e}");
                None
            }
        }
    }

    /// In PID 1 mode, reaps every exited child now; otherwise does nothing.
    pub(crate) fn reap_orphans(&mut self) {
        if self.reap_all {
            self.reap_everything();
        }
    }

    fn reap_everything(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if let (Some(pid), Some(kind)) = (status.pid(), exit_kind(status)) {
                        if self.watched.remove(&pid.as_raw()) {
                            self.stash.insert(pid.as_raw(), kind);
                        } else {
                            debug!("reaped orphaned process {pid}");
                        }
                    }
                }
            }
        }
    }

    /// Marks `pid` as a child whose exit status will be asked for.
    pub(crate) fn watch(&mut self, pid: Pid) {
        self.watched.insert(pid.as_raw());
    }

    /// Waits until `pid` exits.
    pub(crate) async fn wait(&mut self, pid: Pid) -> ExitKind {
        loop {
            if let Some(kind) = self.try_reap(pid) {
                return kind;
            }
            // A lost SIGCHLD is impossible once registered, but a periodic check costs little
            // and protects against a child reaped through some other path. A signal stream
            // that has ended (`None` at once) would make this loop spin, so it waits then.
            if let Ok(None) = timeout(Duration::from_secs(1), self.sigchld.recv()).await {
                sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The process group of a `/proc/<pid>/stat` line, unless the process is a zombie.
fn running_in_group(stat: &str) -> Option<i32> {
    // Fields after the parenthesised command name: state, ppid, pgrp, ...
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    (state != "Z" && state != "X").then_some(pgrp)
}

fn exit_kind(status: WaitStatus) -> Option<ExitKind> {
    match status {
        WaitStatus::Exited(_, code) => Some(ExitKind::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(ExitKind::Signal(sig as i32)),
        _ => None,
    }
}

/// A running child.
#[derive(Debug)]
pub struct Child {
    /// Its process ID (also its process group ID when `group` is set).
    pub pid: Pid,
    /// Signals go to the whole process group.
    pub group: bool,
}

/// Spawns `argv` in `work_dir` with exactly `env`. With `group`, the child starts a new
/// session, so it leads its own process group and has no controlling terminal. With
/// `capture`, the captured streams are piped to its readers.
pub fn spawn(
    argv: &[String],
    env: &std::collections::BTreeMap<OsString, OsString>,
    work_dir: &Path,
    group: bool,
    capture: Option<&LogCapture>,
) -> io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).env_clear().envs(env).current_dir(work_dir);
    // With merged logs, both streams of the child write into one pipe, as 6.0.2 does
    // (`stderr=STDOUT`): the tail then keeps the order in which the child wrote, which two
    // pipes read by two readers cannot. Everything then reaches the wrapper's stdout.
    let mut merged = None;
    if let Some(c) = capture {
        if c.merged() && c.stdout && c.stderr {
            let (reader, writer) = std::io::pipe()?;
            cmd.stdout(writer.try_clone()?).stderr(writer);
            merged = Some(reader);
        } else {
            if c.stdout {
                cmd.stdout(Stdio::piped());
            }
            if c.stderr {
                cmd.stderr(Stdio::piped());
            }
        }
    }
    if group {
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    // The command holds the parent's copies of the merged pipe's write end: closed now, so the
    // reader sees the end of the pipe when the child (and whatever inherited it) is done.
    drop(cmd);
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("process ID out of range"))?;
    if let Some(c) = capture {
        if let Some(reader) = merged {
            c.read(reader.into(), Stream::Out);
        }
        if let Some(out) = child.stdout.take() {
            c.read(out.into(), Stream::Out);
        }
        if let Some(err) = child.stderr.take() {
            c.read(err.into(), Stream::Err);
        }
    }
    // The std handle is dropped without waiting: the Reaper owns waiting.
    drop(child);
    Ok(Child {
        pid: Pid::from_raw(pid),
        group,
    })
}

impl Child {
    /// Sends `sig` to the child's group (or to the child alone).
    pub fn signal(&self, sig: Signal) {
        let result = if self.group {
            killpg(self.pid, sig)
        } else {
            kill(self.pid, sig)
        };
        match result {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => warn!("sending {sig} to process {} failed: {e}", self.pid),
        }
    }

    /// True while a member of the child's process group still runs. Zombies do not count:
    /// orphans are reaped by PID 1, which may be slow to do so.
    fn group_alive(&self) -> bool {
        if !self.group || killpg(self.pid, None).is_err() {
            return false;
        }
        match std::fs::read_dir("/proc") {
            Ok(entries) => entries.flatten().any(|entry| {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    return false;
                };
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| running_in_group(&stat))
                    == Some(self.pid.as_raw())
            }),
            // Without /proc, trust kill(2), which also counts zombies.
            Err(_) => true,
        }
    }

    /// Stops the child: `sig` to the group, up to `grace` (forever when `None`) for the
    /// child to exit, then SIGKILL. Members of the group that outlive the child get the rest
    /// of the grace period, then SIGKILL too, so nothing of the group is left running.
    pub(crate) async fn terminate(
        &self,
        reaper: &mut Reaper,
        sig: Signal,
        grace: Option<Duration>,
    ) -> ExitKind {
        if let Some(kind) = reaper.try_reap(self.pid) {
            self.kill_stragglers(reaper, grace.map(|g| Instant::now() + g))
                .await;
            return kind;
        }
        debug!("sending {sig} to process {}", self.pid);
        self.signal(sig);
        let deadline = grace.map(|g| Instant::now() + g);
        let kind = match deadline {
            None => reaper.wait(self.pid).await,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, reaper.wait(self.pid)).await {
                    Ok(kind) => kind,
                    Err(_) => {
                        warn!(
                            "process {} did not exit within the termination grace period; killing it",
                            self.pid
                        );
                        self.signal(Signal::SIGKILL);
                        reaper.wait(self.pid).await
                    }
                }
            }
        };
        self.kill_stragglers(reaper, deadline).await;
        kind
    }

    async fn kill_stragglers(&self, reaper: &mut Reaper, deadline: Option<Instant>) {
        reaper.reap_orphans();
        if !self.group_alive() {
            return;
        }
        let deadline = deadline.unwrap_or_else(Instant::now);
        while self.group_alive() && Instant::now() < deadline {
            sleep(Duration::from_millis(20)).await;
            // As PID 1, exited members stay zombies (and count as alive) until reaped.
            reaper.reap_orphans();
        }
        if self.group_alive() {
            debug!("killing what is left of process group {}", self.pid);
            self.signal(Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_group_of_a_stat_line() {
        assert_eq!(running_in_group("12 (sleep) S 1 12 12 0 -1"), Some(12));
        assert_eq!(running_in_group("13 (a) b) (c) R 1 7 7 0"), Some(7));
        assert_eq!(running_in_group("14 (sleep) Z 1 12 12 0"), None);
        assert_eq!(running_in_group("garbage"), None);
    }
}
