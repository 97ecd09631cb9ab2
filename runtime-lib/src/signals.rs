//! The signals that stop the wrapper, and the one rule for how each ends a run (README
//! "Exit codes" and "Differences" D8).
//!
//! `proc_wrapper` handles SIGTERM, SIGINT, SIGHUP and SIGQUIT the same way wherever it is:
//! while the Task Execution is being created, while the command runs or waits to be retried,
//! and while an ECS sidecar watches its main container. [`ending`] says what each means:
//!
//! | Signal  | Final status | Wrapper exit code |
//! |---------|--------------|-------------------|
//! | SIGTERM | `ABORTED`    | 0                 |
//! | SIGINT  | `FAILED`     | 130               |
//! | other   | `ABORTED`    | 128 + N           |
//!
//! A signal before the command started reports nothing (there is no execution yet) and
//! exits with the same code.

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit_codes;
use crate::process::FinalStatus;

/// How a signal to the wrapper ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// Status reported to the API server.
    pub status: FinalStatus,
    /// The wrapper's exit code.
    pub exit_code: i32,
}

/// The rule: SIGTERM is an orderly stop (`ABORTED`, exit 0), SIGINT an interruption
/// (`FAILED`, exit 130), any other signal N `ABORTED` with exit `128 + N`.
pub fn ending(sig: Signal) -> Ending {
    match sig {
        Signal::SIGTERM => Ending {
            status: FinalStatus::Aborted,
            exit_code: exit_codes::SUCCESS,
        },
        Signal::SIGINT => Ending {
            status: FinalStatus::Failed,
            exit_code: 128 + Signal::SIGINT as i32,
        },
        other => Ending {
            status: FinalStatus::Aborted,
            exit_code: 128 + other as i32,
        },
    }
}

/// The signals that stop the wrapper, registered at construction: from then on they are
/// received here instead of killing the process.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Registers the handlers.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// Resolves with the next signal received. Cancel-safe.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.quit.recv() => Signal::SIGQUIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_ends_the_run_by_the_one_rule() {
        let cases = [
            (Signal::SIGTERM, FinalStatus::Aborted, 0),
            (Signal::SIGINT, FinalStatus::Failed, 130),
            (Signal::SIGHUP, FinalStatus::Aborted, 129),
            (Signal::SIGQUIT, FinalStatus::Aborted, 131),
        ];
        for (sig, status, exit_code) in cases {
            assert_eq!(ending(sig), Ending { status, exit_code }, "{sig}");
        }
    }
}
