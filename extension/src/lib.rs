//! `cloudreactor-extension`: an AWS Lambda external extension that reports every invocation
//! of the function it is attached to as a CloudReactor Task Execution, whatever the
//! function's language, with no change to its code.
//!
//! # Theory of operation
//!
//! * **Init**: start the Runtime API proxy on `127.0.0.1` (module `proxy`; before
//!   registering, since Lambda starts the runtime, and with it the exec wrapper that looks for
//!   the proxy, once the extensions registered), register with the Extensions API (INVOKE and
//!   SHUTDOWN, with the `accountId` feature), open the Telemetry API listener on `0.0.0.0` (a
//!   free port unless configured) and subscribe to platform records, open the UDP status
//!   listener on `127.0.0.1`, and start resolving the `PROC_WRAPPER_*` settings (secret
//!   locations included) in the background, so that nothing slow delays the first `/next`.
//! * **INVOKE**: a task per invocation (module `invocation`) creates the Task Execution (or waits
//!   for the outcome and reports it with one request when the function ends within the
//!   creation delay), and sends the final update when `platform.runtimeDone` arrives, or as
//!   soon as the proxy saw Lambda accept the runtime's response or error. The event the proxy
//!   saw may name the Task Execution CloudReactor started: it is then updated, not created.
//!   The main loop waits for that final update at most `PROC_WRAPPER_LAMBDA_MAX_ADDED_MS` after the
//!   runtime's response and never past the deadline, then calls `/next` again; unfinished
//!   requests go on in the background.
//! * **`platform.report`** (billed duration, memory) arrives during the next invocation and is
//!   sent as an update of the execution it belongs to, repeating its final status (the
//!   server takes an update without a status for `RUNNING`, and refuses that after the end).
//! * **Initialisation**: a failed `platform.initRuntimeDone` / `platform.initReport` goes to
//!   the invocation in progress, or to the next one; when SHUTDOWN comes first, the failed
//!   initialisation is reported as a `FAILED` execution of its own.
//! * **SHUTDOWN**: open invocations are closed (`timeout` → `TERMINATED_AFTER_TIME_OUT`,
//!   `failure` → `FAILED`), pending requests get until the deadline minus the margin, then the
//!   extension exits 0.
//! * **Nothing to report** (reporting off: offline, no API key, no Run Environment, no
//!   telemetry subscription; or telemetry that never arrives, as in emulators): said once,
//!   and from then on each INVOKE is answered by the next `/next` at once, with no task and
//!   no wait. Where telemetry never arrives, the first invocation waits for it at most
//!   `PROC_WRAPPER_EXTENSION_TELEMETRY_WAIT_MS`.
//!
//! Failures of the API server, the settings or the secrets are logged; they never fail the
//! function, never call `init/error`, and never stop the extension from answering `/next`.

pub mod bootstrap;
mod invocation;
pub mod proxy;
#[cfg(test)]
mod routing_tests;
pub mod runtime_api;
pub mod settings;
pub mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proc_wrapper::config::{Args, Config};
use proc_wrapper::handoff::HandOff;
use proc_wrapper::lambda::backlog::Backlog;
use proc_wrapper::lambda::{LambdaReporting, with_task_defaults};
use proc_wrapper::status::StatusListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::invocation::{Answer, Close, Event, Invocation, ReportingRx, ReportingState};
use crate::runtime_api::{Invoke, NextEvent, Registration, RuntimeApi};
use crate::settings::Settings;
use crate::telemetry::{InitEnd, Record};

/// Everything needed to report, once the settings are resolved.
pub(crate) struct Reporting {
    pub(crate) lambda: LambdaReporting,
    pub(crate) registration: Registration,
    /// What waits to be sent, and is sent, in order.
    pub(crate) backlog: Backlog,
}

/// What the listeners pass to the main loop.
#[derive(Debug)]
pub enum Inbound {
    /// A telemetry record.
    Telemetry(Record),
    /// A status or hand-off message from the function.
    Status(HandOff),
    /// What the Runtime API proxy saw.
    Proxy(proxy::Seen),
}

/// The Task Execution UUID of an event's `cloudreactor_context`, read without keeping the
/// rest of the event.
fn context_uuid(event: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        cloudreactor_context: Option<serde_json::Value>,
    }
    let event: Event = serde_json::from_slice(event).ok()?;
    let context = serde_json::json!({"cloudreactor_context": event.cloudreactor_context?});
    proc_wrapper::lambda::execution_uuid_from_input(&context)
}

/// Listens for status and hand-off messages on `127.0.0.1:port` until `cancel`, handing each
/// on to the main loop.
async fn listen_udp(
    port: u16,
    max_bytes: usize,
    tx: UnboundedSender<Inbound>,
    cancel: CancellationToken,
) {
    let mut listener = match StatusListener::bind(port, max_bytes).await {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot listen for status updates on 127.0.0.1:{port}: {e}");
            return;
        }
    };
    debug!("listening for status updates on 127.0.0.1:{port}");
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = cancel.cancelled() => break,
                m = listener.recv() => m,
            };
            let Some(m) = message else { break };
            if tx.send(Inbound::Status(HandOff::parse(m))).is_err() {
                break;
            }
        }
    });
}

fn epoch_ms_instant(ms: u64) -> Option<Instant> {
    if ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Some(Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms)))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Most invocations whose tasks wait at once (for their telemetry, for the late report):
/// their reports themselves wait in the backlog (`proc_wrapper::lambda::backlog`), which has
/// its own bound, so more than this means telemetry does not keep up; the excess goes
/// unreported, with a warning.
const MAX_IN_FLIGHT: usize = 64;

/// The main loop's state.
struct State {
    /// Invocations not reported because too many reports were in flight.
    unreported: u64,
    settings: Settings,
    reporting: ReportingRx,
    /// Event senders of the invocations still reporting, by request id.
    invocations: HashMap<String, UnboundedSender<Event>>,
    /// The invocations' tasks; each ends with its request id.
    tasks: JoinSet<String>,
    /// The invocation in progress.
    current: Option<Current>,
    /// Records that arrived before their INVOKE.
    early: HashMap<String, Vec<Event>>,
    invoked: u64,
    telemetry: Telemetry,
    /// A failed initialisation that no invocation has taken yet.
    init_failure: Option<InitEnd>,
    /// An init record (`platform.initRuntimeDone` or `platform.initReport`) arrived.
    init_known: bool,
    /// The runtime polls for its events through the Runtime API proxy.
    proxied: bool,
}

/// What is known of the Telemetry API's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telemetry {
    /// Subscribed; no record has arrived yet.
    Awaited,
    /// Records arrive.
    Arriving,
    /// Not subscribed, or no record arrived for an invocation within the wait: outcomes
    /// cannot be known, so invocations are not reported (said once).
    Missing,
}

/// The invocation in progress.
#[derive(Debug)]
struct Current {
    request_id: String,
    /// When its runtime finished, once its `runtimeDone` arrived.
    done_at: Option<Instant>,
    /// A telemetry record arrived since its INVOKE.
    telemetry_seen: bool,
}

impl State {
    fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.request_id.as_str())
    }

    /// Invocations can be reported: reporting is not off, and telemetry is not missing.
    /// When they cannot, nothing waits for them.
    fn reports(&self) -> bool {
        self.telemetry != Telemetry::Missing
            && !matches!(*self.reporting.borrow(), ReportingState::Off)
    }

    /// An init record: it goes to the invocation in progress; without one, a failure waits
    /// for the next invocation (or SHUTDOWN), and a success clears it.
    fn init_ended(&mut self, end: InitEnd) {
        self.init_known = true;
        if end.failed() {
            debug!(
                status = ?end.status, error_type = ?end.error_type, phase = ?end.phase,
                "the function's initialisation failed"
            );
        }
        if let Some(c) = &mut self.current {
            if end.decides_the_invocation() {
                c.done_at.get_or_insert_with(Instant::now);
            }
            let id = c.request_id.clone();
            self.deliver(&id, Event::Init(end));
        } else if end.succeeded() {
            self.init_failure = None;
        } else if end.failed() {
            match &mut self.init_failure {
                Some(known) => known.merge(end),
                None => self.init_failure = Some(end),
            }
        }
    }
}

impl State {
    fn deliver(&mut self, request_id: &str, event: Event) {
        if let Some(tx) = self.invocations.get(request_id) {
            if tx.send(event).is_err() {
                self.invocations.remove(request_id);
            }
            return;
        }
        // Records of an invocation whose INVOKE has not been seen yet are kept (bounded)
        // until it arrives; those of finished invocations are dropped.
        let unseen = self.current_id() != Some(request_id);
        let room = self.early.len() < 64 || self.early.contains_key(request_id);
        if unseen && room {
            let early = self.early.entry(request_id.to_owned()).or_default();
            if early.len() < 8 {
                early.push(event);
            }
        }
    }

    fn route(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Telemetry(record) => {
                if record.is_platform() {
                    if let Some(c) = &mut self.current {
                        c.telemetry_seen = true;
                    }
                    if self.telemetry == Telemetry::Awaited {
                        self.telemetry = Telemetry::Arriving;
                        // Invocations opened until now wait for this to be created.
                        for tx in self.invocations.values() {
                            let _ = tx.send(Event::TelemetryArrives);
                        }
                    }
                }
                match record {
                    Record::RuntimeDone {
                        request_id,
                        at,
                        status,
                        duration_ms,
                        error_type,
                    } => {
                        if let Some(c) =
                            self.current.as_mut().filter(|c| c.request_id == request_id)
                        {
                            // The cap counts from the runtime's end, which telemetry reports
                            // after its buffering delay.
                            let ago = at
                                .and_then(|at| SystemTime::now().duration_since(at).ok())
                                .unwrap_or(Duration::ZERO)
                                .min(Duration::from_secs(1));
                            c.done_at = Some(Instant::now() - ago);
                        }
                        self.deliver(
                            &request_id,
                            Event::Done {
                                status,
                                duration_ms,
                                error_type,
                            },
                        );
                    }
                    Record::Report {
                        request_id,
                        metrics,
                    } => self.deliver(&request_id, Event::Report(metrics)),
                    Record::InitRuntimeDone(end) | Record::InitReport(end) => self.init_ended(end),
                    Record::Other(kind) => debug!("telemetry: {kind}"),
                }
            }
            Inbound::Proxy(seen) => self.proxy_saw(seen),
            Inbound::Status(h) => {
                debug!(for_request = ?h.request_id, current = ?self.current_id(), "a message from the function");
                let target = h
                    .request_id
                    .clone()
                    .or_else(|| self.current_id().map(str::to_owned));
                match target {
                    Some(id) => self.deliver(&id, Event::HandOff(h)),
                    None => debug!("a status update arrived outside an invocation; dropped"),
                }
            }
        }
    }

    /// What the Runtime API proxy saw: the event of an invocation (which may name its Task
    /// Execution), or the runtime's answer, which settles the outcome at once.
    fn proxy_saw(&mut self, seen: proxy::Seen) {
        match seen {
            proxy::Seen::Polled => {
                if !self.proxied {
                    debug!("the runtime talks to Lambda through the Runtime API proxy");
                    self.proxied = true;
                }
            }
            proxy::Seen::Event {
                request_id,
                body,
                complete,
            } => {
                self.proxied = true;
                if !complete {
                    debug!(
                        request_id,
                        "the event is too large to be read for its Task Execution"
                    );
                }
                // The event is kept only to be sent (or while the settings are not known).
                let keep = match &*self.reporting.borrow() {
                    ReportingState::Resolving => true,
                    ReportingState::On(r) => r.lambda.config.api.send_input_value,
                    ReportingState::Off => false,
                };
                let (uuid, input) = if !complete {
                    (None, None)
                } else if keep {
                    let input = serde_json::from_slice::<serde_json::Value>(&body).ok();
                    let uuid = input
                        .as_ref()
                        .and_then(proc_wrapper::lambda::execution_uuid_from_input);
                    (uuid, input)
                } else {
                    (context_uuid(&body), None)
                };
                if let Some(uuid) = &uuid {
                    debug!(request_id, "the event names Task Execution {uuid}");
                }
                self.deliver(&request_id, Event::Input { uuid, input });
            }
            proxy::Seen::Posted { request_id } => self.deliver(&request_id, Event::Posted),
            proxy::Seen::Response { request_id } => self.answered(&request_id, Answer::Response),
            proxy::Seen::Error {
                request_id,
                error_type,
                body,
            } => {
                let error = serde_json::from_slice::<serde_json::Value>(&body).ok();
                let field = |k: &str| {
                    error
                        .as_ref()
                        .and_then(|e| e.get(k))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                };
                // The body's errorType names the error; the header is often generic
                // (`unhandled` from lambda_runtime).
                let answer = Answer::Error {
                    error_type: field("errorType").or(error_type),
                    error_message: field("errorMessage"),
                };
                self.answered(&request_id, answer);
            }
        }
    }

    fn answered(&mut self, request_id: &str, answer: Answer) {
        if let Some(c) = self.current.as_mut().filter(|c| c.request_id == request_id) {
            c.done_at.get_or_insert_with(Instant::now);
        }
        self.deliver(request_id, Event::Answered(answer));
    }

    /// Starts reporting an invocation; the receiver fires when its final update is done.
    fn start(&mut self, invoke: Invoke, deadline: Option<Instant>) -> oneshot::Receiver<()> {
        let (finished, invocation) = self.open(invoke, deadline);
        if let Some(invocation) = invocation {
            let id = invocation.invoke.request_id.clone();
            self.tasks.spawn(async move {
                invocation.run().await;
                id
            });
        }
        finished
    }

    /// Makes `invoke` the current invocation and returns the task that reports it (with the
    /// records that arrived early already queued), for [`State::start`] to spawn; none when
    /// too many reports are in flight. The receiver fires when its final update is done.
    fn open(
        &mut self,
        invoke: Invoke,
        deadline: Option<Instant>,
    ) -> (oneshot::Receiver<()>, Option<Invocation>) {
        let (tx, rx) = unbounded_channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        // Its telemetry can reach this loop before its INVOKE does (it was kept in
        // `early`): that is telemetry seen for it, and a `runtimeDone` among it is its end.
        let early = self.early.get(&invoke.request_id);
        let telemetry_seen = early.is_some_and(|events| {
            events
                .iter()
                .any(|e| matches!(e, Event::Done { .. } | Event::Report(_)))
        });
        let done_at = early
            .is_some_and(|events| events.iter().any(|e| matches!(e, Event::Done { .. })))
            .then(Instant::now);
        if self.tasks.len() >= MAX_IN_FLIGHT {
            // The API server is too slow for the rate of invocations: memory stays bounded,
            // and this invocation goes unreported.
            self.unreported += 1;
            if self.unreported.is_power_of_two() {
                warn!(
                    "{} invocation(s) not reported: {MAX_IN_FLIGHT} reports are still waiting \
                     for telemetry or for the API server",
                    self.unreported
                );
            }
            self.current = Some(Current {
                request_id: invoke.request_id,
                done_at,
                telemetry_seen,
            });
            let _ = finished_tx.send(());
            return (finished_rx, None);
        }
        for event in self.early.remove(&invoke.request_id).unwrap_or_default() {
            let _ = tx.send(event);
        }
        // Whatever else was kept belongs to invocations that are over.
        self.early.clear();
        if self.telemetry == Telemetry::Missing {
            let _ = tx.send(Event::Close(Close::NoTelemetry));
        }
        // The failed initialisation this invocation follows.
        if let Some(init) = self.init_failure.take() {
            let _ = tx.send(Event::Init(init));
        }
        self.current = Some(Current {
            request_id: invoke.request_id.clone(),
            done_at,
            telemetry_seen,
        });
        self.invocations.insert(invoke.request_id.clone(), tx);
        self.invoked += 1;
        // Lambda's longest timeout is 15 minutes; past the deadline runtimeDone(timeout)
        // follows promptly, unless telemetry does not arrive at all.
        let outcome_limit = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(900))
            + self.settings.telemetry_wait;
        let invocation = Invocation {
            invoke,
            cold_start: self.invoked == 1,
            creation_delay: self.settings.creation_delay,
            telemetry_arrives: self.telemetry == Telemetry::Arriving,
            proxied: self.proxied,
            outcome_limit,
            reporting: self.reporting.clone(),
            events: rx,
            finished: Some(finished_tx),
        };
        (finished_rx, Some(invocation))
    }

    /// An invocation's task ended: nothing more goes to it.
    fn ended(&mut self, done: Result<String, tokio::task::JoinError>) {
        match done {
            Ok(id) => {
                self.invocations.remove(&id);
            }
            // Only a panic ends a task early; its sender is dropped at the next delivery.
            Err(e) => error!("an invocation's report failed: {e}"),
        }
    }

    fn close_all(&mut self, why: &Close) {
        for tx in self.invocations.values() {
            let _ = tx.send(Event::Close(why.clone()));
        }
        self.invocations.clear();
    }
}

/// The extension's name: the file name it was started as (it must match the file in
/// `/opt/extensions`).
pub fn extension_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "cloudreactor-extension".to_owned())
}

/// Runs the extension until SHUTDOWN; returns the exit code (0, or 1 when the Extensions API
/// itself is unusable).
pub async fn run(env: HashMap<String, String>) -> i32 {
    let lookup = |k: &str| env.get(k).cloned();
    let (settings, warnings) = Settings::from_env(&lookup);
    for w in warnings {
        warn!("{w}");
    }
    let mut api = match RuntimeApi::new(env.get("AWS_LAMBDA_RUNTIME_API").map(String::as_str)) {
        Ok(api) => api,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let (tx, mut inbox) = unbounded_channel();
    // The proxy listens before the extension registers: Lambda starts the runtime (and
    // the exec wrapper, which looks for the proxy) only once the extensions registered.
    if let (Some(port), Some(upstream)) =
        (settings.runtime_proxy, env.get("AWS_LAMBDA_RUNTIME_API"))
    {
        let to_main = tx.clone();
        let sink: proxy::Sink = Arc::new(move |seen| {
            let _ = to_main.send(Inbound::Proxy(seen));
        });
        // In a process of its own when this binary can be found again (it always can on
        // Linux, through /proc/self/exe), else on a thread of this one.
        let started = match std::env::current_exe() {
            Ok(program) => proxy::process::start(program, port, upstream.clone(), sink),
            Err(e) => {
                debug!("the Runtime API proxy runs in the extension's process: {e}");
                proxy::spawn(port, upstream.clone(), sink)
            }
        };
        match started {
            Ok(port) => debug!("the Runtime API proxy listens on 127.0.0.1:{port}"),
            Err(e) => warn!(
                "cannot start the Runtime API proxy on 127.0.0.1:{port}: {e}; the runtime will \
                 talk to Lambda directly, and invocations are reported from telemetry alone"
            ),
        }
    }
    let registration = match api.register(&extension_name()).await {
        Ok(r) => r,
        Err(e) => {
            error!("could not register: {e}");
            return 1;
        }
    };
    debug!(
        "registered as {} for function {:?}",
        registration.extension_id, registration.function_name
    );
    let env = with_task_defaults(env, registration.function_name.clone());
    let lookup = |k: &str| env.get(k).cloned();
    // Cancelled when the extension ends: the listeners stop.
    let cancel = CancellationToken::new();
    let _cancel_on_exit = cancel.clone().drop_guard();
    let telemetry =
        match telemetry::listen(settings.telemetry_port, tx.clone(), cancel.clone()).await {
            Ok(port) => match api.subscribe_telemetry(port).await {
                Ok(()) => {
                    debug!("subscribed to telemetry on port {port}");
                    true
                }
                Err(e) => {
                    error!("not reporting invocations: cannot subscribe to telemetry: {e}");
                    false
                }
            },
            Err(e) => {
                error!(
                    "not reporting invocations: cannot listen for telemetry on port {}: {e}",
                    settings.telemetry_port
                );
                false
            }
        };
    // The status listener's settings come from the plain environment (no secrets needed).
    match Config::from_sources(&Args::default(), &lookup) {
        Ok(c) if c.status.enabled => {
            listen_udp(
                c.status.port,
                c.status.message_max_bytes,
                tx.clone(),
                cancel.clone(),
            )
            .await;
        }
        Ok(_) => debug!("the status update listener is off"),
        Err(e) => warn!("not listening for status updates: {e}"),
    }
    drop(tx);
    let (reporting_tx, reporting_rx) = watch::channel(ReportingState::Resolving);
    if telemetry {
        let env = env.clone();
        let registration = registration.clone();
        let backlog_max = settings.backlog_max;
        tokio::spawn(async move {
            let function = registration.function_name.clone();
            let reporting = match LambdaReporting::prepare(env, function).await {
                Some(lambda) => ReportingState::On(Arc::new(Reporting {
                    backlog: Backlog::start(lambda.client.clone(), backlog_max),
                    lambda,
                    registration,
                })),
                None => ReportingState::Off,
            };
            let _ = reporting_tx.send(reporting);
        });
    } else {
        let _ = reporting_tx.send(ReportingState::Off);
    }
    let mut state = State {
        unreported: 0,
        settings,
        reporting: reporting_rx,
        invocations: HashMap::new(),
        tasks: JoinSet::new(),
        current: None,
        early: HashMap::new(),
        invoked: 0,
        telemetry: if telemetry {
            Telemetry::Awaited
        } else {
            Telemetry::Missing
        },
        init_failure: None,
        init_known: false,
        proxied: false,
    };
    let mut last_invoke: Option<Instant> = None;
    loop {
        debug!("waiting for the next event");
        let event = {
            let next = api.next();
            tokio::pin!(next);
            loop {
                tokio::select! {
                    biased;
                    event = &mut next => break event,
                    Some(inbound) = inbox.recv() => state.route(inbound),
                    Some(done) = state.tasks.join_next(), if !state.tasks.is_empty() => state.ended(done),
                }
            }
        };
        match event {
            Ok(NextEvent::Invoke(invoke)) => {
                if !state.reports() {
                    // Said once already (reporting off, or no telemetry): nothing to wait for.
                    debug!(
                        "invocation {}: not reported; back to /next at once",
                        invoke.request_id
                    );
                    state.early.clear();
                    continue;
                }
                let deadline = epoch_ms_instant(invoke.deadline_ms);
                let request_id = invoke.request_id.clone();
                // Frequent invocations (like Datadog's "periodic flush") do not hold /next for
                // their outcome: it is reported in the background, at the latest while the
                // next invocation runs. Sporadic ones are reported before /next.
                let now = Instant::now();
                let frequent =
                    last_invoke.is_some_and(|at| now - at < state.settings.frequent_interval);
                last_invoke = Some(now);
                // The backlog tries again now: the server may answer since the last
                // invocation (the environment was frozen meanwhile).
                if let Some(r) = state.reporting.borrow().on() {
                    r.backlog.kick();
                }
                let finished = state.start(invoke, deadline);
                if frequent && state.telemetry == Telemetry::Arriving {
                    debug!(
                        request_id,
                        "frequent invocations: not waiting for the outcome"
                    );
                } else {
                    wait_for_invocation(&mut state, &mut inbox, finished, deadline, &request_id)
                        .await;
                }
            }
            Ok(NextEvent::Shutdown {
                reason,
                deadline_ms,
            }) => {
                info!("shutting down ({reason})");
                shutdown(&mut state, &mut inbox, &reason, deadline_ms).await;
                return 0;
            }
            Err(e) => {
                // A broken Extensions API is the platform's problem; exiting lets Lambda
                // restart the environment.
                error!("{e}");
                return 1;
            }
        }
    }
}

/// How long the main loop waits for the current invocation's final update: at most
/// `max_added` after its `runtimeDone` (not at all while the API server fails), never past
/// its deadline, and only `telemetry_wait` while no telemetry has arrived.
fn waiting_limit(
    state: &State,
    runtime_done_at: Option<Instant>,
    deadline: Option<Instant>,
    invoked_at: Instant,
) -> Option<Instant> {
    // While the API server fails, reports go on in the background without being waited for.
    let api_healthy = state
        .reporting
        .borrow()
        .on()
        .is_none_or(|r| r.backlog.healthy());
    let max_added = if api_healthy {
        state.settings.max_added
    } else {
        Duration::ZERO
    };
    let cap = runtime_done_at.map(|at| at + max_added);
    let telemetry_seen = state.current.as_ref().is_some_and(|c| c.telemetry_seen);
    let watchdog = (!telemetry_seen).then(|| invoked_at + state.settings.telemetry_wait);
    [cap, deadline, watchdog].into_iter().flatten().min()
}

async fn wait_for_invocation(
    state: &mut State,
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<Inbound>,
    mut finished: oneshot::Receiver<()>,
    deadline: Option<Instant>,
    request_id: &str,
) {
    let invoked_at = Instant::now();
    // The final update is done, but no telemetry has arrived in this environment yet: an
    // outcome that came from the proxy or the handler wrapper does not say whether it
    // will. The wait for the first record goes on (once per environment; about the
    // Telemetry API's buffering time), so that where none comes, invocations stop being
    // reported and waited for.
    let mut reported = false;
    loop {
        if reported && state.telemetry != Telemetry::Awaited {
            break;
        }
        let done_at = state.current.as_ref().and_then(|c| c.done_at);
        let limit = if reported {
            Some(invoked_at + state.settings.telemetry_wait)
        } else {
            waiting_limit(state, done_at, deadline, invoked_at)
        };
        tokio::select! {
            biased;
            _ = &mut finished, if !reported => reported = true,
            Some(inbound) = inbox.recv() => state.route(inbound),
            () = sleep_until_opt(limit) => {
                let seen = state.current.as_ref().is_some_and(|c| c.telemetry_seen);
                // Only the watchdog's own time says that telemetry does not come; the
                // deadline may pass first (a short timeout) while records are on their way.
                let watchdog_passed = Instant::now() >= invoked_at + state.settings.telemetry_wait;
                if !seen && watchdog_passed && state.telemetry != Telemetry::Missing {
                    warn!(
                        "no telemetry arrived within {:?} of an invocation; outcomes cannot be \
                         known, so invocations are no longer reported",
                        state.settings.telemetry_wait
                    );
                    state.telemetry = Telemetry::Missing;
                    if let Some(tx) = state.invocations.get(request_id) {
                        let _ = tx.send(Event::Close(Close::NoTelemetry));
                    }
                    continue;
                }
                debug!(request_id, "the final update is still in flight; moving on");
                break;
            }
            Some(done) = state.tasks.join_next(), if !state.tasks.is_empty() => state.ended(done),
        }
    }
    state.current = None;
}

/// How long SHUTDOWN waits for telemetry still on its way (the last `platform.report`)
/// before closing what is open.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

async fn shutdown(
    state: &mut State,
    inbox: &mut tokio::sync::mpsc::UnboundedReceiver<Inbound>,
    reason: &str,
    deadline_ms: u64,
) {
    let margin = state.settings.shutdown_margin;
    let limit = epoch_ms_instant(deadline_ms)
        .map(|d| d.checked_sub(margin).unwrap_or_else(Instant::now))
        .unwrap_or_else(|| Instant::now() + Duration::from_millis(1500));
    let pending = state.tasks.len();
    // Invocations still waiting for their report get it if it arrives soon. An environment
    // whose initialisation failed shuts down (`failure`) before any invocation, maybe
    // before the init records were delivered: they are waited for as well.
    let awaits_init =
        |s: &State| reason == "failure" && s.invoked == 0 && !s.init_known && s.reports();
    let grace = limit.min(Instant::now() + SHUTDOWN_GRACE);
    loop {
        tokio::select! {
            biased;
            Some(inbound) = inbox.recv() => state.route(inbound),
            () = std::future::ready(()), if state.tasks.is_empty() && !awaits_init(state) => break,
            Some(_) = state.tasks.join_next(), if !state.tasks.is_empty() => {}
            () = tokio::time::sleep_until(grace) => break,
        }
    }
    if state.init_failure.is_some() && state.reports() {
        // A failed initialisation that no invocation followed: a FAILED execution of its
        // own, without a request id.
        debug!("reporting the failed initialisation");
        // Its task is awaited below with the others; its `finished` is not needed.
        drop(state.start(Invoke::default(), None));
    }
    state.close_all(&Close::Shutdown(reason.to_owned()));
    let all = async { while state.tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(limit, all).await.is_err() {
        warn!(
            "shutting down with {} invocation(s) not reported",
            state.tasks.len()
        );
    } else if pending > 0 {
        debug!("closed {pending} open invocation(s)");
    }
    // What waits in the backlog gets the time left.
    let backlog = state.reporting.borrow().on().map(|r| r.backlog.clone());
    if let Some(backlog) = backlog {
        let summary = backlog.flush(limit).await;
        if summary.lost() > 0 {
            warn!(
                "{} report(s) lost in all: {} dropped from the full backlog, {} given up, {} \
                 unsent at SHUTDOWN",
                summary.lost(),
                summary.dropped,
                summary.given_up,
                summary.unsent
            );
        } else {
            debug!("every report was sent");
        }
    }
}
