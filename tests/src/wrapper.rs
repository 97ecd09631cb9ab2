//! Running a wrapper binary (`proc_wrapper`, `cloudreactor-extension`) from a black-box test:
//! the base environment of its command, reading what it printed, the environment its child
//! received, and a child with a grandchild for the signal tests.
//!
//! The binary is given by path, since only the test target that builds it knows where it is:
//! a test of the `cli` crate passes `env!("CARGO_BIN_EXE_proc_wrapper")`. Every command starts
//! from an empty environment (but `PATH`), so that nothing of the developer's shell or of CI
//! (`AWS_*`, `PROC_WRAPPER_*`) reaches the binary; each test file then adds the settings its
//! tests are about (short API timeouts, a data folder), which stay in that file. The fakes the
//! commands point at live in [`crate::fake_api`], [`crate::fake_aws`] and [`crate::moto`];
//! free ports in [`crate::net`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::fake_api::{API_KEY, TASK_UUID};

/// `bin` with an empty environment but the caller's `PATH` (empty when it has none).
pub fn bare(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// [`bare`], in offline mode (`PROC_WRAPPER_OFFLINE_MODE=TRUE`): no API server is called.
pub fn offline(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = bare(bin);
    cmd.env("PROC_WRAPPER_OFFLINE_MODE", "TRUE");
    cmd
}

/// [`bare`], reporting Task [`TASK_UUID`] to the API server at `url` with the key
/// [`API_KEY`] that [`crate::fake_api::FakeApi`] accepts. The API timeouts and delays are
/// left at the wrapper's defaults: each test file sets the short ones its tests need.
pub fn reporting(bin: impl AsRef<OsStr>, url: &str) -> Command {
    let mut cmd = bare(bin);
    cmd.env("PROC_WRAPPER_TASK_UUID", TASK_UUID)
        .env("PROC_WRAPPER_API_BASE_URL", url)
        .env("PROC_WRAPPER_API_KEY", API_KEY);
    cmd
}

/// Runs `cmd` to its end and returns what it printed (panics if it cannot start).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("UNWRAP: the binary runs")
}

/// Starts `cmd` with its standard output and error piped, for
/// [`Child::wait_with_output`] (panics if it cannot start).
pub fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("UNWRAP: the binary starts")
}

/// Runs `cmd` to its end, its output piped; returns the PID it was started with (the
/// command's own, when `--exec` made the wrapper become it) and what it printed.
pub fn run_with_pid(cmd: &mut Command) -> (u32, Output) {
    let child = spawn_piped(cmd);
    let pid = child.id();
    let out = child
        .wait_with_output()
        .expect("UNWRAP: the output of a started child can be read");
    (pid, out)
}

/// The standard output of `out`, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The standard error of `out` (the wrapper's log), as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything `out` printed: standard output, then standard error.
pub fn printed(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The variables in the output of `env` (`NAME=value` lines; other lines are skipped, and a
/// value holding a newline keeps only its first line).
pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Runs `env` as the child of `cmd` (after `--`) and returns the environment it received;
/// fails the test, with the log, unless the run exits 0.
pub fn child_env(cmd: &mut Command) -> HashMap<String, String> {
    let out = run(cmd.args(["--", "env"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    parse_env(&stdout(&out))
}

/// Fails the test if `text` contains any of `secrets`, naming the `case` and the secret.
pub fn assert_absent(text: &str, secrets: &[&str], case: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{case}: '{secret}' reached the output:\n{text}"
        );
    }
}

/// Starts `cmd` wrapping a `sh` that starts a grandchild (`sleep 300`) and waits for it, with
/// a termination grace period of 2 s and `options` before the command; waits (up to `limit`)
/// until both have written their PIDs into `dir`. Returns the wrapper (output piped), the
/// child's PID and the grandchild's.
pub fn start_tree(
    cmd: &mut Command,
    options: &[&str],
    dir: &Path,
    limit: Duration,
) -> (Child, i32, i32) {
    let child_pid = dir.join("child.pid");
    let grandchild_pid = dir.join("grandchild.pid");
    let script = format!(
        "sleep 300 >/dev/null 2>&1 & echo $! > {}; echo $$ > {}; wait",
        grandchild_pid.display(),
        child_pid.display()
    );
    let wrapper = spawn_piped(
        cmd.args(["--process-termination-grace-period", "2"])
            .args(options)
            .args(["--", "sh", "-c", &script]),
    );
    let child = crate::read_pid(&child_pid, limit).expect("UNWRAP: the child wrote its PID");
    let grandchild =
        crate::read_pid(&grandchild_pid, limit).expect("UNWRAP: the grandchild wrote its PID");
    (wrapper, child, grandchild)
}
