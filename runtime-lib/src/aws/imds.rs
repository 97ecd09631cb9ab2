//! The EC2 instance metadata service (IMDS), read as botocore and the AWS SDKs read it.
//!
//! * An IMDSv2 session token (`PUT /latest/api/token`, 6 hours) is fetched once and reused
//!   for every request until shortly before it expires; a `401` (an expired or unknown
//!   token) fetches a new one.
//! * When the token request fails (`403`, `404`, `405`, a timeout: a container on an
//!   instance whose metadata hop limit is 1 never sees the answer, or a connection that
//!   keeps failing), the service is read with IMDSv1 requests, without a token, as boto3
//!   (and so proc_wrapper 6.0.2) does, unless `AWS_EC2_METADATA_V1_DISABLED=true` or the
//!   profile's `ec2_metadata_v1_disabled = true`. A `400` is an error, as in botocore.
//! * Each request is tried up to `ATTEMPTS` times (broken connections, timeouts, `5xx`,
//!   `429`) after a short backoff, and times out after 1 s.

use std::time::{Duration, Instant};

use tracing::info;

use super::{Aws, env, is_true};

/// Attempts per metadata request (also for container credentials).
pub(crate) const ATTEMPTS: u32 = 3;
/// The timeout of one metadata request (botocore's `metadata_service_timeout`).
const TIMEOUT: Duration = Duration::from_secs(1);
/// The lifetime asked for a session token.
const TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// A token is replaced this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// The default address of the service.
pub(crate) const ENDPOINT: &str = "http://169.254.169.254";

/// How the service is being read.
#[derive(Debug, Clone)]
pub(crate) enum Session {
    /// IMDSv2, with this token until `expires`.
    Token {
        /// The session token (not a secret of the account, but not logged either).
        token: String,
        /// When to fetch a new one.
        expires: Instant,
    },
    /// IMDSv1: the token request failed and IMDSv1 is allowed.
    V1,
}

/// The service's address: `AWS_EC2_METADATA_SERVICE_ENDPOINT` or the default.
pub fn endpoint() -> String {
    env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| ENDPOINT.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The backoff before attempt `attempt + 1` of a metadata or container credentials request:
/// full jitter over 100 ms, 200 ms, ... (a tenth of `PROC_WRAPPER_AWS_RETRY_BASE_DELAY_SECONDS`).
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let ceiling = (super::throttling_base_delay() / 10)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    ceiling.mul_f64(fastrand::f64())
}

/// Whether an HTTP status is worth another attempt.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Why the token request did not give a token.
enum TokenFailure {
    /// The service refused tokens or did not answer: IMDSv1 may be tried.
    Fallback(String),
    /// A bad request (400): an error, as in botocore.
    Error(String),
}

impl Aws {
    /// Whether IMDSv1 is disabled (`AWS_EC2_METADATA_V1_DISABLED`, else the profile's
    /// `ec2_metadata_v1_disabled`).
    fn imds_v1_disabled(&self) -> bool {
        let (name, _) = super::profile::selected();
        env("AWS_EC2_METADATA_V1_DISABLED")
            .or_else(|| {
                self.profiles()
                    .get(&name)
                    .and_then(|p| p.get("ec2_metadata_v1_disabled"))
                    .cloned()
            })
            .is_some_and(|v| is_true(&v))
    }

    /// Requests a session token, with retries.
    async fn imds_new_token(&self, base: &str) -> Result<String, TokenFailure> {
        let http = self
            .http()
            .map_err(|e| TokenFailure::Error(e.to_string()))?;
        let url = format!("{base}/latest/api/token");
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(retry_delay(attempt - 1)).await;
            }
            let sent = http
                .put(&url)
                .header(
                    "x-aws-ec2-metadata-token-ttl-seconds",
                    TOKEN_TTL.as_secs().to_string(),
                )
                .timeout(TIMEOUT)
                .send()
                .await;
            let response = match sent {
                // No answer in time (a hop limit of 1 drops it): no point in waiting again.
                Err(e) if e.is_timeout() => {
                    return Err(TokenFailure::Fallback(format!(
                        "the token request to {base} timed out"
                    )));
                }
                Err(e) => {
                    last = format!("{base} is unreachable: {e}");
                    continue;
                }
                Ok(r) => r,
            };
            let status = response.status().as_u16();
            match status {
                200 => {
                    let body = super::read_capped(response, 4096)
                        .await
                        .map_err(TokenFailure::Fallback)?;
                    let token = String::from_utf8_lossy(&body).trim().to_owned();
                    if token.is_empty() {
                        last = "the token request answered an empty token".to_owned();
                        continue;
                    }
                    return Ok(token);
                }
                403..=405 => {
                    return Err(TokenFailure::Fallback(format!(
                        "the token request answered HTTP {status}"
                    )));
                }
                400 => {
                    return Err(TokenFailure::Error(
                        "the IMDSv2 token request answered HTTP 400 (bad request)".to_owned(),
                    ));
                }
                _ => last = format!("the token request answered HTTP {status}"),
            }
        }
        Err(TokenFailure::Fallback(format!(
            "{last} (after {ATTEMPTS} attempts)"
        )))
    }

    /// The session to read the service with: the cached one, else a new token, else IMDSv1
    /// (logged once) when allowed.
    async fn imds_session(&self, base: &str) -> Result<Session, String> {
        let mut cached = self.imds_session.lock().await;
        if let Some(session) = cached.as_ref() {
            match session {
                Session::Token { expires, .. } if Instant::now() < *expires => {
                    return Ok(session.clone());
                }
                Session::V1 => return Ok(Session::V1),
                Session::Token { .. } => {}
            }
        }
        let session = match self.imds_new_token(base).await {
            Ok(token) => Session::Token {
                token,
                expires: Instant::now() + TOKEN_TTL - TOKEN_MARGIN,
            },
            Err(TokenFailure::Error(e)) => return Err(e),
            Err(TokenFailure::Fallback(why)) if self.imds_v1_disabled() => {
                return Err(format!(
                    "no IMDSv2 token ({why}), and IMDSv1 is disabled \
                     (AWS_EC2_METADATA_V1_DISABLED or ec2_metadata_v1_disabled)"
                ));
            }
            Err(TokenFailure::Fallback(why)) => {
                info!(
                    "no IMDSv2 token from the EC2 instance metadata service ({why}): reading it \
                     with IMDSv1, as boto3 does (AWS_EC2_METADATA_V1_DISABLED=true prevents \
                     this); in a container, an instance metadata hop limit of 2 allows IMDSv2"
                );
                Session::V1
            }
        };
        *cached = Some(session.clone());
        Ok(session)
    }

    /// Forgets the session after a `401`: the token expired, or the instance now requires
    /// IMDSv2.
    async fn imds_forget(&self) {
        *self.imds_session.lock().await = None;
    }

    /// A GET of `path` (`/latest/meta-data/...`) on the instance metadata service, with the
    /// session token (or IMDSv1), retried; the body on success.
    pub(super) async fn imds_get(&self, path: &str) -> Result<String, String> {
        let base = endpoint();
        let url = format!("{base}{path}");
        let http = self.http().map_err(|e| e.to_string())?;
        let mut last = String::new();
        let mut renewed = false;
        let mut attempt = 0;
        while attempt < ATTEMPTS {
            attempt += 1;
            if attempt > 1 {
                tokio::time::sleep(retry_delay(attempt - 1)).await;
            }
            let session = self.imds_session(&base).await?;
            let mut request = http.get(&url).timeout(TIMEOUT);
            if let Session::Token { token, .. } = &session {
                request = request.header("x-aws-ec2-metadata-token", token);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{url} is unreachable: {e}");
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 200 {
                let body = super::read_capped(response, 64 * 1024).await?;
                return Ok(String::from_utf8_lossy(&body).into_owned());
            }
            last = format!("{url} answered HTTP {status}");
            if status == 401 && !renewed {
                // Once: a new token (or IMDSv2 after IMDSv1), without using up an attempt.
                self.imds_forget().await;
                renewed = true;
                attempt -= 1;
                continue;
            }
            if !retryable_status(status) {
                break;
            }
        }
        if attempt > 1 {
            last = format!("{last} (after {attempt} attempts)");
        }
        Err(last)
    }
}
