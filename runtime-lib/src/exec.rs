//! "Resolve, then exec": secret locations in the environment are resolved, then the command
//! replaces the current process with the resolved environment. No supervision, no reporting.
//!
//! This is the AWS Lambda exec wrapper of `cloudreactor-extension`
//! (`AWS_LAMBDA_EXEC_WRAPPER=/opt/cloudreactor-exec-wrapper`), which gives a runtime of any
//! language its secrets, and `proc_wrapper --exec` for containers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use crate::exit_codes;
use crate::settings::{self, SettingsError};
use crate::task::Mode;
use serde_json::{Map, Value};

/// Why a command was not executed. Every case exits 78 ([`ExecError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No command was given.
    #[error("no command to run")]
    NoCommand,
    /// The environment could not be resolved: nothing is run with a partial environment.
    #[error("not running {program}: {error}")]
    Settings {
        /// The command's program.
        program: String,
        /// Why.
        error: Box<SettingsError>,
    },
    /// The program could not be executed (not found, not executable).
    #[error("could not run {program}: {error}")]
    Exec {
        /// The program.
        program: String,
        /// The system's error.
        error: std::io::Error,
    },
}

impl ExecError {
    /// The exit code to end with: 78, a configuration error.
    pub fn exit_code(&self) -> i32 {
        exit_codes::CONFIGURATION_ERROR
    }
}

/// Resolves the environment `env` (variables that are not UTF-8 are passed on unchanged) and
/// execs `command`. Returns only on failure.
pub async fn resolve_and_exec(
    command: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> Result<Infallible, ExecError> {
    let Some(program) = command.first() else {
        return Err(ExecError::NoCommand);
    };
    let mut text = HashMap::new();
    let mut other = Vec::new();
    for (k, v) in env {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => {
                text.insert(k, v);
            }
            (k, v) => other.push((
                k.map_or_else(|k| k, OsString::from),
                v.map_or_else(|v| v, OsString::from),
            )),
        }
    }
    let settings = settings::load(&text, Map::new(), Mode::Wrapped)
        .await
        .map_err(|error| ExecError::Settings {
            program: program.to_string_lossy().into_owned(),
            error: Box::new(error),
        })?;
    let resolved = settings.env.into_iter().filter_map(|(k, v)| match v {
        Value::String(s) => Some((OsString::from(k), OsString::from(s))),
        _ => None,
    });
    exec(command, resolved.chain(other))
}

/// Replaces this process with `command` (`PATH` is searched), with exactly the environment
/// `env`. Returns only on failure.
pub fn exec(
    command: &[OsString],
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Infallible, ExecError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ExecError::NoCommand);
    };
    let error = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .exec();
    Err(ExecError::Exec {
        program: program.to_string_lossy().into_owned(),
        error,
    })
}
