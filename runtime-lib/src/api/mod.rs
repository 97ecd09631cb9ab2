//! Reporting to the CloudReactor API (§4 of the reference behaviour).
//!
//! * [`client`]: HTTP transport and the retry policy.
//! * [`Reporter`]: the lifecycle of one Task Execution in wrapped mode: creation, heartbeats
//!   and status updates while the process runs, failed and timed-out attempts, and the final
//!   update. It plugs into the supervisor as its [`Hooks`].
//!
//! # Theory of operation
//!
//! The supervisor awaits [`Hooks::stop_requested`] in the same `select!` as the child's exit.
//! The reporter implements it as a loop that sends pending status updates when they are due
//! and heartbeats when their interval has passed, and returns only when the server answers an
//! update with 409 (it wants the execution stopped). When the child exits first, the loop's
//! future is dropped, in-flight request included, so a slow or unreachable API server never
//! delays noticing the exit; state only changes after a request succeeded.

pub mod client;
pub mod rollbar;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};

use crate::child_env::{bool_text, float_text, limit_text, seconds_text};
use crate::config::Config;
use crate::metadata::RuntimeMetadata;
use crate::process::{FinalStatus, Hooks, Outcome, StopRequest};
use crate::status::MessageBuffer;
use crate::task::Sampling;
use crate::task::body::{self, Mode};
use crate::task::request::{self, IntoApiRequest};
use crate::task::wire::{ExecutionStatus, to_object};
use crate::time::UtcTime;
pub use client::{ApiClient, ApiError, RequestKind};

/// Problems with the Task settings that make reporting impossible (§11.1).
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

/// How Task Execution creation ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreationFailure {
    /// The server kept reporting a conflict: do not start (exit 75).
    Conflict,
    /// Any other failure.
    Failed(ApiError),
}

/// The lifecycle of one Task Execution in wrapped mode.
pub struct Reporter {
    client: ApiClient,
    config: Config,
    metadata: RuntimeMetadata,
    /// UUID of the Task Execution, once known.
    pub execution_uuid: Option<String>,
    /// Status fields waiting to be sent with the next update.
    pending: Map<String, Value>,
    /// Pending fields should be sent now rather than with the next heartbeat.
    due: bool,
    last_success: Option<Instant>,
    /// When the last heartbeat was tried, successful or not.
    last_heartbeat: Option<Instant>,
    attempt_started: Option<Instant>,
    /// The server asked the execution to stop (409 on an update).
    stop: bool,
    /// When the execution started (`started_at` of the creation request).
    pub started_at: UtcTime,
    /// When a status update message was last sent.
    last_status_sent: Option<Instant>,
    /// The input value, if known (sent at creation with `--send-input-value`).
    pub input_value: Option<Value>,
    /// The start was not reported because of `api_managed_probability` (§11.3): nothing is
    /// sent while the process runs, and its end only if it failed or timed out (each with
    /// its own probability).
    pub sampled_out: bool,
    /// The UDP status update listener, when enabled.
    socket: Option<tokio::net::UdpSocket>,
    messages: MessageBuffer,
    recv_buf: Vec<u8>,
    rollbar: Option<rollbar::Rollbar>,
    /// When the runtime metadata is next fetched again (`--runtime-metadata-refresh-interval`).
    next_refresh: Option<Instant>,
    /// Wrapped or embedded mode (`managed_call`: no exit codes, no heartbeats).
    pub mode: Mode,
    /// The `passive` flag sent with the Task ([`body::task_passive`]).
    passive: bool,
}

enum Event {
    Heartbeat,
    Datagram(usize),
    Refresh,
}

impl Reporter {
    /// A reporter for `config`, which must have passed [`task_param_errors`].
    pub fn new(config: &Config, metadata: RuntimeMetadata) -> Result<Self, reqwest::Error> {
        Ok(Self::with_client(
            ApiClient::new(config.api.clone())?,
            config,
            metadata,
        ))
    }

    /// A reporter that sends through `client` (a clone of a client shares its connections).
    pub fn with_client(client: ApiClient, config: &Config, metadata: RuntimeMetadata) -> Self {
        let mut config = config.clone();
        // A known execution is always reported, and says so (6.0.2 sends 1.0 then).
        if config.task.execution_uuid.is_some() {
            config.api.managed_probability = 1.0;
        }
        Self {
            passive: body::task_passive(&config, &metadata),
            client,
            execution_uuid: config.task.execution_uuid.clone(),
            metadata,
            messages: MessageBuffer::new(config.status.message_max_bytes),
            rollbar: rollbar::Rollbar::new(&config),
            next_refresh: config
                .api
                .runtime_metadata_refresh_interval
                .map(|i| Instant::now() + i),
            config,
            pending: Map::new(),
            due: false,
            last_success: None,
            last_heartbeat: None,
            attempt_started: None,
            stop: false,
            started_at: UtcTime::now(),
            last_status_sent: None,
            input_value: None,
            sampled_out: false,
            socket: None,
            // Allocated when the listener starts: reporters without one stay small.
            recv_buf: Vec::new(),
            mode: Mode::Wrapped,
        }
    }

    /// Decides whether this execution is reported at all (`api_managed_probability`); a
    /// known Task Execution UUID is always reported. Returns true when it is.
    pub fn sample(&mut self) -> bool {
        let sampling = Sampling::decide(&self.config.api, self.execution_uuid.is_some());
        self.sampled_out = sampling == Sampling::SampledOut;
        if self.sampled_out {
            info!(
                "not reporting this execution (api_managed_probability {})",
                self.config.api.managed_probability
            );
        }
        !self.sampled_out
    }

    /// Opens the UDP status update listener on `127.0.0.1` when it is enabled. A port that
    /// cannot be bound is logged; the process runs anyway.
    pub async fn start_listener(&mut self) {
        if !self.config.status.enabled {
            return;
        }
        let port = self.config.status.port;
        match tokio::net::UdpSocket::bind(("127.0.0.1", port)).await {
            Ok(s) => {
                debug!("listening for status updates on 127.0.0.1:{port}");
                self.recv_buf = vec![0; 65536];
                self.socket = Some(s);
            }
            Err(e) => warn!("cannot listen for status updates on 127.0.0.1:{port}: {e}"),
        }
    }

    fn ingest(&mut self, n: usize) {
        let data = std::mem::take(&mut self.recv_buf);
        let mut received = Vec::new();
        self.messages.push(&data[..n], |m| received.push(m));
        self.recv_buf = data;
        for m in received {
            self.add_status(m);
        }
    }

    /// Reads every datagram already waiting, without blocking.
    fn drain(&mut self) {
        while let Some(n) = self
            .socket
            .as_ref()
            .and_then(|s| s.try_recv(&mut self.recv_buf).ok())
        {
            self.ingest(n);
        }
    }

    /// The body of the creation request (§4.3): with the Task unless the execution is known.
    pub fn creation_body(&self) -> Map<String, Value> {
        to_object(&body::creation(
            &self.config,
            &self.metadata,
            body::CreationParts {
                mode: self.mode,
                started_at: &self.started_at,
                input_value: self.input_value.as_ref(),
                with_task: self.execution_uuid.is_none(),
                passive: self.passive,
            },
        ))
    }

    /// Creates the Task Execution: POST, or PATCH when its UUID is already known.
    pub async fn create(&mut self) -> Result<(), CreationFailure> {
        let request =
            request::create_or_attach(self.execution_uuid.as_deref(), self.creation_body());
        match self.client.send_request(request).await {
            Ok(response) => {
                if let Some(uuid) = response.get("uuid").and_then(Value::as_str) {
                    self.execution_uuid.get_or_insert_with(|| uuid.to_owned());
                }
                if self.input_value.is_none()
                    && let Some(v) = response.get("input_value").filter(|v| !v.is_null())
                {
                    self.input_value = Some(v.clone());
                }
                if let Some(task) = response.get("task") {
                    if self.config.task.uuid.is_none() {
                        self.config.task.uuid =
                            task.get("uuid").and_then(Value::as_str).map(str::to_owned);
                    }
                    if self.config.task.name.is_none() {
                        self.config.task.name =
                            task.get("name").and_then(Value::as_str).map(str::to_owned);
                    }
                }
                if self.execution_uuid.is_none() {
                    return Err(CreationFailure::Failed(ApiError::InvalidResponse(
                        "no uuid in the creation response".into(),
                    )));
                }
                self.last_success = Some(Instant::now());
                info!(
                    task_execution_uuid = self.execution_uuid.as_deref().unwrap_or_default(),
                    "created Task Execution {}",
                    self.execution_uuid.as_deref().unwrap_or_default()
                );
                Ok(())
            }
            Err(ApiError::Conflict) => {
                self.report_failure(
                    "Failed to get permission to start Task due to conflict",
                    &ApiError::Conflict,
                )
                .await;
                Err(CreationFailure::Conflict)
            }
            Err(e) => {
                self.report_failure("API Server not responding properly", &e)
                    .await;
                Err(CreationFailure::Failed(e))
            }
        }
    }

    /// Variables the child gets when reporting is on (§3.4).
    pub fn child_env_additions(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut v = vec![
            (
                "PROC_WRAPPER_API_BASE_URL".to_owned(),
                c.api.base_url.clone(),
            ),
            (
                "PROC_WRAPPER_API_MANAGED_PROBABILITY".to_owned(),
                float_text(c.api.managed_probability),
            ),
            (
                "PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY".to_owned(),
                float_text(c.api.failure_report_probability),
            ),
            (
                "PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY".to_owned(),
                float_text(c.api.timeout_report_probability),
            ),
            (
                "PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS".to_owned(),
                limit_text(c.api.error_timeout),
            ),
            (
                "PROC_WRAPPER_API_RETRY_DELAY_SECONDS".to_owned(),
                seconds_text(c.api.retry_delay),
            ),
            (
                "PROC_WRAPPER_API_RESUME_DELAY_SECONDS".to_owned(),
                limit_text(c.api.resume_delay),
            ),
            (
                "PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS".to_owned(),
                limit_text(c.api.request_timeout),
            ),
            (
                "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER".to_owned(),
                bool_text(c.status.enabled).to_owned(),
            ),
        ];
        if let Some(k) = &c.api.api_key {
            v.push(("PROC_WRAPPER_API_KEY".to_owned(), k.clone()));
        }
        if c.status.enabled {
            v.push((
                "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT".to_owned(),
                c.status.port.to_string(),
            ));
            v.push((
                "PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES".to_owned(),
                c.status.message_max_bytes.to_string(),
            ));
            v.push((
                "PROC_WRAPPER_STATUS_UPDATE_HOST".to_owned(),
                "127.0.0.1".to_owned(),
            ));
            if let Some(i) = c.status.interval {
                v.push((
                    "PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS".to_owned(),
                    seconds_text(i),
                ));
            }
        }
        for (k, val) in [
            ("PROC_WRAPPER_TASK_EXECUTION_UUID", &self.execution_uuid),
            ("PROC_WRAPPER_TASK_UUID", &c.task.uuid),
            ("PROC_WRAPPER_TASK_NAME", &c.task.name),
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
        let Some(uuid) = self.execution_uuid.clone() else {
            return false;
        };
        let has_status = !self.pending.is_empty();
        let mut body = self.pending.clone();
        body.append(&mut fields);
        body.entry("status")
            .or_insert_with(|| json!(ExecutionStatus::Running));
        let request = match kind {
            RequestKind::Final => request::Final { uuid, body }.into_request(),
            _ => request::Update { uuid, body }.into_request(),
        };
        match self.client.send_request(request).await {
            Ok(_) => {
                self.pending.clear();
                self.last_success = Some(Instant::now());
                if has_status {
                    self.last_status_sent = self.last_success;
                }
                true
            }
            Err(ApiError::Conflict) => {
                warn!("got response code 409 after the Task Execution started; stopping");
                self.stop = true;
                false
            }
            Err(ApiError::Suspended) => false,
            Err(e) => {
                warn!("could not update the Task Execution: {e}");
                self.report_failure("API Server not responding properly", &e)
                    .await;
                false
            }
        }
    }

    /// Merges status fields (from a status update message) into the pending update; they are
    /// sent at once if due, else with the next heartbeat or the final update.
    pub fn add_status(&mut self, fields: Map<String, Value>) {
        self.pending.extend(fields);
        let due = match (self.last_status_sent, self.config.status.interval) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(interval)) => self.last_success.is_none_or(|at| at.elapsed() > interval),
        };
        self.due |= due;
    }

    /// One interval after the latest of: the attempt's start, the last successful update,
    /// the last heartbeat tried.
    fn next_heartbeat(&self) -> Option<Instant> {
        let interval = self.config.api.heartbeat_interval?;
        let base = [self.attempt_started, self.last_success, self.last_heartbeat]
            .into_iter()
            .flatten()
            .max()?;
        Some(base + interval)
    }

    /// Sends the final update (§4.6), unless the server stopped the execution, the start was
    /// never reported, or retries were exhausted.
    pub async fn final_update(&mut self, outcome: &Outcome, extra: Map<String, Value>) {
        if self.stop || outcome.status == FinalStatus::Stopped {
            return;
        }
        if self.sampled_out {
            self.report_unsampled_end(outcome, extra).await;
            return;
        }
        if self.execution_uuid.is_none() {
            warn!("exited before the API server was notified of the start; not reporting the end");
            return;
        }
        self.drain();
        if self.socket.is_some() {
            debug!(
                "status update listener: accepted {} message(s), dropped {}",
                self.messages.accepted, self.messages.dropped
            );
        }
        if self.client.exhausted() {
            warn!("the API server was not responding properly; not sending the final update");
            return;
        }
        // 6.0.2 sends the PID at once after the start; when the run ended before that update
        // went out (or was answered), it goes now, on its own, before the final update.
        if self.pending.contains_key("pid") {
            self.update(Map::new(), RequestKind::Update).await;
            if self.stop {
                return;
            }
        }
        let mut fields = self.final_fields(outcome);
        fields.extend(extra);
        if self.update(fields, RequestKind::Final).await {
            info!("sent the final update ({})", outcome.status.as_str());
        }
    }
}

impl Reporter {
    /// Fetches the runtime metadata again; changed execution fields ride on the next update.
    pub async fn refresh_metadata(&mut self) {
        if let Some(interval) = self.config.api.runtime_metadata_refresh_interval {
            self.next_refresh = Some(Instant::now() + interval);
        }
        let fresh = RuntimeMetadata::detect(&self.config).await;
        if fresh != self.metadata {
            if self.config.api.send_runtime_metadata {
                let fields = fresh.update_fields();
                self.pending.extend(fields);
            }
            self.metadata = fresh;
        }
    }

    /// Merges status fields and sends them now if they are due (§7.3): `Sent`, `Failed`
    /// (the request failed; the fields wait for the next update) or `Skipped` (not due, or
    /// not reported). A 409 answer means the execution must stop: [`Reporter::stop_wanted`].
    pub async fn update_status(&mut self, fields: Map<String, Value>) -> StatusResult {
        if self.sampled_out || self.execution_uuid.is_none() {
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
    pub fn stop_wanted(&self) -> bool {
        self.stop
    }

    /// The settings, with the Task's UUID and name filled in from the creation response.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The runtime metadata in use.
    pub fn metadata(&self) -> &RuntimeMetadata {
        &self.metadata
    }

    /// Reports an API failure to Rollbar, when configured.
    async fn report_failure(&mut self, what: &str, error: &ApiError) {
        let Some(rollbar) = &mut self.rollbar else {
            return;
        };
        let level = match error {
            ApiError::Exhausted(Some(429 | 502 | 503 | 504)) => rollbar::Level::Warning,
            _ => rollbar::Level::Error,
        };
        let data = json!({
            "error": {"reason": error.to_string()},
            "was_conflict": matches!(error, ApiError::Conflict),
            "api_server_retries_exhausted": matches!(error, ApiError::Exhausted(_)),
        });
        let payload = rollbar::Rollbar::payload(
            &self.config,
            self.execution_uuid.as_deref(),
            what,
            level,
            data,
        );
        rollbar.send(&payload).await;
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
    async fn report_unsampled_end(&mut self, outcome: &Outcome, extra: Map<String, Value>) {
        if !Sampling::end_reported(&self.config.api, outcome.status) {
            return;
        }
        let mut body = self.creation_body();
        body.extend(self.pending.clone());
        body.extend(self.final_fields(outcome));
        body.extend(extra);
        match self.client.send_request(request::Create(body)).await {
            Ok(_) => info!("reported the end ({})", outcome.status.as_str()),
            Err(e) => warn!("could not report the end: {e}"),
        }
    }
}

impl Hooks for Reporter {
    async fn attempt_started(&mut self, _attempt: u32, pid: u32) {
        self.attempt_started = Some(Instant::now());
        if self.config.api.send_pid {
            self.pending.insert("pid".into(), json!(pid));
            self.due = true;
        }
    }

    async fn attempt_failed(&mut self, failed_attempts: u32, exit_code: i32) {
        if self.sampled_out {
            return;
        }
        let fields = to_object(&body::attempt_failed(self.mode, failed_attempts, exit_code));
        self.update(fields, RequestKind::Update).await;
    }

    async fn attempt_timed_out(&mut self, timed_out_attempts: u32) {
        if self.sampled_out {
            return;
        }
        let fields = to_object(&body::attempt_timed_out(timed_out_attempts));
        self.update(fields, RequestKind::Update).await;
    }

    async fn stop_requested(&mut self) -> StopRequest {
        if self.sampled_out {
            return std::future::pending().await;
        }
        loop {
            if self.stop {
                return StopRequest;
            }
            if self.due {
                self.update(Map::new(), RequestKind::Update).await;
                continue;
            }
            let heartbeat = self.next_heartbeat();
            let refresh = self.next_refresh;
            let event = {
                let socket = self.socket.as_ref();
                let buf = &mut self.recv_buf;
                tokio::select! {
                    () = sleep_until_opt(heartbeat) => Event::Heartbeat,
                    n = recv_opt(socket, buf) => Event::Datagram(n),
                    () = sleep_until_opt(refresh) => Event::Refresh,
                }
            };
            match event {
                Event::Heartbeat => {
                    self.last_heartbeat = Some(Instant::now());
                    self.update(Map::new(), RequestKind::Update).await;
                }
                Event::Datagram(n) => self.ingest(n),
                Event::Refresh => self.refresh_metadata().await,
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Receives one datagram (retrying after transient errors); never resolves without a socket.
async fn recv_opt(socket: Option<&tokio::net::UdpSocket>, buf: &mut [u8]) -> usize {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    loop {
        match socket.recv(buf).await {
            Ok(n) => return n,
            Err(e) => {
                // An error that repeats at once (the socket broken for good) must not make
                // this loop spin: wait a little before the next try.
                debug!("status update listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
