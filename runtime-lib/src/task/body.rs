//! The body builder: the settings and the runtime metadata of a run, turned into the wire
//! bodies of [`super::wire`]. Every front end (wrapped mode, embedded mode, the Lambda
//! handler wrapper and the extension) builds its bodies here, so a field is added once.

use serde_json::{Map, Value};
use tracing::warn;

use super::wire::{
    AttemptFields, Common, Creation, ExecutionStatus, FinalFields, Limit, Link, RunEnvironment,
    Seconds, TaskBody, seconds_or_null,
};
use crate::config::{Config, LogLevel};
use crate::metadata::RuntimeMetadata;
use crate::process::{FinalStatus, Outcome};
use crate::time::UtcTime;

/// Who runs the work being reported, which changes what some bodies carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `proc_wrapper` runs a command: exit codes, heartbeats.
    Wrapped,
    /// A function in the program itself (`ManagedCall`, the Lambda reporters): no exit
    /// codes; failed attempts are reported only with a failure.
    Embedded,
}

/// The `passive` flag of the Task object, as 6.0.2 decides it: the configured one, except
/// that an auto-created Task stays passive when no execution method capability is known (no
/// ECS or Lambda metadata), since the server refuses an active Task with an unknown execution
/// method (400 "Non-passive Tasks may not have an Unknown execution method"). Warns when it
/// overrides the configuration.
pub(crate) fn task_passive(config: &Config, metadata: &RuntimeMetadata) -> bool {
    if config.task.auto_create
        && !config.task.passive
        && !metadata
            .task
            .contains_key("execution_method_capability_details")
    {
        warn!(
            "Task may not be active unless execution method capability can be determined; \
             reporting it as passive"
        );
        return true;
    }
    config.task.passive
}

/// The log level as Python names it.
fn python_level(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace | LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
        LogLevel::Critical => "CRITICAL",
    }
}

/// The fields sent with both the execution and its Task.
pub fn common(config: &Config) -> Common {
    Common {
        is_service: config.task.is_service,
        schedule: config.task.schedule.clone().unwrap_or_default(),
        heartbeat_interval_seconds: Limit(config.api.heartbeat_interval),
        api_managed_probability: config.api.managed_probability,
        api_failure_report_probability: config.api.failure_report_probability,
        api_timeout_report_probability: config.api.timeout_report_probability,
        managed_probability: config.api.managed_probability,
        failure_report_probability: config.api.failure_report_probability,
        timeout_report_probability: config.api.timeout_report_probability,
    }
}

/// What a creation request says beyond the settings.
#[derive(Debug, Clone, Copy)]
pub struct CreationParts<'a> {
    /// Wrapped or embedded.
    pub mode: Mode,
    /// When the execution started.
    pub started_at: &'a UtcTime,
    /// The input value, sent with `--send-input-value`.
    pub input_value: Option<&'a Value>,
    /// The execution is not known yet: the body carries the Task (a `POST`).
    pub with_task: bool,
    /// The Task's `passive` flag (`task_passive`).
    pub passive: bool,
}

/// The body of the creation request ([`Creation`]).
pub fn creation(config: &Config, metadata: &RuntimeMetadata, parts: CreationParts<'_>) -> Creation {
    let c = config;
    Creation {
        embedded_mode: parts.mode == Mode::Embedded,
        started_at: parts.started_at.iso8601(),
        status: ExecutionStatus::Running,
        task_version_number: c.task.version_number,
        task_version_text: c.task.version_text.clone(),
        task_version_signature: c.task.version_signature.clone(),
        process_timeout_seconds: seconds_or_null(c.process.timeout),
        process_max_retries: c.process.max_retries.map_or(-1, i64::from),
        process_retry_delay_seconds: Seconds(c.process.retry_delay),
        task_max_concurrency: c.task.max_concurrency,
        max_conflicting_age_seconds: seconds_or_null(c.task.max_conflicting_age),
        prevent_offline_execution: c.prevent_offline_execution,
        process_termination_grace_period_seconds: Limit(c.process.termination_grace_period),
        wrapper_log_level: python_level(c.log.level),
        wrapper_family: crate::WRAPPER_FAMILY,
        wrapper_version: crate::VERSION,
        api_error_timeout_seconds: Limit(c.api.error_timeout),
        api_retry_delay_seconds: Seconds(c.api.retry_delay),
        api_resume_delay_seconds: Limit(c.api.resume_delay),
        api_task_execution_creation_error_timeout_seconds: Limit(c.api.creation_error_timeout),
        api_task_execution_creation_conflict_timeout_seconds: Limit(
            c.api.creation_conflict_timeout,
        ),
        api_task_execution_creation_conflict_retry_delay_seconds: Seconds(
            c.api.creation_conflict_retry_delay,
        ),
        api_final_update_timeout_seconds: Limit(c.api.final_update_timeout),
        api_request_timeout_seconds: Limit(c.api.request_timeout),
        status_update_interval_seconds: seconds_or_null(c.status.interval),
        status_update_port: c.status.port,
        status_update_message_max_bytes: c.status.message_max_bytes,
        num_log_lines_sent_on_failure: c.log.num_log_lines_sent_on_failure,
        num_log_lines_sent_on_timeout: c.log.num_log_lines_sent_on_timeout,
        num_log_lines_sent_on_success: c.log.num_log_lines_sent_on_success,
        max_log_line_length: c.log.max_log_line_length,
        merge_stdout_and_stderr_logs: c.log.merge_stdout_and_stderr,
        ignore_stdout: c.log.ignore_stdout,
        ignore_stderr: c.log.ignore_stderr,
        common: common(c),
        deployment: c.api.deployment.clone(),
        build: c.task.build_task_execution_uuid.as_deref().map(Link::to),
        deploy: c
            .task
            .deployment_task_execution_uuid
            .as_deref()
            .map(Link::to),
        process_command: (c.process.command_line.is_none() && !c.process.command.is_empty())
            .then(|| c.process.command.join(" ")),
        hostname: if c.api.send_hostname {
            metadata.hostname()
        } else {
            None
        },
        other_instance_metadata: c.task.instance_metadata.clone(),
        input_value: if c.api.send_input_value {
            parts.input_value.cloned()
        } else {
            None
        },
        metadata: if c.api.send_runtime_metadata {
            metadata.execution_fields(c)
        } else {
            Map::new()
        },
        task: parts
            .with_task
            .then(|| task(config, metadata, parts.passive)),
    }
}

/// The Task object of a creation `POST`.
fn task(config: &Config, metadata: &RuntimeMetadata, passive: bool) -> Value {
    let c = config;
    let (uuid, name) = match (&c.task.uuid, &c.task.name) {
        (Some(u), _) => (Some(u.clone()), None),
        (None, n) => (None, n.clone()),
    };
    let run_environment = RunEnvironment {
        name: c.task.run_environment_name.clone(),
        uuid: c.task.run_environment_uuid.clone(),
    };
    let mut metadata = if c.api.send_runtime_metadata {
        metadata.task_fields(c)
    } else {
        c.task
            .execution_method_type
            .iter()
            .map(|t| ("execution_method_type".to_owned(), Value::from(t.as_str())))
            .collect()
    };
    // The props of an auto-created Task win over the detected values of these (6.0.2).
    const FROM_PROPS: [&str; 5] = [
        "execution_method_type",
        "infrastructure_type",
        "allocated_cpu_units",
        "allocated_memory_mb",
        "ip_v4_addresses",
    ];
    if let Some(props) = &c.task.auto_create_task_props {
        for key in FROM_PROPS {
            if let Some(v) = props.get(key).filter(|v| !v.is_null()) {
                metadata.insert(key.to_owned(), v.clone());
            }
        }
    }
    TaskBody {
        common: common(c),
        uuid,
        name,
        max_concurrency: c.task.max_concurrency.unwrap_or(-1),
        was_auto_created: c.task.auto_create,
        passive,
        run_environment,
        metadata,
    }
    .into_value(c.task.auto_create_task_props.as_ref())
}

/// The fields of the final update for `outcome` ([`FinalFields`]).
pub fn final_fields(
    config: &Config,
    metadata: &RuntimeMetadata,
    mode: Mode,
    outcome: &Outcome,
) -> FinalFields {
    let status = ExecutionStatus::of_final(outcome.status);
    // A run the server stopped has no exit code of its own (the wrapper stopped it).
    let exit_code = match (mode, outcome.exit_code, outcome.status) {
        (Mode::Embedded, _, _) | (_, None, FinalStatus::Stopped) => None,
        (_, Some(code), _) => Some(code),
        (_, None, FinalStatus::Succeeded) => Some(0),
        (_, None, _) => Some(1),
    };
    // Embedded mode reports failed attempts only with a failure, as the original does.
    let failed_attempts = (outcome.failed_attempts > 0
        && !(mode == Mode::Embedded && outcome.status == FinalStatus::Succeeded))
        .then_some(outcome.failed_attempts);
    FinalFields {
        status,
        exit_code,
        failed_attempts,
        timed_out_attempts: (outcome.timed_out_attempts > 0).then_some(outcome.timed_out_attempts),
        finished_at: UtcTime::now().iso8601(),
        error_details: outcome.error.clone(),
        max_memory_mb: outcome.max_memory_mb,
        metadata: if config.api.send_runtime_metadata {
            metadata.update_fields()
        } else {
            Map::new()
        },
    }
}

/// The fields of an update that reports a failed attempt before a retry.
pub fn attempt_failed(mode: Mode, failed_attempts: u32, exit_code: i32) -> AttemptFields {
    AttemptFields {
        failed_attempts: Some(failed_attempts),
        // An embedded function has no exit code.
        exit_code: (mode == Mode::Wrapped).then_some(exit_code),
        ..AttemptFields::default()
    }
}

/// The fields of an update that reports a timed-out attempt before a retry.
pub fn attempt_timed_out(timed_out_attempts: u32) -> AttemptFields {
    AttemptFields {
        timed_out_attempts: Some(timed_out_attempts),
        ..AttemptFields::default()
    }
}
