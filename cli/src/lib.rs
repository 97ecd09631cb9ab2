//! Wrapped mode: `proc_wrapper [options] [--] command ...`, the drop-in replacement for
//! `python -m proc_wrapper`.
//!
//! [`main_with_args`] parses the command line and the environment, sets up logging and a
//! single-threaded Tokio runtime, and calls [`run`], which resolves the command and
//! supervises it. Exit codes are those of [`proc_wrapper::exit_codes`].

use std::ffi::OsString;

use clap::Parser;
use clap::error::ErrorKind;
use proc_wrapper::child_env;
use proc_wrapper::config::{Args, Config};
use proc_wrapper::exit_codes;
use proc_wrapper::process::{NoHooks, Supervisor, command};
use tracing::{error, warn};

/// Parses `args` (including the program name) and the process environment, runs, and
/// returns the exit code.
pub fn main_with_args<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    exit_codes::SUCCESS
                }
                _ => exit_codes::CONFIGURATION_ERROR,
            };
            // Printing can only fail if stdout/stderr are closed; nothing to do then.
            let _ = e.print();
            return code;
        }
    };
    if args.version {
        println!(
            "{} v{}",
            proc_wrapper::WRAPPER_FAMILY,
            proc_wrapper::VERSION
        );
        return exit_codes::SUCCESS;
    }
    let config = match Config::from_sources(&args, &|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("PROC_WRAPPER: ERROR: {e}");
            return exit_codes::CONFIGURATION_ERROR;
        }
    };
    proc_wrapper::logging::init(config.log.level, config.log.include_timestamps);
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("could not start the async runtime: {e}");
            return exit_codes::GENERAL_ERROR;
        }
    };
    runtime.block_on(run(config))
}

/// Runs the configured command and returns the wrapper's exit code.
pub async fn run(config: Config) -> i32 {
    if !config.offline_mode {
        if config.prevent_offline_execution {
            error!(
                "--prevent-offline-execution is set, but this build of proc_wrapper cannot \
                 report to the API server yet; not running the command"
            );
            return exit_codes::CONFIGURATION_ERROR;
        }
        warn!(
            "this build of proc_wrapper cannot report to the API server yet; running the \
             command as in offline mode"
        );
    } else if config.prevent_offline_execution {
        error!(
            "offline mode and --prevent-offline-execution (PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION) \
             are both set, so the command may not run"
        );
        return exit_codes::CONFIGURATION_ERROR;
    }
    let Some(command) = command::resolve(&config.process) else {
        error!(
            "no command to run: give it as arguments, with -c/--command-line, or in \
             PROC_WRAPPER_TASK_COMMAND"
        );
        return exit_codes::CONFIGURATION_ERROR;
    };
    let env = child_env::build(&config, std::env::vars_os(), None);
    let mut supervisor = match Supervisor::new(
        &config.process,
        command,
        env,
        config.task_display_name().to_owned(),
    ) {
        Ok(s) => s,
        Err(e) => {
            error!("could not set up signal handling: {e}");
            return exit_codes::GENERAL_ERROR;
        }
    };
    supervisor.run(&mut NoHooks).await.wrapper_exit_code
}
