//! Wrapped mode: `proc_wrapper [options] [--] command ...`, the drop-in replacement for
//! `python -m proc_wrapper`.
//!
//! [`main_with_args`] parses the command line and the environment, sets up logging and a
//! single-threaded Tokio runtime, and calls [`run`], which resolves secrets, reports to the
//! CloudReactor API (unless offline), and supervises the command (or, in ECS sidecar mode,
//! watches the main container). Exit codes are those of [`proc_wrapper::exit_codes`].

mod error;

use proc_wrapper::config::table as T;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use clap::error::ErrorKind;
use proc_wrapper::api::{CreationFailure, Reporter, task_param_errors};
use proc_wrapper::child_env::{self, ChildEnv};
use proc_wrapper::config::{Args, Config, LogFormat, LogLevel};
use proc_wrapper::exec::ExecError;
use proc_wrapper::exit_codes;
use proc_wrapper::metadata::RuntimeMetadata;
use proc_wrapper::process::capture::LogCapture;
use proc_wrapper::process::{FinalStatus, Hooks, Outcome, StopRequest, Supervisor, command};
use proc_wrapper::secrets::format::Format;
use proc_wrapper::secrets::output;
use proc_wrapper::settings::{Pipeline, Settings, SettingsError};
use proc_wrapper::signals::StopSignals;
use proc_wrapper::task::Mode;
use proc_wrapper::task::wire::ErrorDetails;
use proc_wrapper::values;
use serde_json::{Map, Value};
use tracing::{debug, error, info, warn};

pub use error::CliError;

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
    // Phase 1 of the settings: the command line and the process environment, enough to set
    // up logging; `run` loads the rest.
    let (env_text, env_other) = process_env();
    let (pipeline, config) = match Pipeline::new(args.clone(), env_text, Map::new(), Mode::Wrapped)
    {
        Ok(loaded) => loaded,
        Err(e) => {
            // Logging is not set up yet (its settings may be the ones at fault).
            let format = LogFormat::from_env();
            if format == LogFormat::Json {
                proc_wrapper::logging::init_with_format(LogLevel::Info, true, format);
                error!("{e}");
            } else {
                eprintln!("PROC_WRAPPER: ERROR: {e}");
            }
            return exit_codes::CONFIGURATION_ERROR;
        }
    };
    proc_wrapper::logging::init_with_format(
        config.log.level,
        config.log.include_timestamps,
        config.log.format,
    );
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let ended = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(run(&args, pipeline, env_other)));
    match ended {
        Ok(code) => code,
        Err(e) => {
            e.log();
            e.exit_code()
        }
    }
}

/// A variable that is not UTF-8.
type OsVar = (OsString, OsString);

/// The process environment as text; variables that are not UTF-8 are passed to the child
/// unchanged but cannot be resolved or read as settings.
fn process_env() -> (Vec<(String, String)>, Vec<OsVar>) {
    let mut text = Vec::new();
    let mut other = Vec::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => text.push((k, v)),
            (k, v) => other.push((
                k.map_or_else(|k| k, OsString::from),
                v.map_or_else(|v| v, OsString::from),
            )),
        }
    }
    (text, other)
}

/// Output files of the resolved environment and configuration, written before the command
/// runs and deleted after it ends.
struct OutputFiles(Vec<PathBuf>);

impl OutputFiles {
    /// Writes the files. A file that cannot be written (a full disk, a missing directory)
    /// is an error naming it: the command, which expects the file, is not run, and the files
    /// already written are deleted.
    fn write(config: &Config, resolved: &Settings) -> Result<Self, CliError> {
        let r = &config.resolver;
        let plans = [
            (
                output::plan(
                    r.env_output_filename.as_deref(),
                    r.env_output_format.as_deref(),
                    Format::Dotenv,
                    "env",
                    "env",
                ),
                &resolved.env,
            ),
            (
                output::plan(
                    r.config_output_filename.as_deref(),
                    r.config_output_format.as_deref(),
                    Format::Json,
                    "config",
                    "config",
                ),
                &resolved.values,
            ),
        ];
        let mut written = Self(Vec::new());
        for (plan, value) in plans {
            match plan {
                Ok(Some(file)) => match output::write(&file, value) {
                    Ok(()) => {
                        debug!("wrote {}", file.path.display());
                        written.0.push(file.path);
                    }
                    Err(e) => {
                        written.remove();
                        return Err(CliError::Output(e.to_string()));
                    }
                },
                Ok(None) => {}
                // As in the original, a bad output setting (an unknown format) is reported
                // but does not stop the command.
                Err(e) => error!("{e}"),
            }
        }
        Ok(written)
    }

    fn remove(self) {
        for path in self.0 {
            if let Err(e) = std::fs::remove_file(&path) {
                warn!("could not delete {}: {e}", path.display());
            }
        }
    }
}

fn child_env(
    config: &Config,
    resolved: &Settings,
    other: &[OsVar],
    reporter: Option<&Reporter>,
    metadata: &RuntimeMetadata,
) -> ChildEnv {
    let base = resolved
        .env
        .iter()
        .map(|(k, v)| {
            (
                OsString::from(k),
                OsString::from(v.as_str().unwrap_or_default()),
            )
        })
        .chain(other.iter().cloned());
    let mut env = child_env::build(config, base, None);
    let additions = reporter
        .map(Reporter::child_env_additions)
        .unwrap_or_default();
    // What the runtime metadata tells the process (ECS containers), as of now.
    let metadata = reporter.map_or(metadata, Reporter::metadata);
    env.extend(
        additions
            .into_iter()
            .chain(metadata.child_env.iter().cloned())
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}

/// The supervisor's hooks in wrapped mode: reporting to the API server (when online), and
/// re-resolving before a retry when `config_ttl` is set, so that expired secrets are fetched
/// again.
struct CliHooks<'a> {
    config: &'a Config,
    pipeline: Pipeline,
    env_other: Vec<OsVar>,
    reporter: Option<Reporter>,
    /// The runtime metadata detected at the start (the reporter keeps its own, refreshed).
    metadata: RuntimeMetadata,
}

impl Hooks for CliHooks<'_> {
    async fn attempt_started(&mut self, attempt: u32, pid: u32) {
        if let Some(r) = &mut self.reporter {
            r.attempt_started(attempt, pid).await;
        }
    }

    async fn attempt_failed(&mut self, failed_attempts: u32, exit_code: i32) {
        if let Some(r) = &mut self.reporter {
            r.attempt_failed(failed_attempts, exit_code).await;
        }
    }

    async fn attempt_timed_out(&mut self, timed_out_attempts: u32) {
        if let Some(r) = &mut self.reporter {
            r.attempt_timed_out(timed_out_attempts).await;
        }
    }

    async fn before_retry(&mut self) -> Option<ChildEnv> {
        self.config.resolver.config_ttl?;
        match self.pipeline.load().await {
            Ok(resolved) => Some(child_env(
                self.config,
                &resolved,
                &self.env_other,
                self.reporter.as_ref(),
                &self.metadata,
            )),
            Err(e) => {
                CliError::from(e).log();
                warn!("keeping the previous environment for the retry");
                None
            }
        }
    }

    async fn stop_requested(&mut self) -> StopRequest {
        match &mut self.reporter {
            Some(r) => r.stop_requested().await,
            None => std::future::pending().await,
        }
    }
}

/// Resolves secrets, runs the configured command and returns the wrapper's exit code, or
/// why it stopped early. `env_other` holds the variables of the process environment that
/// are not UTF-8: they cannot be settings or secrets, and are passed to the command
/// unchanged.
pub async fn run(
    args: &Args,
    mut pipeline: Pipeline,
    env_other: Vec<OsVar>,
) -> Result<i32, CliError> {
    // Registered before anything can take long (secrets, metadata, the creation), and kept
    // until the end (the supervisor takes them over): a signal is never lost between two
    // phases, and each phase ends by the one rule of [`proc_wrapper::signals`].
    let mut stop = StopSignals::new().map_err(CliError::Signals)?;
    let loaded = tokio::select! {
        loaded = pipeline.load() => loaded,
        sig = stop.recv() => return Err(CliError::SignalledBeforeStart(sig)),
    };
    let resolved = match loaded {
        Ok(resolved) => resolved,
        Err(SettingsError::Unresolved(failures)) => {
            // The command will not run (exit 78); the server hears why when the bootstrap
            // settings allow reporting, unless a signal ends the wait first.
            let error = CliError::Settings(SettingsError::Unresolved(failures));
            error.log();
            if let CliError::Settings(SettingsError::Unresolved(failures)) = &error {
                tokio::select! {
                    () = proc_wrapper::api::report_unresolved(
                        pipeline.bootstrap(), Mode::Wrapped, failures) => {}
                    sig = stop.recv() => {
                        warn!("not reporting the unresolved settings: received {}", sig.as_str());
                    }
                }
            }
            return Err(CliError::Logged(Box::new(error)));
        }
        Err(e) => return Err(e.into()),
    };
    let config = resolved.config.clone();
    let outputs = OutputFiles::write(&config, &resolved)?;
    if config.resolver.exit_after_writing_variables {
        info!("wrote the output files; exiting without running a command");
        return Ok(exit_codes::SUCCESS);
    }
    if args.configuration.exec {
        let Some(command) = command::resolve(&config.process) else {
            return Err(ExecError::NoCommand.into());
        };
        let argv: Vec<OsString> = command.argv().into_iter().map(OsString::from).collect();
        let env = resolved
            .env
            .iter()
            .map(|(k, v)| {
                (
                    OsString::from(k),
                    OsString::from(v.as_str().unwrap_or_default()),
                )
            })
            .chain(env_other);
        debug!("exec {}", command.display());
        return match proc_wrapper::exec::exec(&argv, env) {
            Ok(never) => match never {},
            Err(e) => Err(e.into()),
        };
    }
    let hooks = CliHooks {
        config: &config,
        pipeline,
        env_other,
        reporter: None,
        metadata: RuntimeMetadata::default(),
    };
    let ended = run_command(&config, &resolved, hooks, stop).await;
    outputs.remove();
    ended
}

/// Creates the Task Execution, unless a signal to stop arrives first (creation may be retried
/// for a long time): then the command never starts.
async fn create_or_signal(
    reporter: &mut Reporter,
    stop: &mut StopSignals,
) -> Result<Result<(), CreationFailure>, CliError> {
    tokio::select! {
        created = reporter.create() => Ok(created),
        sig = stop.recv() => Err(CliError::SignalledBeforeStart(sig)),
    }
}

/// Sets up reporting; `Err` when the command must not run.
async fn start_reporting(
    config: &Config,
    input: Option<Value>,
    metadata: RuntimeMetadata,
    stop: &mut StopSignals,
) -> Result<Option<Reporter>, CliError> {
    if config.offline_mode {
        if config.prevent_offline_execution {
            return Err(CliError::OfflineForbidden);
        }
        return Ok(None);
    }
    let problems = task_param_errors(config);
    if !problems.is_empty() {
        if config.prevent_offline_execution {
            return Err(CliError::CannotReport(problems));
        }
        for p in &problems {
            error!("cannot report to the API server: {p}");
        }
        warn!("running the command without reporting to the API server");
        return Ok(None);
    }
    let mut reporter = Reporter::new(config, metadata, Mode::Wrapped).map_err(CliError::Client)?;
    reporter.set_input_value(input);
    if !reporter.sample() {
        return Ok(Some(reporter));
    }
    let created = create_or_signal(&mut reporter, stop).await?;
    reporter.start_listener().await;
    match created {
        Ok(()) => Ok(Some(reporter)),
        Err(CreationFailure::Conflict) => Err(CliError::Conflict),
        Err(CreationFailure::Failed(e)) if config.prevent_offline_execution => {
            Err(CliError::NotCreated(e))
        }
        Err(CreationFailure::Failed(e)) => {
            warn!("could not create the Task Execution ({e}); running the command anyway");
            Ok(Some(reporter))
        }
    }
}

/// Files the wrapper created for the child and deletes at the end.
struct RunFiles {
    input: Option<PathBuf>,
    result: Option<PathBuf>,
}

impl RunFiles {
    fn remove(self) {
        for path in [self.input, self.result].into_iter().flatten() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!("could not delete {}: {e}", path.display()),
            }
        }
    }
}

/// Reads the result file after a success; a result that cannot be read turns the success
/// into a failure (exit 1), as in the original.
fn read_result(config: &Config, outcome: &mut Outcome, extra: &mut Map<String, Value>) {
    if outcome.status != FinalStatus::Succeeded {
        return;
    }
    match values::result_value(config) {
        Ok(Some(v)) => {
            if config.log.log_result_value {
                info!("result value: {v}");
            }
            extra.insert("output_value".into(), v);
        }
        Ok(None) => {}
        Err(e) => {
            error!("{e}");
            outcome.status = FinalStatus::Failed;
            outcome.exit_code = Some(1);
            outcome.wrapper_exit_code = exit_codes::GENERAL_ERROR;
            outcome.error = Some(ErrorDetails::ResultFile {
                message: e.to_string(),
            });
        }
    }
}

/// ECS sidecar mode without a command: the wrapper watches the main container through the
/// task metadata endpoint and reports its end (README "Reporting to CloudReactor", "ECS
/// sidecar mode").
async fn run_sidecar(
    config: &Config,
    mut hooks: CliHooks<'_>,
    mut stop: StopSignals,
) -> Result<i32, CliError> {
    let metadata = RuntimeMetadata::detect(config).await;
    hooks.reporter = start_reporting(config, None, metadata, &mut stop).await?;
    if config.process.max_retries != Some(0) {
        warn!("retries are not possible in sidecar mode; ignoring --process-max-retries");
    }
    // 6.0.2 needed an explicit refresh interval to ever see the exit; 10 s is the default here.
    let interval = config
        .api
        .runtime_metadata_refresh_interval
        .unwrap_or(Duration::from_secs(10));
    let outcome = loop {
        let metadata = RuntimeMetadata::detect(config).await;
        if !metadata.is_execution_status_source {
            return Err(CliError::NoSidecarMetadata);
        }
        if let Some(code) = metadata.exit_code {
            info!("the main container exited with code {code}");
            break Outcome::exited(code);
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            sig = stop.recv() => break Outcome::signalled(sig),
            _ = hooks.stop_requested() => return Err(CliError::StopRequested),
        }
    };
    if let Some(r) = &mut hooks.reporter {
        r.final_update(&outcome, Map::new()).await;
    }
    Ok(outcome.wrapper_exit_code)
}

async fn run_command(
    config: &Config,
    resolved: &Settings,
    mut hooks: CliHooks<'_>,
    mut stop: StopSignals,
) -> Result<i32, CliError> {
    let sidecar = config.container.sidecar_container_mode.unwrap_or_else(|| {
        matches!(
            (&config.container.main_container_name, &config.container.monitor_container_name),
            (Some(a), Some(b)) if a != b
        )
    });
    if sidecar && command::resolve(&config.process).is_none() {
        return run_sidecar(config, hooks, stop).await;
    }
    let Some(command) = command::resolve(&config.process) else {
        return Err(CliError::NoCommand);
    };
    let input = values::input_value(config, &resolved.env)?;
    // Detected whether or not the run is reported: the process is told about its
    // containers either way, as in 6.0.2.
    hooks.metadata = RuntimeMetadata::detect(config).await;
    hooks.reporter =
        start_reporting(config, input.clone(), hooks.metadata.clone(), &mut stop).await?;
    let input = hooks
        .reporter
        .as_ref()
        .map_or(input, |r| r.input_value().cloned());
    let mut env = child_env(
        config,
        resolved,
        &hooks.env_other,
        hooks.reporter.as_ref(),
        &hooks.metadata,
    );
    let mut files = RunFiles {
        input: None,
        result: config
            .io
            .cleanup_result_file
            .then(|| config.io.result_filename.as_ref().map(PathBuf::from))
            .flatten(),
    };
    if let Some(v) = &input {
        if config.log.log_input_value {
            info!("input value: {v}");
        }
        let name = config
            .io
            .input_env_var_name
            .as_deref()
            .unwrap_or(T::INPUT_VALUE.var());
        env.insert(name.into(), values::input_text(v).into());
        let wrote = values::write_input_file(config, v)?;
        if config.io.cleanup_input_file.unwrap_or(wrote) {
            files.input = config.io.input_filename.as_ref().map(PathBuf::from);
        }
    } else if config.io.cleanup_input_file == Some(true) {
        files.input = config.io.input_filename.as_ref().map(PathBuf::from);
    }
    let ended = supervise(config, command, env, stop, &mut hooks).await;
    files.remove();
    ended
}

async fn supervise(
    config: &Config,
    command: command::Command,
    env: ChildEnv,
    stop: StopSignals,
    hooks: &mut CliHooks<'_>,
) -> Result<i32, CliError> {
    // The summary line names the Task as the server knows it (a Task given by UUID gets
    // its name from the creation response), as in 6.0.2.
    let task_name = hooks
        .reporter
        .as_ref()
        .map_or(config, Reporter::config)
        .task_display_name()
        .to_owned();
    let supervisor = Supervisor::new(&config.process, command, env, task_name, stop)
        .map_err(CliError::Signals)?;
    // Output is captured only to be reported.
    let capture = hooks
        .reporter
        .as_ref()
        .and_then(|_| LogCapture::from_config(&config.log))
        .map(|c| c.with_redactor(hooks.pipeline.redactor().clone()));
    let mut supervisor = supervisor.with_capture(capture.clone());
    let mut outcome = supervisor.run(hooks).await;
    let mut extra = Map::new();
    read_result(config, &mut outcome, &mut extra);
    if let Some(c) = &capture {
        c.finish(Duration::from_secs(2)).await;
        extra.extend(c.final_tails(&config.log, outcome.status));
    }
    if let Some(r) = &mut hooks.reporter {
        send_final_update(r, &outcome, extra, &mut supervisor, config).await;
    }
    Ok(outcome.wrapper_exit_code)
}

/// Sends the final update, within `--api-final-update-timeout`, but a wrapper that was told to
/// stop does not outstay that: after a signal (one that ended the run, or one that arrives
/// now) the update gets at most the rest of the termination grace period from that signal,
/// and a second signal during the update ends the wrapper at once. The exit code stays the
/// one of the run.
async fn send_final_update(
    reporter: &mut Reporter,
    outcome: &Outcome,
    extra: Map<String, Value>,
    supervisor: &mut Supervisor<'_>,
    config: &Config,
) {
    /// The least time a final update gets after a signal, even when the child used up the
    /// grace period: one quick attempt.
    const AT_LEAST: Duration = Duration::from_secs(2);
    let grace = config.process.termination_grace_period;
    let bound_from = |at: Instant| {
        grace.map(|g| tokio::time::Instant::from_std((at + g).max(Instant::now() + AT_LEAST)))
    };
    let update = reporter.final_update(outcome, extra);
    tokio::pin!(update);
    let mut deadline = supervisor.signalled_at().and_then(bound_from);
    let mut signalled = supervisor.signalled_at().is_some();
    loop {
        tokio::select! {
            () = &mut update => return,
            () = sleep_until_opt(deadline) => {
                warn!(
                    "gave up sending the final update: the wrapper was told to stop and the \
                     termination grace period is over"
                );
                return;
            }
            sig = supervisor.next_signal() => {
                if signalled {
                    warn!("received {sig} again; exiting without the final update");
                    return;
                }
                signalled = true;
                warn!("received {sig} while sending the final update; trying for at most the termination grace period");
                let bound = bound_from(Instant::now());
                deadline = match (deadline, bound) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
