//! Fault injection against the real `proc_wrapper` binary: an API server that drops
//! connections, answers garbage or endless bodies, or hangs; moto_server cut off while secrets
//! are fetched; children that ignore SIGTERM or leave grandchildren behind; signals to the
//! wrapper at every phase; a full disk; 100 runs at once. Each test states the outcome it
//! expects, checks that no final status is lost when the server answers again within the
//! final-update timeout, and records one row of `tests/RELIABILITY.md`
//! ([`procwrapper_tests::reliability`]).
//!
//! Timeouts are short (fractions of a second where the settings allow), so the suite takes
//! seconds; the only long wait is the 5 s floor of the retry delay after a 502, as in 6.0.2
//! (README "Reporting to CloudReactor", "Retries").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use procwrapper_tests::fake_api::{FakeApi, Fault, count_method};
use procwrapper_tests::fault_proxy::{FaultProxy, Mode};
use procwrapper_tests::moto::Moto;
use procwrapper_tests::reliability::record;
use procwrapper_tests::wrapper::{offline, reporting};
use procwrapper_tests::{process_gone, read_pid, wait_until};

/// Bounds every wait; a passing test never comes close.
const LIMIT: Duration = Duration::from_secs(60);

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proc_wrapper");

/// The short delays and timeouts of these tests, on top of [`reporting`]: retries after
/// 0.2 s, 10 s to create the execution or deliver an update, and 1 s of grace after SIGTERM.
/// A request times out after 20 s, which only a hung server reaches (the tests of one lower
/// it); a shorter one could expire on a loaded machine and send a request twice.
const FAULT_TEST_SETTINGS: [(&str, &str); 7] = [
    ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "0.2"),
    ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "20"),
    (
        "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
        "10",
    ),
    ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "10"),
    ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "10"),
    ("PROC_WRAPPER_API_RESUME_DELAY_SECONDS", "-1"),
    ("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "1"),
];

/// `proc_wrapper` reporting to `url`, with [`FAULT_TEST_SETTINGS`].
fn wrapper(url: &str) -> Command {
    let mut cmd = reporting(BIN, url);
    cmd.envs(FAULT_TEST_SETTINGS);
    cmd
}

/// A wrapper started by a test, its output going to files (a pipe could fill up, or be held
/// open by a grandchild after the wrapper exits).
struct Run {
    child: Child,
    dir: tempfile::TempDir,
}

/// How a wrapper ended.
struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn start(cmd: &mut Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout")).unwrap())
            .stderr(File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("proc_wrapper starts");
        Self { child, dir }
    }

    fn signal(&self, sig: Signal) {
        procwrapper_tests::signal_child(&self.child, sig);
    }

    /// Waits (up to [`LIMIT`]) for the wrapper to exit; kills it and fails the test if it
    /// does not.
    fn finish(mut self) -> Done {
        let mut status = None;
        let exited = wait_until(LIMIT, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap();
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "proc_wrapper did not exit within {LIMIT:?}:\n{}",
                read("stderr")
            );
        }
        assert!(
            !read("stderr").contains("panicked"),
            "proc_wrapper panicked:\n{}",
            read("stderr")
        );
        Done {
            code: status.and_then(|s| s.code()),
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }
}

fn run(cmd: &mut Command) -> Done {
    Run::start(cmd).finish()
}

/// The first execution the fake creates.
fn first_uuid() -> String {
    procwrapper_tests::fake_api::execution_uuid(1)
}

/// A shell command that waits until `file` exists, then exits with `code`.
fn wait_for_file(file: &Path, code: i32) -> Vec<String> {
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; exit {code}",
        file.display()
    );
    vec!["sh".into(), "-c".into(), script]
}

fn touch(file: &Path) {
    std::fs::write(file, "").unwrap();
}

/// 1 if execution `uuid` did not end with `status` on the server, else 0.
fn lost(api: &FakeApi, uuid: &str, status: &str) -> usize {
    usize::from(api.status_of(uuid).as_deref() != Some(status))
}

// 1. Connections closed mid-request (the request is read, no answer comes back).

#[test]
fn a_connection_dropped_at_creation_is_retried() {
    let api = FakeApi::start();
    api.push_faults([Fault::Drop, Fault::Drop]);
    let done = run(wrapper(&api.url).args(["--", "true"]));
    let reqs = api.requests();
    let uuid = first_uuid();
    let lost = lost(&api, &uuid, "SUCCEEDED");
    record(
        "Connection closed without an answer, twice, at creation",
        1,
        lost,
        "creation retried after 0.2 s each time; command run; SUCCEEDED delivered; exit 0",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(count_method(&reqs, "POST"), 3, "{reqs:#?}");
    assert!(done.stderr.contains("could not reach the API server"));
    assert_eq!(api.created(), std::slice::from_ref(&uuid));
    assert_eq!(api.finals_of(&uuid).len(), 1);
    assert_eq!(lost, 0);
}

#[test]
fn a_connection_dropped_during_a_heartbeat_is_retried() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let run = Run::start(
        wrapper(&api.url)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "0.5")
            .arg("--")
            .args(wait_for_file(&go, 0)),
    );
    assert!(api.wait_for(LIMIT, |r| r.len() == 1), "created");
    api.push_faults([Fault::Drop]);
    // The dropped heartbeat, then its retry, which the server answers.
    assert!(
        api.wait_for(LIMIT, |r| r.len() >= 3),
        "{:#?}",
        api.requests()
    );
    touch(&go);
    let done = run.finish();
    let uuid = first_uuid();
    let lost = lost(&api, &uuid, "SUCCEEDED");
    record(
        "Connection closed without an answer during a heartbeat",
        1,
        lost,
        "heartbeat retried after 0.2 s; the run continues; SUCCEEDED delivered; exit 0",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let reqs = api.requests();
    let heartbeats: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.status() == Some("RUNNING"))
        .collect();
    assert!(heartbeats.len() >= 2, "{reqs:#?}");
    // The heartbeat itself was retried: no update was given up.
    assert!(
        done.stderr
            .contains("could not reach the API server (PATCH"),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("could not update the Task Execution"),
        "{}",
        done.stderr
    );
    assert_eq!(api.finals_of(&uuid).len(), 1, "{reqs:#?}");
    assert_eq!(lost, 0);
}

#[test]
fn a_connection_dropped_during_the_final_update_is_retried() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let run = Run::start(wrapper(&api.url).arg("--").args(wait_for_file(&go, 0)));
    assert!(api.wait_for(LIMIT, |r| r.len() == 1), "created");
    api.push_faults([Fault::Drop, Fault::Drop]);
    touch(&go);
    let done = run.finish();
    let uuid = first_uuid();
    let lost = lost(&api, &uuid, "SUCCEEDED");
    record(
        "Connection closed without an answer, twice, at the final update",
        1,
        lost,
        "final update retried within the final-update timeout; SUCCEEDED delivered on the \
         third try; exit 0",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let finals = api.finals_of(&uuid);
    assert_eq!(finals.len(), 3, "{:#?}", api.requests());
    assert!(finals.iter().all(|f| f.status() == Some("SUCCEEDED")));
    assert!(done.stderr.contains("sent the final update (SUCCEEDED)"));
    assert_eq!(lost, 0);
}

// 2. Garbage and huge answers.

#[test]
fn a_non_json_answer_to_the_creation_runs_the_command_unreported() {
    let garbage = [
        Fault::Body(201, "text/plain".into(), "Created!".into()),
        Fault::Body(
            200,
            "text/html".into(),
            "<html><body>Welcome to the proxy</body></html>".into(),
        ),
    ];
    let mut runs = 0;
    for fault in garbage {
        // Without --prevent-offline-execution: the command runs, with its exit code.
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        api.push_faults([fault.clone()]);
        let script = format!("touch '{}'; exit 3", marker.display());
        let done = run(wrapper(&api.url).args(["--", "sh", "-c", &script]));
        runs += 1;
        assert_eq!(done.code, Some(3), "{fault:?}: {}", done.stderr);
        assert!(marker.exists());
        assert!(
            done.stderr
                .contains("invalid response from the API server: the body is not JSON"),
            "{}",
            done.stderr
        );
        assert!(done.stderr.contains("running the command anyway"));
        // The server answered: no second creation, and no execution to update.
        assert_eq!(api.requests().len(), 1, "{:#?}", api.requests());

        // With it: exit 1, and the command does not run.
        let api = FakeApi::start();
        std::fs::remove_file(&marker).unwrap();
        api.push_faults([fault.clone()]);
        let done = run(wrapper(&api.url).args(["-p", "--", "sh", "-c", &script]));
        runs += 1;
        assert_eq!(done.code, Some(1), "{fault:?}: {}", done.stderr);
        assert!(!marker.exists());
        assert!(done.stderr.contains("not running the command"));
    }
    record(
        "201 / 200 with a non-JSON body (text, HTML) to the creation",
        runs,
        runs / 2,
        "expected loss (no execution was created): not retried, since the server answered; \
         error logged (\"the body is not JSON\"); without -p the command runs unreported and \
         the wrapper exits with its code (3); with -p exit 1, command not run",
    );
}

#[test]
fn an_html_502_page_at_creation_is_retried() {
    let api = FakeApi::start();
    api.push_faults([Fault::Body(
        502,
        "text/html".into(),
        "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>\
         </body></html>"
            .into(),
    )]);
    let done = run(wrapper(&api.url).args(["--", "true"]));
    let uuid = first_uuid();
    let lost = lost(&api, &uuid, "SUCCEEDED");
    record(
        "502 with an HTML error page at creation",
        1,
        lost,
        "retried after 5 s (the floor of the retry delay after 429/502/503/504); SUCCEEDED \
         delivered; exit 0",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(done.stderr.contains("502"), "{}", done.stderr);
    assert_eq!(count_method(&api.requests(), "POST"), 2);
    assert_eq!(lost, 0);
}

/// Peak resident memory of the wrapper, as its child reads it (kB).
fn parent_peak_kb(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {stdout}"))
}

const FIFTY_MB: usize = 50 << 20;

#[test]
fn a_50_mb_answer_to_the_creation_is_refused_without_reading_it() {
    let api = FakeApi::start();
    api.push_faults([Fault::Huge(201, FIFTY_MB)]);
    // The child reports the wrapper's peak memory after the creation.
    let done = run(wrapper(&api.url).args(["--", "sh", "-c", "grep VmHWM /proc/$PPID/status"]));
    let peak = parent_peak_kb(&done.stdout);
    record(
        "201 with a 50 MB body to the creation",
        1,
        1,
        "expected loss: body refused unread (over the 4 MiB limit), error logged; command \
         runs unreported; exit 0; wrapper peak RSS under 40 MiB (114 MiB when the body was \
         read whole)",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("the body is longer than 4194304 bytes"),
        "{}",
        done.stderr
    );
    assert!(peak < 40 * 1024, "the wrapper's peak RSS was {peak} kB");
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn garbage_and_huge_answers_to_updates_are_not_read() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let run = Run::start(
        wrapper(&api.url)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "0.5")
            .arg("--")
            .args(wait_for_file(&go, 0)),
    );
    assert!(api.wait_for(LIMIT, |r| r.len() == 1), "created");
    api.push_faults([
        Fault::Huge(200, FIFTY_MB),
        Fault::Body(200, "text/html".into(), "<html>OK</html>".into()),
    ]);
    assert!(api.wait_for(LIMIT, |r| r.len() >= 3), "two heartbeats");
    touch(&go);
    let done = run.finish();
    let uuid = first_uuid();
    let lost = lost(&api, &uuid, "SUCCEEDED");
    record(
        "200 with a 50 MB or an HTML body to heartbeats (`?content=false`)",
        1,
        lost,
        "answers taken as delivered without reading the body (the API sends none); \
         SUCCEEDED delivered; exit 0",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(!done.stderr.contains("could not update"), "{}", done.stderr);
    assert_eq!(api.finals_of(&uuid).len(), 1);
    assert_eq!(lost, 0);
}

// 3. A server that accepts and never answers.

#[test]
fn a_server_that_never_answers_the_final_update_is_given_up_in_bounded_time() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let run = Run::start(
        wrapper(&api.url)
            .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "3")
            .arg("--")
            .args(wait_for_file(&go, 4)),
    );
    assert!(api.wait_for(LIMIT, |r| r.len() == 1), "created");
    api.push_faults((0..20).map(|_| Fault::Stall));
    touch(&go);
    let done = run.finish();
    let uuid = first_uuid();
    let finals = api.finals_of(&uuid);
    record(
        "Server accepts the final update and never answers",
        1,
        lost(&api, &uuid, "FAILED"),
        &format!(
            "expected loss: each try ends at the 1 s request timeout, {} tries, none started \
             after the 3 s final-update timeout; wrapper exits with the child's code (4)",
            finals.len()
        ),
    );
    assert_eq!(done.code, Some(4), "{}", done.stderr);
    assert!(finals.len() >= 2, "{finals:#?}");
    assert!(finals.iter().all(|f| f.status() == Some("FAILED")));
    assert!(done.stderr.contains("after the retry timeout of 3 seconds"));
}

#[test]
fn a_server_that_never_answers_the_creation_still_runs_the_command() {
    let api = FakeApi::start();
    api.push_faults((0..20).map(|_| Fault::Stall));
    let done = run(wrapper(&api.url)
        .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "1")
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
            "2",
        )
        .args(["--", "sh", "-c", "exit 5"]));
    let reqs = api.requests();
    record(
        "Server accepts the creation and never answers",
        1,
        1,
        &format!(
            "expected loss: {} tries of 1 s (request timeout) until the 2 s creation timeout; \
             the command runs unreported; wrapper exits with its code (5)",
            reqs.len()
        ),
    );
    assert_eq!(done.code, Some(5), "{}", done.stderr);
    assert!(
        reqs.len() >= 2 && reqs.iter().all(|r| r.method == "POST"),
        "{reqs:#?}"
    );
    assert!(done.stderr.contains("running the command anyway"));
}

// 4. moto_server cut off and restored while secrets are fetched.

/// `proc_wrapper`, offline, fetching from moto through `proxy`.
fn through_proxy(moto: &Moto, proxy: &FaultProxy, arn: &str, dir: &Path) -> Command {
    let mut cmd = offline(BIN);
    cmd.envs(moto.env())
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE", arn)
        .current_dir(dir);
    cmd
}

#[test]
fn moto_cut_off_at_the_start_exits_78_naming_the_variable() {
    let moto = Moto::connect();
    let value = "the-moto-secret-1";
    let arn = moto.secret_string(&Moto::unique("faults-cut"), value);
    let proxy = FaultProxy::start(&moto.endpoint, Mode::Reset);
    let dir = tempfile::tempdir().unwrap();
    let script = "echo \"$DB_PASSWORD\" > seen";
    let cut = run(through_proxy(&moto, &proxy, &arn, dir.path()).args(["--", "sh", "-c", script]));
    proxy.set_mode(Mode::Forward);
    let restored =
        run(through_proxy(&moto, &proxy, &arn, dir.path()).args(["--", "sh", "-c", script]));
    record(
        "moto_server unreachable (connections reset) when the secret is fetched, then restored",
        2,
        0,
        "cut: exit 78, \"could not resolve DB_PASSWORD\" with the ARN, command not run, value \
         never logged; restored: exit 0, the command gets the value",
    );
    assert_eq!(cut.code, Some(78), "{}", cut.stderr);
    assert!(
        cut.stderr.contains("could not resolve DB_PASSWORD"),
        "{}",
        cut.stderr
    );
    assert!(cut.stderr.contains(&arn));
    assert!(!cut.stderr.contains(value));
    assert_eq!(restored.code, Some(0), "{}", restored.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen")).unwrap(),
        format!("{value}\n")
    );
}

#[test]
fn moto_cut_off_before_a_retry_keeps_the_previous_secrets_and_restored_refreshes_them() {
    let moto = Moto::connect();
    let value = "the-moto-secret-2";
    let arn = moto.secret_string(&Moto::unique("faults-ttl"), value);
    // Attempt 1 records the value, waits for the test, fails; attempt 2 records it again.
    let script = "echo \"$DB_PASSWORD\" >> seen; [ -e second ] && exit 0; touch second; \
                  touch started; while [ ! -e go ]; do sleep 0.02; done; exit 1";
    let mut outcomes = Vec::new();
    for mode in [Mode::Reset, Mode::Forward] {
        let proxy = FaultProxy::start(&moto.endpoint, Mode::Forward);
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(through_proxy(&moto, &proxy, &arn, dir.path()).args([
            "--config-ttl",
            "0",
            "-r",
            "1",
            "--",
            "sh",
            "-c",
            script,
        ]));
        assert!(wait_until(LIMIT, || dir.path().join("started").exists()));
        let before = proxy.accepted();
        // Cut (which resets the connections in use), and restore or not.
        proxy.set_mode(Mode::Reset);
        proxy.set_mode(mode);
        touch(&dir.path().join("go"));
        let done = run.finish();
        assert_eq!(done.code, Some(0), "{mode:?}: {}", done.stderr);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("seen")).unwrap(),
            format!("{value}\n{value}\n"),
            "{mode:?}"
        );
        assert!(!done.stderr.contains(value));
        assert!(
            proxy.accepted() > before,
            "{mode:?}: the secret was fetched again"
        );
        outcomes.push(done.stderr);
    }
    let [cut, restored] = &outcomes[..] else {
        unreachable!()
    };
    record(
        "moto_server cut off between attempts, with --config-ttl 0 (refresh before the retry)",
        2,
        0,
        "cut: the refresh fails, \"could not resolve DB_PASSWORD\" logged, the retry runs with \
         the previous (complete) environment, exit 0; restored: refreshed, exit 0",
    );
    assert!(cut.contains("could not resolve DB_PASSWORD"), "{cut}");
    assert!(
        cut.contains("keeping the previous environment for the retry"),
        "{cut}"
    );
    assert!(!restored.contains("could not resolve"), "{restored}");
}

// 5. A child that ignores SIGTERM.

const IGNORES_TERM: &str = "trap '' TERM; echo $$ > child.pid; while :; do sleep 0.05; done";

fn start_stubborn(cmd: &mut Command, dir: &Path) -> (Run, i32) {
    let run = Run::start(cmd.current_dir(dir).args(["--", "sh", "-c", IGNORES_TERM]));
    let pid = read_pid(&dir.join("child.pid"), LIMIT).expect("child PID written");
    (run, pid)
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let mut statuses = Vec::new();
    // Timed out.
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (run, pid) = start_stubborn(
        wrapper(&api.url).env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1"),
        dir.path(),
    );
    let done = run.finish();
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("did not exit within the termination grace period")
    );
    assert!(process_gone(pid));
    assert_eq!(api.finals_of(&first_uuid()).len(), 1);
    statuses.push(api.status_of(&first_uuid()));

    // Stopped by the server (409 to a heartbeat).
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (run, pid) = start_stubborn(
        wrapper(&api.url).env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "0.3"),
        dir.path(),
    );
    api.request_stop(&first_uuid());
    let done = run.finish();
    assert_eq!(done.code, Some(75), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("did not exit within the termination grace period")
    );
    assert!(process_gone(pid));
    assert!(api.finals_of(&first_uuid()).is_empty());
    statuses.push(api.status_of(&first_uuid()));

    // SIGTERM to the wrapper.
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (run, pid) = start_stubborn(&mut wrapper(&api.url), dir.path());
    run.signal(Signal::SIGTERM);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(process_gone(pid));
    assert_eq!(api.finals_of(&first_uuid()).len(), 1);
    statuses.push(api.status_of(&first_uuid()));

    let expected = ["TERMINATED_AFTER_TIME_OUT", "STOPPED", "ABORTED"];
    let lost = statuses
        .iter()
        .zip(expected)
        .filter(|(s, e)| s.as_deref() != Some(*e))
        .count();
    record(
        "Child ignoring SIGTERM: timed out / stopped by the server (409) / wrapper got SIGTERM",
        3,
        lost,
        "SIGKILL to the group after the 1 s grace period; TERMINATED_AFTER_TIME_OUT exit 1 / \
         STOPPED (set by the server) exit 75 / ABORTED exit 0",
    );
    assert_eq!(lost, 0, "{statuses:?}");
}

// 6. A child that leaves a grandchild running.

#[test]
fn a_grandchild_holding_the_output_does_not_hold_the_wrapper() {
    let script = "sleep 300 & echo $! > grandchild.pid; echo started";
    let mut grandchildren = Vec::new();
    let mut lost_count = 0;
    for capture in [true, false] {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = wrapper(&api.url);
        if capture {
            cmd.env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS", "5");
        }
        let done = run(cmd.current_dir(dir.path()).args(["--", "sh", "-c", script]));
        let grandchild = read_pid(&dir.path().join("grandchild.pid"), LIMIT).unwrap();
        grandchildren.push(grandchild);
        let uuid = first_uuid();
        lost_count += lost(&api, &uuid, "SUCCEEDED");
        assert_eq!(done.code, Some(0), "capture {capture}: {}", done.stderr);
        // The wrapper does not stop what outlives a child that exited by itself, as 6.0.2.
        assert!(!process_gone(grandchild));
        let finals = api.finals_of(&uuid);
        assert_eq!(finals.len(), 1);
        if capture {
            // Read for up to 2 s after the child's exit, while the grandchild holds the pipe.
            assert_eq!(finals[0].body["debug_log_tail"], "started\n");
        } else {
            assert!(done.stdout.contains("started"));
        }
    }
    for pid in grandchildren {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    record(
        "Child exits leaving a grandchild that holds its stdout/stderr (with and without log \
         capture)",
        2,
        lost_count,
        "SUCCEEDED delivered and exit 0; with capture the pipes are read for at most 2 s more, \
         then the wrapper goes on; the grandchild keeps running, as with 6.0.2",
    );
    assert_eq!(lost_count, 0);
}

// 7. Signals to the wrapper at each phase.

#[test]
fn a_signal_during_creation_retries_ends_the_wrapper_without_running_the_command() {
    let api = FakeApi::start();
    let proxy = FaultProxy::start(&api.url, Mode::Reset);
    for (sig, code) in [(Signal::SIGTERM, 0), (Signal::SIGINT, 130)] {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let before = proxy.accepted();
        let run = Run::start(
            wrapper(&proxy.url)
                .env(
                    "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
                    "60",
                )
                .args(["--", "touch"])
                .arg(&marker),
        );
        assert!(
            wait_until(LIMIT, || proxy.accepted() >= before + 2),
            "retrying"
        );
        run.signal(sig);
        let done = run.finish();
        assert_eq!(done.code, Some(code), "{sig}: {}", done.stderr);
        assert!(
            done.stderr
                .contains(&format!("received {sig} before the command started"))
        );
        assert!(!marker.exists());
    }
    assert!(api.requests().is_empty());
    record(
        "SIGTERM / SIGINT while creation is retried against a server resetting connections",
        2,
        0,
        "nothing to report (no execution); command not run; exit 0 (SIGTERM) / 130 (SIGINT)",
    );
}

#[test]
fn a_signal_while_running_is_reported_even_when_the_final_update_is_dropped() {
    let mut lost_count = 0;
    for (sig, code, status) in [
        (Signal::SIGTERM, 0, "ABORTED"),
        (Signal::SIGINT, 130, "FAILED"),
    ] {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let run = Run::start(wrapper(&api.url).current_dir(dir.path()).args([
            "--",
            "sh",
            "-c",
            "echo $$ > child.pid; while :; do sleep 0.05; done",
        ]));
        let pid = read_pid(&dir.path().join("child.pid"), LIMIT).expect("child PID written");
        api.push_faults([Fault::Drop]);
        run.signal(sig);
        let done = run.finish();
        let uuid = first_uuid();
        lost_count += lost(&api, &uuid, status);
        assert_eq!(done.code, Some(code), "{sig}: {}", done.stderr);
        assert!(process_gone(pid));
        let finals = api.finals_of(&uuid);
        assert_eq!(finals.len(), 2, "{finals:#?}");
        assert_eq!(finals[1].status(), Some(status));
        assert_eq!(finals[1].body["exit_code"], 1);
    }
    record(
        "SIGTERM / SIGINT while the command runs, first final update dropped",
        2,
        lost_count,
        "signal forwarded to the group; ABORTED exit 0 (SIGTERM) / FAILED exit 130 (SIGINT), \
         delivered on the retry",
    );
    assert_eq!(lost_count, 0);
}

#[test]
fn a_signal_during_final_update_retries_keeps_the_outcome() {
    let mut lost_count = 0;
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("go");
        let run = Run::start(
            wrapper(&api.url)
                .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "1")
                // The retries after the signal get at most the grace period: long enough here.
                .env(
                    "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS",
                    "10",
                )
                .arg("--")
                .args(wait_for_file(&go, 3)),
        );
        assert!(api.wait_for(LIMIT, |r| r.len() == 1), "created");
        // The first try hangs until the 1 s request timeout, the second is dropped.
        api.push_faults([Fault::Stall, Fault::Drop]);
        touch(&go);
        let uuid = first_uuid();
        assert!(wait_until(LIMIT, || !api.finals_of(&uuid).is_empty()));
        run.signal(sig);
        let done = run.finish();
        lost_count += lost(&api, &uuid, "FAILED");
        assert_eq!(done.code, Some(3), "{sig}: {}", done.stderr);
        let finals = api.finals_of(&uuid);
        assert_eq!(finals.len(), 3, "{finals:#?}");
        assert!(finals.iter().all(|f| f.status() == Some("FAILED")));
    }
    record(
        "SIGTERM / SIGINT while the final update is retried (server hanging, then dropping)",
        2,
        lost_count,
        "the outcome was settled when the child exited: the final update goes on for at most \
         the grace period (FAILED delivered on the third try) and the wrapper exits with the \
         child's code (3)",
    );
    assert_eq!(lost_count, 0);
}

// 8. A full disk.

/// A character device like `/dev/full` (every write fails with ENOSPC) in `dir`, which the
/// wrapper may delete without harm.
fn full_device(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("full");
    let made = Command::new("mknod")
        .arg(&path)
        .args(["c", "1", "7"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod needs root, as tests/run.sh does");
    path
}

#[test]
fn a_full_disk_for_the_output_files_exits_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = full_device(dir.path());
    let marker = dir.path().join("ran");
    let mut runs = 0;
    for (option, extra) in [
        ("--env-output-filename", None),
        ("--config-output-filename", None),
        (
            "--env-output-filename",
            Some("--exit-after-writing-variables"),
        ),
    ] {
        let mut cmd = offline(BIN);
        cmd.arg(option)
            .arg(&full)
            .args(extra)
            .args(["--", "touch"])
            .arg(&marker);
        let done = run(&mut cmd);
        runs += 1;
        assert_eq!(done.code, Some(78), "{option} {extra:?}: {}", done.stderr);
        assert!(
            done.stderr
                .contains(&format!("cannot write '{}'", full.display())),
            "{}",
            done.stderr
        );
        assert!(done.stderr.contains("No space left on device"));
        assert!(!marker.exists());
    }
    record(
        "Full disk (a /dev/full device) for --env-output-filename / --config-output-filename, \
         also with --exit-after-writing-variables",
        runs,
        0,
        "\"cannot write '<file>': No space left on device\"; command not run; exit 78; no panic",
    );
}

// 9. Many runs at once.

/// Runs `n` wrappers at once against `api`; returns how many executions did not end with
/// exactly one SUCCEEDED final update.
fn parallel_runs(api: &FakeApi, n: usize) -> usize {
    let runs: Vec<Run> = (0..n)
        .map(|_| Run::start(wrapper(&api.url).args(["--", "true"])))
        .collect();
    for run in runs {
        let done = run.finish();
        assert_eq!(done.code, Some(0), "{}", done.stderr);
    }
    let created = api.created();
    assert_eq!(created.len(), n);
    created
        .iter()
        .filter(|uuid| {
            let finals = api.finals_of(uuid);
            !(finals.len() == 1 && api.status_of(uuid).as_deref() == Some("SUCCEEDED"))
        })
        .count()
}

#[test]
fn a_hundred_runs_at_once_are_each_reported_once() {
    let api = FakeApi::start();
    let lost = parallel_runs(&api, 100);
    let reqs = api.requests();
    record(
        "100 wrapped runs at once against one server",
        100,
        lost,
        "100 creations, exactly one SUCCEEDED final update for each; all exit 0",
    );
    assert_eq!(count_method(&reqs, "POST"), 100);
    assert_eq!(reqs.len(), 200);
    assert_eq!(lost, 0);
}

#[test]
fn a_hundred_runs_at_once_survive_dropped_connections() {
    let api = FakeApi::start();
    // The first 30 requests (creations, mostly) get no answer.
    api.push_faults((0..30).map(|_| Fault::Drop));
    let lost = parallel_runs(&api, 100);
    let reqs = api.requests();
    record(
        "100 wrapped runs at once, the first 30 requests dropped",
        100,
        lost,
        "the dropped requests are retried; 100 executions, exactly one SUCCEEDED final \
         update for each; all exit 0",
    );
    assert_eq!(reqs.len(), 230, "30 retries");
    assert_eq!(lost, 0);
}
