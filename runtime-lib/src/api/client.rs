//! The HTTP client of the CloudReactor API and its retry policy (§4.1, §4.4 of the reference
//! behaviour).
//!
//! [`ApiClient::send`] retries one request until it succeeds or its deadline passes:
//! 429/502/503/504 after `Retry-After` (clamped to 5–600 s) or `api_retry_delay`, network
//! errors after `api_retry_delay`, creation conflicts (409) after the conflict retry delay
//! until the conflict timeout. Any other status is final. When the deadline passes, the
//! client stops sending requests until `api_resume_delay` has passed.

use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::{debug, error, warn};

use crate::config::ApiConfig;

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
    /// answer to an update of an execution it wants stopped.
    #[error("the API server answered 409 (conflict)")]
    Conflict,
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
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
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
    pub fn new(config: ApiConfig) -> Result<Self, reqwest::Error> {
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
            http: builder.build()?,
            config,
            exhausted_at: None,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// True while requests are suspended after an exhaustion.
    pub fn suspended(&self) -> bool {
        match (self.exhausted_at, self.config.resume_delay) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(resume)) => at.elapsed() < resume,
        }
    }

    /// True once retries have been exhausted (the final update is then skipped).
    pub fn exhausted(&self) -> bool {
        self.exhausted_at.is_some()
    }

    /// Sends one request and classifies the answer.
    async fn attempt(&self, method: &Method, url: &str, body: &Value) -> Attempt {
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
                    return match response.bytes().await {
                        Ok(bytes) if bytes.is_empty() => Attempt::Done(Ok(Value::Null)),
                        Ok(bytes) => Attempt::Done(
                            serde_json::from_slice(&bytes)
                                .map_err(|e| ApiError::InvalidResponse(e.to_string())),
                        ),
                        Err(e) => Attempt::Done(Err(ApiError::InvalidResponse(format!(
                            "could not read the body: {e}"
                        )))),
                    };
                }
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now()));
                Attempt::Status(status, retry_after)
            }
            Err(e) => Attempt::Network(e.to_string()),
        }
    }

    /// Sends one request without retrying, for callers with their own time budget (the
    /// Lambda extension). A 409 is [`ApiError::Conflict`], any other failure status
    /// [`ApiError::Rejected`], a network error [`ApiError::Unreachable`].
    pub async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.config.base_url);
        match self.attempt(&method, &url, body).await {
            Attempt::Done(result) => result,
            Attempt::Status(StatusCode::CONFLICT, _) => Err(ApiError::Conflict),
            Attempt::Status(status, _) => Err(ApiError::Rejected(status.as_u16())),
            Attempt::Network(e) => Err(ApiError::Unreachable(e)),
        }
    }

    /// Sends `body` with `method` to `path` (below the base URL), retrying per §4.4.
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
        loop {
            let delay = match self.attempt(&method, &url, body).await {
                Attempt::Done(result) => return result,
                Attempt::Status(status, after) => {
                    last_status = Some(status.as_u16());
                    match status {
                        StatusCode::CONFLICT if kind == RequestKind::Creation => {
                            warn!(
                                "the API server reports a conflict with another execution; \
                                 retrying Task Execution creation"
                            );
                            timeout = self.config.creation_conflict_timeout;
                            self.config.creation_conflict_retry_delay
                        }
                        StatusCode::CONFLICT => return Err(ApiError::Conflict),
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => {
                            let delay = clamp_retry_after(after.unwrap_or(self.config.retry_delay));
                            warn!(
                                "the API server answered {status}; retrying in {} seconds",
                                delay.as_secs_f64()
                            );
                            delay
                        }
                        _ => {
                            error!("the API server answered {status} to {method} {path}");
                            return Err(ApiError::Rejected(status.as_u16()));
                        }
                    }
                }
                Attempt::Network(e) => {
                    error!("could not reach the API server ({method} {path}): {e}");
                    self.config.retry_delay
                }
            };
            if let Some(t) = timeout
                && first.elapsed() + delay >= t
            {
                error!(
                    "exhausted the retry timeout of {} seconds; not sending any more API \
                     requests for now",
                    t.as_secs_f64()
                );
                self.exhausted_at = Some(Instant::now());
                return Err(if last_status == Some(409) {
                    ApiError::Conflict
                } else {
                    ApiError::Exhausted(last_status)
                });
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// The answer to one attempt.
enum Attempt {
    /// A success (with the body), or a success whose body could not be read.
    Done(Result<Value, ApiError>),
    /// A failure status, with the `Retry-After` delay if given.
    Status(StatusCode, Option<Duration>),
    /// No answer.
    Network(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

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
