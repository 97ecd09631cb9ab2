//! The supervisor's outcome table, in process and with paused time: real small children
//! (`/bin/sh` running what the variable `ACTION` says), a recording [`Hooks`], and the
//! [`Outcome`] and hook calls each case must produce.
//!
//! # Why this is deterministic
//!
//! With paused time, Tokio moves its clock to the next timer whenever the runtime has nothing
//! to run, and the supervisor always has timers: the attempt's deadline, the retry delay, and
//! the one-second safety net of [`Reaper::wait`](super::child::Reaper::wait). So:
//!
//! * A child that never ends by itself (`exec sleep 1000`) lets the clock run: its attempt
//!   times out at its deadline, or is stopped when the test's stop request fires, at once in
//!   real time and at an exact virtual instant (every timer lies on the same grid).
//! * A child that ends by itself (`exit 3`) must end before any timer fires, whatever the real
//!   time it takes. For those, [`Recorder::attempt_started`] starts a blocking task that waits
//!   for the child to exit without reaping it (`waitid(WNOWAIT)`, the [`Reaper`] still reaps
//!   it): while a blocking task runs, Tokio does not auto-advance (see `tokio::time::pause`),
//!   so no deadline can overtake the child's exit. Hook calls that follow such an exit may then
//!   come one safety-net second later, so only gaps measured from after the exit (the retry
//!   delay) are asserted exactly.
//!
//! Left out: signals to the wrapper (SIGTERM, SIGINT, ...). They go to the whole test process,
//! where every test's supervisor would see them, so they cannot be made deterministic here;
//! the black-box suites (`cli/tests/api.rs`, `cli/tests/cli.rs`) send them to a real wrapper.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::time::Instant;

use super::*;
use crate::config::{ProcessConfig, ShellMode};

/// What one attempt's child does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `exit N`.
    Exit(i32),
    /// Kills itself with SIGKILL.
    Killed,
    /// Runs until stopped (`exec sleep 1000`).
    Hang,
}

impl Action {
    fn script(self) -> String {
        match self {
            Action::Exit(n) => format!("exit {n}"),
            Action::Killed => "kill -9 $$".to_owned(),
            Action::Hang => "exec sleep 1000".to_owned(),
        }
    }

    fn env(self) -> ChildEnv {
        let mut env = BTreeMap::new();
        env.insert(OsString::from("ACTION"), OsString::from(self.script()));
        env.insert(
            OsString::from("PATH"),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        );
        env
    }
}

/// When the test's stop request fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Never,
    /// This long after attempt N started (while it runs).
    During {
        attempt: u32,
        after: Duration,
    },
    /// As soon as N attempts have failed (while waiting to retry).
    AfterFailures(u32),
}

/// A hook call, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Started(u32),
    Failed {
        failed_attempts: u32,
        exit_code: i32,
    },
    TimedOut(u32),
    BeforeRetry,
    Stop,
}

/// The test's [`Hooks`]: records each call with its (virtual) time, gives each retry the
/// environment of its attempt's [`Action`], and asks for a stop per [`Stop`].
struct Recorder {
    actions: Vec<Action>,
    stop: Stop,
    started: u32,
    failed: u32,
    calls: Vec<(Call, Instant)>,
}

impl Recorder {
    fn new(actions: Vec<Action>, stop: Stop) -> Self {
        Self {
            actions,
            stop,
            started: 0,
            failed: 0,
            calls: Vec::new(),
        }
    }

    fn record(&mut self, call: Call) {
        self.calls.push((call, Instant::now()));
    }

    /// The action of attempt `n` (1-based); the last one repeats.
    fn action(&self, n: u32) -> Action {
        let i = usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        *self
            .actions
            .get(i)
            .or(self.actions.last())
            .expect("UNWRAP: every case has an action")
    }
}

/// Blocks until `pid` has exited, leaving it to be reaped by the [`Reaper`].
fn wait_for_exit_without_reaping(pid: Pid) {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => {}
            // Exited, or already reaped (ECHILD): either way it is over.
            _ => return,
        }
    }
}

impl Hooks for Recorder {
    async fn attempt_started(&mut self, attempt: u32, pid: u32) {
        self.started = attempt;
        self.record(Call::Started(attempt));
        if self.action(attempt) != Action::Hang {
            // Holds the paused clock still until the child has exited (see the module doc).
            let pid = Pid::from_raw(i32::try_from(pid).expect("UNWRAP: pids fit in i32"));
            drop(tokio::task::spawn_blocking(move || {
                wait_for_exit_without_reaping(pid);
            }));
        }
    }

    async fn attempt_failed(&mut self, failed_attempts: u32, exit_code: i32) {
        self.failed = failed_attempts;
        self.record(Call::Failed {
            failed_attempts,
            exit_code,
        });
    }

    async fn attempt_timed_out(&mut self, timed_out_attempts: u32) {
        self.record(Call::TimedOut(timed_out_attempts));
    }

    async fn before_retry(&mut self) -> Option<ChildEnv> {
        self.record(Call::BeforeRetry);
        Some(self.action(self.started + 1).env())
    }

    async fn stop_requested(&mut self) -> StopRequest {
        match self.stop {
            Stop::During { attempt, after } if self.started == attempt => {
                tokio::time::sleep(after).await;
            }
            Stop::AfterFailures(n) if self.failed >= n => {}
            _ => std::future::pending().await,
        }
        self.record(Call::Stop);
        StopRequest
    }
}

/// One row of the table.
struct Case {
    name: &'static str,
    actions: Vec<Action>,
    timeout: Option<u64>,
    max_retries: Option<u32>,
    retry_delay: u64,
    stop: Stop,
    /// Run in a directory that does not exist: no attempt can be started.
    no_work_dir: bool,
    /// `status`, `exit_code`, `wrapper_exit_code`, `attempts`, `failed_attempts`,
    /// `timed_out_attempts`.
    expected: (FinalStatus, Option<i32>, i32, u32, u32, u32),
    calls: Vec<Call>,
    /// Exact virtual time between two calls (by index in `calls`), in seconds.
    gaps: Vec<(usize, usize, u64)>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            actions: vec![Action::Exit(0)],
            timeout: None,
            max_retries: Some(0),
            retry_delay: 0,
            stop: Stop::Never,
            no_work_dir: false,
            expected: (FinalStatus::Succeeded, Some(0), 0, 1, 0, 0),
            calls: vec![Call::Started(1)],
            gaps: Vec::new(),
        }
    }
}

fn config(case: &Case) -> ProcessConfig {
    ProcessConfig {
        command: Vec::new(),
        command_line: None,
        work_dir: if case.no_work_dir {
            "/nonexistent/proc_wrapper/outcome_tests".into()
        } else {
            std::env::temp_dir()
        },
        shell_mode: ShellMode::Auto,
        strip_shell_wrapping: true,
        group_termination: true,
        timeout: case.timeout.map(Duration::from_secs),
        max_retries: case.max_retries,
        retry_delay: Duration::from_secs(case.retry_delay),
        check_interval: Duration::from_secs(10),
        termination_grace_period: Some(Duration::from_secs(5)),
    }
}

fn cases() -> Vec<Case> {
    use Action::{Exit, Hang, Killed};
    use Call::{BeforeRetry, Failed, Started, TimedOut};
    use FinalStatus::{Failed as F, Stopped, Succeeded, TerminatedAfterTimeOut};
    vec![
        Case {
            name: "exit 0 succeeds on the first attempt",
            ..Case::default()
        },
        Case {
            name: "exit 3 without retries fails with the child's code",
            actions: vec![Exit(3)],
            expected: (F, Some(3), 3, 1, 1, 0),
            ..Case::default()
        },
        Case {
            name: "a child killed by SIGKILL reports -9 and exits 137",
            actions: vec![Killed],
            expected: (F, Some(-9), 137, 1, 1, 0),
            ..Case::default()
        },
        Case {
            name: "failures are retried max_retries times, after the retry delay",
            actions: vec![Exit(3)],
            max_retries: Some(2),
            retry_delay: 60,
            expected: (F, Some(3), 3, 3, 3, 0),
            calls: vec![
                Started(1),
                Failed {
                    failed_attempts: 1,
                    exit_code: 3,
                },
                BeforeRetry,
                Started(2),
                Failed {
                    failed_attempts: 2,
                    exit_code: 3,
                },
                BeforeRetry,
                Started(3),
            ],
            gaps: vec![(1, 2, 60), (2, 3, 0), (4, 5, 60)],
            ..Case::default()
        },
        Case {
            name: "a retry that succeeds ends the run (with the environment from before_retry)",
            actions: vec![Exit(3), Exit(0)],
            max_retries: Some(5),
            retry_delay: 7,
            expected: (Succeeded, Some(0), 0, 2, 1, 0),
            calls: vec![
                Started(1),
                Failed {
                    failed_attempts: 1,
                    exit_code: 3,
                },
                BeforeRetry,
                Started(2),
            ],
            gaps: vec![(1, 2, 7)],
            ..Case::default()
        },
        Case {
            name: "a hanging child times out at its deadline",
            actions: vec![Hang],
            timeout: Some(5),
            expected: (TerminatedAfterTimeOut, None, 1, 1, 0, 1),
            ..Case::default()
        },
        Case {
            name: "timeouts are retried at once, without the retry delay",
            actions: vec![Hang],
            timeout: Some(5),
            max_retries: Some(2),
            retry_delay: 100_000,
            expected: (TerminatedAfterTimeOut, None, 1, 3, 0, 3),
            calls: vec![
                Started(1),
                TimedOut(1),
                BeforeRetry,
                Started(2),
                TimedOut(2),
                BeforeRetry,
                Started(3),
            ],
            // Each attempt times out exactly `timeout` after it started. Stopping the child
            // takes up to the grace period (5 s) plus safety-net seconds, far less than the
            // retry delay, which the test checks separately below.
            gaps: vec![(0, 1, 5), (2, 3, 0), (3, 4, 5), (5, 6, 0)],
            ..Case::default()
        },
        Case {
            name: "a timeout, then a failure on the last attempt",
            actions: vec![Hang, Exit(4)],
            timeout: Some(5),
            max_retries: Some(1),
            expected: (F, Some(4), 4, 2, 1, 1),
            calls: vec![Started(1), TimedOut(1), BeforeRetry, Started(2)],
            gaps: vec![(0, 1, 5)],
            ..Case::default()
        },
        Case {
            name: "a failure, then a timeout on the last attempt",
            actions: vec![Exit(2), Hang],
            timeout: Some(5),
            max_retries: Some(1),
            retry_delay: 3,
            expected: (TerminatedAfterTimeOut, None, 1, 2, 1, 1),
            calls: vec![
                Started(1),
                Failed {
                    failed_attempts: 1,
                    exit_code: 2,
                },
                BeforeRetry,
                Started(2),
            ],
            gaps: vec![(1, 2, 3)],
            ..Case::default()
        },
        Case {
            name: "a stop request while the child runs stops it (75, no exit code)",
            actions: vec![Hang],
            stop: Stop::During {
                attempt: 1,
                after: Duration::from_secs(10),
            },
            expected: (Stopped, None, 75, 1, 0, 0),
            calls: vec![Started(1), Call::Stop],
            gaps: vec![(0, 1, 10)],
            ..Case::default()
        },
        Case {
            name: "a stop request during the second attempt, after a timeout",
            actions: vec![Hang],
            timeout: Some(30),
            max_retries: Some(3),
            stop: Stop::During {
                attempt: 2,
                after: Duration::from_secs(12),
            },
            expected: (Stopped, None, 75, 2, 0, 1),
            calls: vec![Started(1), TimedOut(1), BeforeRetry, Started(2), Call::Stop],
            gaps: vec![(0, 1, 30), (3, 4, 12)],
            ..Case::default()
        },
        Case {
            name: "a stop request while waiting to retry ends the run (keeps the exit code)",
            actions: vec![Exit(3)],
            max_retries: None,
            retry_delay: 60,
            stop: Stop::AfterFailures(1),
            expected: (Stopped, Some(3), 75, 1, 1, 0),
            calls: vec![
                Started(1),
                Failed {
                    failed_attempts: 1,
                    exit_code: 3,
                },
                Call::Stop,
            ],
            gaps: vec![(1, 2, 0)],
            ..Case::default()
        },
        Case {
            name: "max_retries None retries forever (until stopped)",
            actions: vec![Exit(1)],
            max_retries: None,
            retry_delay: 1,
            stop: Stop::AfterFailures(3),
            expected: (Stopped, Some(1), 75, 3, 3, 0),
            calls: vec![
                Started(1),
                Failed {
                    failed_attempts: 1,
                    exit_code: 1,
                },
                BeforeRetry,
                Started(2),
                Failed {
                    failed_attempts: 2,
                    exit_code: 1,
                },
                BeforeRetry,
                Started(3),
                Failed {
                    failed_attempts: 3,
                    exit_code: 1,
                },
                Call::Stop,
            ],
            ..Case::default()
        },
        Case {
            name: "a command that cannot start: exit code 1, wrapper exit 78",
            no_work_dir: true,
            expected: (F, Some(1), 78, 1, 1, 0),
            calls: vec![],
            ..Case::default()
        },
        Case {
            name: "a command that cannot start is retried like a failure",
            no_work_dir: true,
            max_retries: Some(2),
            retry_delay: 20,
            expected: (F, Some(1), 78, 3, 3, 0),
            calls: vec![
                Failed {
                    failed_attempts: 1,
                    exit_code: 78,
                },
                BeforeRetry,
                Failed {
                    failed_attempts: 2,
                    exit_code: 78,
                },
                BeforeRetry,
            ],
            // No child: every gap is the retry delay exactly.
            gaps: vec![(0, 1, 20), (2, 3, 20)],
            ..Case::default()
        },
    ]
}

/// What differs between a run and its row of the table.
fn mismatches(case: &Case, out: &Outcome, calls: &[(Call, Instant)]) -> Vec<String> {
    let mut wrong = Vec::new();
    let (status, exit_code, wrapper_exit_code, attempts, failed, timed_out) = case.expected;
    let got = (
        out.status,
        out.exit_code,
        out.wrapper_exit_code,
        out.attempts,
        out.failed_attempts,
        out.timed_out_attempts,
    );
    let want = (
        status,
        exit_code,
        wrapper_exit_code,
        attempts,
        failed,
        timed_out,
    );
    if got != want {
        wrong.push(format!(
            "(status, exit_code, wrapper_exit_code, attempts, failed, timed out) is {got:?}, \
             expected {want:?}"
        ));
    }
    if out.signal.is_some() {
        wrong.push(format!("signal is {:?}, expected none", out.signal));
    }
    let names: Vec<Call> = calls.iter().map(|(c, _)| *c).collect();
    if names != case.calls {
        wrong.push(format!(
            "hook calls are {names:?}, expected {:?}",
            case.calls
        ));
        return wrong;
    }
    for &(from, to, secs) in &case.gaps {
        let gap = calls[to].1 - calls[from].1;
        if gap != Duration::from_secs(secs) {
            wrong.push(format!(
                "{gap:?} of virtual time from {:?} to {:?}, expected {secs}s",
                calls[from].0, calls[to].0
            ));
        }
    }
    if case.retry_delay >= 100_000 {
        // Retried at once: no gap between calls comes near the (huge) retry delay.
        for pair in calls.windows(2) {
            if pair[1].1 - pair[0].1 >= Duration::from_secs(case.retry_delay) {
                wrong.push(format!(
                    "{:?} then {:?}: waited the retry delay",
                    pair[0].0, pair[1].0
                ));
            }
        }
    }
    wrong
}

#[tokio::test(start_paused = true)]
async fn outcome_table() {
    let command = Command::Exec(vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "eval \"$ACTION\"".to_owned(),
    ]);
    let mut failures = Vec::new();
    for case in cases() {
        let config = config(&case);
        let mut hooks = Recorder::new(case.actions.clone(), case.stop);
        let mut supervisor = Supervisor::new(
            &config,
            command.clone(),
            hooks.action(1).env(),
            case.name.to_owned(),
            crate::signals::StopSignals::new().unwrap(),
        )
        .expect("UNWRAP: signal handlers can be registered");
        let out = supervisor.run(&mut hooks).await;
        for m in mismatches(&case, &out, &hooks.calls) {
            failures.push(format!("{}: {m}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
