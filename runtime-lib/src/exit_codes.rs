//! Exit codes of `proc_wrapper` (README "Exit codes"). Besides these, the wrapper
//! exits with the child's own code when the child fails on its last attempt, and with
//! `128 + N` when the child was killed by signal N or the wrapper stopped because of signal N
//! (other than SIGTERM).

/// The command succeeded, or the wrapper was stopped by SIGTERM (the child was stopped and
/// `ABORTED` reported), or `--exit-after-writing-variables`, `--help` or `--version`.
pub const SUCCESS: i32 = 0;
/// The last attempt timed out, or an unexpected error.
pub const GENERAL_ERROR: i32 = 1;
/// The API server refused to start the execution (conflict) or asked it to stop.
pub const CONFLICT: i32 = 75;
/// The API server denied access (403) with `--prevent-offline-execution`.
pub const PERMISSION_DENIED: i32 = 77;
/// Bad configuration, or the command could not be started.
pub const CONFIGURATION_ERROR: i32 = 78;
