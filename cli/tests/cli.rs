//! Black-box tests of the real `proc_wrapper` binary in offline mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procwrapper_tests::wrapper::{offline, run, spawn_piped, stderr, stdout};
use procwrapper_tests::{process_gone, read_pid, signal_child, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

/// `proc_wrapper` with an empty environment (but `PATH`), in offline mode.
fn wrapper() -> Command {
    offline(env!("CARGO_BIN_EXE_proc_wrapper"))
}

#[test]
fn exit_code_of_the_child_passes_through() {
    for code in [0, 3, 42, 255] {
        let out = run(wrapper().args(["--", "sh", "-c", &format!("exit {code}")]));
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    }
}

#[test]
fn output_of_the_child_passes_through_unchanged() {
    let out = run(wrapper().args(["--", "sh", "-c", "echo to-out; echo to-err >&2"]));
    assert_eq!(stdout(&out), "to-out\n");
    assert!(stderr(&out).contains("to-err\n"));
}

#[test]
fn child_killed_by_a_signal_gives_128_plus_n() {
    let out = run(wrapper().args(["--shell-mode", "disable", "--", "sh", "-c", "kill -9 $$"]));
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed with exit code -9"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn command_that_cannot_be_spawned_exits_78() {
    let out = run(wrapper().args(["--", "/nonexistent/command"]));
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("could not start '/nonexistent/command'"));
    let out = run(wrapper().args(["-w", "/nonexistent-dir", "--", "true"]));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("/nonexistent-dir"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_command_exits_78() {
    let out = run(&mut wrapper());
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("PROC_WRAPPER_TASK_COMMAND"));
}

#[test]
fn bad_timeout_variable_exits_78_naming_it_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = run(wrapper()
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "abc")
        .args(["--", "touch", marker.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS"),
        "{err}"
    );
    assert!(err.contains("'abc'"), "{err}");
    assert!(!marker.exists());
}

#[test]
fn bad_option_values_exit_78_naming_the_option() {
    for (args, name) in [
        (&["-t", "soon"][..], "--process-timeout"),
        (&["-r", "x"][..], "--process-max-retries"),
        (
            &["--process-retry-delay", "1s"][..],
            "--process-retry-delay",
        ),
        (&["--shell-mode", "maybe"][..], "--shell-mode"),
        (&["--bogus-option"][..], "--bogus-option"),
    ] {
        let out = run(wrapper().args(args).args(["--", "true"]));
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        assert!(stderr(&out).contains(name), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn version_and_help() {
    let out = run(wrapper().arg("-v"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "CloudReactor Rust proc_wrapper v{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let out = run(wrapper().arg("--help"));
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for heading in [
        "Task settings:",
        "API client settings:",
        "Input and result settings:",
        "Logging settings:",
        "Process settings:",
        "Status update settings:",
        "Environment/configuration resolution settings:",
        "Container settings:",
        "Rollbar settings:",
    ] {
        assert!(help.contains(heading), "missing {heading}");
    }
    for item in [
        "--process-timeout",
        "PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS",
        "PROC_WRAPPER_TASK_MAX_RETRIES",
        "--execution_method_type",
        "--rollbar-timeout",
    ] {
        assert!(help.contains(item), "missing {item}");
    }
}

#[test]
fn timeout_kills_the_child_and_its_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let script = format!(
        "sleep 300 >/dev/null 2>&1 & echo $! > {}; sleep 300",
        pidfile.to_str().unwrap()
    );
    let out = run(wrapper().args(["-t", "1", "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"));
    let grandchild = read_pid(&pidfile, LIMIT).expect("grandchild PID written");
    assert!(
        wait_until(LIMIT, || process_gone(grandchild)),
        "grandchild {grandchild} still runs"
    );
}

#[test]
fn child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let script = format!(
        "trap '' TERM; echo $$ > {}; while true; do sleep 1; done",
        pidfile.to_str().unwrap()
    );
    let out = run(wrapper().args([
        "-t",
        "1",
        "--process-termination-grace-period",
        "1",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not exit within the termination grace period"));
    let pid = read_pid(&pidfile, LIMIT).expect("child PID written");
    assert!(process_gone(pid));
}

#[test]
fn failed_attempts_are_retried_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let script = format!("echo x >> {}; exit 5", count.to_str().unwrap());
    let out = run(wrapper()
        .env("PROC_WRAPPER_PROCESS_MAX_RETRIES", "2")
        .args(["--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    assert!(
        stderr(&out).contains("on attempt 3 / 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn retries_stop_at_the_first_success() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let c = count.to_str().unwrap();
    // Fails twice, then succeeds.
    let script = format!("echo x >> {c}; [ $(wc -l < {c}) -ge 3 ]");
    let out = run(wrapper().args(["-r", "-1", "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    assert!(
        stderr(&out).contains("on attempt 3 / infinity"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn timed_out_attempts_are_retried_then_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let script = format!("echo x >> {}; sleep 300", count.to_str().unwrap());
    let out = run(wrapper()
        .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
        .args(["--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 2);
}

/// Starts a wrapped child that records its own PID and a grandchild's PID, and waits until
/// both are written.
fn start_tree(dir: &Path, extra: &[&str]) -> (Child, i32, i32) {
    // A short grace period: background jobs of `sh` ignore SIGINT and SIGQUIT, so those
    // tests also show that what outlives the child is killed when the grace period ends.
    procwrapper_tests::wrapper::start_tree(&mut wrapper(), extra, dir, LIMIT)
}

#[test]
fn sigterm_to_the_wrapper_terminates_the_group_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, child, grandchild) = start_tree(dir.path(), &[]);
    signal_child(&wrapper, Signal::SIGTERM);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("received SIGTERM"),
        "{}",
        stderr(&out)
    );
    assert!(wait_until(LIMIT, || process_gone(child) && process_gone(grandchild)));
}

#[test]
fn sigint_to_the_wrapper_interrupts_the_group_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, child, grandchild) = start_tree(dir.path(), &[]);
    signal_child(&wrapper, Signal::SIGINT);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(wait_until(LIMIT, || process_gone(child) && process_gone(grandchild)));
}

#[test]
fn sighup_and_sigquit_are_forwarded_and_exit_128_plus_n() {
    for (sig, code) in [(Signal::SIGHUP, 129), (Signal::SIGQUIT, 131)] {
        let dir = tempfile::tempdir().unwrap();
        let (wrapper, child, grandchild) = start_tree(dir.path(), &[]);
        signal_child(&wrapper, sig);
        let out = wrapper.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{sig}: {}", stderr(&out));
        assert!(wait_until(LIMIT, || process_gone(child) && process_gone(grandchild)));
    }
}

#[test]
fn sigterm_during_the_retry_delay_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("attempted");
    let script = format!("echo x >> {}; exit 2", marker.to_str().unwrap());
    let wrapper = spawn_piped(wrapper().args([
        "-r",
        "5",
        "--process-retry-delay",
        "300",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert!(wait_until(LIMIT, || marker.exists()));
    // The wrapper is now waiting to retry (the attempt exits at once).
    signal_child(&wrapper, Signal::SIGTERM);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1);
}

#[test]
fn without_group_termination_only_the_child_is_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, child, grandchild) = start_tree(dir.path(), &["--no-process-group-termination"]);
    signal_child(&wrapper, Signal::SIGTERM);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(wait_until(LIMIT, || process_gone(child)));
    assert!(
        !process_gone(grandchild),
        "the grandchild was not signalled"
    );
    kill(Pid::from_raw(grandchild), Signal::SIGKILL).unwrap();
}

#[test]
fn shell_wrapping_is_stripped_and_shell_mode_detected() {
    // Docker's shell form: the whole command arrives as `/bin/sh -c "..."`.
    let out = run(wrapper().args(["-c", "/bin/sh -c \"echo $((1+2)) | tr 3 x\""]));
    assert_eq!(stdout(&out), "x\n", "{}", stderr(&out));
    // Exec form with a shell inside.
    let out = run(wrapper().args(["--", "/bin/sh", "-c", "echo a | tr a b"]));
    assert_eq!(stdout(&out), "b\n", "{}", stderr(&out));
    let out = run(wrapper().args(["--", "sh", "-c", "echo a | tr a c"]));
    assert_eq!(stdout(&out), "c\n", "{}", stderr(&out));
    // Without a shell, special characters are passed as they are.
    let out = run(wrapper().args(["--shell-mode", "disable", "--", "echo", "$HOME|x"]));
    assert_eq!(stdout(&out), "$HOME|x\n", "{}", stderr(&out));
    // With shell mode forced, a plain command runs in a shell too.
    let out = run(wrapper()
        .env("PROC_WRAPPER_SHELL_MODE", "enable")
        .env("X", "from-shell")
        .args(["-c", "echo $X"]));
    assert_eq!(stdout(&out), "from-shell\n", "{}", stderr(&out));
}

#[test]
fn command_from_the_environment_wins_over_arguments() {
    let out = run(wrapper()
        .env("PROC_WRAPPER_TASK_COMMAND", "echo from-env")
        .args(["--", "echo", "from-args"]));
    assert_eq!(stdout(&out), "from-env\n");
}

#[test]
fn work_dir_is_the_childs_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(wrapper().args(["-w", dir.path().to_str().unwrap(), "--", "pwd"]));
    assert_eq!(
        Path::new(stdout(&out).trim()).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
}

#[test]
fn child_environment_in_offline_mode() {
    let out = run(wrapper()
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "7")
        .env("PROC_WRAPPER_DEPLOYMENT", "hidden-offline")
        .env("PROC_WRAPPER_TASK_VERSION_TEXT", "1.2")
        .env("KEPT", "yes")
        .args(["--", "env"]));
    let env = stdout(&out);
    for line in [
        "KEPT=yes",
        "TASK_CONFIG={}",
        "PROC_WRAPPER_OFFLINE_MODE=TRUE",
        "PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS=7",
        "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS=30",
        "PROC_WRAPPER_MAX_CONCURRENCY=-1",
        "PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION=FALSE",
        "PROC_WRAPPER_TASK_VERSION_TEXT=1.2",
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in\n{env}");
    }
    assert!(!env.contains("PROC_WRAPPER_API_KEY"));
    assert!(!env.contains("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS"));
}

#[test]
fn offline_with_prevent_offline_execution_exits_78() {
    let out = run(wrapper().args(["-p", "--", "true"]));
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("--prevent-offline-execution"));
}

#[test]
fn final_summary_line_names_the_task() {
    let out = run(wrapper().args(["-n", "nightly", "--", "true"]));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with("PROC_WRAPPER: ")
            && l.contains("INFO: Task 'nightly' succeeded at ")
            && l.contains("+00:00 in ")
            && l.contains(" seconds on attempt 1 / 1, for a total duration of ")
            && l.ends_with(" second(s).")),
        "{err}"
    );
    let out = run(wrapper()
        .env("PROC_WRAPPER_INCLUDE_TIMESTAMPS_IN_LOG", "FALSE")
        .args(["--", "true"]));
    assert!(stderr(&out).contains("PROC_WRAPPER: INFO: Task '[Unnamed]' succeeded"));
}

/// As PID 1 of a PID namespace (a container without `--init`), the wrapper reaps orphaned
/// grandchildren. The wrapped script creates an orphan, then reports whether it was reaped
/// (its /proc entry disappears) or stayed a zombie.
#[test]
fn as_pid_1_orphans_are_reaped() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs `unshare --pid --fork --mount-proc` (util-linux, root)"
    );
    let script = "( sleep 0.2 & echo $! > /tmp/orphan.$$ ); o=$(cat /tmp/orphan.$$); \
                  rm -f /tmp/orphan.$$; i=0; \
                  while [ -e /proc/$o ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
                  if [ -e /proc/$o ]; then echo ZOMBIE; else echo REAPED; fi";
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_proc_wrapper"))
        .args(["-o", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "REAPED", "{}", stderr(&out));
}

/// One argument holding a whole shell script (`proc_wrapper 'a | b; exit 3'`, or Docker's
/// exec form `CMD ["proc_wrapper", "a | b"]`) runs as that script, as in 6.0.2.
#[test]
fn one_argument_holding_a_script_runs_it() {
    let out = run(wrapper().arg("echo x | tr a-z A-Z; exit 3"));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "X\n");
}

/// The lines of `text`, each a JSON object with Lambda's keys (panics otherwise).
fn lambda_json_lines(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    text.lines()
        .map(|line| {
            let Ok(serde_json::Value::Object(object)) = serde_json::from_str(line) else {
                panic!("not a JSON object: {line}\nin\n{text}");
            };
            for key in ["timestamp", "level", "message"] {
                assert!(object[key].is_string(), "no {key}: {line}");
            }
            object
        })
        .collect()
}

#[test]
fn lambdas_json_log_format_gives_json_lines_and_text_stays_text() {
    let out = run(wrapper()
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("PROC_WRAPPER_LOG_LEVEL", "DEBUG")
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = lambda_json_lines(&stderr(&out));
    assert!(lines.len() > 1, "{}", stderr(&out));
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "{}",
        stderr(&out)
    );
    let last = lines.last().expect("UNWRAP: lines seen above");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Task '") && m.contains("' succeeded at ")),
        "the summary: {last:?}"
    );
    let time = last["timestamp"].as_str().expect("UNWRAP: checked");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    // Lambda's level, when the wrapper's is not set; a configuration error is JSON too.
    let out = run(wrapper()
        .env("AWS_LAMBDA_LOG_FORMAT", "json")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .args(["--", "true"]));
    assert_eq!(stderr(&out), "", "nothing at WARN");
    let out = run(wrapper()
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "abc")
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(78));
    let lines = lambda_json_lines(&stderr(&out));
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS")),
        "{lines:?}"
    );
    // Text (or unset): the original format.
    for format in ["Text", ""] {
        let out = run(wrapper()
            .env("AWS_LAMBDA_LOG_FORMAT", format)
            .args(["--", "true"]));
        let err = stderr(&out);
        assert!(!err.is_empty());
        assert!(
            err.lines().all(|l| l.starts_with("PROC_WRAPPER: ")),
            "{err}"
        );
    }
}
