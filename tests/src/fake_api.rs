//! A fake CloudReactor API server (README "Test it"): it answers like the real one (the
//! task_manager server's Task Execution serializer and view) and records every request, and
//! its answers can be scripted to inject faults.
//!
//! * `POST /api/v1/task_executions/` → 201 with the execution (`uuid`, `status`, `task
//!   {uuid, name}`, `dashboard_url` and the fields it stores); 400 for an auto-created Task
//!   that is active with an Unknown execution method, as the real server.
//! * `PATCH /api/v1/task_executions/<uuid>/` → 200 with the execution, or 204 with
//!   `?content=false`. Statuses move as on the real server: a `RUNNING` update of an
//!   execution being stopped ([`FakeApi::request_stop`], status `STOPPING`) makes it
//!   `STOPPED` and is answered 409 with the execution (`stop_reason`, `killed_by`,
//!   `marked_done_at`); `RUNNING` (or no status) after a final status, or `SUCCEEDED`, `FAILED`,
//!   `TERMINATED_AFTER_TIME_OUT` or `ABORTED` after another final status, → 409 with
//!   `{"status": "Status cannot be set to X after Y"}`; `FAILED` or `ABORTED` of an execution
//!   being stopped makes it `STOPPED`; any other status (`STOPPED`) is taken as given. An
//!   update without a status is a `RUNNING` one, as on the server. A refusal's body has the
//!   server's `error_class` and `error_message` beside the field's message.
//! * The fields the server stores ([`STORED`]) are kept per execution
//!   ([`FakeApi::execution`]), and validated as its serializer does: a wrong type is 400
//!   with the field's error.
//! * A wrong `Authorization: Bearer` key → 403.
//! * Scripted faults ([`Fault`]) answer the next requests, in order, or every request
//!   during an outage ([`FakeApi::start_outage`]): error statuses, slow or
//!   no answers, broken connections, garbage and huge bodies. A request answered by a fault
//!   is recorded but changes no execution.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde_json::{Map, Value, json};

use crate::server::Conn;

/// The API key the fake accepts unless told otherwise.
pub const API_KEY: &str = "SOMEAPIKEY";
/// The Task UUID the fake reports.
pub const TASK_UUID: &str = "13b4cfbc-6ed5-4fd5-85e8-73e84e2f1b82";
/// The Task name the fake reports.
pub const TASK_NAME: &str = "A Task";
/// The user who stops executions ([`FakeApi::request_stop`]).
pub const STOPPED_BY: &str = "alice";

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST` or `PATCH`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The JSON body (`Null` if not JSON).
    pub body: Value,
}

impl Recorded {
    /// The `status` field of the body.
    pub fn status(&self) -> Option<&str> {
        self.body.get("status").and_then(Value::as_str)
    }

    /// The Task Execution UUID of an update (`None` for a creation).
    pub fn execution_uuid(&self) -> Option<&str> {
        self.path
            .strip_prefix("/api/v1/task_executions/")
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|uuid| !uuid.is_empty())
    }

    /// True for an update that carries a final status.
    pub fn is_final(&self) -> bool {
        self.method == "PATCH" && self.status().is_some_and(|s| FINAL.contains(&s))
    }
}

/// A scripted answer to the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Answer with this status and a `Retry-After` header.
    RetryAfter(u16, String),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Read the request, then close the connection without answering.
    Drop,
    /// Read the request and never answer (until the server is dropped).
    Stall,
    /// Answer with this status, `Content-Type` and body.
    Body(u16, String, String),
    /// Answer with this status and a JSON body of this many bytes (with `Content-Length`),
    /// a valid object with no `uuid`.
    Huge(u16, usize),
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    /// While set, every request is answered with this fault.
    outage: Option<Fault>,
    statuses: HashMap<String, String>,
    stored: HashMap<String, Map<String, Value>>,
    stops: HashMap<String, (Option<String>, Option<String>)>,
    next: u32,
    api_key: String,
    rollbar: Vec<(Option<String>, Value)>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake server, stopped when dropped.
pub struct FakeApi {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    state: Shared,
    /// Set when the fake is dropped, to release stalled and delayed answers.
    closing: tokio::sync::watch::Sender<bool>,
    _server: crate::server::Server,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.closing.send_replace(true);
    }
}

/// The base of the `dashboard_url` the fake answers: the execution's UUID follows.
pub const DASHBOARD_BASE: &str = "https://dash.cloudreactor.io/task_executions/";

/// The Task Execution fields the fake stores and how its serializer checks them
/// (task_manager's `TaskExecutionSerializer` and models).
pub const STORED: [(&str, Kind); 12] = [
    ("error_details", Kind::Any),
    ("max_memory_mb", Kind::Integer),
    ("current_memory_mb", Kind::PositiveInteger),
    ("deployment", Kind::Text(200)),
    ("managed_probability", Kind::Float),
    ("failure_report_probability", Kind::Float),
    ("timeout_report_probability", Kind::Float),
    ("exit_code", Kind::Integer),
    ("success_count", Kind::Integer),
    ("error_count", Kind::Integer),
    ("debug_log_tail", Kind::Text(5_000_000)),
    ("error_log_tail", Kind::Text(5_000_000)),
];

/// What a stored field may hold (`null` always).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Any JSON (a `JSONField`).
    Any,
    /// An integer (`IntegerField`).
    Integer,
    /// An integer of 0 or more (`PositiveIntegerField`).
    PositiveInteger,
    /// A number (`FloatField`).
    Float,
    /// A string of at most this many characters (`CharField`).
    Text(usize),
}

impl Kind {
    /// The serializer's error for `value`, if it is not valid.
    fn error(self, value: &Value) -> Option<String> {
        if value.is_null() {
            return None;
        }
        match self {
            Kind::Any => None,
            Kind::Integer => (!value.is_i64()).then(|| "A valid integer is required.".to_owned()),
            Kind::PositiveInteger => match value.as_i64() {
                Some(n) if n >= 0 => None,
                Some(_) => Some("Ensure this value is greater than or equal to 0.".to_owned()),
                None => Some("A valid integer is required.".to_owned()),
            },
            Kind::Float => (!value.is_number()).then(|| "A valid number is required.".to_owned()),
            Kind::Text(max) => match value.as_str() {
                Some(t) if t.chars().count() <= max => None,
                Some(_) => Some(format!(
                    "Ensure this field has no more than {max} characters."
                )),
                None => Some("Not a valid string.".to_owned()),
            },
        }
    }
}

/// The serializer's errors for the stored fields of `body`, as its 400 answers them.
fn field_errors(body: &Value) -> Option<Value> {
    let errors: Map<String, Value> = STORED
        .iter()
        .filter_map(|(name, kind)| {
            let error = kind.error(body.get(*name)?)?;
            Some(((*name).to_owned(), json!([error])))
        })
        .collect();
    (!errors.is_empty()).then_some(Value::Object(errors))
}

/// The stored fields of `body`.
fn stored_fields(body: &Value) -> Map<String, Value> {
    STORED
        .iter()
        .filter_map(|(name, _)| Some(((*name).to_owned(), body.get(*name)?.clone())))
        .collect()
}

/// Statuses from which a `RUNNING` update is accepted.
const IN_PROGRESS: [&str; 2] = ["MANUALLY_STARTED", "RUNNING"];

/// Final statuses that the server checks the current status for.
const CHECKED_FINAL: [&str; 4] = [
    "SUCCEEDED",
    "FAILED",
    "TERMINATED_AFTER_TIME_OUT",
    "ABORTED",
];

const FINAL: [&str; 5] = [
    "SUCCEEDED",
    "FAILED",
    "TERMINATED_AFTER_TIME_OUT",
    "ABORTED",
    "STOPPED",
];

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// How many of `requests` were made with `method` (`POST`: creations, `PATCH`: updates).
pub fn count_method(requests: &[Recorded], method: &str) -> usize {
    requests.iter().filter(|r| r.method == method).count()
}

/// The UUID the fake gives to the `n`th execution it creates (from 1).
pub fn execution_uuid(n: u32) -> String {
    format!("d9554f00-eaeb-4a16-96e4-{n:012}")
}

/// An auto-created Task that is not passive and has no known execution method, which the
/// real server refuses with 400 (task_manager's `TaskSerializer.validate`).
fn active_with_unknown_method(body: &Value) -> bool {
    let Some(task) = body.get("task") else {
        return false;
    };
    let flag = |k: &str| task.get(k).and_then(Value::as_bool).unwrap_or(false);
    let method = task
        .get("execution_method_type")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    flag("was_auto_created") && !flag("passive") && method == "Unknown"
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: Shared,
    mut closing: tokio::sync::watch::Receiver<bool>,
    conn: Conn,
    method: Method,
    uuid: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = match &uuid {
        Some(u) => format!("/api/v1/task_executions/{u}/"),
        None => "/api/v1/task_executions/".to_owned(),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fault = {
        let mut s = lock(&state);
        s.requests.push(Recorded {
            method: method.to_string(),
            path,
            query: query.clone(),
            authorization: header(&headers, "authorization"),
            content_type: header(&headers, "content-type"),
            accept: header(&headers, "accept"),
            body: body.clone(),
        });
        match s.outage.clone().or_else(|| s.faults.pop_front()) {
            // Answered under the same lock as it was recorded: whatever a test does once it
            // sees the request (stop the execution, say) comes after its effect, as on a
            // server that records what it processed.
            None => return answer(&mut s, uuid, query.as_deref(), &headers, &body),
            Some(fault) => fault,
        }
    };
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    match fault {
        Fault::Status(code) => {
            return StatusCode::from_u16(code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response();
        }
        Fault::RetryAfter(code, after) => {
            return (
                StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                [("Retry-After", after)],
            )
                .into_response();
        }
        Fault::Delay(d) => {
            tokio::select! {
                () = tokio::time::sleep(d) => {}
                _ = closing.wait_for(|c| *c) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
        Fault::Drop => {
            conn.shut_down();
            // Nothing reaches the client: the connection is already shut down.
            return StatusCode::BAD_GATEWAY.into_response();
        }
        Fault::Stall => {
            let _ = closing.wait_for(|c| *c).await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Fault::Body(code, content_type, text) => {
            return (status(code), [("content-type", content_type)], text).into_response();
        }
        Fault::Huge(code, size) => {
            let mut text = String::with_capacity(size.max(12));
            text.push_str("{\"pad\": \"");
            text.extend(std::iter::repeat_n('a', size.saturating_sub(12)));
            text.push_str("\"}");
            return (
                status(code),
                [("content-type", "application/json".to_owned())],
                text,
            )
                .into_response();
        }
    }
    // Only a delayed request gets here: it is answered after its delay.
    let mut s = lock(&state);
    answer(&mut s, uuid, query.as_deref(), &headers, &body)
}

/// The server's answer to a request that no fault answers, with its effect on `s`.
fn answer(
    s: &mut Inner,
    uuid: Option<String>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    if header(headers, "authorization") != Some(format!("Bearer {}", s.api_key)) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let given = body.get("status").and_then(Value::as_str);
    let requested = given.unwrap_or("RUNNING");
    if let Some(errors) = field_errors(body) {
        return (StatusCode::BAD_REQUEST, axum::Json(errors)).into_response();
    }
    let content = !query.is_some_and(|q| q.contains("content=false"));
    match uuid {
        None if active_with_unknown_method(body) => (
            // The real server's TaskSerializer validation of an auto-created Task.
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"task": {"passive": [
                "Non-passive Tasks may not have an Unknown execution method"
            ]}})),
        )
            .into_response(),
        None => {
            s.next += 1;
            let uuid = execution_uuid(s.next);
            s.statuses.insert(uuid.clone(), requested.to_owned());
            s.stored.insert(uuid.clone(), stored_fields(body));
            let mut answer = s.serialized(&uuid);
            answer.insert(
                "input_value".into(),
                body.get("input_value").cloned().into(),
            );
            (StatusCode::CREATED, axum::Json(answer)).into_response()
        }
        Some(uuid) => {
            // An update without a status is a `RUNNING` one, as on the real server.
            let current = s
                .statuses
                .get(&uuid)
                .cloned()
                .unwrap_or_else(|| "RUNNING".to_owned());
            let refused = || {
                let message = format!("Status cannot be set to {requested} after {current}");
                (
                    StatusCode::CONFLICT,
                    axum::Json(json!({
                        "status": message,
                        "error_class": "ValidationError",
                        "error_message": format!(
                            "{{'status': ErrorDetail(string='{message}', code='invalid')}}"
                        ),
                    })),
                )
                    .into_response()
            };
            let new = if requested == "RUNNING" {
                if current == "STOPPING" {
                    // The real server stops the execution and answers 409 with it.
                    s.statuses.insert(uuid.clone(), "STOPPED".into());
                    s.store(&uuid, body);
                    return (StatusCode::CONFLICT, axum::Json(s.serialized(&uuid))).into_response();
                }
                if !IN_PROGRESS.contains(&current.as_str()) {
                    return refused();
                }
                requested
            } else if CHECKED_FINAL.contains(&requested) {
                if ![requested, "RUNNING", "MANUALLY_STARTED", "STOPPING"]
                    .contains(&current.as_str())
                {
                    return refused();
                }
                if current == "STOPPING" && (requested == "FAILED" || requested == "ABORTED") {
                    "STOPPED"
                } else {
                    requested
                }
            } else {
                requested
            };
            s.statuses.insert(uuid.clone(), new.to_owned());
            s.store(&uuid, body);
            if content {
                (StatusCode::OK, axum::Json(s.serialized(&uuid))).into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
    }
}

impl Inner {
    /// Merges the stored fields of `body` into execution `uuid`.
    fn store(&mut self, uuid: &str, body: &Value) {
        self.stored
            .entry(uuid.to_owned())
            .or_default()
            .extend(stored_fields(body));
    }

    /// Execution `uuid` as the server's serializer gives it.
    fn serialized(&self, uuid: &str) -> Map<String, Value> {
        let mut out = self.stored.get(uuid).cloned().unwrap_or_default();
        let (stop_reason, killed_by) = match self.stops.get(uuid) {
            Some((reason, by)) => (json!(reason), json!(by)),
            None => (Value::Null, Value::Null),
        };
        out.extend([
            ("uuid".to_owned(), json!(uuid)),
            (
                "dashboard_url".to_owned(),
                json!(format!("{DASHBOARD_BASE}{uuid}")),
            ),
            ("status".to_owned(), json!(self.statuses.get(uuid))),
            ("stop_reason".to_owned(), stop_reason),
            ("killed_by".to_owned(), killed_by),
            ("marked_done_at".to_owned(), Value::Null),
            (
                "task".to_owned(),
                json!({"uuid": TASK_UUID, "name": TASK_NAME}),
            ),
        ]);
        out
    }
}

impl FakeApi {
    /// Starts a server on a free loopback port.
    pub fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(Inner {
            api_key: API_KEY.to_owned(),
            ..Inner::default()
        }));
        let app_state = state.clone();
        let (closing, closed) = tokio::sync::watch::channel(false);
        let server = crate::server::Server::start(move || {
            let create = {
                let st = app_state.clone();
                let closed = closed.clone();
                move |ConnectInfo(conn): ConnectInfo<Conn>, q: RawQuery, h: HeaderMap, b: Bytes| {
                    handle(
                        st.clone(),
                        closed.clone(),
                        conn,
                        Method::POST,
                        None,
                        q.0,
                        h,
                        b,
                    )
                }
            };
            let update = {
                let st = app_state.clone();
                move |ConnectInfo(conn): ConnectInfo<Conn>,
                      Path(uuid): Path<String>,
                      q: RawQuery,
                      h: HeaderMap,
                      b: Bytes| {
                    handle(
                        st.clone(),
                        closed.clone(),
                        conn,
                        Method::PATCH,
                        Some(uuid),
                        q.0,
                        h,
                        b,
                    )
                }
            };
            let rollbar = {
                let st = app_state.clone();
                move |h: HeaderMap, b: Bytes| {
                    let st = st.clone();
                    async move {
                        let body = serde_json::from_slice(&b).unwrap_or(Value::Null);
                        lock(&st)
                            .rollbar
                            .push((header(&h, "x-rollbar-access-token"), body));
                        axum::Json(json!({"err": 0, "result": {"uuid": "rollbar-item"}}))
                    }
                }
            };
            Router::new()
                .route("/api/1/item/", post(rollbar))
                .route("/api/v1/task_executions/", post(create))
                .route("/api/v1/task_executions/{uuid}/", patch(update))
        });
        Self {
            url: format!("http://{}", server.addr),
            state,
            closing,
            _server: server,
        }
    }

    /// Accept only this API key.
    pub fn set_api_key(&self, key: &str) {
        key.clone_into(&mut lock(&self.state).api_key);
    }

    /// Answers the next requests with these faults, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state).faults.extend(faults);
    }

    /// Answers every request with `fault` until [`FakeApi::end_outage`].
    pub fn start_outage(&self, fault: Fault) {
        lock(&self.state).outage = Some(fault);
    }

    /// Ends [`FakeApi::start_outage`].
    pub fn end_outage(&self) {
        lock(&self.state).outage = None;
    }

    /// The executions whose status is final, in creation order.
    pub fn finished(&self) -> Vec<String> {
        self.created()
            .into_iter()
            .filter(|u| {
                self.status_of(u)
                    .is_some_and(|s| FINAL.contains(&s.as_str()))
            })
            .collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Items posted to the fake Rollbar endpoint (`/api/1/item/`), with their token.
    pub fn rollbar_items(&self) -> Vec<(Option<String>, Value)> {
        lock(&self.state).rollbar.clone()
    }

    /// Asks for execution `uuid` to stop, as a person does in the dashboard (`PATCH
    /// {"status": "STOPPING"}` as [`STOPPED_BY`], no stop reason): it becomes `STOPPING`,
    /// and its next `RUNNING` update gets 409 with the execution, now `STOPPED`.
    pub fn request_stop(&self, uuid: &str) {
        self.stop(uuid, None, Some(STOPPED_BY));
    }

    /// Stops execution `uuid` as the server's own checker does, with a stop reason
    /// (`MAX_EXECUTION_TIME_EXCEEDED`, `MISSING_HEARTBEAT`) and nobody's name.
    pub fn request_stop_for(&self, uuid: &str, reason: &str) {
        self.stop(uuid, Some(reason), None);
    }

    fn stop(&self, uuid: &str, reason: Option<&str>, by: Option<&str>) {
        let mut s = lock(&self.state);
        s.statuses.insert(uuid.to_owned(), "STOPPING".to_owned());
        s.stops.insert(
            uuid.to_owned(),
            (reason.map(str::to_owned), by.map(str::to_owned)),
        );
    }

    /// The fields the fake stored for execution `uuid` (see [`STORED`]).
    pub fn execution(&self, uuid: &str) -> Map<String, Value> {
        lock(&self.state)
            .stored
            .get(uuid)
            .cloned()
            .unwrap_or_default()
    }

    /// The server-side status of an execution.
    pub fn status_of(&self, uuid: &str) -> Option<String> {
        lock(&self.state).statuses.get(uuid).cloned()
    }

    /// The final updates recorded for execution `uuid` (whether or not a fault answered them).
    pub fn finals_of(&self, uuid: &str) -> Vec<Recorded> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.is_final() && r.execution_uuid() == Some(uuid))
            .cloned()
            .collect()
    }

    /// Every execution created so far, in order.
    pub fn created(&self) -> Vec<String> {
        (1..=lock(&self.state).next).map(execution_uuid).collect()
    }

    /// Polls until `pred` holds for the recorded requests, or `limit` passes.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[Recorded]) -> bool) -> bool {
        crate::wait_until(limit, || pred(&lock(&self.state).requests))
    }
}
