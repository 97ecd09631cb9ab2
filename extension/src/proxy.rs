//! The Runtime API proxy (work in progress toward issue 17; not wired into the extension
//! yet): it listens on `127.0.0.1`, forwards every Runtime API call to Lambda's endpoint
//! unchanged (method, path, query, headers, status codes and bodies, streamed as they come,
//! never buffered whole), and tells the extension what it saw: the event of each invocation
//! (`GET …/invocation/next`, up to [`MAX_TAP_BYTES`] of it), and the moment the runtime
//! posts its response or its error (with up to [`MAX_TAP_BYTES`] of the error).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The most bytes of an event or an error body kept for the extension.
pub const MAX_TAP_BYTES: usize = 1 << 20;

/// What the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
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
    /// The runtime posted the invocation's response (seen when its body ends).
    Response {
        /// The request id of the path.
        request_id: String,
    },
    /// The runtime posted the invocation's error.
    Error {
        /// The request id of the path.
        request_id: String,
        /// The error body, or its start (`errorType`, `errorMessage`).
        body: Bytes,
    },
}

/// What a body passing through is, for the tap.
#[derive(Debug, Clone)]
enum Tap {
    Event(String),
    Response(String),
    Error(String),
}

/// A body passed on frame by frame, a copy of whose start goes to the extension when it ends.
struct Tapped {
    inner: BoxBody<Bytes, hyper::Error>,
    tap: Option<Tap>,
    copy: Vec<u8>,
    complete: bool,
    tx: UnboundedSender<Seen>,
}

impl Tapped {
    fn finish(&mut self) {
        let Some(tap) = self.tap.take() else {
            return;
        };
        let body = Bytes::from(std::mem::take(&mut self.copy));
        let seen = match tap {
            Tap::Event(request_id) => Seen::Event {
                request_id,
                body,
                complete: self.complete,
            },
            Tap::Response(request_id) => Seen::Response { request_id },
            Tap::Error(request_id) => Seen::Error { request_id, body },
        };
        let _ = self.tx.send(seen);
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
                    let room = MAX_TAP_BYTES.saturating_sub(self.copy.len());
                    if data.len() > room {
                        self.complete = false;
                    }
                    let take = data.len().min(room);
                    self.copy.extend_from_slice(&data[..take]);
                }
                // Hyper stops polling a body that says it has ended (a known length).
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) => self.finish(),
            // A broken body tells nothing.
            Poll::Ready(Some(Err(_))) => self.tap = None,
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

/// What the path of a runtime call says the proxy should tap.
fn tap_of(method: &hyper::Method, path: &str) -> Option<Tap> {
    let rest = path.strip_prefix("/2018-06-01/runtime/invocation/")?;
    if *method != hyper::Method::POST {
        return None;
    }
    let (id, what) = rest.split_once('/')?;
    match what {
        "response" => Some(Tap::Response(id.to_owned())),
        "error" => Some(Tap::Error(id.to_owned())),
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

/// The answer when Lambda's endpoint cannot be reached: what Lambda would give a runtime
/// whose call failed (the runtime retries or exits, as it does without a proxy).
fn unreachable(why: &str) -> Response<BoxBody<Bytes, hyper::Error>> {
    warn!("the Runtime API proxy could not reach Lambda's endpoint: {why}");
    let mut r = Response::new(boxed(
        http_body_util::Full::new(Bytes::from_static(
            b"{\"errorType\":\"Runtime.ProxyUnreachable\"}",
        ))
        .map_err(|never: Infallible| match never {}),
    ));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// Forwards one call to `upstream` (`host:port`), tapping what the extension wants to see.
async fn forward(
    upstream: String,
    req: Request<Incoming>,
    tx: UnboundedSender<Seen>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let next = is_next(&method, &path);
    let tap = tap_of(&method, &path);
    let stream = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => return Ok(unreachable(&e.to_string())),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return Ok(unreachable(&e.to_string())),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!("the Runtime API proxy's upstream connection: {e}");
        }
    });
    let (parts, body) = req.into_parts();
    let body = match tap {
        Some(tap) => boxed(Tapped {
            inner: boxed(body),
            tap: Some(tap),
            copy: Vec::new(),
            complete: true,
            tx: tx.clone(),
        }),
        None => boxed(body),
    };
    let upstream_req = Request::from_parts(parts, body);
    let response = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => return Ok(unreachable(&e.to_string())),
    };
    let request_id = response
        .headers()
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (parts, body) = response.into_parts();
    let body = match (next, request_id) {
        (true, Some(id)) => boxed(Tapped {
            inner: boxed(body),
            tap: Some(Tap::Event(id)),
            copy: Vec::new(),
            complete: true,
            tx,
        }),
        _ => boxed(body),
    };
    Ok(Response::from_parts(parts, body))
}

/// Starts the proxy on `127.0.0.1:port` (0: a free port) in front of `upstream` (the value
/// of `AWS_LAMBDA_RUNTIME_API` that Lambda gave, `host:port`); returns the port. What it sees
/// goes to `tx`; it stops accepting at `cancel`.
pub async fn start(
    port: u16,
    upstream: String,
    tx: UnboundedSender<Seen>,
    cancel: CancellationToken,
) -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let upstream = upstream.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| forward(upstream.clone(), req, tx.clone()));
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!("a Runtime API proxy connection: {e}");
                }
            });
        }
    });
    Ok(port)
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
