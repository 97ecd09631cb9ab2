//! Embedded mode (README "Embedded mode: Rust programs"): [`ManagedCall`] runs a function of a
//! Rust program as a CloudReactor Task Execution, like Python's `ProcWrapper.managed_call`.
//!
//! It reads the same `PROC_WRAPPER_*` settings as `proc_wrapper`, resolves secrets into the
//! environment and configuration handed to the function, reports the start, calls the
//! function with retries (`process_max_retries`, `process_retry_delay`), and reports success
//! with the returned value as `output_value`, or failure, returning the function's own error.
//!
//! ```no_run
//! # async fn example() {
//! use proc_wrapper::managed::ManagedCall;
//!
//! let total: Result<u64, _> = ManagedCall::new()
//!     .call(|ctx| async move {
//!         let rows = ctx.config.get("rows").and_then(|v| v.as_u64()).unwrap_or(0);
//!         Ok::<_, std::io::Error>(rows * 2)
//!     })
//!     .await;
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::api::{ApiError, CreationFailure, Reporter, StatusResult, task_param_errors};
use crate::config::{Args, Config};
use crate::metadata::RuntimeMetadata;
use crate::process::capture::{LogCapture, Stream};
use crate::process::{FinalStatus, Hooks, Outcome};
use crate::settings::{Pipeline, Settings, SettingsError};
use crate::status::StatusUpdate;
use crate::task::Mode;
use crate::values::ValueError;

/// Why a managed call did not return the function's value.
#[derive(Debug)]
pub enum ManagedError<E> {
    /// The function failed on its last attempt; its own error.
    Function(E),
    /// Bad settings, or secrets that could not be resolved (`proc_wrapper` exits 78).
    Settings(SettingsError),
    /// The input value could not be read (`proc_wrapper` exits 78).
    Input(ValueError),
    /// `prevent_offline_execution` is set but the call cannot be reported: offline mode, or
    /// Task settings that are missing (each problem named).
    CannotReport(Vec<String>),
    /// The API server did not allow the execution to start (a conflict; exit 75).
    Conflict,
    /// The start could not be reported and `prevent_offline_execution` is set.
    Start(ApiError),
}

impl<E: fmt::Display> fmt::Display for ManagedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedError::Function(e) => write!(f, "{e}"),
            ManagedError::Settings(e) => write!(f, "configuration error: {e}"),
            ManagedError::Input(e) => write!(f, "configuration error: {e}"),
            ManagedError::CannotReport(problems) => write!(
                f,
                "configuration error: prevent_offline_execution is set, but the call cannot \
                 be reported: {}",
                problems.join("; ")
            ),
            ManagedError::Conflict => {
                write!(
                    f,
                    "the API server did not allow the Task Execution to start"
                )
            }
            ManagedError::Start(e) => write!(f, "could not start the Task Execution: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ManagedError<E> {}

/// What the function receives on each attempt.
#[derive(Clone)]
pub struct Context {
    /// The resolved configuration, with the resolved environment under
    /// `config_property_name_for_env` (`ENV` by default).
    pub config: Map<String, Value>,
    /// The input value, if any.
    pub input: Option<Value>,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The Task Execution UUID, when reported.
    pub task_execution_uuid: Option<String>,
    reporter: Option<Arc<Mutex<Reporter>>>,
    capture: Option<LogCapture>,
}

impl Context {
    /// Reports progress, like Python's `update_status`: counts, a message and extra
    /// properties. Sent at once when due (the first update, then at most every
    /// `status_update_interval`), else with the next update.
    pub async fn update_status(&self, update: StatusUpdate) -> StatusResult {
        let Some(reporter) = &self.reporter else {
            return StatusResult::Skipped;
        };
        let mut fields = Map::new();
        for (k, v) in [
            ("success_count", update.success_count),
            ("error_count", update.error_count),
            ("skipped_count", update.skipped_count),
            ("expected_count", update.expected_count),
        ] {
            if let Some(v) = v {
                fields.insert(k.into(), json!(v));
            }
        }
        if let Some(m) = update.last_status_message {
            fields.insert("last_status_message".into(), json!(m));
        }
        if let Some(extra) = update.extra_props {
            fields.extend(extra);
        }
        fields.insert(
            "last_app_heartbeat_at".into(),
            json!(crate::time::UtcTime::now().iso8601()),
        );
        reporter.lock().await.update_status(fields).await
    }

    /// Adds a line to the debug log tail sent with the final update (like Python's
    /// `debug_output`): kept when `num_log_lines_sent_on_*` asks for lines, truncated to
    /// `max_log_line_length`.
    pub fn debug_output(&self, message: &str) {
        if let Some(c) = &self.capture {
            c.push(Stream::Out, &format!("{message}\n"));
        }
    }

    /// True once the API server asked this execution to stop; the function should return.
    pub async fn stop_requested(&self) -> bool {
        match &self.reporter {
            Some(r) => r.lock().await.stop_wanted(),
            None => false,
        }
    }
}

/// Runs a function as a Task Execution.
#[derive(Debug, Clone, Default)]
pub struct ManagedCall {
    /// Where [`EmbeddedLogLayer`]s of this call write while it runs.
    log_slot: LogSlot,
    env: Option<HashMap<String, String>>,
    initial_config: Map<String, Value>,
    input: Option<Value>,
}

/// The Task Execution UUID that CloudReactor puts in the input of executions it starts:
/// `cloudreactor_context.proc_wrapper_params.task_execution.uuid`.
pub fn execution_uuid_from_input(input: &Value) -> Option<String> {
    input
        .get("cloudreactor_context")?
        .get("proc_wrapper_params")?
        .get("task_execution")?
        .get("uuid")?
        .as_str()
        .map(str::to_owned)
}

impl ManagedCall {
    /// Settings from the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// A `tracing` layer feeding this call's log tails ([`EmbeddedLogLayer`]).
    pub fn log_layer(&self) -> EmbeddedLogLayer {
        EmbeddedLogLayer {
            slot: self.log_slot.clone(),
        }
    }

    /// Settings from `vars` instead of the process environment.
    #[must_use]
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Configuration to start from; `--config` locations are merged onto it and its
    /// `name__to_resolve` properties resolved.
    #[must_use]
    pub fn initial_config(mut self, config: Map<String, Value>) -> Self {
        self.initial_config = config;
        self
    }

    /// The input value (such as a Lambda event). An execution UUID that CloudReactor put in
    /// it is adopted; nothing else of it is trusted.
    #[must_use]
    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Calls `f` as a Task Execution and returns its value, or its error after the last
    /// attempt.
    pub async fn call<F, Fut, T, E>(self, mut f: F) -> Result<T, ManagedError<E>>
    where
        F: FnMut(Context) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize,
        E: fmt::Display,
    {
        let env: Vec<(String, String)> = match self.env {
            Some(env) => env.into_iter().collect(),
            None => std::env::vars().collect(),
        };
        let (mut pipeline, _) =
            Pipeline::new(Args::default(), env, self.initial_config, Mode::Embedded)
                .map_err(|e| ManagedError::Settings(e.into()))?;
        let Settings {
            mut config,
            env: mut resolved_env,
            values: mut resolved_config,
            redactor,
        } = match pipeline.load().await {
            Ok(settings) => settings,
            Err(e) => {
                if let SettingsError::Unresolved(failures) = &e {
                    for f in failures {
                        error!("could not resolve {f}");
                    }
                    // The function does not run; the server hears why when it can (in the
                    // execution that started it, when the input names one).
                    let mut bootstrap = pipeline.bootstrap().clone();
                    if let Some(uuid) = self.input.as_ref().and_then(execution_uuid_from_input) {
                        bootstrap.task.execution_uuid = Some(uuid);
                    }
                    crate::api::report_unresolved(&bootstrap, Mode::Embedded, failures).await;
                }
                return Err(ManagedError::Settings(e));
            }
        };
        // The input: the one given, else, as in 6.0.2, the variable named by
        // `input_env_var_name` or the input file.
        let input = match self.input {
            Some(v) => Some(v),
            None => {
                // Embedded mode reads the input sources whether or not it sends the value.
                let mut sources = config.clone();
                sources.api.send_input_value = true;
                crate::values::input_value(&sources, &resolved_env).map_err(ManagedError::Input)?
            }
        };
        if let Some(uuid) = input.as_ref().and_then(execution_uuid_from_input) {
            config.task.execution_uuid = Some(uuid);
            config.api.managed_probability = 1.0;
        }
        let handed = |config: &Config, values: &Map<String, Value>, env: &Map<String, Value>| {
            let mut handed = values.clone();
            if let Some(key) = &config.resolver.config_property_name_for_env {
                handed.insert(key.clone(), Value::Object(env.clone()));
            }
            handed
        };

        let reporter = start(&config, input.clone()).await?;
        let uuid = match &reporter {
            Some(r) => r.lock().await.execution_uuid().map(str::to_owned),
            None => None,
        };
        // Log tails are kept only to be reported.
        let capture = reporter
            .as_ref()
            .and_then(|_| LogCapture::from_config(&config.log))
            .map(|c| c.with_redactor(redactor));
        let _active = capture
            .as_ref()
            .map(|c| ActiveCapture::set(&self.log_slot, c));
        // An embedded call has no exit code of its own.
        let mut outcome = Outcome {
            wrapper_exit_code: 0,
            ..Outcome::not_started()
        };
        loop {
            outcome.attempts += 1;
            let ctx = Context {
                config: handed(&config, &resolved_config, &resolved_env),
                input: input.clone(),
                attempt: outcome.attempts,
                task_execution_uuid: uuid.clone(),
                reporter: reporter.clone(),
                capture: capture.clone(),
            };
            match f(ctx).await {
                Ok(value) => {
                    outcome.status = FinalStatus::Succeeded;
                    if let Some(r) = &reporter {
                        let mut extra = tails(capture.as_ref(), &config, outcome.status);
                        let output = match serde_json::to_value(&value) {
                            // A function that returns nothing may leave its result in the
                            // result file, as in 6.0.2.
                            Ok(Value::Null) => crate::values::result_value(&config)
                                .unwrap_or_else(|e| {
                                    warn!("{e}");
                                    None
                                })
                                .or(Some(Value::Null)),
                            Ok(v) => Some(v),
                            Err(e) => {
                                warn!("the result cannot be sent as JSON: {e}");
                                None
                            }
                        };
                        if let Some(v) = output {
                            extra.insert("output_value".into(), v);
                        }
                        r.lock().await.final_update(&outcome, extra).await;
                    }
                    cleanup_result_file(&config);
                    return Ok(value);
                }
                Err(e) => {
                    outcome.failed_attempts += 1;
                    let last = config
                        .process
                        .max_retries
                        .is_some_and(|r| outcome.attempts > r);
                    if last {
                        error!("the function failed on attempt {}: {e}", outcome.attempts);
                        if let Some(r) = &reporter {
                            let extra = tails(capture.as_ref(), &config, outcome.status);
                            r.lock().await.final_update(&outcome, extra).await;
                        }
                        cleanup_result_file(&config);
                        return Err(ManagedError::Function(e));
                    }
                    warn!(
                        "the function failed on attempt {}: {e}; retrying",
                        outcome.attempts
                    );
                    if let Some(r) = &reporter {
                        r.lock()
                            .await
                            .attempt_failed(outcome.failed_attempts, 0)
                            .await;
                    }
                    tokio::time::sleep(config.process.retry_delay).await;
                    // Secrets are fetched again when their time to live has passed.
                    if config.resolver.config_ttl.is_some() {
                        match pipeline.load().await {
                            Ok(fresh) => {
                                resolved_env = fresh.env;
                                resolved_config = fresh.values;
                            }
                            Err(e) => warn!("keeping the previous configuration: {e}"),
                        }
                    }
                }
            }
        }
    }
}

/// The log tails to send with a final update of `status` (`LogCapture::final_tails`).
fn tails(capture: Option<&LogCapture>, config: &Config, status: FinalStatus) -> Map<String, Value> {
    capture.map_or_else(Map::new, |c| c.final_tails(&config.log, status))
}

/// Deletes the result file unless `cleanup_result_file` is false.
fn cleanup_result_file(config: &Config) {
    if let Some(file) = &config.io.result_filename
        && config.io.cleanup_result_file
        && let Err(e) = std::fs::remove_file(file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!("could not delete the result file '{file}': {e}");
    }
}

/// The capture of a managed call while it runs, shared with its [`EmbeddedLogLayer`]s.
type LogSlot = Arc<std::sync::Mutex<Option<LogCapture>>>;

fn lock_slot(slot: &LogSlot) -> std::sync::MutexGuard<'_, Option<LogCapture>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Fills the slot while it lives.
struct ActiveCapture(LogSlot);

impl ActiveCapture {
    fn set(slot: &LogSlot, capture: &LogCapture) -> Self {
        *lock_slot(slot) = Some(capture.clone());
        Self(slot.clone())
    }
}

impl Drop for ActiveCapture {
    fn drop(&mut self) {
        *lock_slot(&self.0) = None;
    }
}

/// A `tracing` layer that copies the program's log events (INFO and above) into the log tails
/// of the managed call in progress (Python's `get_embedded_logging_handler`): errors and
/// warnings go to `error_log_tail` (or `debug_log_tail` when
/// `merge_stdout_and_stderr_logs`), the rest to `debug_log_tail`. Get it from
/// [`ManagedCall::log_layer`] and add it to the program's subscriber, for example
/// `tracing_subscriber::registry().with(call.log_layer()).with(fmt::layer()).init()`.
/// Events of the wrapper itself (`proc_wrapper`) are left out.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedLogLayer {
    slot: LogSlot,
}

struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EmbeddedLogLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO || meta.target().starts_with("proc_wrapper") {
            return;
        }
        let Some(capture) = lock_slot(&self.slot).clone() else {
            return;
        };
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        let stream = if *meta.level() <= tracing::Level::WARN {
            Stream::Err
        } else {
            Stream::Out
        };
        capture.push(stream, &format!("{}: {}\n", meta.level(), visitor.0));
    }
}

/// Creates the Task Execution when reporting is on.
async fn start<E>(
    config: &Config,
    input: Option<Value>,
) -> Result<Option<Arc<Mutex<Reporter>>>, ManagedError<E>> {
    if config.offline_mode {
        if config.prevent_offline_execution {
            return Err(ManagedError::CannotReport(vec![
                "offline mode is set".to_owned(),
            ]));
        }
        return Ok(None);
    }
    let problems = task_param_errors(config);
    if !problems.is_empty() {
        if config.prevent_offline_execution {
            return Err(ManagedError::CannotReport(problems));
        }
        for p in &problems {
            warn!("cannot report to the API server: {p}");
        }
        return Ok(None);
    }
    let mut reporter = Reporter::new(
        config,
        RuntimeMetadata::detect(config).await,
        Mode::Embedded,
    )
    .map_err(ManagedError::Start)?;
    reporter.set_input_value(input);
    if !reporter.sample() {
        return Ok(Some(Arc::new(Mutex::new(reporter))));
    }
    match reporter.create().await {
        Ok(()) => {
            info!("reporting the managed call to the API server");
            Ok(Some(Arc::new(Mutex::new(reporter))))
        }
        Err(CreationFailure::Conflict) => Err(ManagedError::Conflict),
        Err(CreationFailure::Failed(e)) if config.prevent_offline_execution => {
            Err(ManagedError::Start(e))
        }
        Err(CreationFailure::Failed(e)) => {
            warn!("could not create the Task Execution ({e}); calling the function anyway");
            Ok(Some(Arc::new(Mutex::new(reporter))))
        }
    }
}
