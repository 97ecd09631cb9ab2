//! The validated configuration of a wrapper run.
//!
//! [`Config::from_sources`] combines the command line ([`Args`]) with the environment,
//! following the precedence of the Python original (README "Options and environment
//! variables"): for Task, API, process and logging settings the environment wins; for the
//! environment/configuration resolution settings the command line wins and location lists
//! are appended. Every number is parsed and validated here; a value that does not parse is a
//! [`ConfigError`] naming the option or variable, which the CLI turns into exit code 78.
//!
//! This module does not fetch secrets; the resolver works on the environment first and then
//! calls [`Config::from_sources`] with the resolved environment as the lookup.

/// `Debug` for a settings struct that holds secrets: every field is listed (destructuring
/// makes a new field a compile error until it is added here), and the `secrets` fields show
/// only whether they are set, so a `{:?}` of the settings never prints an API key or token.
macro_rules! debug_without_secrets {
    ($ty:ident { $($field:ident),* $(,)? } secrets { $($secret:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let Self { $($field,)* $($secret,)* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), $field))*
                    $(.field(stringify!($secret), &$secret.as_ref().map(|_| "<redacted>")))*
                    .finish()
            }
        }
    };
}

pub mod args;
pub mod parse;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

pub use args::Args;
use parse::{
    Lookup, Origin, Sources, bool_setting, cli_wins, env_wins, flag, optional_bool, parse_byte_cap,
    parse_count, parse_delay, parse_int, parse_json_object, parse_limit, parse_probability,
    split_locations,
};
use serde_json::{Map, Value};
use table::{self as T, Setting};

use crate::metadata::ExecutionMethod;

/// The default API server.
pub(crate) const DEFAULT_API_BASE_URL: &str = "https://api.cloudreactor.io";
/// The default UDP port of the status update listener.
pub(crate) const DEFAULT_STATUS_UPDATE_PORT: u16 = 2373;
/// The default largest status update message.
pub(crate) const DEFAULT_STATUS_UPDATE_MESSAGE_MAX_BYTES: usize = 65536;
/// The default byte cap of each log tail (`--max-log-tail-bytes`): room for 1000 lines of
/// the default `max_log_line_length` (1000 characters) in ASCII, while a tail of long lines
/// in a multi-byte script cannot make the final update grow without bound.
pub(crate) const DEFAULT_MAX_LOG_TAIL_BYTES: usize = 1_000_000;
/// The shortest heartbeat interval the CloudReactor server accepts for a Task (its
/// `heartbeat_interval_seconds` validator).
pub(crate) const MIN_SERVER_HEARTBEAT_INTERVAL_SECONDS: u64 = 10;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value '{value}' for {origin}: expected {expected}")]
    InvalidValue {
        /// Option or variable at fault.
        origin: Origin,
        /// The offending text (shortened).
        value: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// Settings that contradict each other, or a missing required setting.
    #[error("{0}")]
    Invalid(String),
}

/// JSON object used for the free-form properties of the API.
pub(crate) type JsonObject = Map<String, Value>;

/// Task identity and the properties reported when creating Task Executions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskConfig {
    /// Task name.
    pub name: Option<String>,
    /// Task UUID.
    pub uuid: Option<String>,
    /// Create the Task if the API server does not know it.
    pub auto_create: bool,
    /// Run Environment name of an auto-created Task.
    pub run_environment_name: Option<String>,
    /// Run Environment UUID of an auto-created Task.
    pub run_environment_uuid: Option<String>,
    /// Extra properties of an auto-created Task.
    pub auto_create_task_props: Option<JsonObject>,
    /// The auto-created Task is passive (not scheduled or kept running by CloudReactor).
    pub passive: bool,
    /// Existing Task Execution to attach to.
    pub execution_uuid: Option<String>,
    /// Numeric version of the Task's code.
    pub version_number: Option<i64>,
    /// Human readable version.
    pub version_text: Option<String>,
    /// Version signature, such as a commit hash.
    pub version_signature: Option<String>,
    /// Task Execution that built the Task.
    pub build_task_execution_uuid: Option<String>,
    /// Task Execution that deployed the Task.
    pub deployment_task_execution_uuid: Option<String>,
    /// Extra properties of the execution method.
    pub execution_method_props: Option<JsonObject>,
    /// Forced execution method; detected when `None`.
    pub execution_method_type: Option<ExecutionMethod>,
    /// Metadata about this instance of the Task.
    pub instance_metadata: Option<JsonObject>,
    /// The Task is a service that runs indefinitely.
    pub is_service: bool,
    /// Schedule reported to the API server.
    pub schedule: Option<String>,
    /// Maximum concurrent executions; `Some(-1)` means no limit.
    pub max_concurrency: Option<i64>,
    /// Maximum age of conflicting executions; `None` means no limit.
    pub max_conflicting_age: Option<Duration>,
}

/// API client settings. `Debug` hides the API key.
#[derive(Clone, PartialEq)]
pub struct ApiConfig {
    /// Base URL, without a trailing `/`.
    pub base_url: String,
    /// API key (a secret).
    pub api_key: Option<String>,
    /// Interval between heartbeats; `None` means no heartbeats.
    pub heartbeat_interval: Option<Duration>,
    /// How long to retry recoverable errors; `None` means forever.
    pub error_timeout: Option<Duration>,
    /// How long to retry the final update; `None` means forever.
    pub final_update_timeout: Option<Duration>,
    /// Delay before retrying a request.
    pub retry_delay: Duration,
    /// Delay before resuming requests after giving up; `None` means never resume.
    pub resume_delay: Option<Duration>,
    /// How long to retry Task Execution creation on errors; `None` means forever.
    pub creation_error_timeout: Option<Duration>,
    /// How long to retry Task Execution creation on conflicts; `None` means forever.
    pub creation_conflict_timeout: Option<Duration>,
    /// Delay between creation attempts after a conflict.
    pub creation_conflict_retry_delay: Duration,
    /// Timeout of one HTTP request; `None` means none.
    pub request_timeout: Option<Duration>,
    /// Probability that an execution is reported at all.
    pub managed_probability: f64,
    /// Probability that an unreported execution's failure is reported.
    pub failure_report_probability: f64,
    /// Probability that an unreported execution's timeout is reported.
    pub timeout_report_probability: f64,
    /// Deployment name.
    pub deployment: Option<String>,
    /// Send the input value.
    pub send_input_value: bool,
    /// Send the process ID.
    pub send_pid: bool,
    /// Send the hostname.
    pub send_hostname: bool,
    /// Send runtime metadata.
    pub send_runtime_metadata: bool,
    /// Interval between runtime metadata refreshes; `None` means never.
    pub runtime_metadata_refresh_interval: Option<Duration>,
}

debug_without_secrets!(ApiConfig {
    base_url, heartbeat_interval, error_timeout, final_update_timeout, retry_delay,
    resume_delay, creation_error_timeout, creation_conflict_timeout,
    creation_conflict_retry_delay, request_timeout, managed_probability,
    failure_report_probability, timeout_report_probability, deployment, send_input_value,
    send_pid, send_hostname, send_runtime_metadata, runtime_metadata_refresh_interval,
} secrets { api_key });

/// Input and result value settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoConfig {
    /// Input value, as text.
    pub input_value: Option<String>,
    /// Variable holding the input value.
    pub input_env_var_name: Option<String>,
    /// File holding the input value.
    pub input_filename: Option<String>,
    /// Delete the input file at the end; `None` means only if the wrapper wrote it.
    pub cleanup_input_file: Option<bool>,
    /// Format of the input value.
    pub input_value_format: Option<String>,
    /// File the process writes its result to.
    pub result_filename: Option<String>,
    /// Format of the result value.
    pub result_value_format: Option<String>,
    /// Delete the result file at the end.
    pub cleanup_result_file: bool,
}

/// Log level of the wrapper's own log; also the values of `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Very verbose (only from PROC_WRAPPER_LOG_LEVEL).
    #[value(skip)]
    Trace,
    /// Everything, including API request bodies
    Debug,
    /// Lifecycle events (the default)
    Info,
    /// Recoverable trouble
    Warning,
    /// Failures
    Error,
    /// Only critical failures
    Critical,
}

impl LogLevel {
    fn from_text(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_uppercase().as_str() {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARNING" | "WARN" => Self::Warning,
            "ERROR" => Self::Error,
            "CRITICAL" => Self::Critical,
            _ => return None,
        })
    }
}

/// The format of the wrapper's own log: `AWS_LAMBDA_LOG_FORMAT`, which Lambda sets from the
/// function's logging configuration (and which `proc_wrapper` honours everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `PROC_WRAPPER: 2024-01-31 13:45:07,123 INFO: message` (the Python original's), when
    /// `AWS_LAMBDA_LOG_FORMAT` is unset or anything but `JSON`.
    #[default]
    Text,
    /// One JSON object a line, as Lambda's runtimes write it:
    /// `{"timestamp":"2024-01-31T13:45:07.123Z","level":"INFO","message":"...","requestId":"..."}`
    /// (`AWS_LAMBDA_LOG_FORMAT=JSON`, any case).
    Json,
}

impl LogFormat {
    /// The variable that selects the format.
    pub const VAR: &'static str = "AWS_LAMBDA_LOG_FORMAT";

    /// The format `lookup` selects: [`LogFormat::Json`] when `AWS_LAMBDA_LOG_FORMAT` is
    /// `JSON` (any case, blanks around it ignored), else [`LogFormat::Text`].
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        match lookup(Self::VAR) {
            Some(v) if v.trim().eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Text,
        }
    }

    /// The format the process environment selects.
    pub fn from_env() -> Self {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

/// Lambda's application log level (`AWS_LAMBDA_LOG_LEVEL`, set with the JSON log format):
/// the level of the wrapper's log when neither `PROC_WRAPPER_LOG_LEVEL` nor `--log-level`
/// is given.
pub const AWS_LAMBDA_LOG_LEVEL_VAR: &str = "AWS_LAMBDA_LOG_LEVEL";

/// Logging and log capture settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Level of the wrapper's own log.
    pub level: LogLevel,
    /// Format of the wrapper's own log.
    pub format: LogFormat,
    /// Secret values may appear in the log.
    pub log_secrets: bool,
    /// Log the input value.
    pub log_input_value: bool,
    /// Log the result value.
    pub log_result_value: bool,
    /// Prefix log lines with a timestamp.
    pub include_timestamps: bool,
    /// Log lines sent on failure.
    pub num_log_lines_sent_on_failure: usize,
    /// Log lines sent on timeout or abort.
    pub num_log_lines_sent_on_timeout: usize,
    /// Log lines sent on success.
    pub num_log_lines_sent_on_success: usize,
    /// Longer lines are truncated.
    pub max_log_line_length: usize,
    /// The byte cap of each log tail sent (whole lines from the end); `None` means no cap.
    pub max_log_tail_bytes: Option<usize>,
    /// One tail for both standard output and standard error.
    pub merge_stdout_and_stderr: bool,
    /// Do not capture standard output.
    pub ignore_stdout: bool,
    /// Do not capture standard error.
    pub ignore_stderr: bool,
}

/// Whether the command runs in a shell; also the values of `--shell-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellMode {
    /// Detect from the command
    Auto,
    /// Always run the command in a shell
    Enable,
    /// Never run the command in a shell
    Disable,
}

/// Process supervision settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// Command and arguments given as positional arguments.
    pub command: Vec<String>,
    /// Command line given as one string (wins over `command`).
    pub command_line: Option<String>,
    /// Working directory of the child.
    pub work_dir: PathBuf,
    /// Shell mode.
    pub shell_mode: ShellMode,
    /// Strip `/bin/sh -c` wrapping.
    pub strip_shell_wrapping: bool,
    /// Signal the child's whole process group.
    pub group_termination: bool,
    /// Timeout of one attempt; `None` means none.
    pub timeout: Option<Duration>,
    /// Retries after a failure or timeout; `None` means forever.
    pub max_retries: Option<u32>,
    /// Delay before retrying after a failure.
    pub retry_delay: Duration,
    /// Interval between checks of the child.
    pub check_interval: Duration,
    /// Time between SIGTERM and SIGKILL; `None` means wait forever.
    pub termination_grace_period: Option<Duration>,
}

/// Status update listener settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusConfig {
    /// Listen for UDP status updates.
    pub enabled: bool,
    /// UDP port.
    pub port: u16,
    /// Largest accepted message.
    pub message_max_bytes: usize,
    /// Minimum interval between API updates; `None` means only with heartbeats.
    pub interval: Option<Duration>,
}

/// How configuration from several locations is merged; also the values of
/// `--config-merge-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MergeStrategy {
    /// Merge nested objects recursively (the default)
    Deep,
    /// Later top-level keys replace earlier ones
    Shallow,
    /// Like DEEP, later values replace earlier ones
    Replace,
    /// Like DEEP, but lists are concatenated
    Additive,
    /// Like REPLACE, but a type change is an error
    TypesafeReplace,
    /// Like ADDITIVE, but a type change is an error
    TypesafeAdditive,
}

/// Environment/configuration resolution settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverConfig {
    /// Locations of environment variables.
    pub env_locations: Vec<String>,
    /// Locations of configuration.
    pub config_locations: Vec<String>,
    /// Merge strategy.
    pub merge_strategy: MergeStrategy,
    /// Resolved values overwrite variables that are already set.
    pub overwrite_env: bool,
    /// Maximum depth of resolution in nested configuration.
    pub max_depth: u32,
    /// Maximum number of resolution passes.
    pub max_iterations: u32,
    /// Time after which resolved values are fetched again; `None` means never.
    pub config_ttl: Option<Duration>,
    /// Stop at the first resolution failure.
    pub fail_fast: bool,
    /// Prefix of variables to resolve.
    pub env_var_name_prefix: String,
    /// Suffix of variables to resolve.
    pub env_var_name_suffix: String,
    /// Prefix of configuration properties to resolve.
    pub config_property_name_prefix: String,
    /// Suffix of configuration properties to resolve.
    pub config_property_name_suffix: String,
    /// Variable receiving the configuration as JSON.
    pub env_var_name_for_config: Option<String>,
    /// Configuration property receiving the environment.
    pub config_property_name_for_env: Option<String>,
    /// File receiving the resolved environment.
    pub env_output_filename: Option<String>,
    /// Its format.
    pub env_output_format: Option<String>,
    /// File receiving the resolved configuration.
    pub config_output_filename: Option<String>,
    /// Its format.
    pub config_output_format: Option<String>,
    /// Exit after writing the output files.
    pub exit_after_writing_variables: bool,
    /// Region of AWS secret providers.
    pub secrets_aws_region: Option<String>,
    /// Secret values may be logged.
    pub log_secrets: bool,
}

/// ECS sidecar settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    /// Container running the main process.
    pub main_container_name: Option<String>,
    /// Container running the wrapper.
    pub monitor_container_name: Option<String>,
    /// Monitor another container; `None` means detect.
    pub sidecar_container_mode: Option<bool>,
}

/// Rollbar settings. `Debug` hides the access token.
#[derive(Clone, PartialEq)]
pub struct RollbarConfig {
    /// Access token (a secret); Rollbar is off without it.
    pub access_token: Option<String>,
    /// Retries of a request; `None` means forever.
    pub retries: Option<u32>,
    /// Delay between retries.
    pub retry_delay: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Rollbar's base URL ([`table::ROLLBAR_BASE_URL`], for proxies and tests).
    pub base_url: Option<String>,
}

debug_without_secrets!(RollbarConfig {
    retries, retry_delay, timeout, base_url,
} secrets { access_token });

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// No API server at all.
    pub offline_mode: bool,
    /// Do not run without the API server's permission.
    pub prevent_offline_execution: bool,
    /// Task settings.
    pub task: TaskConfig,
    /// API settings.
    pub api: ApiConfig,
    /// Input/result settings.
    pub io: IoConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Process settings.
    pub process: ProcessConfig,
    /// Status update settings.
    pub status: StatusConfig,
    /// Resolver settings.
    pub resolver: ResolverConfig,
    /// Container settings.
    pub container: ContainerConfig,
    /// Rollbar settings.
    pub rollbar: RollbarConfig,
    /// Warnings found while building the configuration, to be logged once logging is set up.
    pub warnings: Vec<String>,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn string(env: Option<parse::Raw>, cli_value: Option<&String>) -> Option<String> {
    env.map(|r| r.text).or_else(|| {
        cli_value
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
}

fn string_cli_wins(cli_value: Option<&String>, env: Option<parse::Raw>) -> Option<String> {
    cli_value.cloned().or(env.map(|r| r.text))
}

fn retries(raw: Option<parse::Raw>, default: Option<u32>) -> Result<Option<u32>, ConfigError> {
    Ok(match parse_int(raw)? {
        None => default,
        Some(n) if n < 0 => None,
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
    })
}

impl Config {
    /// Builds the configuration from the process environment alone, as embedded mode and the
    /// Lambda extension do.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_sources(&Args::default(), &|k| std::env::var(k).ok())
    }

    /// Builds the configuration from the command line and an environment lookup.
    pub fn from_sources(args: &Args, lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let mut src = Sources::new(lookup);
        let mut warnings = Vec::new();

        let offline_mode = bool_setting(src.var(&T::OFFLINE_MODE), args.api.offline_mode);
        let prevent_offline_execution = bool_setting(
            src.var(&T::PREVENT_OFFLINE_EXECUTION),
            args.api.prevent_offline_execution,
        );
        src.offline = offline_mode;

        let mut task = Self::task(args, &src)?;
        let api = Self::api(args, &src)?;
        // An auto-created Task without a Run Environment gets the one named after the
        // deployment (6.0.2).
        if task.auto_create
            && task.run_environment_name.is_none()
            && task.run_environment_uuid.is_none()
        {
            task.run_environment_name.clone_from(&api.deployment);
        }
        if !offline_mode
            && let Some(interval) = api.heartbeat_interval
            && interval < secs(MIN_SERVER_HEARTBEAT_INTERVAL_SECONDS)
        {
            warnings.push(format!(
                "the API heartbeat interval of {} seconds is below {MIN_SERVER_HEARTBEAT_INTERVAL_SECONDS} \
                 seconds, the least the CloudReactor server accepts for a Task: it refuses to \
                 auto-create such a Task ({} or {})",
                interval.as_secs_f64(),
                T::API_HEARTBEAT_INTERVAL.var(),
                T::API_HEARTBEAT_INTERVAL.option(),
            ));
        }
        let io = Self::io(args, &src);
        let log = Self::log(args, &src, &mut warnings)?;
        let process = Self::process(args, &src, task.is_service, &mut warnings)?;
        let status = Self::status(args, &src)?;
        let resolver = Self::resolver(args, &src, log.log_secrets)?;
        let container = ContainerConfig {
            main_container_name: string(
                src.var(&T::MAIN_CONTAINER_NAME),
                args.container.main_container_name.as_ref(),
            ),
            monitor_container_name: string(
                src.var(&T::MONITOR_CONTAINER_NAME),
                args.container.monitor_container_name.as_ref(),
            ),
            sidecar_container_mode: optional_bool(src.var(&T::SIDECAR_CONTAINER_MODE))
                .or(args.container.sidecar_container_mode.then_some(true)),
        };
        let rollbar = Self::rollbar(args, &src)?;

        // Offline mode is also forced when no execution could ever be reported.
        let all_zero = api.managed_probability <= 0.0
            && api.failure_report_probability <= 0.0
            && api.timeout_report_probability <= 0.0;

        Ok(Self {
            offline_mode: offline_mode || all_zero,
            prevent_offline_execution,
            task,
            api,
            io,
            log,
            process,
            status,
            resolver,
            container,
            rollbar,
            warnings,
        })
    }

    fn task(args: &Args, src: &Sources<'_>) -> Result<TaskConfig, ConfigError> {
        let t = &args.task;
        // The Task name and UUID are read even in offline mode, so that the final log line
        // can name the Task (6.0.2 skips them; its changelog says otherwise).
        let auto_create_task_props = parse_json_object(env_wins(
            src.var(&T::AUTO_CREATE_TASK_PROPS),
            flag(
                &T::AUTO_CREATE_TASK_PROPS,
                t.auto_create_task_props.as_ref(),
            ),
        ))?;
        let props_flag = |key: &str| {
            auto_create_task_props
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_bool)
        };
        let auto_create = bool_setting(src.var(&T::AUTO_CREATE_TASK), t.auto_create_task)
            || auto_create_task_props.is_some()
            || props_flag("was_auto_created") == Some(true);
        // As 6.0.2 decides it: an auto-created Task is passive unless the environment, its
        // props or --force-task-active say otherwise; any other Task is active unless the
        // environment says it is passive. (The Reporter then keeps an auto-created Task
        // passive when no execution method capability is known, as the server requires.)
        let env_passive = optional_bool(src.var(&T::TASK_IS_PASSIVE));
        let forced_active = t.force_task_active.then_some(false);
        let passive = if auto_create {
            env_passive
                .or(props_flag("passive"))
                .or(forced_active)
                .unwrap_or(true)
        } else {
            env_passive.unwrap_or(false)
        };
        // The Run Environment, as 6.0.2 reads it: for an auto-created Task, from the
        // environment, else the props' `run_environment`, else the command line; for any
        // other Task, from the command line only. (The deployment is the fallback name of an
        // auto-created Task: `Config::from_sources`.)
        let cli_name = string(None, t.auto_create_task_run_environment_name.as_ref());
        let cli_uuid = string(None, t.auto_create_task_run_environment_uuid.as_ref());
        let (run_environment_name, run_environment_uuid) = if auto_create {
            let props_run_env = |key: &str| {
                auto_create_task_props
                    .as_ref()
                    .and_then(|p| p.get("run_environment"))
                    .and_then(|r| r.get(key))
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            (
                string(src.var(&T::RUN_ENVIRONMENT_NAME), None)
                    .or_else(|| props_run_env("name"))
                    .or(cli_name),
                string(src.var(&T::RUN_ENVIRONMENT_UUID), None)
                    .or_else(|| props_run_env("uuid"))
                    .or(cli_uuid),
            )
        } else {
            (cli_name, cli_uuid)
        };
        let min_instances = auto_create_task_props
            .as_ref()
            .and_then(|p| p.get("min_service_instance_count"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let is_service = bool_setting(src.var(&T::SERVICE), t.service) || min_instances > 0;
        let max_concurrency = parse_int(env_wins(
            src.var(&T::MAX_CONCURRENCY),
            flag(&T::MAX_CONCURRENCY, t.max_concurrency.as_ref()),
        ))?
        .map(|n| n.max(-1));
        let execution_method_props = if auto_create {
            parse_json_object(env_wins(
                src.var(&T::EXECUTION_METHOD_PROPS),
                flag(
                    &T::EXECUTION_METHOD_PROPS,
                    t.execution_method_props.as_ref(),
                ),
            ))?
        } else {
            parse_json_object(flag(
                &T::EXECUTION_METHOD_PROPS,
                t.execution_method_props.as_ref(),
            ))?
        };
        let execution_method_type = match string(
            src.var(&T::EXECUTION_METHOD_TYPE),
            t.execution_method_type.as_ref(),
        ) {
            None => None,
            Some(name) => Some(ExecutionMethod::from_name(&name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "invalid execution method type '{name}' ({} or {}): expected one of {}",
                    T::EXECUTION_METHOD_TYPE.var(),
                    T::EXECUTION_METHOD_TYPE.option(),
                    ExecutionMethod::ALL.map(ExecutionMethod::as_str).join(", ")
                ))
            })?),
        };
        Ok(TaskConfig {
            name: string(src.var(&T::TASK_NAME), t.task_name.as_ref()),
            uuid: string(src.var(&T::TASK_UUID), t.task_uuid.as_ref()),
            auto_create,
            run_environment_name,
            run_environment_uuid,
            auto_create_task_props,
            passive,
            execution_uuid: string(
                src.var(&T::TASK_EXECUTION_UUID),
                t.task_execution_uuid.as_ref(),
            ),
            version_number: parse_int(env_wins(
                src.var(&T::TASK_VERSION_NUMBER),
                flag(&T::TASK_VERSION_NUMBER, t.task_version_number.as_ref()),
            ))?
            .filter(|n| *n >= 0),
            version_text: string(src.var(&T::TASK_VERSION_TEXT), t.task_version_text.as_ref()),
            version_signature: string(
                src.var(&T::TASK_VERSION_SIGNATURE),
                t.task_version_signature.as_ref(),
            ),
            build_task_execution_uuid: string(
                src.var(&T::BUILD_TASK_EXECUTION_UUID),
                t.build_task_execution_uuid.as_ref(),
            ),
            deployment_task_execution_uuid: string(
                src.var(&T::DEPLOYMENT_TASK_EXECUTION_UUID),
                t.deployment_task_execution_uuid.as_ref(),
            ),
            execution_method_props,
            execution_method_type,
            instance_metadata: parse_json_object(env_wins(
                src.var(&T::TASK_INSTANCE_METADATA),
                flag(
                    &T::TASK_INSTANCE_METADATA,
                    t.task_instance_metadata.as_ref(),
                ),
            ))?,
            is_service,
            schedule: string(src.var(&T::SCHEDULE), t.schedule.as_ref()),
            max_concurrency,
            max_conflicting_age: parse_limit(
                env_wins(
                    src.var(&T::MAX_CONFLICTING_AGE),
                    flag(&T::MAX_CONFLICTING_AGE, t.max_conflicting_age.as_ref()),
                ),
                None,
            )?,
        })
    }

    fn api(args: &Args, src: &Sources<'_>) -> Result<ApiConfig, ConfigError> {
        let a = &args.api;
        let limit = |s: &Setting, value, default| {
            parse_limit(env_wins(src.var(s), flag(s, value)), default)
        };
        let probability =
            |s: &Setting, value| parse_probability(env_wins(src.var(s), flag(s, value)), 1.0);
        let base_url = string(src.var(&T::API_BASE_URL), a.api_base_url.as_ref())
            .unwrap_or_else(|| DEFAULT_API_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        Ok(ApiConfig {
            base_url,
            api_key: string(src.var(&T::API_KEY), a.api_key.as_ref()),
            heartbeat_interval: limit(
                &T::API_HEARTBEAT_INTERVAL,
                a.api_heartbeat_interval.as_ref(),
                Some(secs(300)),
            )?
            .filter(|d| !d.is_zero()),
            error_timeout: limit(
                &T::API_ERROR_TIMEOUT,
                a.api_error_timeout.as_ref(),
                Some(secs(300)),
            )?,
            final_update_timeout: limit(
                &T::API_FINAL_UPDATE_TIMEOUT,
                a.api_final_update_timeout.as_ref(),
                Some(secs(1800)),
            )?,
            retry_delay: parse_delay(
                env_wins(
                    src.var(&T::API_RETRY_DELAY),
                    flag(&T::API_RETRY_DELAY, a.api_retry_delay.as_ref()),
                ),
                secs(120),
            )?,
            // -1 means never resume (the documented meaning; 6.0.2 turned it into 0).
            resume_delay: limit(
                &T::API_RESUME_DELAY,
                a.api_resume_delay.as_ref(),
                Some(secs(600)),
            )?,
            creation_error_timeout: limit(
                &T::API_CREATION_ERROR_TIMEOUT,
                a.api_task_execution_creation_error_timeout.as_ref(),
                Some(secs(1800)),
            )?,
            creation_conflict_timeout: limit(
                &T::API_CREATION_CONFLICT_TIMEOUT,
                a.api_task_execution_creation_conflict_timeout.as_ref(),
                Some(secs(300)),
            )?,
            creation_conflict_retry_delay: parse_delay(
                env_wins(
                    src.var(&T::API_CREATION_CONFLICT_RETRY_DELAY),
                    flag(
                        &T::API_CREATION_CONFLICT_RETRY_DELAY,
                        a.api_task_execution_creation_conflict_retry_delay.as_ref(),
                    ),
                ),
                secs(120),
            )?,
            request_timeout: limit(
                &T::API_REQUEST_TIMEOUT,
                a.api_request_timeout.as_ref(),
                Some(secs(30)),
            )?,
            managed_probability: probability(
                &T::API_MANAGED_PROBABILITY,
                a.api_managed_probability.as_ref(),
            )?,
            failure_report_probability: probability(
                &T::API_FAILURE_REPORT_PROBABILITY,
                a.api_failure_report_probability.as_ref(),
            )?,
            timeout_report_probability: probability(
                &T::API_TIMEOUT_REPORT_PROBABILITY,
                a.api_timeout_report_probability.as_ref(),
            )?,
            deployment: string(src.var(&T::DEPLOYMENT), a.deployment.as_ref()),
            send_input_value: bool_setting(src.var(&T::SEND_INPUT_VALUE), a.send_input_value),
            send_pid: bool_setting(src.var(&T::SEND_PID), a.send_pid),
            send_hostname: bool_setting(src.var(&T::SEND_HOSTNAME), a.send_hostname),
            send_runtime_metadata: bool_setting(
                src.var(&T::SEND_RUNTIME_METADATA),
                !a.no_send_runtime_metadata,
            ),
            runtime_metadata_refresh_interval: limit(
                &T::RUNTIME_METADATA_REFRESH_INTERVAL,
                a.runtime_metadata_refresh_interval.as_ref(),
                None,
            )?
            .filter(|d| !d.is_zero()),
        })
    }

    fn io(args: &Args, src: &Sources<'_>) -> IoConfig {
        let i = &args.io;
        IoConfig {
            input_value: src
                .raw_var(&T::INPUT_VALUE)
                .or_else(|| i.input_value.clone()),
            input_env_var_name: string(
                src.var(&T::INPUT_ENV_VAR_NAME),
                i.input_env_var_name.as_ref(),
            ),
            input_filename: string(src.var(&T::INPUT_FILENAME), i.input_filename.as_ref()),
            cleanup_input_file: optional_bool(src.var(&T::CLEANUP_INPUT_FILE))
                .or(i.cleanup_input_file.then_some(true)),
            input_value_format: string(
                src.var(&T::INPUT_VALUE_FORMAT),
                i.input_value_format.as_ref(),
            ),
            result_filename: string(src.var(&T::RESULT_FILENAME), i.result_filename.as_ref()),
            result_value_format: string(
                src.var(&T::RESULT_VALUE_FORMAT),
                i.result_value_format.as_ref(),
            ),
            cleanup_result_file: bool_setting(
                src.var(&T::CLEANUP_RESULT_FILE),
                !i.no_cleanup_result_file,
            ),
        }
    }

    fn log(
        args: &Args,
        src: &Sources<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<LogConfig, ConfigError> {
        let l = &args.log;
        let lambda_level = || {
            let raw = src.env(&[AWS_LAMBDA_LOG_LEVEL_VAR])?;
            // Lambda's names: TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
            let level = match raw.text.to_ascii_uppercase().as_str() {
                "FATAL" => Some(LogLevel::Critical),
                other => LogLevel::from_text(other),
            };
            Some(level.unwrap_or_else(|| {
                warnings.push(format!(
                    "{AWS_LAMBDA_LOG_LEVEL_VAR} '{}' is not one of TRACE, DEBUG, INFO, WARN, \
                     ERROR, FATAL; using INFO",
                    raw.text
                ));
                LogLevel::Info
            }))
        };
        let level = match src.var(&T::LOG_LEVEL) {
            None => l.log_level.or_else(lambda_level).unwrap_or(LogLevel::Info),
            Some(raw) => LogLevel::from_text(&raw.text).unwrap_or_else(|| {
                warnings.push(format!(
                    "{} '{}' is not one of TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL; using \
                     INFO",
                    T::LOG_LEVEL.var(),
                    raw.text
                ));
                LogLevel::Info
            }),
        };
        let count = |s: &Setting, value, default| {
            parse_count(env_wins(src.var(s), flag(s, value)), default)
        };
        Ok(LogConfig {
            level,
            format: LogFormat::from_lookup(&|k| src.raw_env(k)),
            log_secrets: bool_setting(src.var(&T::LOG_SECRETS), l.log_secrets),
            log_input_value: bool_setting(src.var(&T::LOG_INPUT_VALUE), l.log_input_value),
            log_result_value: bool_setting(src.var(&T::LOG_RESULT_VALUE), l.log_result_value),
            include_timestamps: bool_setting(
                src.var(&T::INCLUDE_TIMESTAMPS_IN_LOG),
                !l.exclude_timestamps_in_log,
            ),
            num_log_lines_sent_on_failure: count(
                &T::NUM_LOG_LINES_SENT_ON_FAILURE,
                l.num_log_lines_sent_on_failure.as_ref(),
                0,
            )?,
            num_log_lines_sent_on_timeout: count(
                &T::NUM_LOG_LINES_SENT_ON_TIMEOUT,
                l.num_log_lines_sent_on_timeout.as_ref(),
                0,
            )?,
            num_log_lines_sent_on_success: count(
                &T::NUM_LOG_LINES_SENT_ON_SUCCESS,
                l.num_log_lines_sent_on_success.as_ref(),
                0,
            )?,
            max_log_line_length: count(
                &T::MAX_LOG_LINE_LENGTH,
                l.max_log_line_length.as_ref(),
                1000,
            )?
            .max(4),
            max_log_tail_bytes: parse_byte_cap(
                env_wins(
                    src.var(&T::MAX_LOG_TAIL_BYTES),
                    flag(&T::MAX_LOG_TAIL_BYTES, l.max_log_tail_bytes.as_ref()),
                ),
                Some(DEFAULT_MAX_LOG_TAIL_BYTES),
            )?,
            merge_stdout_and_stderr: bool_setting(
                src.var(&T::MERGE_STDOUT_AND_STDERR_LOGS),
                !l.separate_stdout_and_stderr_logs,
            ),
            ignore_stdout: bool_setting(src.var(&T::IGNORE_STDOUT), l.ignore_stdout),
            ignore_stderr: bool_setting(src.var(&T::IGNORE_STDERR), l.ignore_stderr),
        })
    }

    fn process(
        args: &Args,
        src: &Sources<'_>,
        is_service: bool,
        warnings: &mut Vec<String>,
    ) -> Result<ProcessConfig, ConfigError> {
        let p = &args.process;
        let shell_mode = match src.var(&T::SHELL_MODE) {
            Some(raw) => match raw.text.to_ascii_lowercase().as_str() {
                "auto" => ShellMode::Auto,
                "enable" | "true" | "1" => ShellMode::Enable,
                "disable" | "false" | "0" => ShellMode::Disable,
                _ => {
                    return Err(ConfigError::InvalidValue {
                        origin: raw.origin,
                        value: raw.text,
                        expected: "auto, enable (TRUE) or disable (FALSE)",
                    });
                }
            },
            None => p.shell_mode.unwrap_or(ShellMode::Auto),
        };
        let timeout_raw = env_wins(
            src.var(&T::PROCESS_TIMEOUT),
            flag(&T::PROCESS_TIMEOUT, p.process_timeout.as_ref()),
        );
        let timeout_given = timeout_raw.as_ref().map(|r| r.origin.clone());
        let mut timeout = parse_limit(timeout_raw, None)?;
        if timeout.is_some_and(|d| d.is_zero()) {
            warnings.push(format!(
                "process timeout of 0 seconds ({}) means no timeout",
                timeout_given
                    .as_ref()
                    .map_or(String::new(), ToString::to_string)
            ));
            timeout = None;
        }
        if is_service && timeout.is_some() {
            warnings.push("the process timeout is ignored for services".to_owned());
            timeout = None;
        }
        let check_raw = env_wins(
            src.var(&T::PROCESS_CHECK_INTERVAL),
            flag(
                &T::PROCESS_CHECK_INTERVAL,
                p.process_check_interval.as_ref(),
            ),
        );
        let mut check_interval = parse_delay(check_raw, secs(10))?;
        if check_interval.is_zero() {
            warnings
                .push("the process check interval must be positive; using 10 seconds".to_owned());
            check_interval = secs(10);
        }
        Ok(ProcessConfig {
            command: args.command.clone(),
            command_line: src
                .var(&T::COMMAND_LINE)
                .map(|r| r.text)
                .or_else(|| p.command_line.clone()),
            work_dir: PathBuf::from(
                string(src.var(&T::WORK_DIR), p.work_dir.as_ref())
                    .unwrap_or_else(|| ".".to_owned()),
            ),
            shell_mode,
            strip_shell_wrapping: bool_setting(
                src.var(&T::STRIP_SHELL_WRAPPING),
                !p.no_strip_shell_wrapping,
            ),
            group_termination: bool_setting(
                src.var(&T::PROCESS_GROUP_TERMINATION),
                !p.no_process_group_termination,
            ),
            timeout,
            max_retries: retries(
                env_wins(
                    src.var(&T::PROCESS_MAX_RETRIES),
                    flag(&T::PROCESS_MAX_RETRIES, p.process_max_retries.as_ref()),
                ),
                Some(0),
            )?,
            retry_delay: parse_delay(
                env_wins(
                    src.var(&T::PROCESS_RETRY_DELAY),
                    flag(&T::PROCESS_RETRY_DELAY, p.process_retry_delay.as_ref()),
                ),
                Duration::ZERO,
            )?,
            check_interval,
            termination_grace_period: parse_limit(
                env_wins(
                    src.var(&T::PROCESS_TERMINATION_GRACE_PERIOD),
                    flag(
                        &T::PROCESS_TERMINATION_GRACE_PERIOD,
                        p.process_termination_grace_period.as_ref(),
                    ),
                ),
                Some(secs(30)),
            )?,
        })
    }

    fn status(args: &Args, src: &Sources<'_>) -> Result<StatusConfig, ConfigError> {
        let u = &args.updates;
        let enabled = bool_setting(
            src.var(&T::ENABLE_STATUS_UPDATE_LISTENER),
            u.enable_status_update_listener,
        );
        // As in the original, the other variables are only read when the listener is on.
        let env = |s: &Setting| if enabled { src.var(s) } else { None };
        let port = match parse_int(env_wins(
            env(&T::STATUS_UPDATE_SOCKET_PORT),
            flag(
                &T::STATUS_UPDATE_SOCKET_PORT,
                u.status_update_socket_port.as_ref(),
            ),
        ))? {
            None => DEFAULT_STATUS_UPDATE_PORT,
            Some(n) if n <= 0 => DEFAULT_STATUS_UPDATE_PORT,
            Some(n) => u16::try_from(n).map_err(|_| {
                ConfigError::Invalid(format!(
                    "status update port {n} ({} or {}) is above 65535",
                    T::STATUS_UPDATE_SOCKET_PORT.var(),
                    T::STATUS_UPDATE_SOCKET_PORT.option()
                ))
            })?,
        };
        Ok(StatusConfig {
            enabled,
            port,
            // As in 6.0.2, a value that is not positive (the server writes -1 when the Task
            // has none) means the default.
            message_max_bytes: match parse_count(
                env_wins(
                    env(&T::STATUS_UPDATE_MESSAGE_MAX_BYTES),
                    flag(
                        &T::STATUS_UPDATE_MESSAGE_MAX_BYTES,
                        u.status_update_message_max_bytes.as_ref(),
                    ),
                ),
                DEFAULT_STATUS_UPDATE_MESSAGE_MAX_BYTES,
            )? {
                0 => DEFAULT_STATUS_UPDATE_MESSAGE_MAX_BYTES,
                n => n,
            },
            interval: parse_limit(
                env_wins(
                    env(&T::STATUS_UPDATE_INTERVAL),
                    flag(
                        &T::STATUS_UPDATE_INTERVAL,
                        u.status_update_interval.as_ref(),
                    ),
                ),
                None,
            )?,
        })
    }

    fn resolver(
        args: &Args,
        src: &Sources<'_>,
        log_secrets: bool,
    ) -> Result<ResolverConfig, ConfigError> {
        let c = &args.configuration;
        let list = |s: &Setting, extra: &[String]| {
            let mut items = src
                .raw_var(s)
                .map(|t| split_locations(&t))
                .unwrap_or_default();
            items.extend(extra.iter().cloned());
            items
        };
        let merge_strategy = match (c.config_merge_strategy, src.var(&T::CONFIG_MERGE_STRATEGY)) {
            (Some(arg), _) => arg,
            (None, None) => MergeStrategy::Deep,
            (None, Some(raw)) => clap::ValueEnum::from_str(&raw.text, true).map_err(|_| {
                ConfigError::InvalidValue {
                    origin: raw.origin,
                    value: raw.text,
                    expected: "DEEP, SHALLOW, REPLACE, ADDITIVE, TYPESAFE_REPLACE or \
                                   TYPESAFE_ADDITIVE",
                }
            })?,
        };
        let resolve = bool_setting(src.var(&T::RESOLVE_SECRETS), true);
        let bounded = |s: &Setting, default: usize| -> Result<u32, ConfigError> {
            let n = parse_count(src.var(s), default)?;
            Ok(if resolve {
                u32::try_from(n).unwrap_or(u32::MAX)
            } else {
                0
            })
        };
        let text = |s: &Setting, value: Option<&String>, default: &str| {
            value
                .cloned()
                .or_else(|| src.raw_var(s).filter(|s| !s.trim().is_empty()))
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(ResolverConfig {
            env_locations: list(&T::ENV_LOCATIONS, &c.env_locations),
            config_locations: list(&T::CONFIG_LOCATIONS, &c.config_locations),
            merge_strategy,
            overwrite_env: c.overwrite_env_during_resolution
                || bool_setting(src.var(&T::OVERWRITE_ENV), false),
            max_depth: bounded(&T::MAX_CONFIG_RESOLUTION_DEPTH, 5)?,
            max_iterations: bounded(&T::MAX_CONFIG_RESOLUTION_ITERATIONS, 3)?,
            config_ttl: parse_limit(
                cli_wins(
                    src.var(&T::CONFIG_TTL),
                    flag(&T::CONFIG_TTL, c.config_ttl.as_ref()),
                ),
                None,
            )?,
            fail_fast: !c.no_fail_fast_config_resolution
                && bool_setting(src.var(&T::FAIL_FAST_CONFIG_RESOLUTION), true),
            env_var_name_prefix: text(
                &T::RESOLVED_ENV_VAR_NAME_PREFIX,
                c.resolved_env_var_name_prefix.as_ref(),
                "",
            ),
            env_var_name_suffix: text(
                &T::RESOLVED_ENV_VAR_NAME_SUFFIX,
                c.resolved_env_var_name_suffix.as_ref(),
                "_FOR_PROC_WRAPPER_TO_RESOLVE",
            ),
            config_property_name_prefix: text(
                &T::RESOLVED_CONFIG_PROPERTY_NAME_PREFIX,
                c.resolved_config_property_name_prefix.as_ref(),
                "",
            ),
            config_property_name_suffix: text(
                &T::RESOLVED_CONFIG_PROPERTY_NAME_SUFFIX,
                c.resolved_config_property_name_suffix.as_ref(),
                "__to_resolve",
            ),
            env_var_name_for_config: Some(text(
                &T::ENV_VAR_NAME_FOR_CONFIG,
                c.env_var_name_for_config.as_ref(),
                "TASK_CONFIG",
            )),
            config_property_name_for_env: Some(text(
                &T::CONFIG_PROPERTY_NAME_FOR_ENV,
                c.config_property_name_for_env.as_ref(),
                "ENV",
            )),
            env_output_filename: string_cli_wins(
                c.env_output_filename.as_ref(),
                src.var(&T::ENV_OUTPUT_FILENAME),
            ),
            env_output_format: string_cli_wins(
                c.env_output_format.as_ref(),
                src.var(&T::ENV_OUTPUT_FORMAT),
            ),
            config_output_filename: string_cli_wins(
                c.config_output_filename.as_ref(),
                src.var(&T::CONFIG_OUTPUT_FILENAME),
            ),
            config_output_format: string_cli_wins(
                c.config_output_format.as_ref(),
                src.var(&T::CONFIG_OUTPUT_FORMAT),
            ),
            exit_after_writing_variables: c.exit_after_writing_variables,
            secrets_aws_region: src.var(&T::SECRETS_AWS_REGION).map(|r| r.text),
            log_secrets,
        })
    }

    fn rollbar(args: &Args, src: &Sources<'_>) -> Result<RollbarConfig, ConfigError> {
        let r = &args.rollbar;
        let access_token = string(
            src.var(&T::ROLLBAR_ACCESS_TOKEN),
            r.rollbar_access_token.as_ref(),
        );
        // As in the original, the other variables are only read when a token is set.
        let env = |s: &Setting| {
            if access_token.is_some() {
                src.var(s)
            } else {
                None
            }
        };
        Ok(RollbarConfig {
            retries: retries(
                env_wins(
                    env(&T::ROLLBAR_RETRIES),
                    flag(&T::ROLLBAR_RETRIES, r.rollbar_retries.as_ref()),
                ),
                Some(2),
            )?,
            retry_delay: parse_delay(
                env_wins(
                    env(&T::ROLLBAR_RETRY_DELAY),
                    flag(&T::ROLLBAR_RETRY_DELAY, r.rollbar_retry_delay.as_ref()),
                ),
                secs(120),
            )?,
            timeout: parse_delay(
                env_wins(
                    env(&T::ROLLBAR_TIMEOUT),
                    flag(&T::ROLLBAR_TIMEOUT, r.rollbar_timeout.as_ref()),
                ),
                secs(30),
            )?,
            base_url: env(&T::ROLLBAR_BASE_URL).map(|r| r.text),
            access_token,
        })
    }

    /// The name used for the Task in log lines: its name, else its UUID, else `[Unnamed]`.
    pub fn task_display_name(&self) -> &str {
        self.task
            .name
            .as_deref()
            .or(self.task.uuid.as_deref())
            .unwrap_or("[Unnamed]")
    }
}

/// A configuration from an environment given as pairs, for tests.
#[cfg(test)]
pub(crate) fn from_pairs(vars: &[(&str, &str)]) -> Config {
    Config::from_sources(&Args::default(), &|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("UNWRAP: test configurations are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    fn build(argv: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let args =
            Args::try_parse_from(std::iter::once("proc_wrapper").chain(argv.iter().copied()))
                .expect("UNWRAP: test arguments parse");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_sources(&args, &|k| env.get(k).cloned())
    }

    #[test]
    fn effective_defaults_of_the_original() {
        let c = build(&[], &[]).unwrap();
        assert!(!c.offline_mode);
        assert_eq!(c.api.base_url, DEFAULT_API_BASE_URL);
        assert_eq!(c.api.heartbeat_interval, Some(secs(300)));
        assert_eq!(c.api.error_timeout, Some(secs(300)));
        assert_eq!(c.api.final_update_timeout, Some(secs(1800)));
        assert_eq!(c.api.retry_delay, secs(120));
        assert_eq!(c.api.resume_delay, Some(secs(600)));
        assert_eq!(c.api.creation_error_timeout, Some(secs(1800)));
        assert_eq!(c.api.creation_conflict_timeout, Some(secs(300)));
        assert_eq!(c.api.creation_conflict_retry_delay, secs(120));
        assert_eq!(c.api.request_timeout, Some(secs(30)));
        assert_eq!(c.process.max_retries, Some(0));
        assert_eq!(c.process.retry_delay, Duration::ZERO);
        assert_eq!(c.process.check_interval, secs(10));
        assert_eq!(c.process.termination_grace_period, Some(secs(30)));
        assert_eq!(c.process.timeout, None);
        assert!(c.process.group_termination);
        assert!(c.process.strip_shell_wrapping);
        assert_eq!(c.process.work_dir, PathBuf::from("."));
        assert_eq!(c.status.port, 2373);
        assert_eq!(c.status.message_max_bytes, 65536);
        assert_eq!(c.resolver.max_depth, 5);
        assert_eq!(c.resolver.max_iterations, 3);
        assert_eq!(
            c.resolver.env_var_name_suffix,
            "_FOR_PROC_WRAPPER_TO_RESOLVE"
        );
        assert_eq!(c.resolver.config_property_name_suffix, "__to_resolve");
        assert_eq!(
            c.resolver.env_var_name_for_config.as_deref(),
            Some("TASK_CONFIG")
        );
        assert_eq!(
            c.resolver.config_property_name_for_env.as_deref(),
            Some("ENV")
        );
        assert_eq!(c.rollbar.retries, Some(2));
        // A Task that is not auto-created is active unless the environment says otherwise.
        assert!(!c.task.passive);
        assert_eq!(c.log.level, LogLevel::Info);
        assert_eq!(c.log.max_log_line_length, 1000);
        assert_eq!(c.log.max_log_tail_bytes, Some(DEFAULT_MAX_LOG_TAIL_BYTES));
    }

    #[test]
    fn the_log_tail_byte_cap_takes_bytes_or_minus_one() {
        let cap = |argv: &[&str], env: &[(&str, &str)]| {
            build(argv, env).map(|c| c.log.max_log_tail_bytes)
        };
        assert_eq!(
            cap(&["--max-log-tail-bytes", "100"], &[]).unwrap(),
            Some(100)
        );
        assert_eq!(cap(&["--max-log-tail-bytes", "0"], &[]).unwrap(), Some(0));
        assert_eq!(cap(&["--max-log-tail-bytes", "-1"], &[]).unwrap(), None);
        // The variable wins, as for the other numbers; `None` means unset.
        let env = [("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", "200")];
        assert_eq!(
            cap(&["--max-log-tail-bytes", "100"], &env).unwrap(),
            Some(200)
        );
        let env = [("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", "None")];
        assert_eq!(cap(&[], &env).unwrap(), Some(DEFAULT_MAX_LOG_TAIL_BYTES));
        for bad in ["abc", "-5", "1.5"] {
            let e = cap(&["--max-log-tail-bytes", bad], &[]).unwrap_err();
            assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e:?}");
            assert!(e.to_string().contains("option --max-log-tail-bytes"), "{e}");
            let env = [("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", bad)];
            let e = cap(&[], &env).unwrap_err().to_string();
            assert!(e.contains("PROC_WRAPPER_MAX_LOG_TAIL_BYTES"), "{e}");
        }
    }

    #[test]
    fn environment_wins_over_the_command_line() {
        let c = build(
            &["-t", "5", "-r", "2", "-n", "cli"],
            &[
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "7"),
                ("PROC_WRAPPER_TASK_NAME", "env"),
            ],
        )
        .unwrap();
        assert_eq!(c.process.timeout, Some(secs(7)));
        assert_eq!(c.process.max_retries, Some(2));
        assert_eq!(c.task.name.as_deref(), Some("env"));
    }

    #[test]
    fn both_spellings_are_accepted_and_the_documented_one_wins() {
        let c = build(&[], &[("PROC_WRAPPER_TASK_MAX_RETRIES", "3")]).unwrap();
        assert_eq!(c.process.max_retries, Some(3));
        let c = build(
            &[],
            &[
                ("PROC_WRAPPER_TASK_MAX_RETRIES", "3"),
                ("PROC_WRAPPER_PROCESS_MAX_RETRIES", "4"),
            ],
        )
        .unwrap();
        assert_eq!(c.process.max_retries, Some(4));
        let c = build(&[], &[("PROC_WRAPPER_TERMINATE_PROCESS_GROUP", "FALSE")]).unwrap();
        assert!(!c.process.group_termination);
        let c = build(
            &[],
            &[("PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS", "9")],
        )
        .unwrap();
        assert_eq!(c.api.creation_error_timeout, Some(secs(9)));
        let c = build(&[], &[("PROC_WRAPPER_MANAGED_PROBABILITY", "0.5")]).unwrap();
        assert_eq!(c.api.managed_probability, 0.5);
    }

    #[test]
    fn minus_one_means_forever_for_retries_and_never_for_resume() {
        let c = build(&["-r", "-1", "--api-resume-delay", "-1"], &[]).unwrap();
        assert_eq!(c.process.max_retries, None);
        assert_eq!(c.api.resume_delay, None);
        let c = build(&[], &[("PROC_WRAPPER_PROCESS_MAX_RETRIES", "-1")]).unwrap();
        assert_eq!(c.process.max_retries, None);
    }

    #[test]
    fn bad_numbers_name_the_variable_or_option() {
        let err = build(&[], &[("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "abc")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS"),
            "{err}"
        );
        let err = build(&["--process-retry-delay", "soon"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--process-retry-delay"), "{err}");
        let err = build(&[], &[("PROC_WRAPPER_SHELL_MODE", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("PROC_WRAPPER_SHELL_MODE"), "{err}");
    }

    #[test]
    fn offline_mode_hides_api_variables_but_not_process_ones() {
        let c = build(
            &["-o"],
            &[
                ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "abc"),
                ("PROC_WRAPPER_API_KEY", "k"),
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "4"),
            ],
        )
        .unwrap();
        assert!(c.offline_mode);
        assert_eq!(c.api.api_key, None);
        assert_eq!(c.process.timeout, Some(secs(4)));
        let c = build(&[], &[("PROC_WRAPPER_OFFLINE_MODE", "1")]).unwrap();
        assert!(c.offline_mode);
        let c = build(&["-o"], &[("PROC_WRAPPER_OFFLINE_MODE", "FALSE")]).unwrap();
        assert!(!c.offline_mode);
    }

    #[test]
    fn zero_probabilities_force_offline_mode() {
        let c = build(
            &["-m", "0", "--api-failure-report-probability", "0"],
            &[("PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "0")],
        )
        .unwrap();
        assert!(c.offline_mode);
    }

    #[test]
    fn zero_timeout_and_interval_warn() {
        let c = build(&["-t", "0", "--process-check-interval", "0"], &[]).unwrap();
        assert_eq!(c.process.timeout, None);
        assert_eq!(c.process.check_interval, secs(10));
        assert_eq!(c.warnings.len(), 2);
        let c = build(&["-s", "-t", "5"], &[]).unwrap();
        assert_eq!(c.process.timeout, None);
    }

    #[test]
    fn invalid_log_level_in_env_warns_and_uses_info() {
        let c = build(&["-l", "DEBUG"], &[("PROC_WRAPPER_LOG_LEVEL", "LOUD")]).unwrap();
        assert_eq!(c.log.level, LogLevel::Info);
        assert_eq!(c.warnings.len(), 1);
        let c = build(&["-l", "debug"], &[]).unwrap();
        assert_eq!(c.log.level, LogLevel::Debug);
    }

    #[test]
    fn lambda_log_level_and_format() {
        let c = build(&["true"], &[]).unwrap();
        assert_eq!(
            (c.log.level, c.log.format),
            (LogLevel::Info, LogFormat::Text)
        );
        let lambda = [
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ];
        let c = build(&["true"], &lambda).unwrap();
        assert_eq!(
            (c.log.level, c.log.format),
            (LogLevel::Warning, LogFormat::Json)
        );
        let c = build(&["true"], &[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).unwrap();
        assert_eq!(c.log.level, LogLevel::Critical);
        // The wrapper's own settings win.
        let c = build(&["-l", "ERROR", "true"], &lambda).unwrap();
        assert_eq!(c.log.level, LogLevel::Error);
        let mut env = lambda.to_vec();
        env.push(("PROC_WRAPPER_LOG_LEVEL", "DEBUG"));
        let c = build(&["true"], &env).unwrap();
        assert_eq!(c.log.level, LogLevel::Debug);
        let c = build(&["true"], &[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]).unwrap();
        assert_eq!(c.log.level, LogLevel::Info);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        for text in ["Text", "", "yaml"] {
            let c = build(&["true"], &[("AWS_LAMBDA_LOG_FORMAT", text)]).unwrap();
            assert_eq!(c.log.format, LogFormat::Text, "{text}");
        }
    }

    #[test]
    fn locations_from_env_then_cli() {
        let c = build(
            &["-e", "c.env", "--config", "x.json"],
            &[("PROC_WRAPPER_ENV_LOCATIONS", "a.env, b.env")],
        )
        .unwrap();
        assert_eq!(c.resolver.env_locations, ["a.env", "b.env", "c.env"]);
        assert_eq!(c.resolver.config_locations, ["x.json"]);
        let c = build(&[], &[("PROC_WRAPPER_RESOLVE_SECRETS", "FALSE")]).unwrap();
        assert_eq!((c.resolver.max_depth, c.resolver.max_iterations), (0, 0));
    }

    #[test]
    fn passive_follows_the_precedence_of_the_original() {
        let passive = |argv: &[&str], env: &[(&str, &str)]| build(argv, env).unwrap().task.passive;
        let auto = ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE");
        // Not auto-created: active, whatever --force-task-active says, unless the env says so.
        assert!(!passive(&[], &[]));
        assert!(!passive(&["--force-task-active"], &[]));
        assert!(passive(&[], &[("PROC_WRAPPER_TASK_IS_PASSIVE", "TRUE")]));
        // Auto-created: passive, unless the env, the props or --force-task-active say not.
        assert!(passive(&[], &[auto]));
        assert!(!passive(&["--force-task-active"], &[auto]));
        assert!(passive(
            &["--force-task-active"],
            &[auto, ("PROC_WRAPPER_TASK_IS_PASSIVE", "1")]
        ));
        assert!(!passive(
            &[],
            &[(
                "PROC_WRAPPER_AUTO_CREATE_TASK_PROPS",
                r#"{"passive": false}"#
            )]
        ));
        assert!(passive(
            &["--force-task-active"],
            &[(
                "PROC_WRAPPER_AUTO_CREATE_TASK_PROPS",
                r#"{"passive": true}"#
            )]
        ));
    }

    /// What the CloudReactor server writes for a run it starts when the Task has no value:
    /// Python's `str(None)`, which means unset for numbers and booleans.
    #[test]
    fn none_from_the_server_means_unset() {
        let c = build(
            &["-m", "0.5"],
            &[
                ("PROC_WRAPPER_MANAGED_PROBABILITY", "None"),
                ("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "None"),
                ("PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY", "None"),
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "None"),
                ("PROC_WRAPPER_PROCESS_MAX_RETRIES", "None"),
                ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "None"),
                ("PROC_WRAPPER_TASK_IS_SERVICE", "None"),
                ("PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION", "None"),
                ("PROC_WRAPPER_INPUT_VALUE", "null"),
            ],
        )
        .unwrap();
        // The command line applies where the environment says None.
        assert!((c.api.managed_probability - 0.5).abs() < f64::EPSILON);
        assert!((c.api.failure_report_probability - 1.0).abs() < f64::EPSILON);
        assert!((c.api.timeout_report_probability - 1.0).abs() < f64::EPSILON);
        assert_eq!(c.process.timeout, None);
        assert_eq!(c.process.max_retries, Some(0));
        assert_eq!(c.api.heartbeat_interval, Some(secs(300)));
        assert!(!c.task.is_service);
        assert!(!c.prevent_offline_execution);
        // The input value is text unless a format says otherwise, as in 6.0.2.
        assert_eq!(c.io.input_value.as_deref(), Some("null"));
        // Elsewhere, None is not a number.
        let err = build(&[], &[("PROC_WRAPPER_API_MANAGED_PROBABILITY", "none")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("PROC_WRAPPER_API_MANAGED_PROBABILITY"),
            "{err}"
        );
    }

    #[test]
    fn auto_create_props_imply_auto_create_and_service() {
        let c = build(
            &[],
            &[(
                "PROC_WRAPPER_AUTO_CREATE_TASK_PROPS",
                r#"{"passive": false, "min_service_instance_count": 1}"#,
            )],
        )
        .unwrap();
        assert!(c.task.auto_create);
        assert!(!c.task.passive);
        assert!(c.task.is_service);
        let err = build(&[], &[("PROC_WRAPPER_AUTO_CREATE_TASK_PROPS", "{")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("PROC_WRAPPER_AUTO_CREATE_TASK_PROPS")
        );
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let c = build(&["--api-base-url", "http://x:1/"], &[]).unwrap();
        assert_eq!(c.api.base_url, "http://x:1");
    }

    #[test]
    fn debug_output_hides_the_api_key_and_the_rollbar_token() {
        let argv = [
            "--api-key",
            "key-from-the-command-line",
            "--rollbar-access-token",
            "token-from-the-command-line",
        ];
        let args =
            Args::try_parse_from(std::iter::once("proc_wrapper").chain(argv.iter().copied()))
                .unwrap();
        let shown = format!("{args:?}");
        assert!(!shown.contains("-from-the-command-line"), "{shown}");
        assert!(shown.contains(r#"api_key: Some("<redacted>")"#), "{shown}");
        let c = build(
            &argv,
            &[
                ("PROC_WRAPPER_API_KEY", "key-from-the-environment"),
                (
                    "PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN",
                    "token-from-the-environment",
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.api.api_key.as_deref(), Some("key-from-the-environment"));
        for shown in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!shown.contains("-from-the-"), "{shown}");
            assert!(shown.contains("access_token"), "{shown}");
            assert!(shown.contains("base_url"), "{shown}");
        }
        let c = build(&[], &[]).unwrap();
        assert!(format!("{c:?}").contains("api_key: None"));
    }
}
