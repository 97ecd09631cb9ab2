//! Waiting on `lambda-simulator` by polling its state. Its own `wait_for_*` helpers check the
//! state, then wait for a notification, and a notification sent between the two is lost (the
//! wait then lasts until its timeout); polling every millisecond has no such gap.
//!
//! [`RuntimeApiProxy`] stands between an extension and the simulator, to be what the
//! simulator cannot: an emulator that refuses the Telemetry API subscription, a count of
//! the extension's `/next` calls, and when the runtime's responses and the extension's
//! `/next` calls arrived (to the microsecond, for the benchmarks).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use lambda_simulator::{InvocationStatus, Simulator};

use crate::server::Server;

/// The end of the metadata prelude of a streamed response (`lambda_runtime` writes it before
/// the body, for Function URLs).
const PRELUDE_END: &[u8] = &[0; 8];

/// A call the proxy saw arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// An extension's `/next`.
    ExtensionNext,
    /// The runtime's response or error to this request id.
    Answer(String),
}

/// The path of the Telemetry API subscription.
const TELEMETRY_PATH: &str = "/2022-07-01/telemetry";

/// A proxy in front of the simulator's Runtime, Extensions and Telemetry APIs, for an
/// extension: it forwards every request as it came (long polls included), except that it
/// answers the telemetry subscription itself when told to, and it counts the extension's
/// calls of `/next`. Stopped when dropped.
pub struct RuntimeApiProxy {
    /// `127.0.0.1:PORT`, for the extension's `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    nexts: Arc<AtomicUsize>,
    timeline: Arc<Mutex<Vec<(SystemTime, Call)>>>,
    streamed: Arc<Mutex<Vec<(String, Bytes)>>>,
    _server: Server,
}

impl RuntimeApiProxy {
    /// Proxies to `upstream` (`host:port`). With `subscription` `Some((status, body))`, the
    /// telemetry subscription is answered with that status and body instead of reaching
    /// the simulator (which then never delivers a record).
    pub fn start(upstream: &str, subscription: Option<(u16, String)>) -> Self {
        let nexts = Arc::new(AtomicUsize::new(0));
        let counter = nexts.clone();
        let timeline: Arc<Mutex<Vec<(SystemTime, Call)>>> = Arc::default();
        let seen = timeline.clone();
        let streamed: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
        let streams = streamed.clone();
        let upstream = format!("http://{upstream}");
        let server = Server::start(move || {
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("UNWRAP: a plain HTTP client builds");
            Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let client = client.clone();
                    let counter = counter.clone();
                    let upstream = upstream.clone();
                    let subscription = subscription.clone();
                    let seen = seen.clone();
                    let streams = streams.clone();
                    async move {
                        let mut body = body;
                        let at = SystemTime::now();
                        let path = uri.path();
                        let call = if path.ends_with("/extension/event/next") {
                            counter.fetch_add(1, Ordering::SeqCst);
                            Some(Call::ExtensionNext)
                        } else {
                            path.strip_prefix("/2018-06-01/runtime/invocation/")
                                .and_then(|rest| rest.split_once('/'))
                                .filter(|(_, what)| matches!(*what, "response" | "error"))
                                .map(|(id, _)| Call::Answer(id.to_owned()))
                        };
                        let streaming = headers
                            .get("lambda-runtime-function-response-mode")
                            .is_some_and(|m| m == "streaming");
                        if let (Some(Call::Answer(id)), true) = (&call, streaming) {
                            // The simulator takes a whole JSON body only: it gets the body
                            // without the prelude; the test reads what arrived.
                            streams
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((id.clone(), body.clone()));
                            if let Some(at) = body
                                .windows(PRELUDE_END.len())
                                .position(|w| w == PRELUDE_END)
                            {
                                body = body.slice(at + PRELUDE_END.len()..);
                            }
                        }
                        if let Some(call) = call {
                            seen.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((at, call));
                        }
                        if let Some((status, text)) =
                            subscription.filter(|_| uri.path() == TELEMETRY_PATH)
                        {
                            let status =
                                StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
                            return (status, text).into_response();
                        }
                        forward(&client, &upstream, method, &uri, headers, body).await
                    }
                },
            )
        });
        Self {
            addr: server.addr.to_string(),
            nexts,
            timeline,
            streamed,
            _server: server,
        }
    }

    /// The body of the streamed response to invocation `request_id`, as it arrived whole.
    pub fn streamed(&self, request_id: &str) -> Option<Bytes> {
        self.streamed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(id, _)| id == request_id)
            .map(|(_, b)| b.clone())
    }

    /// When the runtime's answer to invocation `request_id` arrived here.
    pub fn answered_at(&self, request_id: &str) -> Option<SystemTime> {
        self.timeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(_, c)| *c == Call::Answer(request_id.to_owned()))
            .map(|(at, _)| *at)
    }

    /// The time from `since` to the first call of `/next` by an extension after it, once
    /// it arrived.
    pub fn next_call_after(&self, since: SystemTime) -> Option<Duration> {
        self.timeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(at, c)| *c == Call::ExtensionNext && *at >= since)
            .and_then(|(at, _)| at.duration_since(since).ok())
    }

    /// The extension's calls of `/next` so far, the one still waiting included.
    pub fn next_calls(&self) -> usize {
        self.nexts.load(Ordering::SeqCst)
    }
}

/// Headers that belong to one hop, not to the request or the answer.
fn end_to_end(name: &axum::http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    )
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client
        .request(method, format!("{upstream}{path}"))
        .body(body);
    for (name, value) in &headers {
        if end_to_end(name) {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut out = HeaderMap::new();
    for (name, value) in answer.headers() {
        if end_to_end(name) {
            out.append(name, value.clone());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

/// Waits until invocation `id` is over (its response or error posted, or timed out); returns
/// its status, or `None` after `limit`.
pub async fn invocation_done(
    sim: &Simulator,
    id: &str,
    limit: Duration,
) -> Option<InvocationStatus> {
    let start = Instant::now();
    loop {
        if let Some(state) = sim.get_invocation_state(id).await
            && matches!(
                state.status,
                InvocationStatus::Success | InvocationStatus::Error | InvocationStatus::Timeout
            )
        {
            return Some(state.status);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until every extension has called `/next` after invocation `id`; false after
/// `limit`.
pub async fn extensions_ready(sim: &Simulator, id: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while !sim.are_extensions_ready(id).await {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held (the
/// async form of [`crate::wait_until`], for tests running on a tokio runtime).
pub async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
