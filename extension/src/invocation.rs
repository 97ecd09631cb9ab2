//! One invocation's Task Execution, driven by a task of its own.
//!
//! The task receives what concerns its request id (hand-off messages from the function, the
//! `runtimeDone` and `report` telemetry records, what the Runtime API proxy saw: the event and
//! the runtime's answer; SHUTDOWN) and:
//!
//! 1. waits until the creation is due: a start hand-off from the function, or the creation
//!    delay elapsed while the function still runs and telemetry is known to arrive (so that
//!    where it never arrives, in an emulator, no execution is left `RUNNING`). An
//!    invocation that ends sooner is reported with a single request carrying the final
//!    status; through the proxy, the creation also waits (a bounded time) for the event;
//! 2. creates the Task Execution (a PATCH when the function handed over a known UUID or the
//!    event names one);
//! 3. waits for the outcome (`runtimeDone`, the runtime's answer seen by the proxy, the end
//!    hand-off when the function started one, a failed initialisation of the invoke phase,
//!    or SHUTDOWN), names how it ended (the
//!    status decision below, with [`crate::telemetry::ending`]), hands the final update to
//!    the backlog (which tells the main loop once it is delivered);
//! 4. hands over the late `platform.report` figures as an update that repeats the final
//!    status, with `error_details` naming the invocation out of memory when it failed with
//!    the memory used up.
//!
//! Requests are retried a few times on network errors and 429/5xx. The main loop only waits
//! for step 3 up to its cap; whatever is left continues in the background and is flushed at
//! SHUTDOWN.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proc_wrapper::handoff::{HandOff, Phase};
use proc_wrapper::lambda::backlog::Item;
use proc_wrapper::lambda::{InvocationOutcome, InvocationStart, lambda_error, memory_exhausted};
use proc_wrapper::metadata::{LambdaInvocation, RuntimeMetadata};
use proc_wrapper::process::FinalStatus;
use proc_wrapper::task::wire::{LambdaCause, LambdaDetails};
use proc_wrapper::time::UtcTime;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};

use crate::Reporting;
use crate::runtime_api::Invoke;
use crate::telemetry::{InitEnd, ending};

/// How long a function that announced itself is waited for after `runtimeDone`, for its end
/// message (which it sends before its response, so it normally arrives first).
const END_HAND_OFF_WAIT: Duration = Duration::from_millis(100);

/// How long past the creation delay a proxied invocation waits for its event.
const EVENT_WAIT: Duration = Duration::from_secs(1);

/// What the main loop passes to an invocation's task.
#[derive(Debug)]
pub(crate) enum Event {
    /// A status or hand-off message for this invocation.
    HandOff(HandOff),
    /// `platform.runtimeDone`.
    Done {
        status: String,
        duration_ms: Option<f64>,
        error_type: Option<String>,
    },
    /// `platform.report` metrics.
    Report(Map<String, Value>),
    /// How the environment's initialisation ended (`platform.initRuntimeDone`,
    /// `platform.initReport`), for the invocation it concerns.
    Init(InitEnd),
    /// The first platform record arrived: telemetry is delivered in this environment.
    TelemetryArrives,
    /// The event of the invocation, seen by the Runtime API proxy: the Task Execution UUID
    /// of `cloudreactor_context`, and the event itself when it could be read whole.
    Input {
        uuid: Option<String>,
        input: Option<Value>,
    },
    /// The runtime posted its answer, seen by the Runtime API proxy; Lambda's acceptance
    /// ([`Event::Answered`]) follows.
    Posted,
    /// Lambda accepted the runtime's answer, seen by the Runtime API proxy.
    Answered(Answer),
    /// Finish without waiting for anything more.
    Close(Close),
}

/// The runtime's answer to an invocation, as the Runtime API proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A response.
    Response,
    /// An error, with its `errorType` and `errorMessage` when known.
    Error {
        error_type: Option<String>,
        error_message: Option<String>,
    },
}

/// Why an invocation had to finish without its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Close {
    /// The environment shuts down, for this reason (`spindown`, `timeout`, `failure`).
    Shutdown(String),
    /// Telemetry does not arrive (or the events stopped): the outcome cannot be known.
    NoTelemetry,
}

/// Whether invocations are reported, once the settings are resolved.
#[derive(Clone)]
pub(crate) enum ReportingState {
    /// The settings are still being resolved.
    Resolving,
    /// Invocations are not reported (offline, bad settings, no telemetry): logged once.
    Off,
    /// Invocations are reported with these settings.
    On(Arc<Reporting>),
}

impl ReportingState {
    /// The settings, when reporting is on.
    pub(crate) fn on(&self) -> Option<&Arc<Reporting>> {
        match self {
            Self::On(r) => Some(r),
            Self::Resolving | Self::Off => None,
        }
    }
}

/// The reporting state as it becomes known.
pub(crate) type ReportingRx = watch::Receiver<ReportingState>;

/// One invocation's task.
pub(crate) struct Invocation {
    pub(crate) invoke: Invoke,
    pub(crate) cold_start: bool,
    pub(crate) creation_delay: Duration,
    /// Platform telemetry was seen to arrive before this invocation started.
    pub(crate) telemetry_arrives: bool,
    /// The runtime talks to Lambda through the extension's Runtime API proxy: the event
    /// of the invocation will be seen.
    pub(crate) proxied: bool,
    /// When to give up waiting for the outcome (telemetry never came).
    pub(crate) outcome_limit: tokio::time::Instant,
    pub(crate) reporting: ReportingRx,
    pub(crate) events: UnboundedReceiver<Event>,
    pub(crate) finished: Option<oneshot::Sender<()>>,
}

fn epoch_ms_to_iso(ms: u64) -> String {
    UtcTime::from_system(UNIX_EPOCH + Duration::from_millis(ms)).iso8601()
}

/// What the task learned so far.
#[derive(Default)]
struct Seen {
    fields: Map<String, Value>,
    lambda: LambdaDetails,
    started_hand_off: bool,
    ended_hand_off: bool,
    uuid: Option<String>,
    log_group: Option<String>,
    log_stream: Option<String>,
    done: Option<String>,
    /// `errorType` of `runtimeDone` (the function's own error type may differ).
    done_error_type: Option<String>,
    /// The environment's initialisation failed (and no later one succeeded).
    init_failure: Option<InitEnd>,
    /// Platform telemetry is known to arrive.
    telemetry: bool,
    close: Option<Close>,
    report: Option<Map<String, Value>>,
    /// The proxy saw the event.
    event_seen: bool,
    /// The event, when the proxy could read it whole.
    input: Option<Value>,
    /// The runtime's answer, as the proxy saw it.
    answered: Option<Answer>,
    /// The runtime posted its answer (the outcome follows at once).
    posted: bool,
}

impl Seen {
    /// Takes in an event; true when it is the one the caller waits for.
    fn absorb(&mut self, event: Event) {
        match event {
            Event::HandOff(h) => {
                match h.phase {
                    Some(Phase::Start) => self.started_hand_off = true,
                    Some(Phase::End) => self.ended_hand_off = true,
                    None => {}
                }
                if h.task_execution_uuid.is_some() {
                    self.uuid = h.task_execution_uuid;
                }
                if h.log_group.is_some() {
                    self.log_group = h.log_group;
                }
                if h.log_stream.is_some() {
                    self.log_stream = h.log_stream;
                }
                if h.error_type.is_some() {
                    self.lambda.error_type = h.error_type;
                }
                if h.error_message.is_some() {
                    self.lambda.error_message = h.error_message;
                }
                self.fields.extend(h.fields);
            }
            Event::Done {
                status,
                duration_ms,
                error_type,
            } => {
                if duration_ms.is_some() {
                    self.lambda.duration_ms = duration_ms;
                }
                if self.lambda.error_type.is_none() {
                    self.lambda.error_type.clone_from(&error_type);
                }
                self.done_error_type = error_type;
                self.lambda.runtime_done_status = Some(status.clone());
                self.done = Some(status);
                self.telemetry = true;
            }
            Event::Report(m) => {
                self.report = Some(m);
                self.telemetry = true;
            }
            Event::Init(end) => {
                if end.succeeded() {
                    // Initialised again (in the invoke phase) after a failed Init phase.
                    self.init_failure = None;
                } else if end.failed() {
                    match &mut self.init_failure {
                        Some(known) => known.merge(end),
                        None => self.init_failure = Some(end),
                    }
                }
                self.telemetry = true;
            }
            Event::TelemetryArrives => self.telemetry = true,
            Event::Input { uuid, input } => {
                self.event_seen = true;
                if uuid.is_some() {
                    self.uuid = uuid;
                }
                self.input = input;
            }
            Event::Posted => self.posted = true,
            Event::Answered(answer) => {
                if let Answer::Error {
                    error_type,
                    error_message,
                } = &answer
                {
                    // The handler wrapper's end message, which comes before, names the
                    // error as the function knows it: it is kept.
                    if self.lambda.error_type.is_none() {
                        self.lambda.error_type.clone_from(error_type);
                    }
                    if self.lambda.error_message.is_none() {
                        self.lambda.error_message.clone_from(error_message);
                    }
                }
                self.answered = Some(answer);
            }
            Event::Close(reason) => self.close = Some(reason),
        }
    }

    /// The outcome is known from `runtimeDone`, from the runtime's answer (seen by the
    /// proxy), from the function's end message, from a failed initialisation of the invoke
    /// phase, or because the invocation had to be closed.
    fn outcome_known(&self) -> bool {
        self.done.is_some()
            || self.answered.is_some()
            || self.ended_hand_off
            || self.close.is_some()
            || self
                .init_failure
                .as_ref()
                .is_some_and(InitEnd::decides_the_invocation)
    }

    /// The final status and its cause (`None`: a success), or `None` when the outcome is
    /// unknown. The order matters: a success (of `runtimeDone`, of the runtime's answer,
    /// or the function's end message without an error) wins; then a failed initialisation
    /// names any other ending; then `runtimeDone` ([`ending`]), the runtime's error, the
    /// end message, SHUTDOWN.
    fn decide(&mut self) -> Option<(FinalStatus, Option<LambdaCause>)> {
        let succeeded = match (&self.done, &self.answered) {
            (Some(s), _) => s == "success",
            (None, Some(answer)) => *answer == Answer::Response,
            (None, None) => self.ended_hand_off && self.lambda.error_type.is_none(),
        };
        if succeeded {
            return Some((FinalStatus::Succeeded, None));
        }
        if let Some(init) = &self.init_failure {
            if self.lambda.error_type.is_none() {
                self.lambda.error_type.clone_from(&init.error_type);
            }
            return Some((FinalStatus::Failed, Some(LambdaCause::InitFailed)));
        }
        Some(match (&self.done, &self.close) {
            (Some(s), _) => ending(s, self.done_error_type.as_deref()),
            (None, _) if self.answered.is_some() || self.ended_hand_off => {
                (FinalStatus::Failed, Some(LambdaCause::HandlerError))
            }
            (None, Some(Close::Shutdown(reason))) if reason == "timeout" => (
                FinalStatus::TerminatedAfterTimeOut,
                Some(LambdaCause::TimedOut),
            ),
            (None, Some(Close::Shutdown(reason))) => {
                self.fields
                    .entry("last_status_message")
                    .or_insert(json!(format!(
                        "the Lambda environment shut down ({reason}) before the invocation ended"
                    )));
                if reason == "failure" {
                    (
                        FinalStatus::Failed,
                        Some(LambdaCause::EnvironmentShutdownFailure),
                    )
                } else {
                    (FinalStatus::Aborted, Some(LambdaCause::EnvironmentShutdown))
                }
            }
            (None, Some(Close::NoTelemetry) | None) => return None,
        })
    }
}

impl Seen {
    /// The invocation's outcome from what was seen: `status` and `cause` as decided, the
    /// failed initialisation it follows, and a `platform.report` that came already (it
    /// follows the invocation's end) naming a failure out of memory.
    fn outcome(
        &mut self,
        status: FinalStatus,
        mut cause: Option<LambdaCause>,
        started_at: SystemTime,
    ) -> InvocationOutcome {
        if let Some(init) = &self.init_failure {
            for (key, value) in [
                ("init_status", &init.status),
                ("init_error_type", &init.error_type),
                ("init_phase", &init.phase),
            ] {
                if let Some(v) = value {
                    self.lambda.more.insert(key.into(), json!(v));
                }
            }
        }
        if status == FinalStatus::Failed && self.report.as_ref().is_some_and(memory_exhausted) {
            cause = Some(LambdaCause::OutOfMemory);
        }
        let finished_at = self
            .lambda
            .duration_ms
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map_or_else(UtcTime::now, |ms| {
                UtcTime::from_system(started_at + Duration::from_secs_f64(ms / 1000.0))
            });
        InvocationOutcome {
            status,
            details: self.lambda.clone(),
            cause,
            finished_at,
        }
    }
}

/// The late update with `platform.report`'s figures (`report`) added to what `lambda` knew,
/// under the final update's `other_runtime_metadata`. It repeats the final status: the
/// server takes an update without one for `RUNNING`, which it refuses (409) after the end.
/// A failure with the memory used up was the memory's doing (Lambda's own errorType, such
/// as `Runtime.ExitError`, may not say so): its `error_details` say so.
fn late_report(
    lambda: &LambdaDetails,
    outcome: &InvocationOutcome,
    report: Map<String, Value>,
    mut other: Value,
) -> Map<String, Value> {
    let out_of_memory = outcome.status == FinalStatus::Failed
        && outcome.cause != Some(LambdaCause::OutOfMemory)
        && memory_exhausted(&report);
    let mut figures = lambda.clone();
    figures.more.extend(report);
    if let Some(o) = other.as_object_mut() {
        o.insert("aws_lambda".into(), json!(figures));
    }
    let mut body = Map::new();
    body.insert("status".into(), json!(outcome.status.as_str()));
    body.insert("other_runtime_metadata".into(), other);
    if let Some(mb) = proc_wrapper::lambda::max_memory_mb(&figures.more) {
        body.insert("max_memory_mb".into(), json!(mb));
    }
    if out_of_memory {
        body.insert(
            "error_details".into(),
            json!(lambda_error(Some(LambdaCause::OutOfMemory), &figures)),
        );
    }
    body
}

impl Invocation {
    async fn next_event(&mut self, seen: &mut Seen) -> bool {
        match self.events.recv().await {
            Some(e) => {
                seen.absorb(e);
                true
            }
            None => {
                seen.close.get_or_insert(Close::NoTelemetry);
                false
            }
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.finished.take() {
            let _ = f.send(());
        }
    }

    fn metadata(&self, reporting: &Reporting, seen: &Seen) -> RuntimeMetadata {
        let r = &reporting.registration;
        let mut extra = Map::new();
        extra.insert("cold_start".into(), json!(self.cold_start));
        if self.invoke.deadline_ms > 0 {
            extra.insert(
                "deadline_at".into(),
                json!(epoch_ms_to_iso(self.invoke.deadline_ms)),
            );
        }
        if self.invoke.request_id.is_empty() {
            // A failed initialisation that no invocation followed.
            extra.insert("aws_request_id".into(), Value::Null);
        }
        if let Some(a) = &r.account_id {
            extra.insert("account_id".into(), json!(a));
        }
        if let Some(h) = &r.handler {
            extra.insert("handler".into(), json!(h));
        }
        let invocation = LambdaInvocation {
            request_id: self.invoke.request_id.clone(),
            function_arn: self.invoke.invoked_function_arn.clone(),
            trace_id: self.invoke.trace_id.clone(),
            log_group: seen.log_group.clone(),
            log_stream: seen.log_stream.clone(),
            extra_details: extra,
            ..LambdaInvocation::default()
        };
        let vars = &reporting.lambda.env;
        let env = |k: &str| match k {
            "AWS_LAMBDA_FUNCTION_NAME" => vars.get(k).cloned().or_else(|| r.function_name.clone()),
            "AWS_LAMBDA_FUNCTION_VERSION" => {
                vars.get(k).cloned().or_else(|| r.function_version.clone())
            }
            _ => vars.get(k).cloned(),
        };
        RuntimeMetadata::lambda(&env, &invocation)
    }

    /// Runs the invocation's reporting to its end.
    /// Step 1: waits until the creation is due (the function announced itself, or the
    /// creation delay passed while it runs and telemetry is known to arrive: where it never
    /// does, the main loop closes the invocation before anything is created), or the outcome
    /// is known.
    async fn until_creation_due(&mut self, seen: &mut Seen, started: Instant) {
        let due = tokio::time::Instant::from_std(started + self.creation_delay);
        // Through the proxy, the event (which may name the execution) comes with the
        // invocation; it is waited for, a bounded time.
        let event_due = due + EVENT_WAIT;
        let mut past_due = false;
        let mut past_event_due = false;
        loop {
            let event_known = !self.proxied || seen.event_seen || past_event_due;
            let due_now = past_due && seen.telemetry && event_known;
            // Once the runtime posted its answer, the outcome follows at once: the report is
            // prepared meanwhile, and nothing is created.
            if seen.started_hand_off || seen.outcome_known() || seen.posted || due_now {
                return;
            }
            tokio::select! {
                open = self.next_event(seen) => if !open { return },
                () = tokio::time::sleep_until(due), if !past_due => past_due = true,
                () = tokio::time::sleep_until(event_due), if !past_event_due => {
                    past_event_due = true;
                    if self.proxied && !seen.event_seen {
                        debug!(
                            request_id = self.invoke.request_id,
                            "the proxy did not see the event of the invocation"
                        );
                    }
                }
            }
        }
    }

    /// Step 3: waits for the outcome (until the outcome limit), then briefly for the end
    /// message of a function that announced itself (it sends its result before its
    /// response, so the message is normally here already).
    async fn until_outcome(&mut self, seen: &mut Seen, sampled_out: bool) {
        let outcome_limit = self.outcome_limit;
        while !seen.outcome_known() {
            tokio::select! {
                open = self.next_event(seen) => if !open { break },
                () = tokio::time::sleep_until(outcome_limit) => {
                    seen.close = Some(Close::NoTelemetry);
                }
            }
        }
        while !sampled_out && seen.started_hand_off && !seen.ended_hand_off && seen.close.is_none()
        {
            match tokio::time::timeout(END_HAND_OFF_WAIT, self.next_event(seen)).await {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
    }

    pub(crate) async fn run(mut self) {
        let started_at = SystemTime::now();
        let started = Instant::now();
        let reporting = match self
            .reporting
            .wait_for(|r| !matches!(r, ReportingState::Resolving))
            .await
        {
            Ok(r) => r.on().cloned(),
            Err(_) => None,
        };
        let Some(reporting) = reporting else {
            self.finish();
            return;
        };
        let mut seen = Seen {
            telemetry: self.telemetry_arrives,
            ..Seen::default()
        };
        // 1. Until the creation is due.
        self.until_creation_due(&mut seen, started).await;
        let lambda = &reporting.lambda;
        let start = InvocationStart {
            metadata: self.metadata(&reporting, &seen),
            started_at: UtcTime::from_system(started_at),
            uuid: seen.uuid.clone(),
            input_value: seen
                .input
                .take()
                .filter(|_| reporting.lambda.config.api.send_input_value),
        };
        let sampled_out = !lambda.sampled_in(seen.uuid.is_some());
        let rid = self.invoke.request_id.clone();
        // 2. Creation, if the outcome is not known yet.
        let backlog = &reporting.backlog;
        let mut created = false;
        let answer_posted = seen.posted && !seen.started_hand_off;
        // The creation body, built while Lambda takes the runtime's answer when it was posted.
        let mut prepared = (answer_posted && !sampled_out).then(|| lambda.creation_body(&start));
        if !seen.outcome_known() && !sampled_out && !answer_posted {
            backlog.push(
                &rid,
                Item::Start {
                    body: lambda.creation_body(&start),
                    known_uuid: start.uuid.clone(),
                    is_final: false,
                },
                None,
            );
            created = true;
        }
        // 3. The outcome.
        self.until_outcome(&mut seen, sampled_out).await;
        let Some((status, cause)) = seen.decide() else {
            // The main loop said once that telemetry does not arrive; only an execution
            // that was created (the function announced itself) is worth a word.
            if created {
                warn!(
                    request_id = rid,
                    "the outcome of the invocation is unknown (no telemetry); not reporting its end"
                );
            } else {
                debug!(
                    request_id = rid,
                    "no telemetry: the invocation is not reported"
                );
            }
            self.finish();
            backlog.end(&rid);
            return;
        };
        let outcome = seen.outcome(status, cause, started_at);
        // Extra properties from the function's status updates are kept beside ours.
        let fields = outcome.final_fields(std::mem::take(&mut seen.fields));
        let other_runtime_metadata = fields
            .get("other_runtime_metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        // The main loop waits (a bounded time) for the backlog to deliver the final status.
        let finished = self.finished.take();
        let reported = if created {
            backlog.push(
                &rid,
                Item::Update {
                    body: fields,
                    is_final: true,
                },
                finished,
            );
            true
        } else if let Some(body) =
            lambda.finished_body(&start, prepared.take(), &outcome, fields, sampled_out)
        {
            backlog.push(
                &rid,
                Item::Start {
                    body,
                    known_uuid: start.uuid.clone(),
                    is_final: true,
                },
                finished,
            );
            true
        } else {
            if let Some(f) = finished {
                let _ = f.send(());
            }
            false
        };
        debug!(
            request_id = rid,
            "handed the report to the backlog in {:?}",
            started.elapsed()
        );
        // 4. The late report; nothing else is kept while waiting for it.
        drop(start);
        seen.fields = Map::new();
        if reported {
            while seen.report.is_none() && seen.close.is_none() {
                if !self.next_event(&mut seen).await {
                    break;
                }
            }
        }
        if let Some(report) = seen.report.take().filter(|_| reported) {
            let body = late_report(&seen.lambda, &outcome, report, other_runtime_metadata);
            backlog.push(
                &rid,
                Item::Update {
                    body,
                    is_final: false,
                },
                None,
            );
        }
        backlog.end(&rid);
    }
}

#[cfg(test)]
mod tests {
    /// The task of an invocation stays small while it waits (its HTTP requests are boxed):
    /// hundreds may wait for telemetry at once.
    #[test]
    fn an_invocation_task_is_small() {
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (_wtx, wrx) = tokio::sync::watch::channel(super::ReportingState::Resolving);
        let invocation = super::Invocation {
            invoke: crate::runtime_api::Invoke::default(),
            cold_start: false,
            creation_delay: std::time::Duration::ZERO,
            telemetry_arrives: false,
            proxied: false,
            outcome_limit: tokio::time::Instant::now(),
            reporting: wrx,
            events: rx,
            finished: None,
        };
        let size = std::mem::size_of_val(&invocation.run());
        assert!(size < 8192, "the invocation future takes {size} bytes");
    }
}
