//! Why `proc_wrapper` stops before, or instead of, running its command to the end. Each case
//! carries its exit code (README "Exit codes") and is logged once, by
//! [`crate::main_with_args`], through [`CliError::log`].

use nix::sys::signal::Signal;
use proc_wrapper::api::ApiError;
use proc_wrapper::config::table as T;
use proc_wrapper::exec::ExecError;
use proc_wrapper::exit_codes;
use proc_wrapper::settings::SettingsError;
use proc_wrapper::signals;
use proc_wrapper::values::ValueError;
use tracing::{error, warn};

/// A run of `proc_wrapper` that ended early.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting that does not parse, a location that cannot be read, variables that could
    /// not be resolved (exit 78).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// An output file of the resolved environment or configuration could not be written
    /// (exit 78); the files already written were deleted.
    #[error("{0}; not running the command")]
    Output(String),
    /// No command, and not in ECS sidecar mode (exit 78).
    #[error(
        "no command to run: give it as arguments, with -c/--command-line, or in {}",
        T::COMMAND_LINE.var()
    )]
    NoCommand,
    /// The input value could not be read or written (exit 78).
    #[error(transparent)]
    Input(#[from] ValueError),
    /// `--exec` could not execute the command (exit 78).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Offline mode with `--prevent-offline-execution` (exit 78).
    #[error(
        "offline mode and --prevent-offline-execution ({}) are both set, so the command may \
         not run",
        T::PREVENT_OFFLINE_EXECUTION.var()
    )]
    OfflineForbidden,
    /// The Task settings do not allow reporting, and `--prevent-offline-execution` is set
    /// (exit 78); each problem is named.
    #[error("not running the command, because --prevent-offline-execution is set")]
    CannotReport(Vec<String>),
    /// The HTTP client could not be created (exit 1).
    #[error(transparent)]
    Client(ApiError),
    /// The API server refused to start the execution (exit 75).
    #[error(
        "the API server did not allow the Task to start (conflict with other executions); \
         not running the command"
    )]
    Conflict,
    /// The execution could not be created and `--prevent-offline-execution` is set: exit 77
    /// when access was denied (403), else 1.
    #[error(
        "could not create the Task Execution ({0}); not running the command, because \
         --prevent-offline-execution is set"
    )]
    NotCreated(ApiError),
    /// The API server asked an ECS sidecar to stop watching (exit 75).
    #[error("the API server asked to stop")]
    StopRequested,
    /// A signal arrived before the command started (exit by the signal rule; logged as a
    /// warning, since the wrapper did as told).
    #[error("received {0} before the command started; not running it")]
    SignalledBeforeStart(Signal),
    /// Signals to the wrapper cannot be handled (exit 1).
    #[error("could not set up signal handling: {0}")]
    Signals(std::io::Error),
    /// The async runtime could not start (exit 1).
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// ECS sidecar mode without the task metadata endpoint or the main container (exit 78).
    #[error("sidecar mode needs the ECS task metadata endpoint and the main container; not found")]
    NoSidecarMetadata,
    /// An error already logged (before a report of it to the API server); its exit code.
    #[error("{0}")]
    Logged(Box<CliError>),
}

impl CliError {
    /// The exit code of `proc_wrapper` for this case.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Logged(e) => e.exit_code(),
            Self::Settings(_)
            | Self::Output(_)
            | Self::NoCommand
            | Self::Input(_)
            | Self::OfflineForbidden
            | Self::CannotReport(_)
            | Self::NoSidecarMetadata => exit_codes::CONFIGURATION_ERROR,
            Self::Exec(e) => e.exit_code(),
            Self::Conflict | Self::StopRequested => exit_codes::CONFLICT,
            Self::NotCreated(ApiError::Rejected(403)) => exit_codes::PERMISSION_DENIED,
            Self::SignalledBeforeStart(sig) => signals::ending(*sig).exit_code,
            Self::Client(_) | Self::NotCreated(_) | Self::Signals(_) | Self::Runtime(_) => {
                exit_codes::GENERAL_ERROR
            }
        }
    }

    /// Logs what went wrong: one line, or one per unresolved variable or Task problem and
    /// then the conclusion.
    pub fn log(&self) {
        match self {
            Self::Logged(_) => {}
            Self::Settings(SettingsError::Unresolved(failures)) => {
                for failure in failures {
                    error!("could not resolve {failure}");
                }
                error!(
                    "not running the command, because some variables or properties could not \
                     be resolved"
                );
            }
            Self::CannotReport(problems) => {
                for p in problems {
                    error!("cannot report to the API server: {p}");
                }
                error!("{self}");
            }
            Self::SignalledBeforeStart(_) | Self::StopRequested => warn!("{self}"),
            _ => error!("{self}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_case_has_the_exit_code_of_the_readme() {
        let io = || std::io::Error::other("x");
        let cases = [
            (CliError::Output("x".into()), 78),
            (CliError::NoCommand, 78),
            (CliError::OfflineForbidden, 78),
            (CliError::CannotReport(vec![]), 78),
            (CliError::NoSidecarMetadata, 78),
            (CliError::Exec(ExecError::NoCommand), 78),
            (CliError::Conflict, 75),
            (CliError::StopRequested, 75),
            (CliError::NotCreated(ApiError::Rejected(403)), 77),
            (CliError::NotCreated(ApiError::Rejected(401)), 1),
            (CliError::NotCreated(ApiError::Exhausted(Some(503))), 1),
            (CliError::Client(ApiError::Client("x".into())), 1),
            (CliError::Signals(io()), 1),
            (CliError::Runtime(io()), 1),
            (CliError::SignalledBeforeStart(Signal::SIGTERM), 0),
            (CliError::SignalledBeforeStart(Signal::SIGINT), 130),
            (CliError::SignalledBeforeStart(Signal::SIGHUP), 129),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }
}
