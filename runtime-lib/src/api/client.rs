//! The HTTP client of the CloudReactor API and its retry policy (README "Reporting to
//! CloudReactor", "Retries" and "Conflicts").
//!
//! [`ApiClient::send`] retries one request until it succeeds or its deadline passes:
//! 429/502/503/504 after `Retry-After` (clamped to 5–600 s) or `api_retry_delay`, network
//! errors after `api_retry_delay`, creation conflicts (409) after the conflict retry delay
//! until the conflict timeout. Any other status is final. When the deadline passes, the
//! client stops sending requests until `api_resume_delay` has passed.
//!
//! Response bodies are read only when they are used (not for `?content=false` updates, whose
//! answer the API leaves empty), and at most `MAX_RESPONSE_BYTES` of them: a server or
//! proxy answering with an endless body cannot make the wrapper's memory grow without bound.

use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::{debug, error, warn};

use crate::config::ApiConfig;

/// The largest response body read; a longer one is an [`ApiError::InvalidResponse`]. A Task
/// Execution as the API returns it is a few kilobytes, plus the input value it echoes.
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The kind of request, which decides its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Task Execution creation (`api_task_execution_creation_error_timeout`; conflicts are
    /// retried until `api_task_execution_creation_conflict_timeout`).
    Creation,
    /// Heartbeats and status updates (`api_error_timeout`; a 409 means "stop").
    Update,
    /// The final update (`api_final_update_timeout`).
    Final,
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 409: a creation conflict that outlasted the conflict timeout, or the server's
    /// answer to an update of an execution it wants stopped; with what its body said.
    #[error("the API server answered 409 (conflict){}", .0.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Conflict(Box<Conflict>),
    /// A status that is not retried (400, 401, 403, 404, 500, ...).
    #[error("the API server answered {0}")]
    Rejected(u16),
    /// Retries ran out; the last status, if any.
    #[error("gave up after retrying until the timeout (last status: {})", .0.map_or("none".to_owned(), |s| s.to_string()))]
    Exhausted(Option<u16>),
    /// Requests are suspended after an earlier exhaustion.
    #[error("API requests are suspended after earlier failures")]
    Suspended,
    /// No answer (connection refused or dropped, timeout, ...).
    #[error("could not reach the API server: {0}")]
    Unreachable(String),
    /// The response was not what the API promises.
    #[error("invalid response from the API server: {0}")]
    InvalidResponse(String),
    /// The HTTP client could not be created (no TLS roots, for example).
    #[error("the HTTP client for the API server could not be created: {0}")]
    Client(String),
}

/// The answer to one try of a request ([`ApiClient::try_once`]).
#[derive(Debug)]
pub enum Tried {
    /// A success, with the answer's body (`Null` when empty).
    Ok(Value),
    /// A success whose body could not be read (why).
    Answered(String),
    /// No answer, or one that says to try again later (408, 429, 5xx): why, and the
    /// server's `Retry-After`.
    Later {
        /// What happened.
        why: String,
        /// The delay the server asked for.
        retry_after: Option<Duration>,
    },
    /// 409, with what its body said.
    Conflict(Box<Conflict>),
    /// Another failure status (400, 401, 403, 404, ...): trying again will not help; the
    /// start of the answer's body.
    Refused(u16, String),
}

/// What the body of a 409 said. The server answers an update of an execution that is being
/// stopped with the execution itself (`status` `STOPPED`, its `stop_reason`, who stopped it),
/// and a status it does not allow with a message (`{"status": "Status cannot be set to
/// RUNNING after SUCCEEDED"}`); a creation it refuses has no body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflict {
    /// The execution's status, when the body is the execution.
    pub status: Option<String>,
    /// `stop_reason` (`MANUAL`, `MAX_EXECUTION_TIME_EXCEEDED`, `MISSING_HEARTBEAT`, ...).
    pub stop_reason: Option<String>,
    /// Who stopped it (a user name).
    pub killed_by: Option<String>,
    /// When it was marked done.
    pub marked_done_at: Option<String>,
    /// A message, when the body is not the execution.
    pub message: Option<String>,
}

/// The longest message of a 409 that is kept.
const MAX_CONFLICT_MESSAGE_CHARS: usize = 500;

/// The most bytes of a refusal's body read for its excerpt.
const MAX_EXCERPT_READ: usize = 64 << 10;

impl Conflict {
    /// Reads the body of a 409 (empty, the execution, an error object, or text).
    pub fn from_body(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return Self::default();
        }
        let short = |t: &str| {
            t.chars()
                .take(MAX_CONFLICT_MESSAGE_CHARS)
                .collect::<String>()
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                return Self {
                    message: Some(short(text)),
                    ..Self::default()
                };
            }
        };
        let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        if value.get("uuid").is_some() {
            return Self {
                status: field("status"),
                stop_reason: field("stop_reason"),
                killed_by: field("killed_by"),
                marked_done_at: field("marked_done_at"),
                message: None,
            };
        }
        // An error object: `detail`, or each field's messages.
        let message = match &value {
            Value::Object(m) if m.get("detail").and_then(Value::as_str).is_some() => {
                field("detail")
            }
            // The server adds `error_class` and `error_message` (a Python repr of the same
            // errors) to its error objects; the fields say it already.
            Value::Object(m) => Some(
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "error_class" | "error_message"))
                    .map(|(k, v)| match v {
                        Value::String(t) => format!("{k}: {t}"),
                        Value::Array(items) => format!(
                            "{k}: {}",
                            items
                                .iter()
                                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                        other => format!("{k}: {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Value::String(t) => Some(t.clone()),
            other => Some(other.to_string()),
        };
        Self {
            message: message.filter(|m| !m.is_empty()).map(|m| short(&m)),
            ..Self::default()
        }
    }

    /// The reason and who asked, for the log: `stop reason MANUAL, by alice`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            parts.push(format!("status {s}"));
        }
        if let Some(r) = &self.stop_reason {
            parts.push(format!("stop reason {r}"));
        }
        if let Some(k) = &self.killed_by {
            parts.push(format!("by {k}"));
        }
        if let Some(m) = &self.marked_done_at {
            parts.push(format!("marked done at {m}"));
        }
        if let Some(m) = &self.message {
            parts.push(m.clone());
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The API client. Clones share the connection pool.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    config: ApiConfig,
    /// When retries were last exhausted; requests are skipped until the resume delay passes.
    exhausted_at: Option<Instant>,
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn clamp_retry_after(d: Duration) -> Duration {
    d.clamp(Duration::from_secs(5), Duration::from_secs(600))
}

impl ApiClient {
    /// A client for `config`.
    pub fn new(config: ApiConfig) -> Result<Self, ApiError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "CloudReactor Rust proc_wrapper/",
                env!("CARGO_PKG_VERSION")
            ))
            .https_only(false);
        if let Some(t) = config.request_timeout {
            builder = builder.timeout(t).connect_timeout(t);
        }
        Ok(Self {
            http: builder
                .build()
                .map_err(|e| ApiError::Client(e.to_string()))?,
            config,
            exhausted_at: None,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// True while requests are suspended after an exhaustion.
    pub(crate) fn suspended(&self) -> bool {
        match (self.exhausted_at, self.config.resume_delay) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(resume)) => at.elapsed() < resume,
        }
    }

    /// True once retries have been exhausted (the final update is then skipped).
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted_at.is_some()
    }

    /// Sends one request and classifies the answer.
    async fn attempt(&self, method: &Method, url: &str, body: &Value) -> Attempt {
        self.attempt_reading(method, url, body, false).await
    }

    /// [`ApiClient::attempt`]; with `excerpt`, a refusal (a 4xx but 408, 409 and 429) also
    /// reads the start of its body, for the log.
    async fn attempt_reading(
        &self,
        method: &Method,
        url: &str,
        body: &Value,
        excerpt: bool,
    ) -> Attempt {
        debug!("{method} {url}");
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("Accept", "application/json")
            .json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    // The API answers `?content=false` with no content; whatever comes is
                    // ignored (as by 6.0.2), and not read.
                    if url.contains("content=false") {
                        return Attempt::Done(Ok(Value::Null));
                    }
                    return Attempt::Done(match read_body(response, MAX_RESPONSE_BYTES).await {
                        Ok(bytes) if bytes.is_empty() => Ok(Value::Null),
                        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                            ApiError::InvalidResponse(format!("the body is not JSON: {e}"))
                        }),
                        Err(e) => Err(e),
                    });
                }
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now()));
                if status == StatusCode::CONFLICT {
                    // What the server says about the conflict; a body that cannot be read
                    // says nothing.
                    let body = read_body(response, MAX_RESPONSE_BYTES)
                        .await
                        .unwrap_or_default();
                    return Attempt::Conflict(Box::new(Conflict::from_body(&body)));
                }
                let refusal = status.is_client_error() && !matches!(status.as_u16(), 408 | 429);
                if excerpt && refusal {
                    let text = read_body(response, MAX_EXCERPT_READ)
                        .await
                        .unwrap_or_default();
                    let text: String = String::from_utf8_lossy(&text)
                        .chars()
                        .take(MAX_CONFLICT_MESSAGE_CHARS)
                        .collect();
                    return Attempt::Refused(status, text);
                }
                Attempt::Status(status, retry_after)
            }
            Err(e) => Attempt::Network(e.to_string()),
        }
    }

    /// Sends one request without retrying, for callers with their own time budget (the
    /// Lambda extension). A 409 is [`ApiError::Conflict`], any other failure status
    /// [`ApiError::Rejected`], a network error [`ApiError::Unreachable`].
    pub(crate) async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.config.base_url);
        match self.attempt(&method, &url, body).await {
            Attempt::Done(result) => result,
            Attempt::Conflict(c) => Err(ApiError::Conflict(c)),
            Attempt::Status(status, _) | Attempt::Refused(status, _) => {
                Err(ApiError::Rejected(status.as_u16()))
            }
            Attempt::Network(e) => Err(ApiError::Unreachable(e)),
        }
    }

    /// Tries `body` once and says what to do next, for a caller that keeps its own backlog
    /// of requests (the Lambda reporters, [`crate::lambda::backlog`]).
    pub async fn try_once(&self, method: Method, path: &str, body: &Value) -> Tried {
        let url = format!("{}{path}", self.config.base_url);
        match self.attempt_reading(&method, &url, body, true).await {
            Attempt::Done(Ok(v)) => Tried::Ok(v),
            // The server took it; only its answer could not be read.
            Attempt::Done(Err(e)) => Tried::Answered(e.to_string()),
            Attempt::Conflict(c) => Tried::Conflict(c),
            Attempt::Status(status, retry_after)
                if matches!(status.as_u16(), 408 | 429) || status.is_server_error() =>
            {
                Tried::Later {
                    why: format!("the API server answered {}", status.as_u16()),
                    retry_after,
                }
            }
            Attempt::Status(status, _) => Tried::Refused(status.as_u16(), String::new()),
            Attempt::Refused(status, text) => Tried::Refused(status.as_u16(), text),
            Attempt::Network(e) => Tried::Later {
                why: format!("could not reach the API server: {e}"),
                retry_after: None,
            },
        }
    }

    /// Sends `request`, retrying as the module documentation says, under the deadline of its
    /// kind.
    pub async fn send_request(
        &mut self,
        request: impl crate::task::IntoApiRequest,
    ) -> Result<Value, ApiError> {
        let r = request.into_request();
        self.send(r.method, &r.path, &r.body, r.kind).await
    }

    /// Sends `request` once, for callers with their own time budget (`ApiClient::send_once`).
    pub async fn send_request_once(
        &self,
        request: impl crate::task::IntoApiRequest,
    ) -> Result<Value, ApiError> {
        let r = request.into_request();
        self.send_once(r.method, &r.path, &r.body).await
    }

    /// Sends `body` with `method` to `path` (below the base URL), retrying as the module
    /// documentation says.
    /// Returns the response body (`Value::Null` when empty).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: &Value,
        kind: RequestKind,
    ) -> Result<Value, ApiError> {
        if self.suspended() {
            debug!("skipping {method} {path}: API requests are suspended");
            return Err(ApiError::Suspended);
        }
        self.exhausted_at = None;
        let url = format!("{}{path}", self.config.base_url);
        let first = Instant::now();
        let mut timeout = match kind {
            RequestKind::Creation => self.config.creation_error_timeout,
            RequestKind::Update => self.config.error_timeout,
            RequestKind::Final => self.config.final_update_timeout,
        };
        let mut last_status = None;
        let mut last_conflict = None;
        loop {
            // What went wrong (for the log line), and how long to wait before the next try.
            let (problem, delay) = match self.attempt_reading(&method, &url, body, true).await {
                Attempt::Done(result) => return result,
                Attempt::Conflict(conflict) if kind == RequestKind::Creation => {
                    last_status = Some(409);
                    timeout = self.config.creation_conflict_timeout;
                    let said = conflict
                        .message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default();
                    last_conflict = Some(conflict);
                    (
                        format!(
                            "the API server reports a conflict with another execution (409){said}"
                        ),
                        self.config.creation_conflict_retry_delay,
                    )
                }
                Attempt::Conflict(conflict) => return Err(ApiError::Conflict(conflict)),
                Attempt::Refused(status, text) => {
                    // What the server said names the field at fault (`run_environment`: "Run
                    // Environment does not exist"); it never holds the API key.
                    let said = Conflict::from_body(text.as_bytes()).message;
                    error!(
                        "the API server answered {status} to {method} {path}{}",
                        said.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                    return Err(ApiError::Rejected(status.as_u16()));
                }
                Attempt::Status(status, after) => {
                    last_status = Some(status.as_u16());
                    match status {
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => (
                            format!("the API server answered {status}"),
                            clamp_retry_after(after.unwrap_or(self.config.retry_delay)),
                        ),
                        _ => {
                            error!("the API server answered {status} to {method} {path}");
                            return Err(ApiError::Rejected(status.as_u16()));
                        }
                    }
                }
                Attempt::Network(e) => (
                    format!("could not reach the API server ({method} {path}): {e}"),
                    self.config.retry_delay,
                ),
            };
            if let Some(t) = timeout
                && first.elapsed() + delay >= t
            {
                // Said once, with what happens now, rather than "retrying" and then not.
                error!(
                    "{problem}; not retrying, since the next try would come after the retry \
                     timeout of {} seconds; not sending any more API requests for now",
                    t.as_secs_f64()
                );
                self.exhausted_at = Some(Instant::now());
                return Err(
                    if let Some(conflict) = last_conflict.filter(|_| last_status == Some(409)) {
                        ApiError::Conflict(conflict)
                    } else {
                        ApiError::Exhausted(last_status)
                    },
                );
            }
            warn!("{problem}; retrying in {} seconds", delay.as_secs_f64());
            tokio::time::sleep(delay).await;
        }
    }
}

/// Reads the body of `response`, failing when it is longer than `limit` bytes (without reading
/// further).
async fn read_body(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ApiError> {
    crate::http::read_limited(response, limit)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLong => ApiError::InvalidResponse(format!(
                "the body is longer than {limit} bytes; not reading it"
            )),
            crate::http::BodyError::Read(e) => {
                ApiError::InvalidResponse(format!("could not read the body: {e}"))
            }
        })
}

/// The answer to one attempt.
enum Attempt {
    /// A success (with the body), or a success whose body could not be read.
    Done(Result<Value, ApiError>),
    /// A failure status other than 409, with the `Retry-After` delay if given.
    Status(StatusCode, Option<Duration>),
    /// 409, with what its body said.
    Conflict(Box<Conflict>),
    /// A refusal (4xx) with the start of its body, when asked for.
    Refused(StatusCode, String),
    /// No answer.
    Network(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every connection with `response` (raw HTTP) and then closes it;
    /// returns its base URL.
    async fn raw_server(response: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                // Reads the request head (the test requests have small bodies).
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(&response).await;
            }
        });
        url
    }

    fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
        let mut r =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for c in chunks {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    }

    async fn body_of(response: Vec<u8>, limit: usize) -> Result<Vec<u8>, ApiError> {
        let url = raw_server(response).await;
        let response = reqwest::get(url).await.unwrap();
        read_body(response, limit).await
    }

    #[tokio::test]
    async fn bodies_longer_than_the_limit_are_refused() {
        let big = vec![b'a'; 600];
        // Announced by Content-Length.
        let mut announced =
            b"HTTP/1.1 200 OK\r\ncontent-length: 1200\r\nconnection: close\r\n\r\n".to_vec();
        announced.extend_from_slice(&[b'a'; 1200]);
        // Streamed in chunks without a length.
        let streamed = chunked(&[&big, &big]);
        for response in [announced, streamed] {
            match body_of(response, 1000).await {
                Err(ApiError::InvalidResponse(e)) => {
                    assert!(e.contains("longer than 1000 bytes"), "{e}");
                }
                other => panic!("{other:?}"),
            }
        }
        // At the limit, it is read whole.
        assert_eq!(
            body_of(chunked(&[&big, &big[..400]]), 1000)
                .await
                .unwrap()
                .len(),
            1000
        );
    }

    #[tokio::test]
    async fn only_bodies_that_are_used_must_be_json() {
        let garbage = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 8\r\nconnection: close\r\n\r\n<html>hi"
            .to_vec();
        let url = raw_server(garbage).await;
        let config = crate::config::from_pairs(&[("PROC_WRAPPER_API_BASE_URL", &url)]);
        let client = ApiClient::new(config.api).unwrap();
        let body = serde_json::json!({"status": "RUNNING"});
        let update = client
            .send_once(
                Method::PATCH,
                "/api/v1/task_executions/x/?content=false",
                &body,
            )
            .await;
        assert_eq!(update, Ok(Value::Null));
        match client
            .send_once(Method::POST, "/api/v1/task_executions/", &body)
            .await
        {
            Err(ApiError::InvalidResponse(e)) => assert!(e.contains("not JSON"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conflict_says_what_the_server_said_once() {
        let c = Conflict::from_body(
            br#"{"status": "Status cannot be set to RUNNING after FAILED", "error_class": "ValidationError", "error_message": "{'status': ErrorDetail(string='Status cannot be set to RUNNING after FAILED', code='invalid')}"}"#,
        );
        let m = c.message.expect("a message");
        assert!(
            m.contains("Status cannot be set to RUNNING after FAILED"),
            "{m}"
        );
        assert!(
            !m.contains("ErrorDetail") && !m.contains("ValidationError"),
            "{m}"
        );
        let c = Conflict::from_body(
            br#"{"uuid": "u", "status": "STOPPED", "stop_reason": null, "killed_by": "admin"}"#,
        );
        assert_eq!(c.describe().as_deref(), Some("status STOPPED, by admin"));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        // The original's test: frozen at 2021-08-16T14:26:54Z.
        let now = UNIX_EPOCH + Duration::from_secs(1_629_124_014);
        assert_eq!(retry_after("55", now), Some(Duration::from_secs(55)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(100));
        let d = retry_after(&later, now).unwrap();
        assert!((99..=101).contains(&d.as_secs()), "{d:?}");
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(
            clamp_retry_after(Duration::from_secs(1)),
            Duration::from_secs(5)
        );
        assert_eq!(
            clamp_retry_after(Duration::from_secs(6000)),
            Duration::from_secs(600)
        );
    }
}
