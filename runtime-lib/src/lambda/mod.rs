//! Reporting AWS Lambda invocations, shared by `cloudreactor-extension` and the handler
//! wrapper of feature `lambda` (module `handler`).
//!
//! In Lambda the Task is the function: unless configured otherwise it is named after the
//! function, auto-created and passive ([`with_task_defaults`]). Each invocation is one Task
//! Execution. [`LambdaReporting`] holds the resolved settings and the API client and builds
//! the bodies; [`backlog::Backlog`] sends them, keeping what cannot go yet.

pub mod backlog;
#[cfg(feature = "lambda")]
pub mod handler;

use crate::config::table as T;
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tracing::{debug, error, info};

use crate::api::{ApiClient, task_param_errors};
use crate::config::Config;
pub use crate::managed::execution_uuid_from_input;
use crate::metadata::RuntimeMetadata;
use crate::process::FinalStatus;
use crate::task::body;
use crate::task::wire::{ErrorDetails, LambdaCause, LambdaDetails, to_object};
use crate::task::{Mode, Sampling};
use crate::time::UtcTime;

/// The variable that bounds the time reporting may add to an invocation.
pub(crate) const MAX_ADDED_VAR: &str = T::LAMBDA_MAX_ADDED.var();

/// The default of `MAX_ADDED_VAR`.
pub const DEFAULT_MAX_ADDED: Duration = Duration::from_millis(500);

/// The longest time reporting may add to an invocation after the handler's response:
/// `PROC_WRAPPER_LAMBDA_MAX_ADDED_MS` (default 500). A value that is not a whole number of
/// milliseconds gives the default and a warning naming the variable.
pub fn max_added(env: &dyn Fn(&str) -> Option<String>) -> (Duration, Option<String>) {
    match env(MAX_ADDED_VAR) {
        None => (DEFAULT_MAX_ADDED, None),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(ms) => (Duration::from_millis(ms), None),
            Err(_) => (
                DEFAULT_MAX_ADDED,
                Some(format!(
                    "{MAX_ADDED_VAR}='{text}' is not a whole number of milliseconds; using {} ms",
                    DEFAULT_MAX_ADDED.as_millis()
                )),
            ),
        },
    }
}

/// The function's environment with the defaults of Lambda reporting: the Task is named after
/// the function (`function_name`, else `AWS_LAMBDA_FUNCTION_NAME`), auto-created and passive,
/// and the status update listener is on, unless the environment says otherwise.
pub fn with_task_defaults(
    mut env: HashMap<String, String>,
    function_name: Option<String>,
) -> HashMap<String, String> {
    let function = env
        .get("AWS_LAMBDA_FUNCTION_NAME")
        .cloned()
        .or(function_name);
    if !env.contains_key(T::TASK_UUID.var())
        && let Some(f) = function
    {
        env.entry(T::TASK_NAME.var().into()).or_insert(f);
    }
    for key in [
        T::AUTO_CREATE_TASK.var(),
        T::TASK_IS_PASSIVE.var(),
        T::ENABLE_STATUS_UPDATE_LISTENER.var(),
    ] {
        env.entry(key.into()).or_insert_with(|| "TRUE".into());
    }
    env
}

/// How an invocation ended, as both Lambda reporters tell it: the handler wrapper from the
/// handler's result, the extension from telemetry, the function's messages or SHUTDOWN.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationOutcome {
    /// The final status.
    pub status: FinalStatus,
    /// What is known of the invocation: its duration, its error.
    pub details: LambdaDetails,
    /// How it ended, when it did not succeed and the reporter could tell.
    pub cause: Option<LambdaCause>,
    /// When it ended.
    pub finished_at: UtcTime,
}

impl InvocationOutcome {
    /// The final fields of the invocation's execution: `fields` (from the function: counts,
    /// messages, its `output_value`, its own `other_runtime_metadata`) with the status, the
    /// end and the Lambda details under `other_runtime_metadata.aws_lambda`. Only a success
    /// keeps the output value.
    pub fn final_fields(&self, mut fields: Map<String, Value>) -> Map<String, Value> {
        fields.insert("status".into(), json!(self.status));
        fields.insert("finished_at".into(), json!(self.finished_at.iso8601()));
        let other = fields
            .entry("other_runtime_metadata")
            .or_insert_with(|| json!({}));
        if !other.is_object() {
            *other = json!({});
        }
        if let Some(o) = other.as_object_mut() {
            o.insert("aws_lambda".into(), json!(self.details));
        }
        if self.status != FinalStatus::Succeeded {
            fields.remove("output_value");
            fields.insert(
                "error_details".into(),
                json!(lambda_error(self.cause, &self.details)),
            );
        }
        if let Some(mb) = max_memory_mb(&self.details.more) {
            fields.insert("max_memory_mb".into(), json!(mb));
        }
        fields
    }
}

/// `error_details` of a Lambda invocation that did not succeed: `cause` with the
/// `runtimeDone` status, error type and message that `details` knows.
pub fn lambda_error(cause: Option<LambdaCause>, details: &LambdaDetails) -> ErrorDetails {
    ErrorDetails::LambdaError {
        cause,
        runtime_done_status: details.runtime_done_status.clone(),
        error_type: details.error_type.clone(),
        error_message: details.error_message.clone(),
    }
}

/// Whether the metrics of `platform.report` (snake-case names) show the environment's
/// memory used up: `max_memory_used_mb` at or above a known `memory_size_mb`. After a
/// failure this names it out of memory (the heuristic Datadog's extension uses).
pub fn memory_exhausted(metrics: &Map<String, Value>) -> bool {
    let figure = |k: &str| metrics.get(k).and_then(Value::as_f64);
    match (figure("max_memory_used_mb"), figure("memory_size_mb")) {
        (Some(used), Some(size)) => size > 0.0 && used >= size,
        _ => false,
    }
}

/// `max_memory_mb` from the metrics of `platform.report` (`maxMemoryUsedMB`, as
/// `max_memory_used_mb`): the most memory the function's environment has used so far.
pub fn max_memory_mb(metrics: &Map<String, Value>) -> Option<u64> {
    metrics
        .get("max_memory_used_mb")
        .and_then(Value::as_f64)
        .filter(|mb| mb.is_finite() && *mb >= 0.0)
        .map(|mb| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = mb.round() as u64;
            whole
        })
}

/// What the Lambda reporters know of an invocation when it starts.
#[derive(Debug, Clone)]
pub struct InvocationStart {
    /// The metadata of the function and the invocation.
    pub metadata: RuntimeMetadata,
    /// When the invocation started.
    pub started_at: UtcTime,
    /// The Task Execution CloudReactor started it as (from the event), if any.
    pub uuid: Option<String>,
    /// The input value, sent with `PROC_WRAPPER_SEND_INPUT_VALUE`.
    pub input_value: Option<Value>,
}

/// Resolved settings and the API client for reporting invocations.
pub struct LambdaReporting {
    /// The settings.
    pub config: Config,
    /// The API client (clones share its connections).
    pub client: ApiClient,
    /// The resolved environment, for the runtime metadata.
    pub env: HashMap<String, String>,
}

impl LambdaReporting {
    /// Resolves the settings (secret locations included) from `env` with
    /// [`with_task_defaults`]. `None`, with the reason logged, when invocations cannot be
    /// reported: offline mode, missing API key or Task, unresolvable settings.
    pub async fn prepare(
        env: HashMap<String, String>,
        function_name: Option<String>,
    ) -> Option<Self> {
        let env = with_task_defaults(env, function_name);
        let settings = match crate::settings::load(&env, Map::new(), Mode::Embedded).await {
            Ok(s) => s,
            Err(e) => {
                error!("not reporting invocations: {e}");
                return None;
            }
        };
        let config = settings.config;
        if config.offline_mode {
            info!("offline mode: not reporting invocations");
            return None;
        }
        let problems = task_param_errors(&config);
        if !problems.is_empty() {
            error!("not reporting invocations: {}", problems.join("; "));
            return None;
        }
        let client = match ApiClient::new(config.api.clone()) {
            Ok(c) => c,
            Err(e) => {
                error!("not reporting invocations: cannot create the HTTP client: {e}");
                return None;
            }
        };
        let env = settings
            .env
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect();
        debug!("reporting invocations to {}", config.api.base_url);
        Some(Self {
            config,
            client,
            env,
        })
    }

    /// The body of the creation request of an invocation: with the Task unless the
    /// execution is known; a known execution says `api_managed_probability` 1.0 (it is
    /// always reported, as in 6.0.2).
    pub fn creation_body(&self, start: &InvocationStart) -> Map<String, Value> {
        let config = &self.config;
        let mut body = to_object(&body::creation(
            config,
            &start.metadata,
            body::CreationParts {
                mode: Mode::Wrapped,
                started_at: &start.started_at,
                input_value: start.input_value.as_ref(),
                with_task: start.uuid.is_none(),
                passive: body::task_passive(config, &start.metadata),
            },
        ));
        // A known execution is reported whatever the sampling says (its Task's settings are
        // not sent).
        if start.uuid.is_some() {
            for key in ["api_managed_probability", "managed_probability"] {
                if let Some(v) = body.get_mut(key) {
                    *v = json!(1.0);
                }
            }
        }
        body
    }

    /// Decides whether an invocation is reported from its start (`api_managed_probability`;
    /// a known execution always is).
    pub fn sampled_in(&self, known_uuid: bool) -> bool {
        Sampling::decide(&self.config.api, known_uuid) == Sampling::Reported
    }

    /// The body of the one request that reports an invocation whose start was not reported
    /// (the backlog sends it); `None` when it is not reported (sampled out,
    /// and neither a failure nor a timeout is reported by its probability).
    /// `creation` is the creation body of `start` when it was built already.
    pub fn finished_body(
        &self,
        start: &InvocationStart,
        creation: Option<Map<String, Value>>,
        outcome: &InvocationOutcome,
        fields: Map<String, Value>,
        sampled_out: bool,
    ) -> Option<Map<String, Value>> {
        if sampled_out && !Sampling::end_reported(&self.config.api, outcome.status) {
            return None;
        }
        let mut body = creation.unwrap_or_else(|| self.creation_body(start));
        body.extend(outcome.final_fields(fields));
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_its_cause_and_what_the_telemetry_said() {
        let outcome = InvocationOutcome {
            status: FinalStatus::Failed,
            details: LambdaDetails {
                runtime_done_status: Some("failure".into()),
                error_type: Some("Runtime.OutOfMemory".into()),
                ..LambdaDetails::default()
            },
            cause: Some(LambdaCause::OutOfMemory),
            finished_at: UtcTime::now(),
        };
        let fields = outcome.final_fields(Map::new());
        assert_eq!(
            fields["error_details"],
            json!({
                "kind": "lambda_error",
                "cause": "out_of_memory",
                "runtime_done_status": "failure",
                "error_type": "Runtime.OutOfMemory",
            })
        );
        let success = InvocationOutcome {
            status: FinalStatus::Succeeded,
            cause: None,
            ..outcome
        };
        assert!(
            success
                .final_fields(Map::new())
                .get("error_details")
                .is_none()
        );
    }

    #[test]
    fn memory_is_exhausted_when_the_peak_reaches_the_size() {
        let metrics = |used: Value, size: Value| {
            let mut m = Map::new();
            m.insert("max_memory_used_mb".into(), used);
            m.insert("memory_size_mb".into(), size);
            m
        };
        assert!(memory_exhausted(&metrics(json!(128), json!(128))));
        assert!(memory_exhausted(&metrics(json!(129), json!(128))));
        assert!(!memory_exhausted(&metrics(json!(127), json!(128))));
        assert!(!memory_exhausted(&metrics(json!(0), json!(0))));
        assert!(!memory_exhausted(&metrics(json!(128), Value::Null)));
        assert!(!memory_exhausted(&Map::new()));
    }

    #[test]
    fn the_task_is_the_function_unless_configured() {
        let env = with_task_defaults(
            HashMap::from([("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "fn-a".to_owned())]),
            Some("from-register".into()),
        );
        assert_eq!(env["PROC_WRAPPER_TASK_NAME"], "fn-a");
        assert_eq!(env["PROC_WRAPPER_AUTO_CREATE_TASK"], "TRUE");
        assert_eq!(env["PROC_WRAPPER_TASK_IS_PASSIVE"], "TRUE");
        let env = with_task_defaults(
            HashMap::from([
                ("PROC_WRAPPER_TASK_NAME".to_owned(), "mine".to_owned()),
                (
                    "PROC_WRAPPER_TASK_IS_PASSIVE".to_owned(),
                    "FALSE".to_owned(),
                ),
            ]),
            Some("from-register".into()),
        );
        assert_eq!(env["PROC_WRAPPER_TASK_NAME"], "mine");
        assert_eq!(env["PROC_WRAPPER_TASK_IS_PASSIVE"], "FALSE");
        let env = with_task_defaults(
            HashMap::from([("PROC_WRAPPER_TASK_UUID".to_owned(), "u".to_owned())]),
            Some("from-register".into()),
        );
        assert!(!env.contains_key("PROC_WRAPPER_TASK_NAME"));
    }
}
