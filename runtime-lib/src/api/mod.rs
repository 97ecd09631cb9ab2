//! Reporting to the CloudReactor API (README "Reporting to CloudReactor").
//!
//! * [`client`]: HTTP transport and the retry policy.
//! * [`execution`]: one Task Execution on the server: its creation, its updates, 409s and
//!   Rollbar.
//! * [`Reporter`]: the lifecycle of one Task Execution in wrapped and embedded mode: it keeps
//!   the timing (heartbeats, when status fields are due) and the fields waiting to be sent,
//!   builds the bodies with [`crate::task::body`], and plugs into the supervisor as its
//!   [`Hooks`].
//!
//! # Theory of operation
//!
//! The supervisor awaits [`Hooks::stop_requested`] in the same `select!` as the child's exit.
//! The reporter implements it as a loop that sends pending status updates when they are due
//! and heartbeats when their interval has passed, takes the messages of its
//! [`StatusListener`], and returns only when the server answers an update with 409 (it wants
//! the execution stopped). Every turn of the loop awaits something that can be pending (a
//! request, a timer, the listener), and every request clears what made it due, so the loop
//! cannot spin. When the child exits first, the loop's future is dropped, in-flight request
//! included, so a slow or unreachable API server never delays noticing the exit; state only
//! changes after a request succeeded.

pub mod client;
pub mod execution;
#[cfg(test)]
mod reporter_tests;
pub mod rollbar;

use serde_json::{Map, Value, json};
// Tokio's clock rather than std's: the same instants outside tests, and paused time in the
// unit tests of the heartbeat and due rules.
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::child_env::{bool_text, float_text, limit_text, seconds_text};
use crate::config::Config;
use crate::config::table as T;
use crate::metadata::RuntimeMetadata;
use crate::process::{FinalStatus, Hooks, Outcome, StopRequest};
use crate::secrets::Failure;
use crate::status::StatusListener;
use crate::task::Sampling;
use crate::task::body::{self, Mode};
use crate::task::wire::{ErrorDetails, ExecutionStatus, UnresolvedSecret, to_object};
use crate::time::UtcTime;
pub use client::{ApiClient, ApiError, Conflict, RequestKind, Tried};
pub use execution::{CreationFailure, ExecutionClient, Sent};

/// Reports a run that never started because `failures` did not resolve (README
/// "Reporting to CloudReactor", `error_details`), with `config`, the bootstrap settings
/// ([`crate::settings::Pipeline::bootstrap`]), when they allow reporting (online, an API
/// key and a Task that are not themselves unresolved). Failures to report are logged; the
/// requests are bounded as every creation and final update is.
pub async fn report_unresolved(config: &Config, mode: Mode, failures: &[Failure]) {
    if config.offline_mode || !task_param_errors(config).is_empty() {
        return;
    }
    let metadata = RuntimeMetadata::detect(config).await;
    match Reporter::new(config, metadata, mode) {
        Ok(mut reporter) => {
            let failures = failures
                .iter()
                .map(|f| UnresolvedSecret {
                    name: f.name.clone(),
                    location: f.location.clone(),
                    error: f.error.to_string(),
                })
                .collect();
            reporter
                .report_not_started(ErrorDetails::UnresolvedSecrets { failures })
                .await;
        }
        Err(e) => warn!("cannot report that the command did not start: {e}"),
    }
}

/// Problems with the Task settings that make reporting impossible (README "Differences" D25).
pub fn task_param_errors(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    if config.api.api_key.is_none() {
        errors.push("no API key (PROC_WRAPPER_API_KEY or --api-key)".to_owned());
    }
    if config.task.name.is_none() && config.task.uuid.is_none() {
        errors.push(
            "no Task name or UUID (PROC_WRAPPER_TASK_NAME, PROC_WRAPPER_TASK_UUID, --task-name \
             or --task-uuid)"
                .to_owned(),
        );
    }
    if config.task.auto_create
        && config.task.run_environment_name.is_none()
        && config.task.run_environment_uuid.is_none()
    {
        errors.push(
            "an auto-created Task needs a Run Environment (--auto-create-task-run-environment-name \
             or -uuid, or --deployment)"
                .to_owned(),
        );
    }
    errors
}

/// What [`Reporter::update_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusResult {
    /// Sent to the API server.
    Sent,
    /// The request failed; the fields go with the next update.
    Failed,
    /// Not due yet (the fields go with the next update), or the execution is not reported.
    Skipped,
}

/// When things happened, for the heartbeats and the due rule of status fields.
#[derive(Debug, Default)]
struct Timing {
    /// The current attempt started.
    attempt_started: Option<Instant>,
    /// The last update the server took.
    last_success: Option<Instant>,
    /// The last heartbeat tried, taken or not.
    last_heartbeat: Option<Instant>,
    /// The last update that carried status fields.
    last_status_sent: Option<Instant>,
    /// The runtime metadata is next fetched again (`--runtime-metadata-refresh-interval`).
    next_refresh: Option<Instant>,
}

/// The lifecycle of one Task Execution in wrapped and embedded mode.
pub struct Reporter {
    execution: ExecutionClient,
    /// The settings, with the Task's UUID and name filled in from the creation response.
    config: Config,
    metadata: RuntimeMetadata,
    mode: Mode,
    sampling: Sampling,
    /// The `passive` flag sent with the Task ([`body::task_passive`]).
    passive: bool,
    /// When the execution started (`started_at` of the creation request).
    started_at: UtcTime,
    /// The input value, if known (sent at creation with `--send-input-value`).
    input_value: Option<Value>,
    /// Status fields waiting to be sent with the next update.
    pending: Map<String, Value>,
    /// The pending fields should be sent now rather than with the next heartbeat.
    due: bool,
    /// The server asked the execution to stop (409 on an update), and what it said.
    stop: Option<Box<Conflict>>,
    timing: Timing,
    /// The process of the current attempt (wrapped mode), for `current_memory_mb`.
    child_pid: Option<u32>,
    /// The UDP status update listener, when enabled.
    listener: Option<StatusListener>,
}

enum Event {
    Heartbeat,
    Message(Option<Map<String, Value>>),
    Refresh,
}

impl Reporter {
    /// A reporter for `config`, which must have passed [`task_param_errors`], in `mode`.
    pub fn new(config: &Config, metadata: RuntimeMetadata, mode: Mode) -> Result<Self, ApiError> {
        let mut config = config.clone();
        // A known execution is always reported, and says so (6.0.2 sends 1.0 then).
        if config.task.execution_uuid.is_some() {
            config.api.managed_probability = 1.0;
        }
        let execution = ExecutionClient::new(
            ApiClient::new(config.api.clone())?,
            config.task.execution_uuid.clone(),
            &config,
        );
        Ok(Self {
            execution,
            passive: body::task_passive(&config, &metadata),
            timing: Timing {
                next_refresh: config
                    .api
                    .runtime_metadata_refresh_interval
                    .map(|i| Instant::now() + i),
                ..Timing::default()
            },
            config,
            metadata,
            mode,
            sampling: Sampling::Reported,
            started_at: UtcTime::now(),
            input_value: None,
            pending: Map::new(),
            due: false,
            stop: None,
            child_pid: None,
            listener: None,
        })
    }

    /// The input value, to be sent at creation with `--send-input-value`.
    pub fn set_input_value(&mut self, value: Option<Value>) {
        self.input_value = value;
    }

    /// The input value: the one given, else the one the creation response gave.
    pub fn input_value(&self) -> Option<&Value> {
        self.input_value.as_ref()
    }

    /// The UUID of the Task Execution, once known.
    pub fn execution_uuid(&self) -> Option<&str> {
        self.execution.uuid()
    }

    /// Decides whether this execution is reported at all ([`Sampling`]); returns true when
    /// it is.
    pub fn sample(&mut self) -> bool {
        self.sampling = Sampling::decide(&self.config.api, self.execution.uuid().is_some());
        if self.sampling == Sampling::SampledOut {
            info!(
                "not reporting this execution (api_managed_probability {})",
                self.config.api.managed_probability
            );
        }
        self.sampling == Sampling::Reported
    }

    /// Opens the UDP status update listener on `127.0.0.1` when it is enabled. A port that
    /// cannot be bound is logged; the process runs anyway.
    pub async fn start_listener(&mut self) {
        if !self.config.status.enabled {
            return;
        }
        let port = self.config.status.port;
        match StatusListener::bind(port, self.config.status.message_max_bytes).await {
            Ok(l) => {
                debug!("listening for status updates on 127.0.0.1:{port}");
                self.listener = Some(l);
            }
            Err(e) => warn!("cannot listen for status updates on 127.0.0.1:{port}: {e}"),
        }
    }

    /// The body of the creation request: with the Task unless the execution is known.
    pub(crate) fn creation_body(&self) -> Map<String, Value> {
        to_object(&body::creation(
            &self.config,
            &self.metadata,
            body::CreationParts {
                mode: self.mode,
                started_at: &self.started_at,
                input_value: self.input_value.as_ref(),
                with_task: self.execution.uuid().is_none(),
                passive: self.passive,
            },
        ))
    }

    /// Creates the Task Execution: POST, or PATCH when its UUID is already known.
    pub async fn create(&mut self) -> Result<(), CreationFailure> {
        let created = self
            .execution
            .create(self.creation_body(), &self.config)
            .await?;
        if self.input_value.is_none() {
            self.input_value = created.input_value;
        }
        let task = &mut self.config.task;
        if task.uuid.is_none() {
            task.uuid = created.task_uuid;
        }
        if task.name.is_none() {
            task.name = created.task_name;
        }
        self.timing.last_success = Some(Instant::now());
        Ok(())
    }

    /// Variables the child gets when reporting is on (README "The wrapped process's
    /// environment").
    pub fn child_env_additions(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut v = vec![
            (
                T::API_BASE_URL.child_var().to_owned(),
                c.api.base_url.clone(),
            ),
            (
                T::API_MANAGED_PROBABILITY.child_var().to_owned(),
                float_text(c.api.managed_probability),
            ),
            (
                T::API_FAILURE_REPORT_PROBABILITY.child_var().to_owned(),
                float_text(c.api.failure_report_probability),
            ),
            (
                T::API_TIMEOUT_REPORT_PROBABILITY.child_var().to_owned(),
                float_text(c.api.timeout_report_probability),
            ),
            (
                T::API_ERROR_TIMEOUT.child_var().to_owned(),
                limit_text(c.api.error_timeout),
            ),
            (
                T::API_RETRY_DELAY.child_var().to_owned(),
                seconds_text(c.api.retry_delay),
            ),
            (
                T::API_RESUME_DELAY.child_var().to_owned(),
                limit_text(c.api.resume_delay),
            ),
            (
                T::API_REQUEST_TIMEOUT.child_var().to_owned(),
                limit_text(c.api.request_timeout),
            ),
            (
                T::ENABLE_STATUS_UPDATE_LISTENER.child_var().to_owned(),
                bool_text(c.status.enabled).to_owned(),
            ),
        ];
        if let Some(k) = &c.api.api_key {
            v.push((T::API_KEY.child_var().to_owned(), k.clone()));
        }
        if c.status.enabled {
            v.push((
                T::STATUS_UPDATE_SOCKET_PORT.child_var().to_owned(),
                c.status.port.to_string(),
            ));
            v.push((
                T::STATUS_UPDATE_MESSAGE_MAX_BYTES.child_var().to_owned(),
                c.status.message_max_bytes.to_string(),
            ));
            v.push((
                T::STATUS_UPDATE_HOST.child_var().to_owned(),
                "127.0.0.1".to_owned(),
            ));
            if let Some(i) = c.status.interval {
                v.push((
                    T::STATUS_UPDATE_INTERVAL.child_var().to_owned(),
                    seconds_text(i),
                ));
            }
        }
        for (k, val) in [
            (
                T::TASK_EXECUTION_UUID.child_var(),
                &self.execution.uuid().map(str::to_owned),
            ),
            (T::TASK_UUID.child_var(), &c.task.uuid),
            (T::TASK_NAME.child_var(), &c.task.name),
        ] {
            if let Some(val) = val {
                v.push((k.to_owned(), val.clone()));
            }
        }
        v
    }

    /// Sends an update with `fields` plus the pending status fields. A 409 marks the
    /// execution as to be stopped.
    async fn update(&mut self, mut fields: Map<String, Value>, kind: RequestKind) -> bool {
        // Whatever happens, including when there is no execution to update (its creation
        // failed), the pending fields wait for the next update rather than being retried in
        // a loop: a `due` left set would make `stop_requested` go round without awaiting.
        self.due = false;
        if self.execution.uuid().is_none() {
            return false;
        }
        let has_status = !self.pending.is_empty();
        let mut body = self.pending.clone();
        body.append(&mut fields);
        body.entry("status")
            .or_insert_with(|| json!(ExecutionStatus::Running));
        match self.execution.update(body, kind, &self.config).await {
            Sent::Done => {
                self.pending.clear();
                self.timing.last_success = Some(Instant::now());
                if has_status {
                    self.timing.last_status_sent = self.timing.last_success;
                }
                true
            }
            Sent::Stop(conflict) => {
                self.stop = Some(conflict);
                false
            }
            Sent::Failed => false,
        }
    }

    /// Merges status fields (from a status update message) into the pending update; they are
    /// sent at once if due, else with the next heartbeat or the final update.
    pub(crate) fn add_status(&mut self, fields: Map<String, Value>) {
        self.pending.extend(fields);
        let t = &self.timing;
        let due = match (t.last_status_sent, self.config.status.interval) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(interval)) => t.last_success.is_none_or(|at| at.elapsed() > interval),
        };
        self.due |= due;
    }

    /// One interval after the latest of: the attempt's start, the last successful update,
    /// the last heartbeat tried.
    fn next_heartbeat(&self) -> Option<Instant> {
        let interval = self.config.api.heartbeat_interval?;
        let t = &self.timing;
        let base = [t.attempt_started, t.last_success, t.last_heartbeat]
            .into_iter()
            .flatten()
            .max()?;
        Some(base + interval)
    }

    /// Stops the status listener, taking the messages still on their way.
    async fn finish_listener(&mut self) {
        let Some(listener) = &mut self.listener else {
            return;
        };
        let (rest, counts) = listener.finish().await;
        self.listener = None;
        debug!(
            "status update listener: accepted {} message(s), dropped {}",
            counts.accepted, counts.dropped
        );
        for m in rest {
            self.add_status(m);
        }
    }

    /// Sends the final update, unless the start was never reported or retries were
    /// exhausted. After the server stopped the execution (a 409 carrying it, `STOPPED`),
    /// the final update says `STOPPED` too, with why in `error_details` and the log tails;
    /// after a 409 that refused a status, nothing more is sent.
    pub async fn final_update(&mut self, outcome: &Outcome, extra: Map<String, Value>) {
        if let Some(conflict) = self.stop.clone() {
            self.stopped_update(outcome, &conflict, extra).await;
            return;
        }
        if outcome.status == FinalStatus::Stopped {
            return;
        }
        self.finish_listener().await;
        if self.sampling == Sampling::SampledOut {
            self.report_unsampled_end(outcome, extra).await;
            return;
        }
        if self.execution.uuid().is_none() {
            warn!("exited before the API server was notified of the start; not reporting the end");
            return;
        }
        if self.execution.exhausted() {
            warn!("the API server was not responding properly; not sending the final update");
            return;
        }
        // 6.0.2 sends the PID at once after the start; when the run ended before that update
        // went out (or was answered), it goes now, on its own, before the final update.
        if self.pending.contains_key("pid") {
            self.update(Map::new(), RequestKind::Update).await;
            if let Some(conflict) = self.stop.clone() {
                self.stopped_update(outcome, &conflict, extra).await;
                return;
            }
        }
        let mut fields = self.final_fields(outcome);
        fields.extend(extra);
        if self.update(fields, RequestKind::Final).await {
            info!("sent the final update ({})", outcome.status.as_str());
        }
    }

    /// The final update of an execution the server stopped: `STOPPED`, with the stop reason
    /// and who asked in `error_details`, and the log tails. Only when the 409 carried the
    /// execution as `STOPPED` (a 409 that refused a status leaves nothing to add).
    async fn stopped_update(
        &mut self,
        outcome: &Outcome,
        conflict: &Conflict,
        extra: Map<String, Value>,
    ) {
        if conflict.status.as_deref() != Some(ExecutionStatus::Stopped.as_str()) {
            return;
        }
        self.finish_listener().await;
        let mut stopped = outcome.clone();
        stopped.status = FinalStatus::Stopped;
        stopped.error = Some(ErrorDetails::Stopped {
            stop_reason: conflict.stop_reason.clone(),
            killed_by: conflict.killed_by.clone(),
            marked_done_at: conflict.marked_done_at.clone(),
        });
        let mut fields = self.final_fields(&stopped);
        fields.extend(extra);
        if self.update(fields, RequestKind::Final).await {
            info!("sent the final update (STOPPED)");
        }
    }

    /// Fetches the runtime metadata again; changed execution fields ride on the next update.
    pub(crate) async fn refresh_metadata(&mut self) {
        if let Some(interval) = self.config.api.runtime_metadata_refresh_interval {
            self.timing.next_refresh = Some(Instant::now() + interval);
        }
        let fresh = RuntimeMetadata::detect(&self.config).await;
        if fresh != self.metadata {
            if self.config.api.send_runtime_metadata {
                self.pending.extend(fresh.update_fields());
            }
            self.metadata = fresh;
        }
    }

    /// Merges status fields and sends them now if they are due (as in 6.0.2: the first at
    /// once, later ones at most every `status_update_interval`): `Sent`, `Failed` (the request
    /// failed; the fields wait for the next update) or `Skipped` (not due, or not reported).
    /// A 409 answer means the execution must stop: `Reporter::stop_wanted`.
    pub async fn update_status(&mut self, fields: Map<String, Value>) -> StatusResult {
        if self.sampling == Sampling::SampledOut || self.execution.uuid().is_none() {
            return StatusResult::Skipped;
        }
        self.add_status(fields);
        if !self.due {
            return StatusResult::Skipped;
        }
        if self.update(Map::new(), RequestKind::Update).await {
            StatusResult::Sent
        } else {
            StatusResult::Failed
        }
    }

    /// True once the API server asked the execution to stop (409 on an update).
    pub(crate) fn stop_wanted(&self) -> bool {
        self.stop.is_some()
    }

    /// The settings, with the Task's UUID and name filled in from the creation response.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The runtime metadata in use.
    pub fn metadata(&self) -> &RuntimeMetadata {
        &self.metadata
    }

    fn final_fields(&self, outcome: &Outcome) -> Map<String, Value> {
        to_object(&body::final_fields(
            &self.config,
            &self.metadata,
            self.mode,
            outcome,
        ))
    }

    /// The end of an execution whose start was not reported: nothing for a success; a
    /// creation that carries the final status for a failure or timeout, with the matching
    /// probability.
    /// Reports a run whose command never started because its settings did not load (a
    /// secret that did not resolve): `FAILED`, with `error`. A known execution (one the
    /// server started) gets it as its final update; otherwise one creation carries the end,
    /// when sampling reports the run (`managed_probability`, else
    /// `failure_report_probability`).
    pub async fn report_not_started(&mut self, error: ErrorDetails) {
        let mut outcome = Outcome::not_started();
        outcome.wrapper_exit_code = crate::exit_codes::CONFIGURATION_ERROR;
        outcome.error = Some(error);
        let reported = self.sample();
        if self.execution.uuid().is_some() {
            let fields = self.final_fields(&outcome);
            if self.update(fields, RequestKind::Final).await {
                info!("reported that the command did not start (FAILED)");
            }
        } else if reported {
            self.create_finished(&outcome, Map::new()).await;
        } else {
            self.report_unsampled_end(&outcome, Map::new()).await;
        }
    }

    async fn report_unsampled_end(&mut self, outcome: &Outcome, extra: Map<String, Value>) {
        if Sampling::end_reported(&self.config.api, outcome.status) {
            self.create_finished(outcome, extra).await;
        }
    }

    /// Creates the execution with its end in one request.
    async fn create_finished(&mut self, outcome: &Outcome, extra: Map<String, Value>) {
        let mut body = self.creation_body();
        body.extend(self.pending.clone());
        body.extend(self.final_fields(outcome));
        body.extend(extra);
        match self.execution.create_finished(body).await {
            Ok(()) => info!("reported the end ({})", outcome.status.as_str()),
            Err(e) => warn!("could not report the end: {e}"),
        }
    }
}

impl Hooks for Reporter {
    async fn attempt_started(&mut self, _attempt: u32, pid: u32) {
        self.timing.attempt_started = Some(Instant::now());
        self.child_pid = Some(pid);
        if self.config.api.send_pid {
            self.pending.insert("pid".into(), json!(pid));
            self.due = true;
        }
    }

    async fn attempt_failed(&mut self, failed_attempts: u32, exit_code: i32) {
        if self.sampling == Sampling::SampledOut {
            return;
        }
        let fields = to_object(&body::attempt_failed(self.mode, failed_attempts, exit_code));
        self.update(fields, RequestKind::Update).await;
    }

    async fn attempt_timed_out(&mut self, timed_out_attempts: u32) {
        if self.sampling == Sampling::SampledOut {
            return;
        }
        let fields = to_object(&body::attempt_timed_out(timed_out_attempts));
        self.update(fields, RequestKind::Update).await;
    }

    async fn stop_requested(&mut self) -> StopRequest {
        if self.sampling == Sampling::SampledOut {
            return std::future::pending().await;
        }
        loop {
            if self.stop.is_some() {
                return StopRequest;
            }
            if self.due {
                self.update(Map::new(), RequestKind::Update).await;
                continue;
            }
            let heartbeat = self.next_heartbeat();
            let refresh = self.timing.next_refresh;
            let event = tokio::select! {
                () = sleep_until_opt(heartbeat) => Event::Heartbeat,
                m = recv_opt(self.listener.as_mut()) => Event::Message(m),
                () = sleep_until_opt(refresh) => Event::Refresh,
            };
            match event {
                Event::Heartbeat => {
                    self.timing.last_heartbeat = Some(Instant::now());
                    let mut fields = Map::new();
                    let group = self.config.process.group_termination;
                    if let Some(mb) = self
                        .child_pid
                        .and_then(|pid| crate::process::resources::current_mb(pid, group))
                    {
                        fields.insert("current_memory_mb".into(), json!(mb));
                    }
                    self.update(fields, RequestKind::Update).await;
                }
                Event::Message(Some(m)) => self.add_status(m),
                // The listener's task ended (it cannot, unless its runtime goes away).
                Event::Message(None) => self.listener = None,
                Event::Refresh => self.refresh_metadata().await,
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next message of the listener; never resolves without one.
async fn recv_opt(listener: Option<&mut StatusListener>) -> Option<Map<String, Value>> {
    match listener {
        Some(l) => l.recv().await,
        None => std::future::pending().await,
    }
}
