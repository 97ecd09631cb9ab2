//! The wrapper never hangs and never spins, whatever the API server does: a matrix of API
//! states (unreachable, 400, 401, 403, 500, 503 forever, slow) × pending work (status
//! messages, `--send-pid`, heartbeats, log capture, a result file), with the server failing
//! from the start (the Task Execution is never created) or only after the creation. In every
//! cell the wrapper exits with the child's exit code once the child has exited, and uses
//! little CPU doing so; and a SIGTERM while the child runs ends the wrapper within the
//! termination grace period (plus the short bound of the final update after a signal).
//!
//! The API timeouts are 2 s, so a passing cell ends within a few seconds; the 60 s limit only
//! bounds a failing one. The CPU bound (1.5 s of user and system time for a run of a few
//! seconds) catches a wrapper that finishes but spun meanwhile: a healthy run uses tens of
//! milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use procwrapper_tests::fake_api::{FakeApi, Fault};
use procwrapper_tests::net::{free_udp_port, refused_url};
use procwrapper_tests::wrapper::reporting;
use procwrapper_tests::{process_gone, read_pid, signal_child, wait_until};

/// Bounds every wait; a passing cell never comes close.
const LIMIT: Duration = Duration::from_secs(60);
/// CPU time (user + system) a whole run may use; a spinning loop uses all it gets.
const CPU_LIMIT: Duration = Duration::from_millis(1500);

/// What the API server does.
#[derive(Debug, Clone, Copy)]
enum Api {
    /// Nothing listens on its port.
    Unreachable,
    /// Every request gets this status (400, 401, 403, 500).
    Status(u16),
    /// Every request gets 503 with `Retry-After: 1`.
    Unavailable,
    /// Every request waits 30 s for its answer (the request timeout is 1 s).
    Slow,
}

const STATES: [Api; 7] = [
    Api::Unreachable,
    Api::Status(400),
    Api::Status(401),
    Api::Status(403),
    Api::Status(500),
    Api::Unavailable,
    Api::Slow,
];

/// When the server starts failing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// At the creation request: the execution is never created.
    FromTheStart,
    /// After a successful creation: heartbeats, status updates and the final update fail.
    AfterCreation,
}

/// Work that is waiting for the API server while the child runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    /// UDP status messages from the child.
    StatusMessages,
    /// `PROC_WRAPPER_SEND_PID`.
    SendPid,
    /// A heartbeat every second while the child runs 2.5 s.
    Heartbeats,
    /// Captured log lines for the final update.
    LogCapture,
    /// A result file for the final update (the child succeeds).
    ResultFile,
}

const WORK: [Work; 5] = [
    Work::StatusMessages,
    Work::SendPid,
    Work::Heartbeats,
    Work::LogCapture,
    Work::ResultFile,
];

/// A server in `state`, healthy for the first `healthy` requests; its base URL.
struct Server {
    url: String,
    _api: Option<FakeApi>,
}

fn server(state: Api, healthy: usize) -> Server {
    if let Api::Unreachable = state {
        if healthy == 0 {
            return Server {
                url: refused_url(),
                _api: None,
            };
        }
        // Unreachable after the creation: answered by a fault that breaks every connection.
        let api = FakeApi::start();
        api.push_faults(std::iter::repeat_n(Fault::Delay(Duration::ZERO), healthy));
        api.push_faults(std::iter::repeat_n(Fault::Drop, 1000));
        return Server {
            url: api.url.clone(),
            _api: Some(api),
        };
    }
    let api = FakeApi::start();
    api.push_faults(std::iter::repeat_n(Fault::Delay(Duration::ZERO), healthy));
    let fault = match state {
        Api::Status(code) => Fault::Status(code),
        Api::Unavailable => Fault::RetryAfter(503, "1".into()),
        Api::Slow => Fault::Delay(Duration::from_secs(30)),
        Api::Unreachable => unreachable!(),
    };
    api.push_faults(std::iter::repeat_n(fault, 1000));
    Server {
        url: api.url.clone(),
        _api: Some(api),
    }
}

/// The 2 s API timeouts and 1 s request timeout of these tests, on top of [`reporting`],
/// with retries every 0.5 s and 2 s of grace after SIGTERM.
const HANG_TEST_SETTINGS: [(&str, &str); 7] = [
    ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "0.5"),
    ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "1"),
    (
        "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
        "2",
    ),
    ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "2"),
    ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "2"),
    ("PROC_WRAPPER_API_RESUME_DELAY_SECONDS", "1"),
    ("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "2"),
];

/// `proc_wrapper` reporting to `url` with [`HANG_TEST_SETTINGS`], in `dir`, its output going
/// to `dir/stdout` and `dir/stderr`.
fn wrapper(url: &str, dir: &Path) -> Command {
    let mut cmd = reporting(env!("CARGO_BIN_EXE_proc_wrapper"), url);
    cmd.current_dir(dir)
        .envs(HANG_TEST_SETTINGS)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    cmd
}

/// Sends a few UDP status messages to `port` (python3 is on every test machine).
fn status_messages(port: u16) -> String {
    format!(
        "python3 -c 'import socket,time\ns=socket.socket(2,2)\nfor i in range(5):\n    \
         s.sendto(b\"{{\\\"success_count\\\": %d}}\\n\" % i, (\"127.0.0.1\", {port}))\n    \
         time.sleep(0.05)'"
    )
}

/// Configures `cmd` for `work` and returns the child's script and exit code.
fn with_work(cmd: &mut Command, work: Work) -> (String, i32) {
    match work {
        Work::StatusMessages => {
            let port = free_udp_port();
            cmd.env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
                .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", port.to_string());
            (format!("{}; exit 3", status_messages(port)), 3)
        }
        Work::SendPid => {
            cmd.env("PROC_WRAPPER_SEND_PID", "TRUE");
            ("sleep 0.2; exit 4".into(), 4)
        }
        Work::Heartbeats => {
            cmd.env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1");
            ("sleep 2.5; exit 5".into(), 5)
        }
        Work::LogCapture => {
            cmd.env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "5");
            (
                "for i in 1 2 3 4 5 6; do echo out $i; echo err $i >&2; done; exit 6".into(),
                6,
            )
        }
        Work::ResultFile => {
            cmd.env("PROC_WRAPPER_RESULT_FILENAME", "result.json");
            ("echo '{\"a\": 1}' > result.json".into(), 0)
        }
    }
}

/// User plus system CPU time of a process that has exited but is not reaped yet (its
/// `/proc/<pid>/stat` still holds them).
fn cpu_time_of_zombie(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap();
    Duration::from_millis(ticks * 1000 / u64::try_from(per_second).unwrap())
}

/// Waits for a wrapper to end; returns its exit code and CPU time, or a description of
/// the hang.
fn finish(mut child: std::process::Child, dir: &Path) -> Result<(Option<i32>, Duration), String> {
    let pid = i32::try_from(child.id()).unwrap();
    if !wait_until(LIMIT, || process_gone(pid)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "still running after {LIMIT:?}; its log:\n{}",
            std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
        ));
    }
    let cpu = cpu_time_of_zombie(pid);
    let status = child.wait().unwrap();
    Ok((status.code(), cpu))
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}

/// One cell of the matrix; `Err` describes how it failed.
fn cell(state: Api, phase: Phase, work: Work) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let healthy = usize::from(phase == Phase::AfterCreation);
    let server = server(state, healthy);
    let mut cmd = wrapper(&server.url, dir.path());
    let (script, code) = with_work(&mut cmd, work);
    let child = cmd.args(["sh", "-c", &script]).spawn().unwrap();
    let (got, cpu) = finish(child, dir.path())?;
    if got != Some(code) {
        return Err(format!(
            "exit code {got:?}, expected {code}; log:\n{}",
            stderr_of(dir.path())
        ));
    }
    if cpu > CPU_LIMIT {
        return Err(format!(
            "used {cpu:?} of CPU (limit {CPU_LIMIT:?}); log:\n{}",
            stderr_of(dir.path())
        ));
    }
    Ok(())
}

/// Runs `cells` in parallel (each is a separate wrapper and server) and fails with every
/// cell that went wrong.
fn run_all<T: std::fmt::Debug + Send + 'static>(cells: Vec<T>, run: fn(&T) -> Result<(), String>) {
    let handles: Vec<_> = cells
        .into_iter()
        .map(|c| std::thread::spawn(move || (format!("{c:?}"), run(&c))))
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_wrapper_exits_with_the_childs_code_whatever_the_api_does_from_the_start() {
    let cells: Vec<(Api, Work)> = STATES
        .iter()
        .flat_map(|s| WORK.iter().map(move |w| (*s, *w)))
        .collect();
    assert_eq!(cells.len(), 35);
    run_all(cells, |(s, w)| cell(*s, Phase::FromTheStart, *w));
}

#[test]
fn the_wrapper_exits_with_the_childs_code_whatever_the_api_does_after_the_creation() {
    let cells: Vec<(Api, Work)> = STATES
        .iter()
        .flat_map(|s| WORK.iter().map(move |w| (*s, *w)))
        .collect();
    run_all(cells, |(s, w)| cell(*s, Phase::AfterCreation, *w));
}

/// SIGTERM while the child runs (with status messages and heartbeats waiting): the child's
/// group is stopped within the grace period (2 s), the final update gets at most the rest of
/// it (or 2 s), and the wrapper exits 0, as 6.0.2 does after SIGTERM.
fn sigterm_cell(state: Api, phase: Phase) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let server = server(state, usize::from(phase == Phase::AfterCreation));
    let mut cmd = wrapper(&server.url, dir.path());
    let port = free_udp_port();
    cmd.env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
        .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", port.to_string())
        .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1");
    // The child ignores SIGTERM, so the wrapper must use the whole grace period and SIGKILL.
    let script = format!(
        "{}; trap '' TERM; echo $$ > child.pid; while true; do sleep 0.1; done",
        status_messages(port)
    );
    let mut child = cmd.args(["sh", "-c", &script]).spawn().unwrap();
    let Some(child_pid) = read_pid(&dir.path().join("child.pid"), LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "the child never started; log:\n{}",
            stderr_of(dir.path())
        ));
    };
    signal_child(&child, Signal::SIGTERM);
    let (got, cpu) = finish(child, dir.path())?;
    if got != Some(0) {
        return Err(format!(
            "exit code {got:?} after SIGTERM, expected 0; log:\n{}",
            stderr_of(dir.path())
        ));
    }
    if !process_gone(child_pid) {
        return Err(format!("the child {child_pid} outlived the wrapper"));
    }
    if cpu > CPU_LIMIT {
        return Err(format!("used {cpu:?} of CPU (limit {CPU_LIMIT:?})"));
    }
    Ok(())
}

#[test]
fn sigterm_ends_the_wrapper_whatever_the_api_does() {
    let cells: Vec<(Api, Phase)> = STATES
        .iter()
        .flat_map(|s| [(*s, Phase::FromTheStart), (*s, Phase::AfterCreation)])
        .collect();
    run_all(cells, |(s, p)| sigterm_cell(*s, *p));
}

/// A SIGTERM that arrives while the final update is retried (the child ended on its own):
/// the update gets at most the grace period from then, and the exit code stays the child's.
#[test]
fn sigterm_during_the_final_update_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    // Created, then every update answered 503 (retried every 5 s, the floor of Retry-After).
    api.push_faults([Fault::Delay(Duration::ZERO)]);
    api.push_faults(std::iter::repeat_n(Fault::RetryAfter(503, "5".into()), 100));
    let mut cmd = wrapper(&api.url, dir.path());
    cmd.env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "600");
    let child = cmd.args(["sh", "-c", "exit 7"]).spawn().unwrap();
    assert!(
        api.wait_for(LIMIT, |r| r
            .iter()
            .any(procwrapper_tests::fake_api::Recorded::is_final)),
        "no final update; log:\n{}",
        stderr_of(dir.path())
    );
    signal_child(&child, Signal::SIGTERM);
    let (got, _) = finish(child, dir.path()).unwrap();
    assert_eq!(got, Some(7), "{}", stderr_of(dir.path()));
    assert!(
        stderr_of(dir.path()).contains("while sending the final update"),
        "{}",
        stderr_of(dir.path())
    );
}
