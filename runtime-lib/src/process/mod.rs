//! Process supervision in wrapped mode (README "How the process is supervised"): attempts,
//! timeouts, retries, signal forwarding, and the outcome that decides the final status and exit
//! code.
//!
//! # Theory of operation
//!
//! [`Supervisor::run`] is a single task. Each attempt spawns the child (in its own session
//! when process-group termination is on), then waits in one `select!` for whichever comes
//! first: the child's exit (through the `child::Reaper`), the attempt's deadline, a signal
//! to the wrapper, or a stop request from [`Hooks::stop_requested`]. Timeouts and signals
//! stop the child's whole group with `child::Child::terminate`. Retries wait
//! `process_retry_delay` (after failures only; timeouts retry at once), and that wait is
//! interrupted by signals too. Nothing here talks to the API server: the reporting layer
//! plugs in through [`Hooks`].

pub mod capture;
pub mod child;
pub mod command;
#[cfg(test)]
mod outcome_tests;
pub(crate) mod resources;

use std::time::Instant;

use nix::sys::signal::Signal;
use tracing::{error, info, warn};

use crate::child_env::ChildEnv;
use crate::config::ProcessConfig;
use crate::exit_codes;
use crate::signals::{self, StopSignals};
use crate::task::wire::{ErrorDetails, Seconds};
use crate::time::UtcTime;
use child::{ExitKind, Reaper};
pub use command::Command;

/// Final status of a Task Execution, serialised as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinalStatus {
    /// The process exited with code 0.
    Succeeded,
    /// The process failed, could not be started, or the wrapper was interrupted (SIGINT).
    Failed,
    /// The last attempt timed out.
    TerminatedAfterTimeOut,
    /// The wrapper was told to stop (SIGTERM, SIGHUP, SIGQUIT).
    Aborted,
    /// The API server asked the execution to stop.
    Stopped,
}

impl FinalStatus {
    /// The status string of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Succeeded => "SUCCEEDED",
            FinalStatus::Failed => "FAILED",
            FinalStatus::TerminatedAfterTimeOut => "TERMINATED_AFTER_TIME_OUT",
            FinalStatus::Aborted => "ABORTED",
            FinalStatus::Stopped => "STOPPED",
        }
    }
}

/// How a supervised run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Final status to report.
    pub status: FinalStatus,
    /// Exit code to report: the child's code, `-N` for signal N, 1 when it could not start;
    /// `None` when the wrapper stopped the last attempt (timeout, signal, stop request).
    pub exit_code: Option<i32>,
    /// The wrapper's own exit code.
    pub wrapper_exit_code: i32,
    /// Attempts started (including ones that could not be spawned).
    pub attempts: u32,
    /// Attempts that failed.
    pub failed_attempts: u32,
    /// Attempts that timed out.
    pub timed_out_attempts: u32,
    /// The signal that ended the run, if any.
    pub signal: Option<Signal>,
    /// What went wrong, for `error_details` (README "Reporting").
    pub error: Option<ErrorDetails>,
    /// The peak memory of the process tree, in MB, when known.
    pub max_memory_mb: Option<u64>,
}

impl Outcome {
    /// A run before its first attempt: nothing known, failed unless something better
    /// happens.
    pub(crate) fn not_started() -> Self {
        Self {
            status: FinalStatus::Failed,
            exit_code: None,
            wrapper_exit_code: exit_codes::GENERAL_ERROR,
            attempts: 0,
            failed_attempts: 0,
            timed_out_attempts: 0,
            signal: None,
            error: None,
            max_memory_mb: None,
        }
    }

    /// One attempt that exited with `code` (ECS sidecar mode: the main container's), which
    /// is also the wrapper's exit code.
    pub fn exited(code: i32) -> Self {
        Self {
            status: if code == 0 {
                FinalStatus::Succeeded
            } else {
                FinalStatus::Failed
            },
            exit_code: Some(code),
            wrapper_exit_code: code,
            attempts: 1,
            failed_attempts: u32::from(code != 0),
            ..Self::not_started()
        }
    }

    /// One attempt ended by signal `sig` to the wrapper, by the rule of [`signals::ending`].
    pub fn signalled(sig: Signal) -> Self {
        let ending = signals::ending(sig);
        Self {
            status: ending.status,
            wrapper_exit_code: ending.exit_code,
            attempts: 1,
            signal: Some(sig),
            error: Some(ErrorDetails::WrapperSignalled {
                signal: sig.as_str().to_owned(),
            }),
            ..Self::not_started()
        }
    }
}

/// Why [`Hooks::stop_requested`] fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest;

/// Callbacks from the supervisor to the reporting layer. All methods default to doing
/// nothing, which is offline mode.
#[allow(async_fn_in_trait)]
pub trait Hooks {
    /// An attempt's process started.
    async fn attempt_started(&mut self, _attempt: u32, _pid: u32) {}
    /// An attempt failed and another will follow.
    async fn attempt_failed(&mut self, _failed_attempts: u32, _exit_code: i32) {}
    /// An attempt timed out and another will follow.
    async fn attempt_timed_out(&mut self, _timed_out_attempts: u32) {}
    /// Called before each retry; a returned environment replaces the child's (after the
    /// configuration was fetched again because `config_ttl` expired).
    async fn before_retry(&mut self) -> Option<ChildEnv> {
        None
    }
    /// Resolves when the execution must stop (for example, the API server said so).
    /// Must be cancel-safe; the default never resolves.
    async fn stop_requested(&mut self) -> StopRequest {
        std::future::pending().await
    }
}

/// Offline mode: nobody to tell.
#[derive(Debug, Default)]
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Runs the attempts of one command.
pub struct Supervisor<'a> {
    config: &'a ProcessConfig,
    command: Command,
    env: ChildEnv,
    task_name: String,
    reaper: Reaper,
    signals: StopSignals,
    capture: Option<capture::LogCapture>,
    /// When a signal to the wrapper ended the run.
    signalled_at: Option<Instant>,
}

enum Wake {
    Exited(ExitKind),
    TimedOut,
    Signal(Signal),
    Stop,
}

impl<'a> Supervisor<'a> {
    /// Prepares to run `command`. The signals to the wrapper are taken from `signals`,
    /// registered by the caller before anything that can take long, so that none is lost:
    /// one that arrived already ends the run as soon as it starts.
    pub fn new(
        config: &'a ProcessConfig,
        command: Command,
        env: ChildEnv,
        task_name: String,
        signals: StopSignals,
    ) -> std::io::Result<Self> {
        Ok(Self {
            config,
            command,
            env,
            task_name,
            reaper: Reaper::new(std::process::id() == 1)?,
            signals,
            capture: None,
            signalled_at: None,
        })
    }

    /// Captures the child's output into `capture` (and passes it through).
    pub fn with_capture(mut self, capture: Option<capture::LogCapture>) -> Self {
        self.capture = capture;
        self
    }

    fn max_attempts_text(&self) -> String {
        self.config
            .max_retries
            .map_or_else(|| "infinity".to_owned(), |r| (u64::from(r) + 1).to_string())
    }

    fn is_last_attempt(&self, attempt: u32) -> bool {
        self.config.max_retries.is_some_and(|r| attempt > r)
    }

    /// Runs attempts until one succeeds, attempts run out, or the run is interrupted.
    pub async fn run<H: Hooks>(&mut self, hooks: &mut H) -> Outcome {
        let mut out = self.attempts(hooks).await;
        out.max_memory_mb = resources::peak_mb();
        out
    }

    async fn attempts<H: Hooks>(&mut self, hooks: &mut H) -> Outcome {
        let run_start = Instant::now();
        let mut out = Outcome::not_started();
        let argv = self.command.argv();
        loop {
            if out.attempts > 0
                && let Some(env) = hooks.before_retry().await
            {
                self.env = env;
            }
            out.attempts += 1;
            let attempt = out.attempts;
            let attempt_start = Instant::now();
            let last = self.is_last_attempt(attempt);
            let child = match child::spawn(
                &argv,
                &self.env,
                &self.config.work_dir,
                self.config.group_termination,
                self.capture.as_ref(),
            ) {
                Ok(child) => child,
                Err(e) => {
                    error!(
                        "could not start '{}' in {}: {e}",
                        argv[0],
                        self.config.work_dir.display()
                    );
                    out.failed_attempts += 1;
                    out.exit_code = Some(1);
                    out.error = Some(ErrorDetails::SpawnFailed {
                        program: argv[0].clone(),
                        message: e.to_string(),
                        os_error: e.raw_os_error(),
                    });
                    if last {
                        out.status = FinalStatus::Failed;
                        out.wrapper_exit_code = exit_codes::CONFIGURATION_ERROR;
                        self.summary(
                            &out,
                            "failed due to wrapping error",
                            attempt_start,
                            run_start,
                        );
                        return out;
                    }
                    hooks
                        .attempt_failed(out.failed_attempts, exit_codes::CONFIGURATION_ERROR)
                        .await;
                    if let Some(end) = self.retry_delay(hooks, &mut out).await {
                        return end;
                    }
                    continue;
                }
            };
            self.reaper.watch(child.pid);
            let pid = u32::try_from(child.pid.as_raw()).unwrap_or(0);
            info!(
                "started process {pid}, attempt {attempt} / {}",
                self.max_attempts_text()
            );
            hooks.attempt_started(attempt, pid).await;

            let deadline = self.config.timeout.map(|t| tokio::time::Instant::now() + t);
            let wake = tokio::select! {
                kind = self.reaper.wait(child.pid) => Wake::Exited(kind),
                () = sleep_until_opt(deadline) => Wake::TimedOut,
                sig = self.signals.recv() => Wake::Signal(sig),
                _ = hooks.stop_requested() => Wake::Stop,
            };
            let grace = self.config.termination_grace_period;
            match wake {
                Wake::Exited(ExitKind::Code(0)) => {
                    out.status = FinalStatus::Succeeded;
                    out.exit_code = Some(0);
                    out.wrapper_exit_code = exit_codes::SUCCESS;
                    out.error = None;
                    self.summary(&out, "succeeded", attempt_start, run_start);
                    return out;
                }
                Wake::Exited(kind) => {
                    out.failed_attempts += 1;
                    out.exit_code = Some(kind.api_code());
                    out.error = match kind {
                        ExitKind::Signal(n) => Some(ErrorDetails::KilledBySignal {
                            signal: Signal::try_from(n)
                                .map_or_else(|_| format!("signal {n}"), |s| s.as_str().to_owned()),
                            signal_number: n,
                        }),
                        ExitKind::Code(_) => None,
                    };
                    if last {
                        out.status = FinalStatus::Failed;
                        out.wrapper_exit_code = kind.shell_code();
                        let how = format!("failed with exit code {}", kind.api_code());
                        self.summary(&out, &how, attempt_start, run_start);
                        return out;
                    }
                    warn!(
                        "process {pid} failed with exit code {}; retrying",
                        kind.api_code()
                    );
                    hooks
                        .attempt_failed(out.failed_attempts, kind.api_code())
                        .await;
                    if let Some(end) = self.retry_delay(hooks, &mut out).await {
                        return end;
                    }
                }
                Wake::TimedOut => {
                    out.timed_out_attempts += 1;
                    warn!("process {pid} timed out; terminating it");
                    if !last {
                        hooks.attempt_timed_out(out.timed_out_attempts).await;
                    }
                    child
                        .terminate(&mut self.reaper, Signal::SIGTERM, grace)
                        .await;
                    out.exit_code = None;
                    out.error = self.config.timeout.map(|t| ErrorDetails::TimedOut {
                        timeout_seconds: Seconds(t),
                        attempt,
                    });
                    if last {
                        out.status = FinalStatus::TerminatedAfterTimeOut;
                        out.wrapper_exit_code = exit_codes::GENERAL_ERROR;
                        self.summary(&out, "timed out", attempt_start, run_start);
                        return out;
                    }
                }
                Wake::Signal(sig) => {
                    self.signalled_at = Some(Instant::now());
                    info!("received {sig}; stopping process {pid}");
                    child.terminate(&mut self.reaper, sig, grace).await;
                    out.exit_code = None;
                    self.end_by_signal(&mut out, sig);
                    self.summary(
                        &out,
                        &format!("was stopped by {sig}"),
                        attempt_start,
                        run_start,
                    );
                    return out;
                }
                Wake::Stop => {
                    info!("stop requested; stopping process {pid}");
                    child
                        .terminate(&mut self.reaper, Signal::SIGTERM, grace)
                        .await;
                    out.exit_code = None;
                    out.status = FinalStatus::Stopped;
                    out.error = None;
                    out.wrapper_exit_code = exit_codes::CONFLICT;
                    self.summary(&out, "was stopped on request", attempt_start, run_start);
                    return out;
                }
            }
        }
    }

    /// Resolves with the next signal to the wrapper (SIGTERM, SIGINT, SIGHUP, SIGQUIT), for
    /// callers that still have work after [`Supervisor::run`] (the final update).
    pub async fn next_signal(&mut self) -> Signal {
        self.signals.recv().await
    }

    /// When a signal to the wrapper ended the run, if one did.
    pub fn signalled_at(&self) -> Option<Instant> {
        self.signalled_at
    }

    fn end_by_signal(&mut self, out: &mut Outcome, sig: Signal) {
        self.signalled_at.get_or_insert_with(Instant::now);
        let ending = signals::ending(sig);
        out.signal = Some(sig);
        out.status = ending.status;
        out.wrapper_exit_code = ending.exit_code;
        out.error = Some(ErrorDetails::WrapperSignalled {
            signal: sig.as_str().to_owned(),
        });
    }

    /// Waits the retry delay; returns the outcome if a signal or stop request ended the run.
    async fn retry_delay<H: Hooks>(&mut self, hooks: &mut H, out: &mut Outcome) -> Option<Outcome> {
        let delay = self.config.retry_delay;
        if !delay.is_zero() {
            info!("waiting {} seconds before retrying", delay.as_secs_f64());
        }
        // Even without a delay, a signal or stop request that is already waiting ends the
        // run here: retrying at once (a command that cannot be started, retried forever)
        // must not make the wrapper deaf to SIGTERM.
        tokio::select! {
            biased;
            sig = self.signals.recv() => {
                info!("received {sig} while waiting to retry");
                self.end_by_signal(out, sig);
                Some(out.clone())
            }
            _ = hooks.stop_requested() => {
                out.status = FinalStatus::Stopped;
                out.error = None;
                out.wrapper_exit_code = exit_codes::CONFLICT;
                Some(out.clone())
            }
            () = tokio::time::sleep(delay) => None,
        }
    }

    fn summary(&self, out: &Outcome, how: &str, attempt_start: Instant, run_start: Instant) {
        info!(
            "Task '{}' {how} at {} in {:.3} seconds on attempt {} / {}, for a total duration of {:.3} second(s).",
            self.task_name,
            UtcTime::now().summary_format(),
            attempt_start.elapsed().as_secs_f64(),
            out.attempts,
            self.max_attempts_text(),
            run_start.elapsed().as_secs_f64(),
        );
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
