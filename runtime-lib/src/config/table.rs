//! Every setting, declared once: its name, the variables that set it (the documented spelling
//! first), its command-line option, whether offline mode ignores it, the field of the creation
//! body that reports it, and the variable the wrapped process gets it in.
//!
//! The parser ([`super::Config::from_sources`]), the child's environment
//! ([`crate::child_env`], [`crate::api::Reporter::child_env_additions`]), `proc_wrapper_params`
//! (`params_as_env`), the Lambda reporters and the extension read their names from here;
//! tests check that each one is in the README and that each wire field is in the creation
//! body. Only this file spells `PROC_WRAPPER_…` names.
//!
//! How a value is parsed and what it defaults to stay with the parser, which knows its type.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// One setting.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its name: the attribute of 6.0.2's `ProcWrapperParams`, which is also its key in
    /// `proc_wrapper_params` (`params_as_env`), or a name of ours for settings 6.0.2 has not.
    pub key: &'static str,
    /// The variables that set it, the one the README documents first (it wins when both
    /// are set).
    pub env: &'static [&'static str],
    /// Its command-line option.
    pub flag: Option<&'static str>,
    /// Offline mode ignores its variables (those the README marks *online*), as in 6.0.2.
    pub online: bool,
    /// `proc_wrapper_params` may set it (`params_as_env` reads it from there).
    pub params: bool,
    /// The field of the creation body that reports it.
    pub wire: Option<&'static str>,
    /// The variable the wrapped process gets it in, when it does (README "The wrapped
    /// process's environment").
    pub child: Option<&'static str>,
}

impl Setting {
    /// The documented variable.
    pub const fn var(&self) -> &'static str {
        self.env[0]
    }

    /// The option, or the variable when it has no option (for messages).
    pub const fn option(&self) -> &'static str {
        match self.flag {
            Some(f) => f,
            None => self.env[0],
        }
    }

    /// The variable the wrapped process gets it in (README "The wrapped process's
    /// environment").
    pub(crate) const fn child_var(&self) -> &'static str {
        match self.child {
            Some(c) => c,
            None => self.env[0],
        }
    }
}

macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $name:ident = $key:literal, [$($env:literal),+ $(,)?]
            $(, flag $flag:literal)?
            $(, wire $wire:literal)?
            $(, child $child:literal)?
            $({$($opt:ident)*})?
            ;
    )*) => {
        $(
            $(#[$doc])*
            pub const $name: Setting = Setting {
                key: $key,
                env: &[$($env),+],
                flag: settings!(@opt $($flag)?),
                online: settings!(@has online $($($opt)*)?),
                params: settings!(@has params $($($opt)*)?),
                wire: settings!(@opt $($wire)?),
                child: settings!(@opt $($child)?),
            };
        )*
        /// Every setting, in the order of the README's tables.
        pub const ALL: &[&Setting] = &[$(&$name),*];
    };
    (@opt) => { None };
    (@opt $v:literal) => { Some($v) };
    (@has $want:ident) => { false };
    (@has online online $($rest:ident)*) => { true };
    (@has params params $($rest:ident)*) => { true };
    (@has $want:ident $other:ident $($rest:ident)*) => { settings!(@has $want $($rest)*) };
}

settings! {
    // Task (README "Task").
    /// The Task's name.
    TASK_NAME = "task_name", ["PROC_WRAPPER_TASK_NAME"], flag "--task-name", child "PROC_WRAPPER_TASK_NAME";
    /// The Task's UUID.
    TASK_UUID = "task_uuid", ["PROC_WRAPPER_TASK_UUID"], flag "--task-uuid", child "PROC_WRAPPER_TASK_UUID";
    /// Create the Task if the server does not know it.
    AUTO_CREATE_TASK = "auto_create_task", ["PROC_WRAPPER_AUTO_CREATE_TASK"], flag "--auto-create-task" {online};
    /// The Run Environment of an auto-created Task, by name.
    RUN_ENVIRONMENT_NAME = "auto_create_task_run_environment_name", ["PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME"], flag "--auto-create-task-run-environment-name" {online};
    /// The Run Environment of an auto-created Task, by UUID.
    RUN_ENVIRONMENT_UUID = "auto_create_task_run_environment_uuid", ["PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_UUID"], flag "--auto-create-task-run-environment-uuid" {online};
    /// More properties of an auto-created Task.
    AUTO_CREATE_TASK_PROPS = "auto_create_task_props", ["PROC_WRAPPER_AUTO_CREATE_TASK_PROPS"], flag "--auto-create-task-props" {online};
    /// The Task is passive (`--force-task-active` says the contrary).
    TASK_IS_PASSIVE = "task_is_passive", ["PROC_WRAPPER_TASK_IS_PASSIVE"], flag "--force-task-active" {online};
    /// The execution CloudReactor created already.
    TASK_EXECUTION_UUID = "task_execution_uuid", ["PROC_WRAPPER_TASK_EXECUTION_UUID"], flag "--task-execution-uuid", child "PROC_WRAPPER_TASK_EXECUTION_UUID" {online};
    /// The version number of the Task's code.
    TASK_VERSION_NUMBER = "task_version_number", ["PROC_WRAPPER_TASK_VERSION_NUMBER"], flag "--task-version-number", wire "task_version_number", child "PROC_WRAPPER_TASK_VERSION_NUMBER";
    /// The version text of the Task's code.
    TASK_VERSION_TEXT = "task_version_text", ["PROC_WRAPPER_TASK_VERSION_TEXT"], flag "--task-version-text", wire "task_version_text", child "PROC_WRAPPER_TASK_VERSION_TEXT";
    /// The version signature of the Task's code (a commit hash).
    TASK_VERSION_SIGNATURE = "task_version_signature", ["PROC_WRAPPER_TASK_VERSION_SIGNATURE"], flag "--task-version-signature", wire "task_version_signature", child "PROC_WRAPPER_TASK_VERSION_SIGNATURE";
    /// The build's Task Execution.
    BUILD_TASK_EXECUTION_UUID = "build_task_execution_uuid", ["PROC_WRAPPER_BUILD_TASK_EXECUTION_UUID"], flag "--build-task-execution-uuid";
    /// The deployment's Task Execution.
    DEPLOYMENT_TASK_EXECUTION_UUID = "deployment_task_execution_uuid", ["PROC_WRAPPER_DEPLOYMENT_TASK_EXECUTION_UUID"], flag "--deployment-task-execution-uuid";
    /// More `execution_method_details` (read from the environment for an auto-created Task only).
    EXECUTION_METHOD_PROPS = "execution_method_props", ["PROC_WRAPPER_EXECUTION_METHOD_PROPS"], flag "--execution-method-props" {online};
    /// The execution method, when not detected.
    EXECUTION_METHOD_TYPE = "execution_method_type", ["PROC_WRAPPER_EXECUTION_METHOD_TYPE"], flag "--execution_method_type";
    /// Metadata of this instance of the Task.
    TASK_INSTANCE_METADATA = "task_instance_metadata", ["PROC_WRAPPER_TASK_INSTANCE_METADATA"], flag "--task-instance-metadata", wire "other_instance_metadata", child "PROC_WRAPPER_TASK_INSTANCE_METADATA";
    /// The Task is a service.
    SERVICE = "service", ["PROC_WRAPPER_TASK_IS_SERVICE"], flag "--service", wire "is_service" {online params};
    /// The Task's schedule.
    SCHEDULE = "schedule", ["PROC_WRAPPER_SCHEDULE"], flag "--schedule", wire "schedule" {online params};
    /// The most executions at once.
    MAX_CONCURRENCY = "max_concurrency", ["PROC_WRAPPER_TASK_MAX_CONCURRENCY", "PROC_WRAPPER_MAX_CONCURRENCY"], flag "--max-concurrency", wire "task_max_concurrency", child "PROC_WRAPPER_MAX_CONCURRENCY" {online params};
    /// The age of executions that conflict.
    MAX_CONFLICTING_AGE = "max_conflicting_age", ["PROC_WRAPPER_MAX_CONFLICTING_AGE_SECONDS"], flag "--max-conflicting-age", wire "max_conflicting_age_seconds" {online params};

    // API client (README "API client").
    /// The API server.
    API_BASE_URL = "api_base_url", ["PROC_WRAPPER_API_BASE_URL"], flag "--api-base-url", child "PROC_WRAPPER_API_BASE_URL" {online params};
    /// The API key.
    API_KEY = "api_key", ["PROC_WRAPPER_API_KEY"], flag "--api-key", child "PROC_WRAPPER_API_KEY" {online params};
    /// Seconds between heartbeats.
    API_HEARTBEAT_INTERVAL = "api_heartbeat_interval", ["PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS"], flag "--api-heartbeat-interval", wire "heartbeat_interval_seconds" {online params};
    /// How long updates are retried.
    API_ERROR_TIMEOUT = "api_error_timeout", ["PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS"], flag "--api-error-timeout", wire "api_error_timeout_seconds", child "PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS" {online params};
    /// How long the final update is retried.
    API_FINAL_UPDATE_TIMEOUT = "api_final_update_timeout", ["PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS"], flag "--api-final-update-timeout", wire "api_final_update_timeout_seconds" {online params};
    /// The delay before a retry.
    API_RETRY_DELAY = "api_retry_delay", ["PROC_WRAPPER_API_RETRY_DELAY_SECONDS"], flag "--api-retry-delay", wire "api_retry_delay_seconds", child "PROC_WRAPPER_API_RETRY_DELAY_SECONDS" {online params};
    /// The pause after retries ran out.
    API_RESUME_DELAY = "api_resume_delay", ["PROC_WRAPPER_API_RESUME_DELAY_SECONDS"], flag "--api-resume-delay", wire "api_resume_delay_seconds", child "PROC_WRAPPER_API_RESUME_DELAY_SECONDS" {online params};
    /// How long creation is retried after errors.
    API_CREATION_ERROR_TIMEOUT = "api_task_execution_creation_error_timeout", ["PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS", "PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS"], flag "--api-task-execution-creation-error-timeout", wire "api_task_execution_creation_error_timeout_seconds" {online params};
    /// How long creation is retried after conflicts.
    API_CREATION_CONFLICT_TIMEOUT = "api_task_execution_creation_conflict_timeout", ["PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS"], flag "--api-task-execution-creation-conflict-timeout", wire "api_task_execution_creation_conflict_timeout_seconds" {online params};
    /// The delay between creation attempts after a conflict.
    API_CREATION_CONFLICT_RETRY_DELAY = "api_task_execution_creation_conflict_retry_delay", ["PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS"], flag "--api-task-execution-creation-conflict-retry-delay", wire "api_task_execution_creation_conflict_retry_delay_seconds" {online params};
    /// The timeout of one request.
    API_REQUEST_TIMEOUT = "api_request_timeout", ["PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS"], flag "--api-request-timeout", wire "api_request_timeout_seconds", child "PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS" {online params};
    /// No API server at all.
    OFFLINE_MODE = "offline_mode", ["PROC_WRAPPER_OFFLINE_MODE"], flag "--offline-mode", child "PROC_WRAPPER_OFFLINE_MODE" {params};
    /// Do not run without the API server's permission.
    PREVENT_OFFLINE_EXECUTION = "prevent_offline_execution", ["PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION"], flag "--prevent-offline-execution", wire "prevent_offline_execution", child "PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION" {params};
    /// The share of executions reported.
    API_MANAGED_PROBABILITY = "api_managed_probability", ["PROC_WRAPPER_API_MANAGED_PROBABILITY", "PROC_WRAPPER_MANAGED_PROBABILITY"], flag "--api-managed-probability", wire "api_managed_probability", child "PROC_WRAPPER_API_MANAGED_PROBABILITY" {online params};
    /// The share of unreported failures reported.
    API_FAILURE_REPORT_PROBABILITY = "api_failure_report_probability", ["PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "PROC_WRAPPER_FAILURE_REPORT_PROBABILITY"], flag "--api-failure-report-probability", wire "api_failure_report_probability", child "PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY" {online params};
    /// The share of unreported timeouts reported.
    API_TIMEOUT_REPORT_PROBABILITY = "api_timeout_report_probability", ["PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY"], flag "--api-timeout-report-probability", wire "api_timeout_report_probability", child "PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY" {online params};
    /// The deployment.
    DEPLOYMENT = "deployment", ["PROC_WRAPPER_DEPLOYMENT"], flag "--deployment", child "PROC_WRAPPER_DEPLOYMENT" {online params};
    /// Send the input value.
    SEND_INPUT_VALUE = "send_input_value", ["PROC_WRAPPER_SEND_INPUT_VALUE"], flag "--send-input-value" {online params};
    /// Send the process ID.
    SEND_PID = "send_pid", ["PROC_WRAPPER_SEND_PID"], flag "--send-pid" {online params};
    /// Send the host name.
    SEND_HOSTNAME = "send_hostname", ["PROC_WRAPPER_SEND_HOSTNAME"], flag "--send-hostname" {online params};
    /// Send the runtime metadata.
    SEND_RUNTIME_METADATA = "send_runtime_metadata", ["PROC_WRAPPER_SEND_RUNTIME_METADATA"], flag "--no-send-runtime-metadata" {online params};
    /// Seconds between fetches of the runtime metadata.
    RUNTIME_METADATA_REFRESH_INTERVAL = "runtime_metadata_refresh_interval", ["PROC_WRAPPER_RUNTIME_METADATA_REFRESH_INTERVAL_SECONDS"], flag "--runtime-metadata-refresh-interval" {online params};

    // Input and result (README "Input and result").
    /// The input value.
    INPUT_VALUE = "input_value", ["PROC_WRAPPER_INPUT_VALUE"], flag "--input-value", wire "input_value", child "PROC_WRAPPER_INPUT_VALUE";
    /// The variable holding the input value.
    INPUT_ENV_VAR_NAME = "input_env_var_name", ["PROC_WRAPPER_INPUT_ENV_VAR_NAME"], flag "--input-env-var-name", child "PROC_WRAPPER_INPUT_ENV_VAR_NAME" {params};
    /// The file holding the input value.
    INPUT_FILENAME = "input_filename", ["PROC_WRAPPER_INPUT_FILENAME"], flag "--input-filename", child "PROC_WRAPPER_INPUT_FILENAME" {params};
    /// Delete the input file at the end.
    CLEANUP_INPUT_FILE = "cleanup_input_file", ["PROC_WRAPPER_CLEANUP_INPUT_FILE"], flag "--cleanup-input-file" {params};
    /// The format of the input value.
    INPUT_VALUE_FORMAT = "input_value_format", ["PROC_WRAPPER_INPUT_VALUE_FORMAT"], flag "--input-value-format", child "PROC_WRAPPER_INPUT_VALUE_FORMAT" {params};
    /// The file the process writes its result to.
    RESULT_FILENAME = "result_filename", ["PROC_WRAPPER_RESULT_FILENAME"], flag "--result-filename", child "PROC_WRAPPER_RESULT_FILENAME" {online params};
    /// The format of the result value.
    RESULT_VALUE_FORMAT = "result_value_format", ["PROC_WRAPPER_RESULT_VALUE_FORMAT"], flag "--result-value-format", child "PROC_WRAPPER_RESULT_VALUE_FORMAT" {online params};
    /// Delete the result file at the end.
    CLEANUP_RESULT_FILE = "cleanup_result_file", ["PROC_WRAPPER_CLEANUP_RESULT_FILE"], flag "--no-cleanup-result-file" {online params};

    // Logging (README "Logging").
    /// The wrapper's log level.
    LOG_LEVEL = "log_level", ["PROC_WRAPPER_LOG_LEVEL"], flag "--log-level", wire "wrapper_log_level" {params};
    /// Secret values may be logged.
    LOG_SECRETS = "log_secrets", ["PROC_WRAPPER_LOG_SECRETS"], flag "--log-secrets" {params};
    /// Log the input value.
    LOG_INPUT_VALUE = "log_input_value", ["PROC_WRAPPER_LOG_INPUT_VALUE"], flag "--log-input-value" {params};
    /// Log the result value.
    LOG_RESULT_VALUE = "log_result_value", ["PROC_WRAPPER_LOG_RESULT_VALUE"], flag "--log-result-value" {online params};
    /// Timestamps in the log (`--exclude-timestamps-in-log` says the contrary).
    INCLUDE_TIMESTAMPS_IN_LOG = "include_timestamps_in_log", ["PROC_WRAPPER_INCLUDE_TIMESTAMPS_IN_LOG"], flag "--exclude-timestamps-in-log" {params};
    /// Log lines sent with a failure.
    NUM_LOG_LINES_SENT_ON_FAILURE = "num_log_lines_sent_on_failure", ["PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE"], flag "--num-log-lines-sent-on-failure", wire "num_log_lines_sent_on_failure" {online params};
    /// Log lines sent with a timeout.
    NUM_LOG_LINES_SENT_ON_TIMEOUT = "num_log_lines_sent_on_timeout", ["PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_TIMEOUT"], flag "--num-log-lines-sent-on-timeout", wire "num_log_lines_sent_on_timeout" {online params};
    /// Log lines sent with a success.
    NUM_LOG_LINES_SENT_ON_SUCCESS = "num_log_lines_sent_on_success", ["PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS"], flag "--num-log-lines-sent-on-success", wire "num_log_lines_sent_on_success" {online params};
    /// Longer log lines are truncated.
    MAX_LOG_LINE_LENGTH = "max_log_line_length", ["PROC_WRAPPER_MAX_LOG_LINE_LENGTH"], flag "--max-log-line-length", wire "max_log_line_length" {online params};
    /// The byte cap of each log tail (ours, README "Differences" D43: 6.0.2 has none, so the
    /// creation body has no field for it; like the other log settings, the process does not get it).
    MAX_LOG_TAIL_BYTES = "max_log_tail_bytes", ["PROC_WRAPPER_MAX_LOG_TAIL_BYTES"], flag "--max-log-tail-bytes" {online params};
    /// One log tail for both streams (`--separate-stdout-and-stderr-logs` says the contrary).
    MERGE_STDOUT_AND_STDERR_LOGS = "merge_stdout_and_stderr_logs", ["PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS"], flag "--separate-stdout-and-stderr-logs", wire "merge_stdout_and_stderr_logs" {online params};
    /// Do not capture standard output.
    IGNORE_STDOUT = "ignore_stdout", ["PROC_WRAPPER_IGNORE_STDOUT"], flag "--ignore-stdout", wire "ignore_stdout" {online params};
    /// Do not capture standard error.
    IGNORE_STDERR = "ignore_stderr", ["PROC_WRAPPER_IGNORE_STDERR"], flag "--ignore-stderr", wire "ignore_stderr" {online params};

    // Process (README "Process").
    /// The command as one string.
    COMMAND_LINE = "command_line", ["PROC_WRAPPER_TASK_COMMAND"], flag "--command-line" {params};
    /// The working directory.
    WORK_DIR = "work_dir", ["PROC_WRAPPER_WORK_DIR"], flag "--work-dir" {params};
    /// Run the command in a shell.
    SHELL_MODE = "shell_mode", ["PROC_WRAPPER_SHELL_MODE"], flag "--shell-mode" {params};
    /// Strip `/bin/sh -c` wrapping.
    STRIP_SHELL_WRAPPING = "strip_shell_wrapping", ["PROC_WRAPPER_STRIP_SHELL_WRAPPING"], flag "--no-strip-shell-wrapping" {params};
    /// Signal the whole process group.
    PROCESS_GROUP_TERMINATION = "process_group_termination", ["PROC_WRAPPER_PROCESS_GROUP_TERMINATION", "PROC_WRAPPER_TERMINATE_PROCESS_GROUP"], flag "--no-process-group-termination" {params};
    /// The timeout of an attempt.
    PROCESS_TIMEOUT = "process_timeout", ["PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS"], flag "--process-timeout", wire "process_timeout_seconds", child "PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS" {params};
    /// Retries after a failure or timeout.
    PROCESS_MAX_RETRIES = "process_max_retries", ["PROC_WRAPPER_PROCESS_MAX_RETRIES", "PROC_WRAPPER_TASK_MAX_RETRIES"], flag "--process-max-retries", wire "process_max_retries" {params};
    /// The delay before a retry after a failure.
    PROCESS_RETRY_DELAY = "process_retry_delay", ["PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS"], flag "--process-retry-delay", wire "process_retry_delay_seconds" {params};
    /// Seconds between checks of the child.
    PROCESS_CHECK_INTERVAL = "process_check_interval", ["PROC_WRAPPER_PROCESS_CHECK_INTERVAL_SECONDS"], flag "--process-check-interval" {params};
    /// Seconds between SIGTERM and SIGKILL.
    PROCESS_TERMINATION_GRACE_PERIOD = "process_termination_grace_period", ["PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS"], flag "--process-termination-grace-period", wire "process_termination_grace_period_seconds", child "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS" {params};

    // Status updates (README "Status updates").
    /// Listen for UDP status updates.
    ENABLE_STATUS_UPDATE_LISTENER = "enable_status_update_listener", ["PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER"], flag "--enable-status-update-listener", child "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER" {online params};
    /// Its UDP port.
    STATUS_UPDATE_SOCKET_PORT = "status_update_socket_port", ["PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", "PROC_WRAPPER_STATUS_UPDATE_PORT"], flag "--status-update-socket-port", wire "status_update_port", child "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT" {online params};
    /// The largest message.
    STATUS_UPDATE_MESSAGE_MAX_BYTES = "status_update_message_max_bytes", ["PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES"], flag "--status-update-message-max-bytes", wire "status_update_message_max_bytes", child "PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES" {online params};
    /// The least time between updates with status fields.
    STATUS_UPDATE_INTERVAL = "status_update_interval", ["PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS"], flag "--status-update-interval", wire "status_update_interval_seconds", child "PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS" {online params};
    /// Where the process sends its status updates (the wrapper tells it; nobody sets it).
    STATUS_UPDATE_HOST = "status_update_host", ["PROC_WRAPPER_STATUS_UPDATE_HOST"], child "PROC_WRAPPER_STATUS_UPDATE_HOST";

    // Environment/configuration resolution (README "Environment/configuration resolution").
    /// Locations of variables.
    ENV_LOCATIONS = "env_locations", ["PROC_WRAPPER_ENV_LOCATIONS"], flag "--env" {params};
    /// Locations of configuration.
    CONFIG_LOCATIONS = "config_locations", ["PROC_WRAPPER_CONFIG_LOCATIONS"], flag "--config" {params};
    /// How locations are merged.
    CONFIG_MERGE_STRATEGY = "config_merge_strategy", ["PROC_WRAPPER_CONFIG_MERGE_STRATEGY"], flag "--config-merge-strategy" {params};
    /// Resolved values overwrite variables (no effect, as in 6.0.2).
    OVERWRITE_ENV = "overwrite_env_during_resolution", ["PROC_WRAPPER_OVERWRITE_ENV_WITH_SECRETS"], flag "--overwrite-env-during-resolution" {params};
    /// Resolve secret locations at all.
    RESOLVE_SECRETS = "resolve_secrets", ["PROC_WRAPPER_RESOLVE_SECRETS"];
    /// How deep nested configuration is resolved.
    MAX_CONFIG_RESOLUTION_DEPTH = "max_config_resolution_depth", ["PROC_WRAPPER_MAX_CONFIG_RESOLUTION_DEPTH"] {params};
    /// How many resolution passes.
    MAX_CONFIG_RESOLUTION_ITERATIONS = "max_config_resolution_iterations", ["PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS"] {params};
    /// The time to live of fetched values.
    CONFIG_TTL = "config_ttl", ["PROC_WRAPPER_CONFIG_TTL_SECONDS"], flag "--config-ttl" {params};
    /// Stop at the first resolution failure.
    FAIL_FAST_CONFIG_RESOLUTION = "fail_fast_config_resolution", ["PROC_WRAPPER_FAIL_FAST_CONFIG_RESOLUTION"], flag "--no-fail-fast-config-resolution" {params};
    /// The prefix of variables to resolve.
    RESOLVED_ENV_VAR_NAME_PREFIX = "resolved_env_var_name_prefix", ["PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_PREFIX"], flag "--resolved-env-var-name-prefix" {params};
    /// The suffix of variables to resolve.
    RESOLVED_ENV_VAR_NAME_SUFFIX = "resolved_env_var_name_suffix", ["PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_SUFFIX"], flag "--resolved-env-var-name-suffix" {params};
    /// The prefix of configuration properties to resolve.
    RESOLVED_CONFIG_PROPERTY_NAME_PREFIX = "resolved_config_property_name_prefix", ["PROC_WRAPPER_RESOLVABLE_CONFIG_PROPERTY_NAME_PREFIX"], flag "--resolved-config-property-name-prefix" {params};
    /// The suffix of configuration properties to resolve.
    RESOLVED_CONFIG_PROPERTY_NAME_SUFFIX = "resolved_config_property_name_suffix", ["PROC_WRAPPER_RESOLVABLE_CONFIG_PROPERTY_NAME_SUFFIX"], flag "--resolved-config-property-name-suffix" {params};
    /// The variable that receives the configuration as JSON.
    ENV_VAR_NAME_FOR_CONFIG = "env_var_name_for_config", ["PROC_WRAPPER_ENV_VAR_NAME_FOR_CONFIG"], flag "--env-var-name-for-config" {params};
    /// The configuration property that receives the environment.
    CONFIG_PROPERTY_NAME_FOR_ENV = "config_property_name_for_env", ["PROC_WRAPPER_CONFIG_PROPERTY_NAME_FOR_ENV"], flag "--config-property-name-for-env" {params};
    /// The file that receives the resolved environment.
    ENV_OUTPUT_FILENAME = "env_output_filename", ["PROC_WRAPPER_ENV_OUTPUT_FILENAME"], flag "--env-output-filename", child "PROC_WRAPPER_ENV_OUTPUT_FILENAME" {params};
    /// Its format.
    ENV_OUTPUT_FORMAT = "env_output_format", ["PROC_WRAPPER_ENV_OUTPUT_FORMAT"], flag "--env-output-format", child "PROC_WRAPPER_ENV_OUTPUT_FORMAT" {params};
    /// The file that receives the resolved configuration.
    CONFIG_OUTPUT_FILENAME = "config_output_filename", ["PROC_WRAPPER_CONFIG_OUTPUT_FILENAME"], flag "--config-output-filename", child "PROC_WRAPPER_CONFIG_OUTPUT_FILENAME" {params};
    /// Its format.
    CONFIG_OUTPUT_FORMAT = "config_output_format", ["PROC_WRAPPER_CONFIG_OUTPUT_FORMAT"], flag "--config-output-format", child "PROC_WRAPPER_CONFIG_OUTPUT_FORMAT" {params};
    /// The region of the AWS secret providers.
    SECRETS_AWS_REGION = "secrets_aws_region", ["PROC_WRAPPER_SECRETS_AWS_REGION"];
    /// The backoff base of AWS retries after throttling.
    AWS_RETRY_BASE_DELAY = "aws_retry_base_delay", ["PROC_WRAPPER_AWS_RETRY_BASE_DELAY_SECONDS"];

    // Containers and Rollbar (README "Containers (ECS sidecar) and Rollbar").
    /// The container running the main process.
    MAIN_CONTAINER_NAME = "main_container_name", ["PROC_WRAPPER_MAIN_CONTAINER_NAME"], flag "--main-container-name", child "PROC_WRAPPER_MAIN_CONTAINER_NAME";
    /// The container running the wrapper.
    MONITOR_CONTAINER_NAME = "monitor_container_name", ["PROC_WRAPPER_MONITOR_CONTAINER_NAME"], flag "--monitor-container-name", child "PROC_WRAPPER_MONITOR_CONTAINER_NAME";
    /// The wrapper watches another container.
    SIDECAR_CONTAINER_MODE = "sidecar_container_mode", ["PROC_WRAPPER_SIDECAR_CONTAINER_MODE"], flag "--sidecar-container-mode", child "PROC_WRAPPER_SIDECAR_CONTAINER_MODE";
    /// Rollbar's access token.
    ROLLBAR_ACCESS_TOKEN = "rollbar_access_token", ["PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN"], flag "--rollbar-access-token", child "PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN";
    /// Retries of a Rollbar request.
    ROLLBAR_RETRIES = "rollbar_retries", ["PROC_WRAPPER_ROLLBAR_RETRIES"], flag "--rollbar-retries", child "PROC_WRAPPER_ROLLBAR_RETRIES";
    /// The delay between them.
    ROLLBAR_RETRY_DELAY = "rollbar_retry_delay", ["PROC_WRAPPER_ROLLBAR_RETRY_DELAY_SECONDS"], flag "--rollbar-retry-delay", child "PROC_WRAPPER_ROLLBAR_RETRY_DELAY_SECONDS";
    /// The timeout of a Rollbar request.
    ROLLBAR_TIMEOUT = "rollbar_timeout", ["PROC_WRAPPER_ROLLBAR_TIMEOUT_SECONDS", "PROC_WRAPPER_ROLLBAR_TIMEOUT"], flag "--rollbar-timeout", child "PROC_WRAPPER_ROLLBAR_TIMEOUT";
    /// Rollbar's address (for proxies and tests).
    ROLLBAR_BASE_URL = "rollbar_base_url", ["PROC_WRAPPER_ROLLBAR_BASE_URL"];

    // AWS Lambda (README "AWS Lambda").
    /// The longest time reporting adds to an invocation.
    LAMBDA_MAX_ADDED = "lambda_max_added_ms", ["PROC_WRAPPER_LAMBDA_MAX_ADDED_MS"];
    /// `cloudreactor-extension` runs beside the function.
    LAMBDA_EXTENSION = "lambda_extension", ["PROC_WRAPPER_LAMBDA_EXTENSION"];
    /// How soon the extension creates the execution of an invocation still running.
    EXTENSION_CREATION_DELAY = "extension_creation_delay_ms", ["PROC_WRAPPER_EXTENSION_CREATION_DELAY_MS"];
    /// The port of the extension's Telemetry API listener.
    EXTENSION_TELEMETRY_PORT = "extension_telemetry_port", ["PROC_WRAPPER_EXTENSION_TELEMETRY_PORT"];
    /// The time the extension keeps free before the SHUTDOWN deadline.
    EXTENSION_SHUTDOWN_MARGIN = "extension_shutdown_margin_ms", ["PROC_WRAPPER_EXTENSION_SHUTDOWN_MARGIN_MS"];
    /// How long the extension waits for telemetry before it concludes none comes.
    EXTENSION_TELEMETRY_WAIT = "extension_telemetry_wait_ms", ["PROC_WRAPPER_EXTENSION_TELEMETRY_WAIT_MS"];
    /// Invocations this close to the previous one are reported in the background.
    EXTENSION_FREQUENT_INTERVAL = "extension_frequent_interval_seconds", ["PROC_WRAPPER_EXTENSION_FREQUENT_INTERVAL_SECONDS"];
    /// The most reports the Lambda reporters keep while the API server is down.
    EXTENSION_BACKLOG_MAX = "extension_backlog_max", ["PROC_WRAPPER_EXTENSION_BACKLOG_MAX"];
    /// The extension's Runtime API proxy, between the runtime and Lambda.
    LAMBDA_RUNTIME_PROXY = "lambda_runtime_proxy", ["PROC_WRAPPER_LAMBDA_RUNTIME_PROXY"];
    /// The port of that proxy on `127.0.0.1`.
    LAMBDA_RUNTIME_PROXY_PORT = "lambda_runtime_proxy_port", ["PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT"];
    /// The program the layer's `bootstrap` runs for an OS-only runtime.
    LAMBDA_BOOTSTRAP_COMMAND = "lambda_bootstrap_command", ["PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND"];
}

/// The setting of a `proc_wrapper_params` key, or of a variable.
pub(crate) fn by_key(key: &str) -> Option<&'static Setting> {
    ALL.iter().copied().find(|s| s.key == key)
}

/// The settings of a `proc_wrapper_params` object (README "Embedded mode: Rust programs") as
/// the variables that carry them: its top-level keys, and `task`, `task_execution` and
/// `rollbar`. Keys that are not settings are ignored, as 6.0.2 ignores them.
pub(crate) fn params_as_env(params: &Map<String, Value>) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let mut put = |s: &Setting, v: &Value| {
        if let Some(text) = text(v) {
            env.insert(s.var().to_owned(), text);
        }
    };
    for (key, value) in params {
        match (key.as_str(), value) {
            ("task", Value::Object(task)) => {
                for (k, v) in task {
                    match k.as_str() {
                        "name" => put(&TASK_NAME, v),
                        "uuid" => put(&TASK_UUID, v),
                        "was_auto_created" => put(&AUTO_CREATE_TASK, v),
                        "passive" => put(&TASK_IS_PASSIVE, v),
                        "other_metadata" if v.is_object() => {
                            let json = crate::secrets::format::python_json(v);
                            put(&TASK_INSTANCE_METADATA, &Value::String(json));
                        }
                        "run_environment" => {
                            put(&RUN_ENVIRONMENT_NAME, &v["name"]);
                            put(&RUN_ENVIRONMENT_UUID, &v["uuid"]);
                        }
                        _ => {}
                    }
                }
            }
            ("task_execution", Value::Object(te)) => {
                for (k, v) in te {
                    match k.as_str() {
                        "uuid" => put(&TASK_EXECUTION_UUID, v),
                        "version_number" => put(&TASK_VERSION_NUMBER, v),
                        "version_text" => put(&TASK_VERSION_TEXT, v),
                        "version_signature" => put(&TASK_VERSION_SIGNATURE, v),
                        _ => {}
                    }
                }
            }
            ("rollbar", Value::Object(rb)) => {
                for (k, v) in rb {
                    let setting = match k.as_str() {
                        "access_token" => &ROLLBAR_ACCESS_TOKEN,
                        "retries" => &ROLLBAR_RETRIES,
                        "retry_delay" => &ROLLBAR_RETRY_DELAY,
                        "timeout" => &ROLLBAR_TIMEOUT,
                        _ => continue,
                    };
                    put(setting, v);
                }
            }
            (key, v) => {
                if let Some(s) = by_key(key).filter(|s| s.params) {
                    put(s, v);
                }
            }
        }
    }
    env
}

/// A parameter as the text of its variable: booleans `TRUE`/`FALSE`, lists of locations
/// joined with `,` (commas in them escaped); `None` for null and objects.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Object(_) => None,
        Value::Bool(b) => Some(crate::child_env::bool_text(*b).to_owned()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.replace(',', "\\,").replace(';', "\\;"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Number(n) => Some(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_unique() {
        let mut keys = std::collections::HashSet::new();
        let mut vars = std::collections::HashSet::new();
        for s in ALL {
            assert!(keys.insert(s.key), "{} twice", s.key);
            for v in s.env {
                assert!(vars.insert(*v), "{v} twice");
                assert!(v.starts_with("PROC_WRAPPER_"), "{v}");
            }
        }
    }

    /// Every variable and option is in the README, where users look for them.
    #[test]
    fn every_setting_is_in_the_readme() {
        let readme = include_str!("../../../README.md");
        for s in ALL {
            for v in s.env {
                assert!(
                    readme.contains(&format!("`{v}`")),
                    "{v} is not in the README"
                );
            }
            if let Some(f) = s.flag {
                assert!(readme.contains(f), "{f} is not in the README");
            }
            if let Some(c) = s.child {
                assert!(readme.contains(c), "{c} is not in the README");
            }
        }
    }

    /// Each wire field is in the creation body that a run sends.
    #[test]
    fn every_wire_field_is_in_the_creation_body() {
        let config = crate::config::from_pairs(&[
            ("PROC_WRAPPER_TASK_NAME", "t"),
            ("PROC_WRAPPER_TASK_INSTANCE_METADATA", "{}"),
            ("PROC_WRAPPER_SEND_INPUT_VALUE", "TRUE"),
        ]);
        let metadata = crate::metadata::RuntimeMetadata::unknown();
        let body = crate::task::wire::to_object(&crate::task::body::creation(
            &config,
            &metadata,
            crate::task::body::CreationParts {
                mode: crate::task::Mode::Wrapped,
                started_at: &crate::time::UtcTime::now(),
                input_value: Some(&json!("x")),
                with_task: true,
                passive: true,
            },
        ));
        for s in ALL {
            if let Some(w) = s.wire {
                assert!(body.contains_key(w), "{w} ({}) is not in {body:?}", s.key);
            }
        }
    }

    #[test]
    fn params_become_variables() {
        let params = json!({
            "task": {"name": "A task", "was_auto_created": true, "passive": true,
                     "run_environment": {"name": "myenv"}},
            "log_level": "DEBUG",
            "api_base_url": "http://x",
            "api_key": "K",
            "process_max_retries": 1,
            "api_heartbeat_interval": 40,
            "service": true,
            "max_concurrency": 2,
            "env_locations": ["a.env", "b,c.env"],
            "rollbar": {"access_token": "RB"},
            "task_execution": {"uuid": "abcde"},
            "not_a_setting": 1,
        });
        let env = params_as_env(params.as_object().unwrap());
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("PROC_WRAPPER_TASK_NAME"), Some("A task"));
        assert_eq!(get("PROC_WRAPPER_AUTO_CREATE_TASK"), Some("TRUE"));
        assert_eq!(
            get("PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME"),
            Some("myenv")
        );
        assert_eq!(get("PROC_WRAPPER_API_BASE_URL"), Some("http://x"));
        assert_eq!(get("PROC_WRAPPER_API_KEY"), Some("K"));
        assert_eq!(get("PROC_WRAPPER_PROCESS_MAX_RETRIES"), Some("1"));
        assert_eq!(
            get("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS"),
            Some("40")
        );
        assert_eq!(get("PROC_WRAPPER_TASK_IS_SERVICE"), Some("TRUE"));
        assert_eq!(get("PROC_WRAPPER_TASK_MAX_CONCURRENCY"), Some("2"));
        assert_eq!(get("PROC_WRAPPER_ENV_LOCATIONS"), Some("a.env,b\\,c.env"));
        assert_eq!(get("PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN"), Some("RB"));
        assert_eq!(get("PROC_WRAPPER_TASK_EXECUTION_UUID"), Some("abcde"));
        assert_eq!(get("PROC_WRAPPER_LOG_LEVEL"), Some("DEBUG"));
        assert!(!env.keys().any(|k| k.contains("NOT_A_SETTING")));
    }
}
