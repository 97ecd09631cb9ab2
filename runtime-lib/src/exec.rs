//! "Resolve, then exec": secret locations in the environment are resolved, then the command
//! replaces the current process with the resolved environment. No supervision, no reporting.
//!
//! This is the AWS Lambda exec wrapper of `cloudreactor-extension`
//! (`AWS_LAMBDA_EXEC_WRAPPER=/opt/cloudreactor-exec-wrapper`), which gives a runtime of any
//! language its secrets, and `proc_wrapper --exec` for containers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use serde_json::{Map, Value};
use tracing::error;

use crate::exit_codes;
use crate::settings;
use crate::task::Mode;

/// Resolves the environment `env` (variables that are not UTF-8 are passed on unchanged) and
/// execs `command`. Returns only on failure, with the exit code to end with: 78 when the
/// environment cannot be resolved (nothing is run with a partial environment) or the command
/// cannot be executed.
pub async fn resolve_and_exec(command: &[OsString], env: Vec<(OsString, OsString)>) -> i32 {
    let Some(program) = command.first() else {
        error!("no command to run");
        return exit_codes::CONFIGURATION_ERROR;
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
    let settings = match settings::load(&text, Map::new(), Mode::Wrapped).await {
        Ok(s) => s,
        Err(e) => {
            error!("not running {}: {e}", program.to_string_lossy());
            return exit_codes::CONFIGURATION_ERROR;
        }
    };
    let resolved = settings.env.into_iter().filter_map(|(k, v)| match v {
        Value::String(s) => Some((OsString::from(k), OsString::from(s))),
        _ => None,
    });
    exec(command, resolved.chain(other))
}

/// Replaces this process with `command` (`PATH` is searched), with exactly the environment
/// `env`. Returns only on failure: exit code 78, with the error logged.
pub fn exec(command: &[OsString], env: impl IntoIterator<Item = (OsString, OsString)>) -> i32 {
    let Some((program, args)) = command.split_first() else {
        error!("no command to run");
        return exit_codes::CONFIGURATION_ERROR;
    };
    let e = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .exec();
    error!("could not run {}: {e}", program.to_string_lossy());
    exit_codes::CONFIGURATION_ERROR
}
