//! The command line of `proc_wrapper`, as clap derive groups.
// The doc comments of this module are also the `--help` text, where URLs stay plain.
#![allow(rustdoc::bare_urls)]
//!
//! This module owns only the *shape* of the command line: option names, help text and
//! grouping, matching `python -m proc_wrapper` 6.0.2. It does not read the environment and
//! does not validate values: numbers, JSON and durations arrive here as text so that
//! [`crate::config::Config::from_sources`] can parse them with the same rules (and the same
//! error messages) whether they come from an option or from a `PROC_WRAPPER_*` variable, and
//! apply the precedence of the original (environment over command line).

use clap::{Args as ClapArgs, Parser};

/// Help heading of the Task settings.
pub(crate) const TASK: &str = "Task settings";
/// Help heading of the API client settings.
pub const API: &str = "API client settings";
/// Help heading of the input and result settings.
pub(crate) const IO: &str = "Input and result settings";
/// Help heading of the logging settings.
pub(crate) const LOG: &str = "Logging settings";
/// Help heading of the process settings.
pub(crate) const PROCESS: &str = "Process settings";
/// Help heading of the status update settings.
pub(crate) const UPDATES: &str = "Status update settings";
/// Help heading of the environment/configuration resolution settings.
pub(crate) const CONFIGURATION: &str = "Environment/configuration resolution settings";
/// Help heading of the ECS container settings.
pub(crate) const CONTAINER: &str = "Container settings";
/// Help heading of the Rollbar settings.
pub(crate) const ROLLBAR: &str = "Rollbar settings";

/// Everything `proc_wrapper` accepts on its command line.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "proc_wrapper",
    about = "Wraps the execution of processes so that a service API endpoint (CloudReactor) \
             is optionally informed of the progress. Also implements retries, timeouts, and \
             secret injection into the environment.",
    after_help = "Environment variables named in [env: ...] take precedence over the command \
                  line, except for the environment/configuration resolution settings, where \
                  the command line wins. Numbers of seconds may be -1 to mean \"no limit\".",
    disable_version_flag = true,
    allow_negative_numbers = true,
    max_term_width = 100
)]
pub struct Args {
    /// Print the version and exit
    #[arg(short = 'v', long = "version")]
    pub version: bool,

    // The groups: plain comments, since clap would take doc comments as help text.
    #[allow(missing_docs)]
    #[command(flatten)]
    pub task: TaskArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub io: IoArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub log: LogArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub process: ProcessArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub updates: UpdateArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub configuration: ConfigurationArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub container: ContainerArgs,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub rollbar: RollbarArgs,

    /// The command to run, with its arguments (put `--` before it if it starts with `-`)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        num_args = 0..
    )]
    pub command: Vec<String>,
}

/// Task settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = TASK)]
pub struct TaskArgs {
    /// Name of the Task (the Task name or the Task UUID must be given) [env: PROC_WRAPPER_TASK_NAME]
    #[arg(short = 'n', long, value_name = "NAME")]
    pub task_name: Option<String>,
    /// UUID of the Task (the Task name or the Task UUID must be given) [env: PROC_WRAPPER_TASK_UUID]
    #[arg(long, value_name = "UUID")]
    pub task_uuid: Option<String>,
    /// Create the Task even if not known by the API server [env: PROC_WRAPPER_AUTO_CREATE_TASK]
    #[arg(short = 'a', long)]
    pub auto_create_task: bool,
    /// Name of the Run Environment of an auto-created Task. Defaults to the deployment name if
    /// the Run Environment UUID is not given [env: PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME]
    #[arg(long, value_name = "NAME")]
    pub auto_create_task_run_environment_name: Option<String>,
    /// UUID of the Run Environment of an auto-created Task [env: PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_UUID]
    #[arg(long, value_name = "UUID")]
    pub auto_create_task_run_environment_uuid: Option<String>,
    /// Additional properties of the auto-created Task, as a JSON object [env: PROC_WRAPPER_AUTO_CREATE_TASK_PROPS]
    #[arg(long, value_name = "JSON")]
    pub auto_create_task_props: Option<String>,
    /// Make the auto-created Task active (scheduled or a service) instead of passive
    /// [env: PROC_WRAPPER_TASK_IS_PASSIVE, inverted]
    #[arg(long)]
    pub force_task_active: bool,
    /// UUID of an existing Task Execution to attach to [env: PROC_WRAPPER_TASK_EXECUTION_UUID]
    #[arg(long, value_name = "UUID")]
    pub task_execution_uuid: Option<String>,
    /// Numeric version of the Task's source code [env: PROC_WRAPPER_TASK_VERSION_NUMBER]
    #[arg(long, value_name = "NUMBER")]
    pub task_version_number: Option<String>,
    /// Human readable version of the Task's source code [env: PROC_WRAPPER_TASK_VERSION_TEXT]
    #[arg(long, value_name = "TEXT")]
    pub task_version_text: Option<String>,
    /// Version signature of the Task's source code, such as a git commit hash
    /// [env: PROC_WRAPPER_TASK_VERSION_SIGNATURE]
    #[arg(long, value_name = "SIGNATURE")]
    pub task_version_signature: Option<String>,
    /// UUID of the Task Execution that built this Task [env: PROC_WRAPPER_BUILD_TASK_EXECUTION_UUID]
    #[arg(long, value_name = "UUID")]
    pub build_task_execution_uuid: Option<String>,
    /// UUID of the Task Execution that deployed this Task [env: PROC_WRAPPER_DEPLOYMENT_TASK_EXECUTION_UUID]
    #[arg(long, value_name = "UUID")]
    pub deployment_task_execution_uuid: Option<String>,
    /// Additional properties of the execution method, as a JSON object
    /// [env: PROC_WRAPPER_EXECUTION_METHOD_PROPS]
    #[arg(long, value_name = "JSON")]
    pub execution_method_props: Option<String>,
    /// Execution method: "AWS ECS", "AWS Lambda", "AWS CodeBuild", "AWS EC2" or "Unknown".
    /// Detected when not given [env: PROC_WRAPPER_EXECUTION_METHOD_TYPE]
    #[arg(
        long = "execution_method_type",
        alias = "execution-method-type",
        value_name = "TYPE"
    )]
    pub execution_method_type: Option<String>,
    /// Additional metadata about the Task instance, as a JSON object
    /// [env: PROC_WRAPPER_TASK_INSTANCE_METADATA]
    #[arg(long, value_name = "JSON")]
    pub task_instance_metadata: Option<String>,
    /// The Task is a service that should run indefinitely [env: PROC_WRAPPER_TASK_IS_SERVICE]
    #[arg(short = 's', long)]
    pub service: bool,
    /// Run schedule reported to the API server [env: PROC_WRAPPER_SCHEDULE]
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// Maximum number of concurrent Task Executions of the Task; -1 means no limit
    /// [env: PROC_WRAPPER_TASK_MAX_CONCURRENCY or PROC_WRAPPER_MAX_CONCURRENCY]
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<String>,
    /// Maximum age of conflicting Task Executions to consider, in seconds; -1 means no limit
    /// [env: PROC_WRAPPER_MAX_CONFLICTING_AGE_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub max_conflicting_age: Option<String>,
}

/// API client settings. `Debug` hides the API key.
#[derive(Clone, Default, ClapArgs)]
#[command(next_help_heading = API)]
pub struct ApiArgs {
    /// Base URL of the API server. Defaults to https://api.cloudreactor.io
    /// [env: PROC_WRAPPER_API_BASE_URL]
    #[arg(long, value_name = "URL")]
    pub api_base_url: Option<String>,
    /// API key, with at least the Task access level (Developer for auto-created Tasks)
    /// [env: PROC_WRAPPER_API_KEY]
    #[arg(short = 'k', long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Seconds between heartbeats sent to the API server; -1 means no heartbeats. Defaults to 300
    /// [env: PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_heartbeat_interval: Option<String>,
    /// Seconds to keep retrying while the API server answers with recoverable errors; -1 means
    /// forever. Defaults to 300 [env: PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_error_timeout: Option<String>,
    /// Seconds to keep retrying the final update before exiting; -1 means forever. Defaults to
    /// 1800 [env: PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_final_update_timeout: Option<String>,
    /// Seconds to wait before retrying an API request. Defaults to 120
    /// [env: PROC_WRAPPER_API_RETRY_DELAY_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_retry_delay: Option<String>,
    /// Seconds to wait before resuming API requests after retries are exhausted; -1 means never
    /// resume. Defaults to 600 [env: PROC_WRAPPER_API_RESUME_DELAY_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_resume_delay: Option<String>,
    /// Seconds to keep retrying Task Execution creation while the API server answers with
    /// errors; -1 means forever. Defaults to 1800
    /// [env: PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS or
    /// PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_task_execution_creation_error_timeout: Option<String>,
    /// Seconds to keep retrying Task Execution creation while the API server reports a
    /// conflict; -1 means forever. Defaults to 300
    /// [env: PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_task_execution_creation_conflict_timeout: Option<String>,
    /// Seconds between Task Execution creation attempts after a conflict. Defaults to 120
    /// [env: PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_task_execution_creation_conflict_retry_delay: Option<String>,
    /// Timeout of one request to the API server, in seconds; -1 means none. Defaults to 30
    /// [env: PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub api_request_timeout: Option<String>,
    /// Do not communicate with or rely on an API server [env: PROC_WRAPPER_OFFLINE_MODE]
    #[arg(short = 'o', long)]
    pub offline_mode: bool,
    /// Do not start the process if the API server is unavailable or the wrapper is
    /// misconfigured [env: PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION]
    #[arg(short = 'p', long)]
    pub prevent_offline_execution: bool,
    /// Probability (0.0 to 1.0) that the API server is informed of this execution. Defaults to 1.0
    /// [env: PROC_WRAPPER_API_MANAGED_PROBABILITY or PROC_WRAPPER_MANAGED_PROBABILITY]
    #[arg(short = 'm', long, value_name = "PROBABILITY")]
    pub api_managed_probability: Option<String>,
    /// Probability of reporting a failure of an execution that was not reported at start.
    /// Defaults to 1.0 [env: PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY or
    /// PROC_WRAPPER_FAILURE_REPORT_PROBABILITY]
    #[arg(long, value_name = "PROBABILITY")]
    pub api_failure_report_probability: Option<String>,
    /// Probability of reporting a timeout of an execution that was not reported at start.
    /// Defaults to 1.0 [env: PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY or
    /// PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY]
    #[arg(long, value_name = "PROBABILITY")]
    pub api_timeout_report_probability: Option<String>,
    /// Deployment name (production, staging, ...) [env: PROC_WRAPPER_DEPLOYMENT]
    #[arg(short = 'd', long, value_name = "NAME")]
    pub deployment: Option<String>,
    /// Send the input value to the API server [env: PROC_WRAPPER_SEND_INPUT_VALUE]
    #[arg(long)]
    pub send_input_value: bool,
    /// Send the process ID to the API server [env: PROC_WRAPPER_SEND_PID]
    #[arg(long)]
    pub send_pid: bool,
    /// Send the hostname to the API server [env: PROC_WRAPPER_SEND_HOSTNAME]
    #[arg(long)]
    pub send_hostname: bool,
    /// Do not send metadata about the runtime environment [env: PROC_WRAPPER_SEND_RUNTIME_METADATA]
    #[arg(long)]
    pub no_send_runtime_metadata: bool,
    /// Seconds between refreshes of the runtime metadata; -1 means never
    /// [env: PROC_WRAPPER_RUNTIME_METADATA_REFRESH_INTERVAL_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub runtime_metadata_refresh_interval: Option<String>,
}

debug_without_secrets!(ApiArgs {
    api_base_url, api_heartbeat_interval, api_error_timeout, api_final_update_timeout,
    api_retry_delay, api_resume_delay, api_task_execution_creation_error_timeout,
    api_task_execution_creation_conflict_timeout,
    api_task_execution_creation_conflict_retry_delay, api_request_timeout, offline_mode,
    prevent_offline_execution, api_managed_probability, api_failure_report_probability,
    api_timeout_report_probability, deployment, send_input_value, send_pid, send_hostname,
    no_send_runtime_metadata, runtime_metadata_refresh_interval,
} secrets { api_key });

/// Input and result value settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = IO)]
pub struct IoArgs {
    /// Input value of the Task Execution [env: PROC_WRAPPER_INPUT_VALUE]
    #[arg(short = 'i', long, value_name = "VALUE")]
    pub input_value: Option<String>,
    /// Environment variable that holds the input value [env: PROC_WRAPPER_INPUT_ENV_VAR_NAME]
    #[arg(long, value_name = "NAME")]
    pub input_env_var_name: Option<String>,
    /// File that holds the input value [env: PROC_WRAPPER_INPUT_FILENAME]
    #[arg(long, value_name = "FILE")]
    pub input_filename: Option<String>,
    /// Delete the input file after the process ends. Defaults to deleting it only if the
    /// wrapper wrote it [env: PROC_WRAPPER_CLEANUP_INPUT_FILE]
    #[arg(long)]
    pub cleanup_input_file: bool,
    /// Format of the input value: json, yaml, dotenv or text. Guessed from the input filename,
    /// else text [env: PROC_WRAPPER_INPUT_VALUE_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub input_value_format: Option<String>,
    /// File the process writes its result value to [env: PROC_WRAPPER_RESULT_FILENAME]
    #[arg(long, value_name = "FILE")]
    pub result_filename: Option<String>,
    /// Format of the result value: json, yaml, dotenv or text. Guessed from the result
    /// filename, else text [env: PROC_WRAPPER_RESULT_VALUE_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub result_value_format: Option<String>,
    /// Keep the result file after the process ends [env: PROC_WRAPPER_CLEANUP_RESULT_FILE]
    #[arg(long)]
    pub no_cleanup_result_file: bool,
}

/// Logging settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = LOG)]
pub struct LogArgs {
    /// Log level [env: PROC_WRAPPER_LOG_LEVEL]
    #[arg(short = 'l', long, value_name = "LEVEL", ignore_case = true)]
    pub log_level: Option<super::LogLevel>,
    /// Log sensitive information such as secret values [env: PROC_WRAPPER_LOG_SECRETS]
    #[arg(long)]
    pub log_secrets: bool,
    /// Log the input value [env: PROC_WRAPPER_LOG_INPUT_VALUE]
    #[arg(long)]
    pub log_input_value: bool,
    /// Log the result value [env: PROC_WRAPPER_LOG_RESULT_VALUE]
    #[arg(long)]
    pub log_result_value: bool,
    /// Exclude timestamps from the log, for log services that add their own
    /// [env: PROC_WRAPPER_INCLUDE_TIMESTAMPS_IN_LOG, inverted]
    #[arg(long)]
    pub exclude_timestamps_in_log: bool,
    /// Number of trailing log lines sent to the API server when the process fails
    /// [env: PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE]
    #[arg(long, value_name = "N")]
    pub num_log_lines_sent_on_failure: Option<String>,
    /// Number of trailing log lines sent when the process times out or is aborted
    /// [env: PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_TIMEOUT]
    #[arg(long, value_name = "N")]
    pub num_log_lines_sent_on_timeout: Option<String>,
    /// Number of trailing log lines sent when the process succeeds
    /// [env: PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS]
    #[arg(long, value_name = "N")]
    pub num_log_lines_sent_on_success: Option<String>,
    /// Longer log lines are truncated to this many characters. Defaults to 1000
    /// [env: PROC_WRAPPER_MAX_LOG_LINE_LENGTH]
    #[arg(long, value_name = "N")]
    pub max_log_line_length: Option<String>,
    /// Each log tail sent keeps its last whole lines that fit in this many bytes (counted
    /// after lines are truncated and secret values hidden; a last line longer than that keeps
    /// its end); 0 sends no tail, -1 means no cap. Defaults to 1000000
    /// [env: PROC_WRAPPER_MAX_LOG_TAIL_BYTES]
    #[arg(long, value_name = "BYTES")]
    pub max_log_tail_bytes: Option<String>,
    /// Keep separate tails of standard output and standard error
    /// [env: PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS, inverted]
    #[arg(long)]
    pub separate_stdout_and_stderr_logs: bool,
    /// Do not capture standard output [env: PROC_WRAPPER_IGNORE_STDOUT]
    #[arg(long)]
    pub ignore_stdout: bool,
    /// Do not capture standard error [env: PROC_WRAPPER_IGNORE_STDERR]
    #[arg(long)]
    pub ignore_stderr: bool,
}

/// Process settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = PROCESS)]
pub struct ProcessArgs {
    /// Working directory of the process. Defaults to the current directory
    /// [env: PROC_WRAPPER_WORK_DIR]
    #[arg(short = 'w', long, value_name = "DIR")]
    pub work_dir: Option<String>,
    /// Command line to execute, instead of the positional command [env: PROC_WRAPPER_TASK_COMMAND]
    #[arg(short = 'c', long, value_name = "COMMAND_LINE")]
    pub command_line: Option<String>,
    /// Run the command in a shell: enable, disable, or auto (detect from the command)
    /// [env: PROC_WRAPPER_SHELL_MODE]
    #[arg(long, value_name = "MODE", ignore_case = true)]
    pub shell_mode: Option<super::ShellMode>,
    /// Do not strip shell wrapping like "/bin/sh -c" that Docker adds for the shell form of
    /// ENTRYPOINT and CMD [env: PROC_WRAPPER_STRIP_SHELL_WRAPPING]
    #[arg(long)]
    pub no_strip_shell_wrapping: bool,
    /// Send termination signals to the process only, instead of its process group
    /// [env: PROC_WRAPPER_PROCESS_GROUP_TERMINATION or PROC_WRAPPER_TERMINATE_PROCESS_GROUP]
    #[arg(long)]
    pub no_process_group_termination: bool,
    /// Timeout of one attempt, in seconds; -1 means no timeout, the default
    /// [env: PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS]
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub process_timeout: Option<String>,
    /// Maximum number of retries of a failed process; -1 means forever. Defaults to 0
    /// [env: PROC_WRAPPER_PROCESS_MAX_RETRIES or PROC_WRAPPER_TASK_MAX_RETRIES]
    #[arg(short = 'r', long, value_name = "N")]
    pub process_max_retries: Option<String>,
    /// Seconds to wait before retrying a failed process. Defaults to 0
    /// [env: PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub process_retry_delay: Option<String>,
    /// Seconds between checks of the process status. Defaults to 10
    /// [env: PROC_WRAPPER_PROCESS_CHECK_INTERVAL_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub process_check_interval: Option<String>,
    /// Seconds to wait after SIGTERM before SIGKILL; -1 means wait forever. Defaults to 30
    /// [env: PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub process_termination_grace_period: Option<String>,
}

/// Status update settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = UPDATES)]
pub struct UpdateArgs {
    /// Listen for status updates from the process, sent by UDP to the status update port
    /// [env: PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER]
    #[arg(long)]
    pub enable_status_update_listener: bool,
    /// UDP port that receives status updates. Defaults to 2373
    /// [env: PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT or PROC_WRAPPER_STATUS_UPDATE_PORT]
    #[arg(long, value_name = "PORT")]
    pub status_update_socket_port: Option<String>,
    /// Maximum size of a status update message, in bytes. Defaults to 65536
    /// [env: PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES]
    #[arg(long, value_name = "BYTES")]
    pub status_update_message_max_bytes: Option<String>,
    /// Minimum seconds between status updates sent to the API server; -1 means only with
    /// heartbeats, the default [env: PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub status_update_interval: Option<String>,
}

/// Environment/configuration resolution settings.
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = CONFIGURATION)]
pub struct ConfigurationArgs {
    /// Location of environment variables for the process (file, AWS Secrets Manager, S3, SSM,
    /// ...); repeat for several. Added to [env: PROC_WRAPPER_ENV_LOCATIONS]
    #[arg(short = 'e', long = "env", value_name = "LOCATION")]
    pub env_locations: Vec<String>,
    /// Location of configuration properties; repeat for several. Added to
    /// [env: PROC_WRAPPER_CONFIG_LOCATIONS]
    #[arg(long = "config", value_name = "LOCATION")]
    pub config_locations: Vec<String>,
    /// How configuration from several locations is merged. Defaults to DEEP
    /// [env: PROC_WRAPPER_CONFIG_MERGE_STRATEGY]
    #[arg(long, value_name = "STRATEGY", ignore_case = true)]
    pub config_merge_strategy: Option<super::MergeStrategy>,
    /// Let resolved secrets overwrite environment variables that are already set
    /// [env: PROC_WRAPPER_OVERWRITE_ENV_WITH_SECRETS]
    #[arg(long, alias = "overwrite_env_during_resolution")]
    pub overwrite_env_during_resolution: bool,
    /// Seconds to cache resolved variables and properties before fetching them again for a
    /// retry; -1 means never refresh, the default [env: PROC_WRAPPER_CONFIG_TTL_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub config_ttl: Option<String>,
    /// Keep going when a variable or property cannot be resolved, and report all failures
    /// [env: PROC_WRAPPER_FAIL_FAST_CONFIG_RESOLUTION]
    #[arg(long)]
    pub no_fail_fast_config_resolution: bool,
    /// Required prefix of the names of environment variables to resolve (removed from the
    /// resolved name). Defaults to '' [env: PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_PREFIX]
    #[arg(long, value_name = "PREFIX")]
    pub resolved_env_var_name_prefix: Option<String>,
    /// Required suffix of the names of environment variables to resolve (removed from the
    /// resolved name). Defaults to '_FOR_PROC_WRAPPER_TO_RESOLVE'
    /// [env: PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_SUFFIX]
    #[arg(long, value_name = "SUFFIX")]
    pub resolved_env_var_name_suffix: Option<String>,
    /// Required prefix of the names of configuration properties to resolve. Defaults to ''
    /// [env: PROC_WRAPPER_RESOLVABLE_CONFIG_PROPERTY_NAME_PREFIX]
    #[arg(long, value_name = "PREFIX")]
    pub resolved_config_property_name_prefix: Option<String>,
    /// Required suffix of the names of configuration properties to resolve. Defaults to
    /// '__to_resolve' [env: PROC_WRAPPER_RESOLVABLE_CONFIG_PROPERTY_NAME_SUFFIX]
    #[arg(long, value_name = "SUFFIX")]
    pub resolved_config_property_name_suffix: Option<String>,
    /// Environment variable that receives the configuration as JSON. Defaults to TASK_CONFIG
    /// [env: PROC_WRAPPER_ENV_VAR_NAME_FOR_CONFIG]
    #[arg(long, value_name = "NAME")]
    pub env_var_name_for_config: Option<String>,
    /// Configuration property that receives the environment. Defaults to ENV
    /// [env: PROC_WRAPPER_CONFIG_PROPERTY_NAME_FOR_ENV]
    #[arg(long, value_name = "NAME")]
    pub config_property_name_for_env: Option<String>,
    /// File to write the resolved environment to [env: PROC_WRAPPER_ENV_OUTPUT_FILENAME]
    #[arg(long, value_name = "FILE")]
    pub env_output_filename: Option<String>,
    /// Format of the environment output file: dotenv, json, yaml or text. Guessed from the
    /// filename, else dotenv [env: PROC_WRAPPER_ENV_OUTPUT_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub env_output_format: Option<String>,
    /// File to write the resolved configuration to [env: PROC_WRAPPER_CONFIG_OUTPUT_FILENAME]
    #[arg(long, value_name = "FILE")]
    pub config_output_filename: Option<String>,
    /// Format of the configuration output file: json, yaml, dotenv or text. Guessed from the
    /// filename, else json [env: PROC_WRAPPER_CONFIG_OUTPUT_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub config_output_format: Option<String>,
    /// Exit after writing the output files, without running the command
    #[arg(long)]
    pub exit_after_writing_variables: bool,
    /// Resolve secrets into the environment, then replace proc_wrapper with the command: no
    /// supervision, retries or reporting (for images that only need the secrets)
    #[arg(long)]
    pub exec: bool,
}

/// ECS container settings (sidecar mode).
#[derive(Debug, Clone, Default, ClapArgs)]
#[command(next_help_heading = CONTAINER)]
pub struct ContainerArgs {
    /// Name of the ECS container running the Task's main process
    /// [env: PROC_WRAPPER_MAIN_CONTAINER_NAME]
    #[arg(long, value_name = "NAME")]
    pub main_container_name: Option<String>,
    /// Name of the ECS container running the wrapper [env: PROC_WRAPPER_MONITOR_CONTAINER_NAME]
    #[arg(long, value_name = "NAME")]
    pub monitor_container_name: Option<String>,
    /// Monitor another container instead of running a process. Defaults to on when both
    /// container names are given and differ [env: PROC_WRAPPER_SIDECAR_CONTAINER_MODE]
    #[arg(long)]
    pub sidecar_container_mode: bool,
}

/// Rollbar settings. `Debug` hides the access token.
#[derive(Clone, Default, ClapArgs)]
#[command(next_help_heading = ROLLBAR)]
pub struct RollbarArgs {
    /// Rollbar access token, to report trouble communicating with the API server
    /// [env: PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub rollbar_access_token: Option<String>,
    /// Retries of a Rollbar request; -1 means forever. Defaults to 2
    /// [env: PROC_WRAPPER_ROLLBAR_RETRIES]
    #[arg(long, value_name = "N")]
    pub rollbar_retries: Option<String>,
    /// Seconds to wait before retrying a Rollbar request. Defaults to 120
    /// [env: PROC_WRAPPER_ROLLBAR_RETRY_DELAY_SECONDS]
    #[arg(long, value_name = "SECONDS")]
    pub rollbar_retry_delay: Option<String>,
    /// Timeout of a Rollbar request, in seconds. Defaults to 30
    /// [env: PROC_WRAPPER_ROLLBAR_TIMEOUT_SECONDS or PROC_WRAPPER_ROLLBAR_TIMEOUT]
    #[arg(long, value_name = "SECONDS")]
    pub rollbar_timeout: Option<String>,
}

debug_without_secrets!(RollbarArgs {
    rollbar_retries, rollbar_retry_delay, rollbar_timeout,
} secrets { rollbar_access_token });
