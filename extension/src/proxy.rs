//! The Runtime API proxy: it listens on `127.0.0.1`, forwards every Runtime API call of the
//! runtime to Lambda's endpoint unchanged (method, path, query, headers, status codes and
//! bodies, streamed frame by frame as they come, never buffered whole), and tells the
//! extension what it saw ([`Seen`]): that the runtime polls for events, the event of each
//! invocation (`GET …/invocation/next`, up to [`MAX_TAP_BYTES`] of it), and the moment
//! Lambda accepted the runtime's response or error (with up to [`MAX_TAP_BYTES`] of the
//! error).
//!
//! The proxy runs in a process of its own ([`process`]), which the extension starts again on
//! the same socket if it dies, so nothing the reporting side does (a slow API server, a busy
//! main loop, a crash) delays or breaks a forwarded call; what it tells the extension goes
//! through a callback that never blocks. ([`spawn`] runs it on a thread instead: the
//! fallback when no process can be started, and the unit tests.) The exec wrapper
//! finds it with [`probe`] and points the runtime's `AWS_LAMBDA_RUNTIME_API` at it
//! ([`route_runtime`]); when it does not answer, the runtime talks to Lambda directly.

use std::convert::Infallible;
use std::ffi::OsString;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use proc_wrapper::config::table as T;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// The most bytes of an event or an error body kept for the extension.
pub const MAX_TAP_BYTES: usize = 1 << 20;

/// The port the extension's proxy listens on unless `PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT`
/// says otherwise (next to the status update port, 2373).
pub const DEFAULT_PORT: u16 = 2374;

/// The path at which the proxy answers for itself (no Runtime API path looks like it).
pub const PROBE_PATH: &str = "/_cloudreactor/runtime-api-proxy";

/// The header of the probe's answer that names the endpoint the proxy forwards to.
const UPSTREAM_HEADER: &str = "x-cloudreactor-upstream";

/// How long the exec wrapper waits for the proxy to answer, in all.
pub const PROBE_WAIT: Duration = Duration::from_millis(250);

/// What the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The runtime uses the proxy: the exec wrapper found it (and starts the runtime on
    /// it), or the runtime asked for its next event through it. Told the first time only.
    Polled,
    /// The event of an invocation (the answer to `/next`): its request id and the start of
    /// its body (the whole body when it is at most [`MAX_TAP_BYTES`]; `complete` says).
    Event {
        /// `Lambda-Runtime-Aws-Request-Id`.
        request_id: String,
        /// The body, or its start.
        body: Bytes,
        /// Whether `body` is all of it.
        complete: bool,
    },
    /// The runtime posted the whole of its response or error; Lambda has not answered yet
    /// ([`Seen::Response`] or [`Seen::Error`] follows once it accepted it).
    Posted {
        /// The request id of the path.
        request_id: String,
    },
    /// Lambda accepted the invocation's response (its whole body was forwarded).
    Response {
        /// The request id of the path.
        request_id: String,
    },
    /// Lambda accepted the invocation's error: an error post, or a streamed response that
    /// ended with an error trailer.
    Error {
        /// The request id of the path.
        request_id: String,
        /// `Lambda-Runtime-Function-Error-Type` (header or trailer), if given.
        error_type: Option<String>,
        /// The error body, or its start (`errorType`, `errorMessage`).
        body: Bytes,
    },
}

/// Where the proxy tells what it saw; called on the proxy's thread, so it must not block.
pub type Sink = Arc<dyn Fn(Seen) + Send + Sync>;

/// What a posted body is, for the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Posted {
    Response,
    Error,
}

/// The copy of a body passing through, shared by the body (which fills it) and the call
/// (which learns Lambda's answer): the one that finishes second tells the extension.
#[derive(Default)]
struct Copy {
    bytes: Vec<u8>,
    complete: bool,
    /// The body ended.
    ended: bool,
    /// The body broke: nothing is told.
    broken: bool,
    /// `Lambda-Runtime-Function-Error-Type` of the trailers of a streamed response.
    trailer_error_type: Option<String>,
    /// `Lambda-Runtime-Function-Error-Body` (base64) of those trailers.
    trailer_error_body: Option<Bytes>,
}

impl Copy {
    fn keep(&mut self, data: &[u8]) {
        let room = MAX_TAP_BYTES.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.complete = false;
        }
        let take = data.len().min(room);
        self.bytes.extend_from_slice(&data[..take]);
    }
}

/// How a tapped body ends: told at once (the event), or once Lambda also answered (a post).
enum Tap {
    Event(String),
    Post {
        request_id: String,
        posted: Posted,
        header_error_type: Option<String>,
        /// Lambda's answer: `Some(accepted)` once known.
        answered: Option<bool>,
    },
}

struct Shared {
    copy: Copy,
    tap: Option<Tap>,
}

type Slot = Arc<Mutex<Shared>>;

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Shared> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tells the extension what the slot holds, once all of it is known.
fn tell_if_settled(slot: &Slot, sink: &Sink) {
    let seen = {
        let mut shared = lock(slot);
        if shared.copy.broken {
            shared.tap = None;
            return;
        }
        if !shared.copy.ended {
            return;
        }
        let ready = match &shared.tap {
            Some(Tap::Event(_)) => true,
            Some(Tap::Post { answered, .. }) => answered.is_some(),
            None => false,
        };
        if !ready {
            return;
        }
        let Some(tap) = shared.tap.take() else { return };
        let copy = std::mem::take(&mut shared.copy);
        match tap {
            Tap::Event(request_id) => Seen::Event {
                request_id,
                body: Bytes::from(copy.bytes),
                complete: copy.complete,
            },
            Tap::Post {
                answered: Some(false),
                ..
            } => return,
            Tap::Post {
                request_id,
                posted,
                header_error_type,
                ..
            } => match (posted, copy.trailer_error_type) {
                (Posted::Response, None) => Seen::Response { request_id },
                (Posted::Response, Some(error_type)) => Seen::Error {
                    request_id,
                    error_type: Some(error_type),
                    body: copy
                        .trailer_error_body
                        .map(|b| decode_base64(&b))
                        .unwrap_or_default(),
                },
                (Posted::Error, _) => Seen::Error {
                    request_id,
                    error_type: header_error_type,
                    body: Bytes::from(copy.bytes),
                },
            },
        }
    };
    sink(seen);
}

fn decode_base64(text: &[u8]) -> Bytes {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim_ascii())
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::copy_from_slice(text))
}

/// A body passed on frame by frame, whose start is copied into its slot.
struct Tapped {
    inner: BoxBody<Bytes, hyper::Error>,
    slot: Slot,
    sink: Sink,
    ended: bool,
}

impl Tapped {
    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            let posted = {
                let mut shared = lock(&self.slot);
                shared.copy.ended = true;
                match &shared.tap {
                    Some(Tap::Post {
                        request_id,
                        answered: None,
                        ..
                    }) => Some(request_id.clone()),
                    _ => None,
                }
            };
            if let Some(request_id) = posted {
                (self.sink)(Seen::Posted { request_id });
            }
            tell_if_settled(&self.slot, &self.sink);
        }
    }
}

impl Body for Tapped {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    lock(&self.slot).copy.keep(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    let text = |name: &str| {
                        trailers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    {
                        let mut shared = lock(&self.slot);
                        shared.copy.trailer_error_type = text("lambda-runtime-function-error-type");
                        shared.copy.trailer_error_body =
                            text("lambda-runtime-function-error-body").map(Bytes::from);
                    }
                    // Trailers are the last frame: hyper polls no further.
                    self.end();
                }
                // Hyper stops polling a body that says it has ended (a known length).
                if self.inner.is_end_stream() {
                    self.end();
                }
            }
            Poll::Ready(None) => self.end(),
            Poll::Ready(Some(Err(_))) => {
                lock(&self.slot).copy.broken = true;
                self.ended = true;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn tapped(inner: BoxBody<Bytes, hyper::Error>, tap: Tap, sink: &Sink) -> (Slot, Tapped) {
    let slot = Arc::new(Mutex::new(Shared {
        copy: Copy {
            complete: true,
            ..Copy::default()
        },
        tap: Some(tap),
    }));
    let body = Tapped {
        inner,
        slot: slot.clone(),
        sink: sink.clone(),
        ended: false,
    };
    (slot, body)
}

/// What the path of a runtime call says it posts.
fn posted(method: &hyper::Method, path: &str) -> Option<(String, Posted)> {
    if *method != hyper::Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/2018-06-01/runtime/invocation/")?;
    let (id, what) = rest.split_once('/')?;
    match what {
        "response" => Some((id.to_owned(), Posted::Response)),
        "error" => Some((id.to_owned(), Posted::Error)),
        _ => None,
    }
}

fn is_next(method: &hyper::Method, path: &str) -> bool {
    *method == hyper::Method::GET && path == "/2018-06-01/runtime/invocation/next"
}

fn boxed<B>(body: B) -> BoxBody<Bytes, hyper::Error>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Send + Sync + 'static,
{
    BoxBody::new(body)
}

fn full(status: StatusCode, body: Bytes) -> Response<BoxBody<Bytes, hyper::Error>> {
    let mut r = Response::new(boxed(
        http_body_util::Full::new(body).map_err(|never: Infallible| match never {}),
    ));
    *r.status_mut() = status;
    r
}

/// The answer when Lambda's endpoint cannot be reached: a server error, which runtimes
/// handle as they handle Lambda's own (they retry or exit, as they would without a proxy).
fn unreachable(why: &str) -> Response<BoxBody<Bytes, hyper::Error>> {
    warn!("the Runtime API proxy could not reach Lambda's endpoint: {why}");
    full(
        StatusCode::BAD_GATEWAY,
        Bytes::from_static(
            b"{\"errorType\":\"Runtime.ProxyUnreachable\",\"errorMessage\":\"the Runtime API proxy could not reach Lambda's endpoint\"}",
        ),
    )
}

/// The connection to Lambda's endpoint of one runtime connection (calls on it come one
/// after another), kept open between calls.
type Upstream = Arc<tokio::sync::Mutex<Option<SendRequest<BoxBody<Bytes, hyper::Error>>>>>;

async fn connect(upstream: &str) -> Result<SendRequest<BoxBody<Bytes, hyper::Error>>, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!("the Runtime API proxy's upstream connection: {e}");
        }
    });
    Ok(sender)
}

/// Sends `req` upstream on the kept connection if it is still usable, else on a new one;
/// a kept connection that turns out closed before the request went is replaced once. The
/// sender comes back with the answer, to be kept for the next call.
async fn send(
    kept: &Upstream,
    upstream: &str,
    req: Request<BoxBody<Bytes, hyper::Error>>,
) -> Result<
    (
        Response<Incoming>,
        SendRequest<BoxBody<Bytes, hyper::Error>>,
    ),
    String,
> {
    let reused = kept.lock().await.take();
    let mut req = req;
    if let Some(mut s) = reused
        && s.ready().await.is_ok()
    {
        match s.try_send_request(req).await {
            Ok(r) => return Ok((r, s)),
            Err(mut e) => match e.take_message() {
                // Lambda closed the idle connection: the call goes on a new one.
                Some(unsent) => {
                    debug!("the kept upstream connection was closed: {}", e.error());
                    req = unsent;
                }
                None => return Err(e.into_error().to_string()),
            },
        }
    }
    let mut s = connect(upstream).await?;
    let r = s.send_request(req).await.map_err(|e| e.to_string())?;
    Ok((r, s))
}

/// Forwards one call to `upstream` (`host:port`), tapping what the extension wants to see.
async fn forward(
    upstream: Arc<str>,
    kept: Upstream,
    req: Request<Incoming>,
    sink: Sink,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if method == hyper::Method::GET && path == PROBE_PATH {
        // The exec wrapper found the proxy and is about to start the runtime on it: told
        // now, well before the runtime's first `/next` (whose INVOKE reaches the extension
        // at the same moment as its event reaches the runtime).
        sink(Seen::Polled);
        let mut r = full(
            StatusCode::OK,
            Bytes::from_static(b"cloudreactor-extension Runtime API proxy\n"),
        );
        if let Ok(v) = hyper::header::HeaderValue::from_str(&upstream) {
            r.headers_mut().insert(UPSTREAM_HEADER, v);
        }
        return Ok(r);
    }
    let next = is_next(&method, &path);
    if next {
        sink(Seen::Polled);
    }
    let (parts, body) = req.into_parts();
    let (post_slot, body) = match posted(&method, &path) {
        Some((request_id, posted)) => {
            let header_error_type = parts
                .headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let tap = Tap::Post {
                request_id,
                posted,
                header_error_type,
                answered: None,
            };
            let (slot, body) = tapped(boxed(body), tap, &sink);
            (Some(slot), boxed(body))
        }
        None => (None, boxed(body)),
    };
    let (response, sender) = match send(&kept, &upstream, Request::from_parts(parts, body)).await {
        Ok(sent) => sent,
        Err(e) => return Ok(unreachable(&e)),
    };
    // The connection serves the next call once this answer's body has been read.
    *kept.lock().await = Some(sender);
    if let Some(slot) = post_slot {
        if let Some(Tap::Post { answered, .. }) = &mut lock(&slot).tap {
            *answered = Some(response.status().is_success());
        }
        tell_if_settled(&slot, &sink);
    }
    let request_id = response
        .headers()
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = response.into_parts();
    let body = match (next && parts.status.is_success(), request_id) {
        (true, Some(id)) => boxed(tapped(boxed(body), Tap::Event(id), &sink).1),
        _ => boxed(body),
    };
    Ok(Response::from_parts(parts, body))
}

/// Serves the proxy on `listener` in front of `upstream`, until the process ends.
pub async fn serve(listener: TcpListener, upstream: String, sink: Sink) {
    let upstream: Arc<str> = upstream.into();
    // Every `/next` would otherwise wake the extension's main loop for nothing new.
    let polled = std::sync::atomic::AtomicBool::new(false);
    let sink: Sink = Arc::new(move |seen| {
        if seen == Seen::Polled && polled.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        sink(seen);
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, for instance: try again soon, without spinning.
                debug!("the Runtime API proxy could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let upstream = upstream.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let kept = Upstream::default();
            let service =
                service_fn(move |req| forward(upstream.clone(), kept.clone(), req, sink.clone()));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!("a Runtime API proxy connection: {e}");
            }
        });
    }
}

/// Starts the proxy on `127.0.0.1:port` (0: a free port) in front of `upstream` (the value
/// of `AWS_LAMBDA_RUNTIME_API` that Lambda gave, `host:port`), on a thread of its own;
/// returns the port once it listens. What it sees goes to `sink`.
pub fn spawn(port: u16, upstream: String, sink: Sink) -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("runtime-api-proxy".into())
        .spawn(move || serve_blocking(&runtime, listener, upstream, sink))?;
    Ok(port)
}

/// Serves the proxy on `listener` (non-blocking) in front of `upstream` with `runtime`, on
/// the calling thread, for good.
fn serve_blocking(
    runtime: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    upstream: String,
    sink: Sink,
) {
    runtime.block_on(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, upstream, sink).await,
            Err(e) => warn!("the Runtime API proxy cannot listen: {e}"),
        }
    });
}

/// Whether the extension's proxy answers on `127.0.0.1:port` in front of `upstream`:
/// `Ok(())`, or why not. Tries until `wait` has passed (the extension binds its proxy before
/// it registers, and Lambda starts the runtime after the extensions registered, so it
/// normally answers at the first try).
pub async fn probe(port: u16, upstream: &str, wait: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + wait;
    // Why the last try failed: an attempt cut short by the deadline says no more.
    let mut last: Option<String> = None;
    loop {
        let tried = tokio::time::timeout_at(until, probe_once(port)).await;
        let why = match tried {
            Ok(Ok(forwards_to)) if forwards_to == upstream => return Ok(()),
            Ok(Ok(forwards_to)) => {
                return Err(format!(
                    "it forwards to {forwards_to}, not to this environment's {upstream}"
                ));
            }
            // Only a connection that could not be made is worth another try.
            Ok(Err(Probed::NotConnected(why))) => why,
            Ok(Err(Probed::Answered(why))) => return Err(why),
            Err(_) => {
                return Err(
                    last.unwrap_or_else(|| format!("no answer within {} ms", wait.as_millis()))
                );
            }
        };
        if tokio::time::Instant::now() + Duration::from_millis(5) >= until {
            return Err(why);
        }
        last = Some(why.clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Why a probe found no proxy.
enum Probed {
    /// Nothing listens (yet).
    NotConnected(String),
    /// Something answered, not the proxy.
    Answered(String),
}

/// One probe: the upstream the proxy names, or why there is no proxy.
async fn probe_once(port: u16) -> Result<String, Probed> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| Probed::NotConnected(e.to_string()))?;
    let answered = |e: std::io::Error| Probed::Answered(e.to_string());
    let request =
        format!("GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(answered)?;
    // The head of the answer is enough.
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await.map_err(answered)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(Probed::Answered(format!(
            "what answers there is not the proxy ({status:?})"
        )));
    }
    lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(UPSTREAM_HEADER)
                .then(|| value.trim().to_owned())
        })
        .ok_or_else(|| {
            Probed::Answered("what answers there is not the proxy (no upstream named)".to_owned())
        })
}

/// The proxy's settings from the environment: its port, or `None` when it is off
/// (`PROC_WRAPPER_LAMBDA_RUNTIME_PROXY` false); the second value lists what was ignored.
pub fn port_from_env(env: &dyn Fn(&str) -> Option<String>) -> (Option<u16>, Vec<String>) {
    let mut warnings = Vec::new();
    if let Some(on) = env(T::LAMBDA_RUNTIME_PROXY.var()) {
        let on = on.trim();
        if on.eq_ignore_ascii_case("false") || on == "0" {
            return (None, warnings);
        }
        if !(on.eq_ignore_ascii_case("true") || on == "1" || on.is_empty()) {
            warnings.push(format!(
                "{}='{on}' is neither TRUE nor FALSE; the proxy is on",
                T::LAMBDA_RUNTIME_PROXY.var()
            ));
        }
    }
    let port = match env(T::LAMBDA_RUNTIME_PROXY_PORT.var()) {
        None => DEFAULT_PORT,
        Some(text) => match text.trim().parse::<u16>() {
            Ok(p) if p != 0 && p != 9001 => p,
            _ => {
                warnings.push(format!(
                    "{}='{text}' is not a port number from 1 to 65535 other than 9001; using \
                     {DEFAULT_PORT}",
                    T::LAMBDA_RUNTIME_PROXY_PORT.var()
                ));
                DEFAULT_PORT
            }
        },
    };
    (Some(port), warnings)
}

/// The exec wrapper's part: when the proxy is on and answers, `AWS_LAMBDA_RUNTIME_API` in
/// `env` (the runtime's environment) points at it; otherwise `env` is left as it is and the
/// reason is logged. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) nothing happens.
pub async fn route_runtime(env: &mut [(OsString, OsString)]) {
    let text = |k: &str| {
        env.iter()
            .find(|(name, _)| name == k)
            .and_then(|(_, v)| v.to_str())
            .map(str::to_owned)
    };
    let Some(upstream) = text("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let (port, warnings) = port_from_env(&text);
    for w in warnings {
        warn!("{w}");
    }
    let Some(port) = port else {
        debug!("the Runtime API proxy is off; the runtime talks to Lambda directly");
        return;
    };
    match probe(port, &upstream, PROBE_WAIT).await {
        Ok(()) => {
            let via = format!("127.0.0.1:{port}");
            debug!(
                "the runtime talks to Lambda ({upstream}) through the extension's proxy on {via}"
            );
            if let Some((_, v)) = env.iter_mut().find(|(k, _)| k == "AWS_LAMBDA_RUNTIME_API") {
                *v = OsString::from(via);
            }
        }
        Err(why) => warn!(
            "the extension's Runtime API proxy does not answer on 127.0.0.1:{port} ({why}); \
             the runtime talks to Lambda directly, and invocations are reported from \
             telemetry alone"
        ),
    }
}

#[path = "proxy_process.rs"]
pub mod process;

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
