//! A backlog of the Lambda reports that could not be sent yet (README "AWS Lambda",
//! "When the API server is down").
//!
//! The Lambda reporters push what they have to say of each invocation, keyed by its request
//! id: its start (a creation, or a PATCH of a known execution, which may already carry the
//! final status), its final fields and the late `platform.report` figures. One task owns the
//! backlog and sends it, oldest first, one request at a time per execution (a creation
//! before its update) and at most [`MAX_CONNECTIONS`] at once:
//!
//! * **Compact records.** What waits is the JSON text of what the body does not share with
//!   the first body of its kind, at any depth (the Task, the settings, the function's details
//!   are the same in every invocation but for a trace id), not a task holding a future.
//! * **Merging.** Fields pushed while an execution's start still waits join that start (one
//!   creation then carries the final status); fields pushed while an update waits join it.
//! * **Retries.** A network error, 408, 429, 5xx, or a 409 to a creation (too many
//!   executions) keeps the record, and the backlog waits before the next try: the server's
//!   `Retry-After`, else a backoff of 0.5 s doubling up to 30 s. A new invocation
//!   ([`Backlog::kick`]) tries again at once unless the server asked for the wait (the
//!   environment is frozen between invocations, so a wait may outlast an outage). A record
//!   is given up after [`MAX_ATTEMPTS`] tries. Another 4xx, or a 409 to an update, is final
//!   for that record: logged with what the server said.
//! * **A bound.** At most `max` records wait (`PROC_WRAPPER_EXTENSION_BACKLOG_MAX`, 1000 by
//!   default); beyond it the oldest go, counted, with one warning a minute.
//! * **SHUTDOWN** ([`Backlog::flush`]) sends what is left until a deadline and says how many
//!   reports were lost in all.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::api::{ApiClient, Tried};
use crate::task::request::{Final, IntoApiRequest, Update, create_or_attach};

/// Most requests in flight at once (and so connections open).
pub const MAX_CONNECTIONS: usize = 4;

/// Tries of one record before it is given up.
pub const MAX_ATTEMPTS: u32 = 20;

/// The default bound of the backlog.
pub const DEFAULT_MAX: usize = 1000;

/// The bound of the backlog, `PROC_WRAPPER_EXTENSION_BACKLOG_MAX` (default [`DEFAULT_MAX`],
/// at least 1), read alike by the extension and the handler wrapper: a value that is not a
/// whole number gives the default, 0 gives 1, each with a warning naming the variable.
pub fn max_from_env(env: &dyn Fn(&str) -> Option<String>) -> (usize, Option<String>) {
    let var = crate::config::table::EXTENSION_BACKLOG_MAX.var();
    let Some(text) = env(var) else {
        return (DEFAULT_MAX, None);
    };
    match text.trim().parse::<usize>() {
        Ok(0) => (
            1,
            Some(format!("{var} must be at least 1 reports; using 1 reports")),
        ),
        Ok(n) => (n, None),
        Err(_) => (
            DEFAULT_MAX,
            Some(format!(
                "{var}='{text}' is not a whole number of reports; using {DEFAULT_MAX} reports"
            )),
        ),
    }
}

/// The first wait after a failure; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait after failures (unless the server asks for more).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How often the bound's warning may be logged.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// What a reporter has to say of an invocation.
#[derive(Debug)]
pub enum Item {
    /// Its start: a creation, or a PATCH of `known_uuid` (an execution CloudReactor started);
    /// `is_final` when the body already carries the final status.
    Start {
        /// The body.
        body: Map<String, Value>,
        /// The execution, when it is known.
        known_uuid: Option<String>,
        /// Whether the body carries the final status.
        is_final: bool,
    },
    /// Fields of the execution: the final update (`is_final`), or the late report figures.
    Update {
        /// The fields.
        body: Map<String, Value>,
        /// Whether they carry the final status.
        is_final: bool,
    },
}

/// How many reports were lost, as [`Backlog::flush`] tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records dropped because the backlog was full.
    pub dropped: u64,
    /// Records given up: refused by the server, or tried [`MAX_ATTEMPTS`] times.
    pub given_up: u64,
    /// Records still waiting at the deadline.
    pub unsent: u64,
}

impl Summary {
    /// All the reports lost.
    pub fn lost(&self) -> u64 {
        self.dropped + self.given_up + self.unsent
    }
}

enum Msg {
    Push {
        key: String,
        item: Item,
        delivered: Option<oneshot::Sender<()>>,
    },
    End(String),
    Kick,
    Flush(Instant, oneshot::Sender<Summary>),
}

/// The handle of a backlog; clones share it. The backlog's task ends when every handle is
/// dropped.
#[derive(Clone)]
pub struct Backlog {
    tx: UnboundedSender<Msg>,
    healthy: Arc<AtomicBool>,
}

impl Backlog {
    /// Starts a backlog of at most `max` records, sent with `client`.
    pub fn start(client: ApiClient, max: usize) -> Self {
        let (tx, rx) = unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let actor = Actor::new(client, max.max(1), healthy.clone());
        tokio::spawn(actor.run(rx));
        Self { tx, healthy }
    }

    /// Adds what there is to say of invocation `key`. `delivered` fires once a final item
    /// was delivered, or given up.
    pub fn push(&self, key: &str, item: Item, delivered: Option<oneshot::Sender<()>>) {
        let _ = self.tx.send(Msg::Push {
            key: key.to_owned(),
            item,
            delivered,
        });
    }

    /// Nothing more will be pushed for `key`: it is forgotten once its records are sent.
    pub fn end(&self, key: &str) {
        let _ = self.tx.send(Msg::End(key.to_owned()));
    }

    /// A new invocation: try again now, unless the server asked for a longer wait.
    pub fn kick(&self) {
        let _ = self.tx.send(Msg::Kick);
    }

    /// False since a try failed for want of a (good) answer, until one succeeds: reporters
    /// then do not wait for their reports.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sends what is left until `until` (waits the server asks for included) and says how
    /// many reports were lost in all.
    pub async fn flush(&self, until: Instant) -> Summary {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(until, tx)).is_err() {
            return Summary::default();
        }
        rx.await.unwrap_or_default()
    }
}

/// A body stored as the JSON text of what differs from the first body of its kind, at any
/// depth (the Task and the function's details differ between invocations only by a trace id
/// or a request id deep inside): a patch of the template.
///
/// A patch is `["v", value]` (this value instead) or `["p", {key: patch}, [removed keys]]`
/// (the template's object with these keys patched, added or removed); equal parts are left
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Compact(Box<str>);

/// The patch that turns `template` into `value`, `None` when they are equal.
fn patch(value: &Value, template: &Value) -> Option<Value> {
    if value == template {
        return None;
    }
    match (value, template) {
        (Value::Object(v), Value::Object(t)) => Some(patch_object(v, t)),
        _ => Some(Value::Array(vec!["v".into(), value.clone()])),
    }
}

/// The `["p", …]` patch that turns object `t` into object `v` (`["p", {}, []]` when they
/// are equal).
fn patch_object(v: &Map<String, Value>, t: &Map<String, Value>) -> Value {
    let changed: Map<String, Value> = v
        .iter()
        .filter_map(|(k, x)| {
            let p = match t.get(k) {
                Some(tx) => patch(x, tx)?,
                None => Value::Array(vec!["v".into(), x.clone()]),
            };
            Some((k.clone(), p))
        })
        .collect();
    let removed: Vec<Value> = t
        .keys()
        .filter(|k| !v.contains_key(*k))
        .map(|k| Value::String(k.clone()))
        .collect();
    Value::Array(vec![
        "p".into(),
        Value::Object(changed),
        Value::Array(removed),
    ])
}

/// `template` with `patch` applied.
fn apply(template: &Value, patch: &Value) -> Value {
    match patch.as_array().map(Vec::as_slice) {
        Some([kind, value]) if kind == "v" => value.clone(),
        Some([kind, Value::Object(changed), Value::Array(removed)]) if kind == "p" => {
            let mut out = template.as_object().cloned().unwrap_or_default();
            for (k, p) in changed {
                let next = apply(out.get(k).unwrap_or(&Value::Null), p);
                out.insert(k.clone(), next);
            }
            for k in removed.iter().filter_map(Value::as_str) {
                out.remove(k);
            }
            Value::Object(out)
        }
        _ => template.clone(),
    }
}

impl Compact {
    fn encode(body: &Map<String, Value>, template: &Map<String, Value>) -> Self {
        Self(patch_object(body, template).to_string().into_boxed_str())
    }

    fn decode(&self, template: &Map<String, Value>) -> Map<String, Value> {
        let patch: Value = serde_json::from_str(&self.0).unwrap_or(Value::Null);
        match apply(&Value::Object(template.clone()), &patch) {
            Value::Object(m) => m,
            _ => template.clone(),
        }
    }

    fn bytes(&self) -> usize {
        self.0.len()
    }
}

/// A record: what waits to be sent for an execution.
#[derive(Debug)]
struct Pending {
    /// Its start (else an update of the created execution).
    start: bool,
    is_final: bool,
    body: Body,
    attempts: u32,
}

/// The body of a record.
#[derive(Debug)]
enum Body {
    /// Waiting: compact.
    Compact(Compact),
    /// Going at once (nothing waits before it and the server answers): as it came, with no
    /// encoding on the way; made compact only if it has to wait after all.
    Plain(Map<String, Value>),
}

#[derive(Default)]
struct Entry {
    /// The execution: known from the start, or from the creation's answer.
    uuid: Option<String>,
    /// The start was delivered.
    started: bool,
    pending: Option<Pending>,
    in_flight: bool,
    /// Fire when a final record is delivered or given up.
    waiters: Vec<oneshot::Sender<()>>,
    /// Nothing more will come.
    ended: bool,
    /// The start was lost: later records cannot be sent.
    lost: bool,
}

/// What one try ended with.
struct Sent {
    key: String,
    pending: Pending,
    /// The `status` of the body that was sent, for the log.
    status: Option<String>,
    tried: Tried,
    /// The body that was sent (kept if it has to go again).
    body: Value,
}

struct Actor {
    client: ApiClient,
    max: usize,
    healthy: Arc<AtomicBool>,
    entries: HashMap<String, Entry>,
    /// Keys with a record waiting, oldest first (keys whose record went are skipped).
    order: VecDeque<String>,
    waiting: usize,
    /// The first start body and the first update body: what records are stored against.
    templates: [Option<Arc<Map<String, Value>>>; 2],
    in_flight: JoinSet<Sent>,
    /// No try before this, after failures.
    retry_at: Option<Instant>,
    /// The server asked for the wait (`Retry-After`): a kick does not cut it short.
    server_asked: bool,
    failures_in_a_row: u32,
    summary: Summary,
    dropped_unwarned: u64,
    last_warning: Option<Instant>,
    flushing: Option<(Instant, oneshot::Sender<Summary>)>,
}

impl Actor {
    fn new(client: ApiClient, max: usize, healthy: Arc<AtomicBool>) -> Self {
        Self {
            client,
            max,
            healthy,
            entries: HashMap::new(),
            order: VecDeque::new(),
            waiting: 0,
            templates: [None, None],
            in_flight: JoinSet::new(),
            retry_at: None,
            server_asked: false,
            failures_in_a_row: 0,
            summary: Summary::default(),
            dropped_unwarned: 0,
            last_warning: None,
            flushing: None,
        }
    }

    async fn run(mut self, mut rx: UnboundedReceiver<Msg>) {
        let mut open = true;
        loop {
            self.send_what_can_go();
            if self.flush_done() {
                continue;
            }
            if !open && self.in_flight.is_empty() && self.flushing.is_none() {
                // Every handle is gone: nothing will wait for the rest.
                return;
            }
            let wake = match (&self.flushing, self.retry_at) {
                (Some((until, _)), Some(at)) => Some(at.min(*until)),
                (Some((until, _)), None) => Some(*until),
                (None, at) => at,
            };
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    Some(msg) => self.handle(msg),
                    None => open = false,
                },
                Some(sent) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match sent {
                        Ok(sent) => self.answered(sent),
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => warn!("a report failed: {e}"),
                    }
                }
                () = sleep_until_opt(wake) => {
                    if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                        self.retry_at = None;
                        self.server_asked = false;
                    }
                    self.flush_deadline();
                }
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Push {
                key,
                item,
                delivered,
            } => self.push(key, item, delivered),
            Msg::End(key) => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.ended = true;
                }
                self.forget_if_done(&key);
            }
            Msg::Kick => {
                if !self.server_asked {
                    self.retry_at = None;
                }
            }
            Msg::Flush(until, reply) => {
                if !self.server_asked {
                    self.retry_at = None;
                }
                self.flushing = Some((until, reply));
            }
        }
    }

    fn template(&mut self, start: bool, body: &Map<String, Value>) -> Arc<Map<String, Value>> {
        self.templates[usize::from(!start)]
            .get_or_insert_with(|| Arc::new(body.clone()))
            .clone()
    }

    fn compact(&mut self, start: bool, body: &Map<String, Value>) -> Compact {
        let template = self.template(start, body);
        Compact::encode(body, &template)
    }

    fn body(&self, pending: &Pending) -> Map<String, Value> {
        match (&pending.body, &self.templates[usize::from(!pending.start)]) {
            (Body::Plain(m), _) => m.clone(),
            (Body::Compact(c), Some(t)) => c.decode(t),
            (Body::Compact(_), None) => Map::new(),
        }
    }

    /// A record sent plain that has to wait after all keeps `sent`, compact.
    fn keep(&mut self, pending: &mut Pending, sent: Value) {
        if let (Body::Plain(_), Value::Object(sent)) = (&pending.body, sent) {
            pending.body = Body::Compact(self.compact(pending.start, &sent));
        }
    }

    /// `later` (pushed or restored after) merged into `earlier`.
    fn merge(&mut self, earlier: Pending, later: Pending) -> Pending {
        let mut body = self.body(&earlier);
        body.extend(self.body(&later));
        Pending {
            start: earlier.start,
            is_final: earlier.is_final || later.is_final,
            body: Body::Compact(self.compact(earlier.start, &body)),
            attempts: earlier.attempts,
        }
    }

    fn push(&mut self, key: String, item: Item, delivered: Option<oneshot::Sender<()>>) {
        let (start, is_final, body, known) = match item {
            Item::Start {
                body,
                known_uuid,
                is_final,
            } => (true, is_final, body, known_uuid),
            Item::Update { body, is_final } => (false, is_final, body, None),
        };
        let entry = self.entries.entry(key.clone()).or_default();
        if start {
            entry.uuid = known;
        } else if entry.lost || (!entry.started && entry.pending.is_none() && !entry.in_flight) {
            // Its start was never pushed, or was lost: the update has nowhere to go.
            if let Some(d) = delivered {
                let _ = d.send(());
            }
            debug!(request_id = key, "an update without its execution; dropped");
            return;
        }
        let can_send =
            self.order.is_empty() && self.may_send() && self.in_flight.len() < MAX_CONNECTIONS;
        let entry = self.entries.get_mut(&key).expect("UNWRAP: inserted above");
        entry.waiters.extend(delivered);
        let fresh = entry.pending.is_none();
        let goes_now = fresh && !entry.in_flight && can_send;
        let earlier = entry.pending.take();
        let body = if goes_now {
            Body::Plain(body)
        } else {
            Body::Compact(self.compact(start, &body))
        };
        let mut pending = Pending {
            start,
            is_final,
            body,
            attempts: 0,
        };
        if let Some(earlier) = earlier {
            pending = self.merge(earlier, pending);
        }
        let entry = self.entries.get_mut(&key).expect("UNWRAP: inserted above");
        entry.pending = Some(pending);
        if fresh {
            self.waiting += 1;
            if !entry.in_flight {
                self.order.push_back(key);
            }
            self.bound();
        }
    }

    /// Drops the oldest records beyond the bound.
    fn bound(&mut self) {
        while self.waiting > self.max {
            let Some(key) = self.order.pop_front() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            let Some(pending) = entry.pending.take() else {
                continue;
            };
            self.waiting -= 1;
            if pending.start {
                entry.lost = true;
            }
            self.summary.dropped += 1;
            self.dropped_unwarned += 1;
            fire(&mut entry.waiters);
            self.forget_if_done(&key);
        }
        let due = self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARNING_INTERVAL);
        if self.dropped_unwarned > 0 && due {
            warn!(
                "the backlog of reports is full ({} waiting; {} sets the bound): dropped the \
                 {} oldest; {} dropped in all",
                self.max,
                crate::config::table::EXTENSION_BACKLOG_MAX.var(),
                self.dropped_unwarned,
                self.summary.dropped
            );
            self.dropped_unwarned = 0;
            self.last_warning = Some(Instant::now());
        }
    }

    fn forget_if_done(&mut self, key: &str) {
        let done = self
            .entries
            .get(key)
            .is_some_and(|e| e.ended && e.pending.is_none() && !e.in_flight);
        if done && let Some(mut e) = self.entries.remove(key) {
            fire(&mut e.waiters);
        }
    }

    fn may_send(&self) -> bool {
        self.retry_at.is_none_or(|at| at <= Instant::now())
    }

    fn send_what_can_go(&mut self) {
        while self.may_send() && self.in_flight.len() < MAX_CONNECTIONS {
            let Some(key) = self.order.pop_front() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.in_flight {
                continue;
            }
            let Some(mut pending) = entry.pending.take() else {
                continue;
            };
            let uuid = entry.uuid.clone();
            let request = if pending.start {
                create_or_attach(uuid.as_deref(), Map::new())
            } else if let Some(uuid) = uuid.clone() {
                if pending.is_final {
                    Final {
                        uuid,
                        body: Map::new(),
                    }
                    .into_request()
                } else {
                    Update {
                        uuid,
                        body: Map::new(),
                    }
                    .into_request()
                }
            } else {
                // Not reachable: an update goes only after its start was delivered.
                self.waiting -= 1;
                continue;
            };
            entry.in_flight = true;
            pending.attempts += 1;
            let body = match &mut pending.body {
                Body::Plain(m) => std::mem::take(m),
                Body::Compact(_) => self.body(&pending),
            };
            let status = body
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let body = Value::Object(body);
            let client = self.client.clone();
            self.in_flight.spawn(async move {
                let tried = client.try_once(request.method, &request.path, &body).await;
                Sent {
                    key,
                    pending,
                    status,
                    tried,
                    body,
                }
            });
        }
    }

    fn answered(&mut self, sent: Sent) {
        let Sent {
            key,
            mut pending,
            status,
            tried,
            body,
        } = sent;
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        entry.in_flight = false;
        let what = if pending.start { "start" } else { "update" };
        match tried {
            Tried::Ok(answer) => {
                self.healthy_again();
                let entry = self.entries.get_mut(&key).expect("UNWRAP: found above");
                if pending.start && entry.uuid.is_none() {
                    entry.uuid = answer
                        .get("uuid")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    if entry.uuid.is_none() {
                        warn!(
                            request_id = key,
                            "the API server's answer to the creation has no uuid"
                        );
                        entry.lost = true;
                    }
                }
                entry.started = true;
                self.delivered(&key, &pending, status.as_deref());
            }
            Tried::Answered(why) => {
                // Taken, but its answer is unreadable: a creation's UUID is then unknown.
                warn!(request_id = key, "the answer to the {what}: {why}");
                self.healthy_again();
                let entry = self.entries.get_mut(&key).expect("UNWRAP: found above");
                entry.started = true;
                if entry.uuid.is_none() {
                    entry.lost = true;
                }
                self.delivered(&key, &pending, status.as_deref());
            }
            Tried::Later { why, retry_after } => {
                self.keep(&mut pending, body);
                self.later(key.clone(), pending, &why, retry_after);
            }
            Tried::Conflict(c) if pending.start && entry.uuid.is_none() => {
                // Too many executions of the Task running: their end will make room.
                let why = format!(
                    "the API server answered 409{}",
                    c.describe().map(|d| format!(" ({d})")).unwrap_or_default()
                );
                self.keep(&mut pending, body);
                self.later(key.clone(), pending, &why, None);
            }
            Tried::Conflict(c) => {
                self.healthy_again();
                warn!(
                    request_id = key,
                    "the API server refused the {what} with 409{}; not sending it again",
                    c.describe().map(|d| format!(" ({d})")).unwrap_or_default()
                );
                self.give_up(&key, &pending);
            }
            Tried::Refused(status, text) => {
                self.healthy_again();
                warn!(
                    request_id = key,
                    "the API server refused the {what} with {status}; not sending it again: {text}"
                );
                self.give_up(&key, &pending);
            }
        }
        self.forget_if_done(&key);
    }

    fn healthy_again(&mut self) {
        self.failures_in_a_row = 0;
        // The server answers: a backoff set by a failure meanwhile (a connection it had
        // closed during the outage, say) no longer holds the rest back, unless the server
        // asked for the wait.
        if !self.server_asked {
            self.retry_at = None;
        }
        if !self.healthy.swap(true, Ordering::Relaxed) {
            info!(
                "the API server answers again; sending the {} waiting report(s)",
                self.waiting
            );
        }
    }

    /// The record went: the next one of its execution may go.
    fn delivered(&mut self, key: &str, pending: &Pending, status: Option<&str>) {
        self.waiting -= 1;
        let entry = self
            .entries
            .get_mut(key)
            .expect("UNWRAP: the caller found it");
        if pending.is_final {
            info!(
                request_id = key,
                "reported the invocation ({})",
                status.unwrap_or("final")
            );
            fire(&mut entry.waiters);
        }
        if entry.pending.is_some() {
            if entry.lost {
                entry.pending = None;
                self.waiting -= 1;
                self.summary.given_up += 1;
                fire(&mut entry.waiters);
            } else {
                self.order.push_front(key.to_owned());
            }
        }
    }

    fn give_up(&mut self, key: &str, pending: &Pending) {
        self.waiting -= 1;
        self.summary.given_up += 1;
        let entry = self
            .entries
            .get_mut(key)
            .expect("UNWRAP: the caller found it");
        if pending.start {
            entry.lost = true;
            if entry.pending.take().is_some() {
                self.waiting -= 1;
                self.summary.given_up += 1;
            }
        }
        if pending.is_final || entry.lost {
            fire(&mut entry.waiters);
        }
        if entry.pending.is_some() {
            self.order.push_front(key.to_owned());
        }
    }

    /// A try to do again later; the whole backlog waits.
    fn later(&mut self, key: String, pending: Pending, why: &str, retry_after: Option<Duration>) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            warn!(
                "reports wait in a backlog until the API server answers again ({why}); \
                 invocations do not wait for them"
            );
        } else {
            debug!(request_id = key, "{why}");
        }
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let wait = match retry_after {
            Some(d) => d.min(MAX_RETRY_AFTER),
            None => backoff(self.failures_in_a_row),
        };
        let at = Instant::now() + wait;
        self.retry_at = Some(self.retry_at.map_or(at, |r| r.max(at)));
        self.server_asked |= retry_after.is_some();
        if pending.attempts >= MAX_ATTEMPTS {
            warn!(
                request_id = key,
                "giving up a report after {MAX_ATTEMPTS} tries ({why})"
            );
            self.give_up(&key, &pending);
            return;
        }
        let later = self
            .entries
            .get_mut(&key)
            .expect("UNWRAP: the caller found it")
            .pending
            .take();
        let restored = match later {
            Some(later) => {
                // Pushed meanwhile: counted already, now one record with the earlier.
                self.waiting -= 1;
                self.merge(pending, later)
            }
            None => pending,
        };
        let entry = self
            .entries
            .get_mut(&key)
            .expect("UNWRAP: the caller found it");
        entry.pending = Some(restored);
        self.order.push_front(key);
    }

    /// True when a flush is over (it was answered).
    fn flush_done(&mut self) -> bool {
        if self.flushing.is_some() && self.waiting == 0 && self.in_flight.is_empty() {
            self.answer_flush();
            return true;
        }
        false
    }

    fn flush_deadline(&mut self) {
        if self
            .flushing
            .as_ref()
            .is_some_and(|(until, _)| *until <= Instant::now())
        {
            self.in_flight.abort_all();
            self.answer_flush();
        }
    }

    fn answer_flush(&mut self) {
        if let Some((_, reply)) = self.flushing.take() {
            let mut summary = self.summary;
            // Records in flight are counted among those waiting.
            summary.unsent = u64::try_from(self.waiting).unwrap_or(u64::MAX);
            let _ = reply.send(summary);
        }
    }
}

fn fire(waiters: &mut Vec<oneshot::Sender<()>>) {
    for w in waiters.drain(..) {
        let _ = w.send(());
    }
}

/// The wait after `failures` failures in a row: 0.5 s, doubling, at most 30 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The bytes a waiting record of `body` takes when the first body of its kind was
/// `template` (for the benchmark and the tests).
pub fn record_bytes(template: &Map<String, Value>, body: &Map<String, Value>) -> usize {
    Compact::encode(body, template).bytes() + std::mem::size_of::<Pending>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_compact_record_decodes_to_its_body() {
        let template =
            object(json!({"task": {"name": "f"}, "status": "RUNNING", "a": 1, "b": null}));
        for body in [
            json!({"task": {"name": "f"}, "status": "SUCCEEDED", "a": 1, "b": null}),
            json!({"status": "FAILED", "c": [1, 2]}),
            json!({}),
            json!({"task": {"name": "g"}, "a": 1, "b": 2, "-x": "~y"}),
            json!({"task": {"name": "f", "deep": {"id": 2}}, "a": [1], "b": null}),
            json!({"task": "not an object", "a": {"p": 1}}),
            json!({"task": {}, "status": ["v", 1], "a": ["p", {}, []]}),
        ] {
            let body = object(body);
            let compact = Compact::encode(&body, &template);
            assert_eq!(compact.decode(&template), body);
        }
    }

    #[test]
    fn a_record_keeps_only_what_differs_from_the_first_body_at_any_depth() {
        let big = "x".repeat(2000);
        let template = object(json!({
            "task": {"capability": big, "infra": {"xray": {"trace_id": "Root=1-a"}}},
            "status": "RUNNING",
        }));
        let body = object(json!({
            "task": {"capability": big, "infra": {"xray": {"trace_id": "Root=1-b"}}},
            "status": "SUCCEEDED",
        }));
        let compact = Compact::encode(&body, &template);
        assert!(
            compact.bytes() < 200,
            "{} bytes: {}",
            compact.bytes(),
            compact.0
        );
        assert_eq!(compact.decode(&template), body);
    }

    #[test]
    fn the_bound_is_read_alike_for_both_reporters() {
        let read = |v: Option<&str>| {
            max_from_env(&|k| {
                (k == "PROC_WRAPPER_EXTENSION_BACKLOG_MAX")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
        };
        assert_eq!(read(None), (DEFAULT_MAX, None));
        assert_eq!(read(Some(" 25 ")), (25, None));
        let (n, warning) = read(Some("0"));
        assert_eq!(n, 1);
        assert!(warning.is_some_and(|w| w.contains("PROC_WRAPPER_EXTENSION_BACKLOG_MAX")));
        let (n, warning) = read(Some("many"));
        assert_eq!(n, DEFAULT_MAX);
        assert!(warning.is_some_and(|w| w.contains("='many'")));
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
