//! The JSON bodies of the Task Execution API (the creation request, updates and the final
//! update, with the fields 6.0.2 sends), as `serde` types: what the wrapper sends is what these
//! types serialise to, field for field.
//!
//! Free-form parts (the runtime metadata, status fields from the process, the props of an
//! auto-created Task) stay JSON objects, flattened into the typed ones. Where 6.0.2 merges
//! dictionaries (the props under the Task's own fields, the final fields over a late
//! creation), the merge happens on the serialised objects, with the same precedence.

use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::process::FinalStatus;

/// A number of seconds as the API takes it: whole seconds as an integer, else a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            s.serialize_u64(self.0.as_secs())
        } else {
            s.serialize_f64(self.0.as_secs_f64())
        }
    }
}

/// A limit in seconds: the number, or `-1` for "no limit", as 6.0.2 sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Duration>);

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => Seconds(d).serialize(s),
            None => s.serialize_i64(-1),
        }
    }
}

/// Seconds, or `null` when unset.
pub(crate) fn seconds_or_null(d: Option<Duration>) -> Option<Seconds> {
    d.map(Seconds)
}

/// The status of a Task Execution, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Running (creation, heartbeats, status updates, failed attempts before a retry).
    Running,
    /// Exited with code 0.
    Succeeded,
    /// Failed.
    Failed,
    /// The last attempt timed out.
    TerminatedAfterTimeOut,
    /// Told to stop.
    Aborted,
    /// Stopped by the API server (sent after its 409, to add what only the wrapper knows).
    Stopped,
}

impl ExecutionStatus {
    /// The status string of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TerminatedAfterTimeOut => "TERMINATED_AFTER_TIME_OUT",
            Self::Aborted => "ABORTED",
            Self::Stopped => "STOPPED",
        }
    }

    /// The status a final update reports for `status`.
    pub(crate) fn of_final(status: FinalStatus) -> Self {
        match status {
            FinalStatus::Succeeded => Self::Succeeded,
            FinalStatus::Failed => Self::Failed,
            FinalStatus::TerminatedAfterTimeOut => Self::TerminatedAfterTimeOut,
            FinalStatus::Aborted => Self::Aborted,
            FinalStatus::Stopped => Self::Stopped,
        }
    }
}

/// The fields 6.0.2 sends both with the Task Execution and with its Task ("common keys").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Common {
    /// The Task is a service.
    pub is_service: bool,
    /// The schedule (`""` when none).
    pub schedule: String,
    /// The heartbeat interval (`-1`: no heartbeats).
    pub heartbeat_interval_seconds: Limit,
    /// `--api-managed-probability`.
    pub api_managed_probability: f64,
    /// `--api-failure-report-probability`.
    pub api_failure_report_probability: f64,
    /// `--api-timeout-report-probability`.
    pub api_timeout_report_probability: f64,
    /// The same as `api_managed_probability`, under the server's name for it (the server
    /// drops the `api_` one).
    pub managed_probability: f64,
    /// The same as `api_failure_report_probability`, under the server's name.
    pub failure_report_probability: f64,
    /// The same as `api_timeout_report_probability`, under the server's name.
    pub timeout_report_probability: f64,
}

/// A link to another Task Execution (`{"task_execution": {"uuid": ...}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// The execution linked to.
    pub task_execution: Uuid,
}

/// `{"uuid": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uuid {
    /// The UUID.
    pub uuid: String,
}

impl Link {
    /// A link to the execution `uuid`.
    pub fn to(uuid: &str) -> Self {
        Self {
            task_execution: Uuid {
                uuid: uuid.to_owned(),
            },
        }
    }
}

/// The body of the creation request: a `POST` with the Task, or a `PATCH` of a known
/// execution without it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Creation {
    /// Embedded mode (`managed_call`, the Lambda reporters).
    pub embedded_mode: bool,
    /// When the execution started.
    pub started_at: String,
    /// `RUNNING`.
    pub status: ExecutionStatus,
    /// `--task-version-number`.
    pub task_version_number: Option<i64>,
    /// `--task-version-text`.
    pub task_version_text: Option<String>,
    /// `--task-version-signature`.
    pub task_version_signature: Option<String>,
    /// The timeout of one attempt (`null`: none).
    pub process_timeout_seconds: Option<Seconds>,
    /// Retries (`-1`: forever).
    pub process_max_retries: i64,
    /// Delay before a retry.
    pub process_retry_delay_seconds: Seconds,
    /// `--max-concurrency` as given (`null` when not).
    pub task_max_concurrency: Option<i64>,
    /// `--max-conflicting-age` (`null` when not).
    pub max_conflicting_age_seconds: Option<Seconds>,
    /// `--prevent-offline-execution`.
    pub prevent_offline_execution: bool,
    /// The grace period between SIGTERM and SIGKILL (`-1`: wait forever).
    pub process_termination_grace_period_seconds: Limit,
    /// The wrapper's log level, as Python names it.
    pub wrapper_log_level: &'static str,
    /// [`crate::WRAPPER_FAMILY`].
    pub wrapper_family: &'static str,
    /// [`crate::VERSION`].
    pub wrapper_version: &'static str,
    /// `--api-error-timeout`.
    pub api_error_timeout_seconds: Limit,
    /// `--api-retry-delay`.
    pub api_retry_delay_seconds: Seconds,
    /// `--api-resume-delay`.
    pub api_resume_delay_seconds: Limit,
    /// `--api-task-execution-creation-error-timeout`.
    pub api_task_execution_creation_error_timeout_seconds: Limit,
    /// `--api-task-execution-creation-conflict-timeout`.
    pub api_task_execution_creation_conflict_timeout_seconds: Limit,
    /// `--api-task-execution-creation-conflict-retry-delay`.
    pub api_task_execution_creation_conflict_retry_delay_seconds: Seconds,
    /// `--api-final-update-timeout`.
    pub api_final_update_timeout_seconds: Limit,
    /// `--api-request-timeout`.
    pub api_request_timeout_seconds: Limit,
    /// `--status-update-interval` (`null`: with heartbeats only).
    pub status_update_interval_seconds: Option<Seconds>,
    /// `--status-update-socket-port`.
    pub status_update_port: u16,
    /// `--status-update-message-max-bytes`.
    pub status_update_message_max_bytes: usize,
    /// `--num-log-lines-sent-on-failure`.
    pub num_log_lines_sent_on_failure: usize,
    /// `--num-log-lines-sent-on-timeout`.
    pub num_log_lines_sent_on_timeout: usize,
    /// `--num-log-lines-sent-on-success`.
    pub num_log_lines_sent_on_success: usize,
    /// `--max-log-line-length`.
    pub max_log_line_length: usize,
    /// One log tail for both streams.
    pub merge_stdout_and_stderr_logs: bool,
    /// `--ignore-stdout`.
    pub ignore_stdout: bool,
    /// `--ignore-stderr`.
    pub ignore_stderr: bool,
    /// The fields shared with the Task.
    #[serde(flatten)]
    pub common: Common,
    /// `--deployment`, the server's field of the execution (6.0.2 does not send it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The build that made this version of the Task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Link>,
    /// The deployment of this version of the Task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Link>,
    /// The command, when given as a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_command: Option<String>,
    /// With `--send-hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `--task-instance-metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_instance_metadata: Option<Map<String, Value>>,
    /// The input value, with `--send-input-value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_value: Option<Value>,
    /// The execution-level runtime metadata (`execution_method_type`, ...).
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
    /// The Task, when the execution is not known yet (a `POST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
}

/// `run_environment` of the Task: `{}`, or its name and/or UUID.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct RunEnvironment {
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// The Task object of a creation `POST`. Its props (`--auto-create-task-props`) go under it:
/// [`TaskBody::into_value`] adds them where the typed fields leave room.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TaskBody {
    /// The fields shared with the execution.
    #[serde(flatten)]
    pub common: Common,
    /// The Task's UUID, when known (it wins over the name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The Task's name, when its UUID is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Maximum concurrent executions (`-1`: no limit).
    pub max_concurrency: i64,
    /// The Task is created if the server does not know it.
    pub was_auto_created: bool,
    /// CloudReactor does not schedule or start it.
    pub passive: bool,
    /// Its Run Environment.
    pub run_environment: RunEnvironment,
    /// The Task-level runtime metadata (`execution_method_capability_details`, ...).
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
}

impl TaskBody {
    /// The Task as JSON, with the props under the typed fields (as in 6.0.2, where the
    /// props dictionary is updated with them).
    pub(crate) fn into_value(self, props: Option<&Map<String, Value>>) -> Value {
        let mut task = to_object(&self);
        for (k, v) in props.into_iter().flatten() {
            task.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(task)
    }
}

/// The fields of an update while the execution runs (heartbeats, status updates, attempts
/// that will be retried), beside the status fields from the process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttemptFields {
    /// Failed attempts so far (sent before a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Timed-out attempts so far (sent before a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out_attempts: Option<u32>,
    /// The exit code of the failed attempt (wrapped mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The process ID (`--send-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// The fields of the final update, before the log tails, the output value and the
/// status fields still pending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalFields {
    /// The final status.
    pub status: ExecutionStatus,
    /// The exit code (wrapped mode; embedded mode has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Failed attempts, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// Timed-out attempts, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out_attempts: Option<u32>,
    /// When the execution ended.
    pub finished_at: String,
    /// What went wrong, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    /// The peak memory of the process tree, in MB, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u64>,
    /// The execution-level runtime metadata, as of the end.
    #[serde(flatten)]
    pub metadata: Map<String, Value>,
}

/// `error_details` of a final update: what went wrong, as a JSON object whose `kind` says
/// which case it is (README "Reporting", "error_details"). It never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorDetails {
    /// The command could not be started.
    SpawnFailed {
        /// The program.
        program: String,
        /// The operating system's message.
        message: String,
        /// The `errno`, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        os_error: Option<i32>,
    },
    /// The command was killed by a signal on its last attempt.
    KilledBySignal {
        /// Its name (`SIGKILL`).
        signal: String,
        /// Its number.
        signal_number: i32,
    },
    /// The wrapper was told to stop by a signal.
    WrapperSignalled {
        /// Its name (`SIGTERM`).
        signal: String,
    },
    /// The last attempt timed out.
    TimedOut {
        /// The limit of one attempt.
        timeout_seconds: Seconds,
        /// The attempt that timed out (from 1).
        attempt: u32,
    },
    /// Variables or properties could not be resolved; the command did not run.
    UnresolvedSecrets {
        /// Each one: its name, its location (secret text hidden) and why.
        failures: Vec<UnresolvedSecret>,
    },
    /// The result file could not be read.
    ResultFile {
        /// Why.
        message: String,
    },
    /// The API server stopped the execution (its answer to an update was 409).
    Stopped {
        /// `stop_reason` of the execution (`MANUAL`, `MAX_EXECUTION_TIME_EXCEEDED`, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        stop_reason: Option<String>,
        /// Who stopped it.
        #[serde(skip_serializing_if = "Option::is_none")]
        killed_by: Option<String>,
        /// When it was marked done.
        #[serde(skip_serializing_if = "Option::is_none")]
        marked_done_at: Option<String>,
    },
    /// A Lambda invocation failed.
    LambdaError {
        /// Which ending it was, when the reporter could tell.
        #[serde(skip_serializing_if = "Option::is_none")]
        cause: Option<LambdaCause>,
        /// The `status` of `platform.runtimeDone` (`error`, `failure`, `timeout`), when the
        /// telemetry gave it.
        #[serde(skip_serializing_if = "Option::is_none")]
        runtime_done_status: Option<String>,
        /// `errorType` (`Runtime.ExitError`, `Sandbox.Timedout`, the handler's error type).
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        /// `errorMessage`.
        #[serde(skip_serializing_if = "Option::is_none")]
        error_message: Option<String>,
    },
}

/// How a Lambda invocation that did not succeed ended: `cause` of `error_details` kind
/// `lambda_error` (README "What the server is told beyond 6.0.2").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaCause {
    /// The handler returned an error: `platform.runtimeDone` status `error`, or the handler
    /// wrapper saw an error or a panic.
    HandlerError,
    /// The runtime failed (`platform.runtimeDone` status `failure`) with an `errorType` not
    /// named by another cause.
    RuntimeFailure,
    /// The runtime process exited (`errorType` `Runtime.ExitError`).
    ExitError,
    /// The function ran out of memory: `errorType` `Runtime.OutOfMemory`, or a failed
    /// invocation whose `platform.report` shows `maxMemoryUsedMB` at `memorySizeMB`.
    OutOfMemory,
    /// The function timed out: `platform.runtimeDone` status `timeout`, `errorType`
    /// `Sandbox.Timedout`, or a SHUTDOWN with reason `timeout` while it ran.
    TimedOut,
    /// The function's initialisation failed (`platform.initRuntimeDone` or
    /// `platform.initReport` with a status other than `success`).
    InitFailed,
    /// The environment shut down with reason `failure` while the invocation ran.
    EnvironmentShutdownFailure,
    /// The environment shut down for another reason (`spindown`, ...) while the invocation
    /// ran.
    EnvironmentShutdown,
}

/// One variable or property that did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedSecret {
    /// The variable, or the dotted path of the property.
    pub name: String,
    /// The location, with secret text hidden.
    pub location: String,
    /// Why.
    pub error: String,
}

/// What the Lambda reporters send under `other_runtime_metadata.aws_lambda`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LambdaDetails {
    /// The runtime's duration of the invocation, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The error type (`errorType`), when the invocation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The error message (`errorMessage`), when the invocation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The status of `platform.runtimeDone` (extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_done_status: Option<String>,
    /// The figures of `platform.report` and anything else known (extension).
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

/// `value` as a JSON object (a struct of this module always is one).
pub(crate) fn to_object<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        // The types of this module serialise to objects, and cannot fail to serialise.
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_and_limits_as_6_0_2_sends_them() {
        assert_eq!(json!(Seconds(Duration::from_secs(30))), json!(30));
        assert_eq!(json!(Seconds(Duration::from_millis(2500))), json!(2.5));
        assert_eq!(json!(Limit(None)), json!(-1));
        assert_eq!(json!(Limit(Some(Duration::from_secs(5)))), json!(5));
        assert_eq!(json!(seconds_or_null(None)), Value::Null);
    }

    #[test]
    fn statuses_are_the_api_names() {
        for s in [
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::TerminatedAfterTimeOut,
            ExecutionStatus::Aborted,
            ExecutionStatus::Stopped,
        ] {
            assert_eq!(json!(s), json!(s.as_str()));
        }
        assert_eq!(
            ExecutionStatus::of_final(FinalStatus::Stopped),
            ExecutionStatus::Stopped
        );
    }

    #[test]
    fn task_props_go_under_the_typed_fields() {
        let body = TaskBody {
            common: Common {
                is_service: false,
                schedule: String::new(),
                heartbeat_interval_seconds: Limit(None),
                api_managed_probability: 1.0,
                api_failure_report_probability: 1.0,
                api_timeout_report_probability: 1.0,
                managed_probability: 1.0,
                failure_report_probability: 1.0,
                timeout_report_probability: 1.0,
            },
            uuid: None,
            name: Some("t".into()),
            max_concurrency: -1,
            was_auto_created: true,
            passive: true,
            run_environment: RunEnvironment::default(),
            metadata: Map::new(),
        };
        let props = json!({"passive": false, "description": "kept"});
        let task = body.into_value(props.as_object());
        assert_eq!(task["passive"], true);
        assert_eq!(task["description"], "kept");
        assert_eq!(task["run_environment"], json!({}));
        assert_eq!(task["heartbeat_interval_seconds"], -1);
    }
}
