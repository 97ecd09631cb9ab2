//! A fake AWS endpoint that records who signed each request, for the tests of the wrapper's
//! own AWS client: which credentials (the `Credential=` of the `Authorization` header and the
//! session token), which region and service (the credential scope), which operation.
//!
//! It answers, on one port:
//! * `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue` → `SecretString` =
//!   `secret-of-<SecretId>`; `AmazonSSM.GetParameter` → `Value` = `param-of-<Name>`;
//! * `GET /<bucket>/<key>` (S3, path style) → `object-of-<key>`, unless the bucket is
//!   [`MOVED_BUCKET`] and the request was signed for another region than
//!   [`MOVED_BUCKET_REGION`]: then `301 PermanentRedirect` with `x-amz-bucket-region`;
//! * `GET /container-credentials` → container credentials, when the `Authorization`
//!   header is [`CONTAINER_TOKEN`] (401 otherwise);
//! * the IMDSv2 paths `PUT /latest/api/token`, `GET /latest/meta-data/iam/security-credentials/`,
//!   `.../<role>` and `GET /latest/meta-data/placement/region` ([`IMDS_REGION`]).
//!
//! Knobs: [`FakeAws::throttle_next`] and [`FakeAws::fail_next`] make the next signed calls
//! fail; [`FakeAws::skew_clock`] gives the fake a clock of its own, which refuses requests
//! signed more than 5 minutes away from it (`InvalidSignatureException: Signature expired`,
//! with its `Date`); [`FakeAws::imds`] sets how the instance metadata answers (token
//! refused or never answered, failures, an outage, the credentials' expiry);
//! [`FakeAws::container_fail_next`] fails container credentials requests.
//! [`FakeAws::metadata_log`] lists the metadata and container requests received.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The bucket that lives in [`MOVED_BUCKET_REGION`].
pub const MOVED_BUCKET: &str = "moved-bucket";
/// The region of [`MOVED_BUCKET`].
pub const MOVED_BUCKET_REGION: &str = "eu-north-1";
/// The token the container credentials endpoint expects.
pub const CONTAINER_TOKEN: &str = "container-auth-token";
/// The access key of the container credentials.
pub const CONTAINER_KEY: &str = "ASIACONTAINER";
/// The access key of the instance profile credentials.
pub const IMDS_KEY: &str = "ASIAINSTANCE";
/// The region the instance metadata reports.
pub const IMDS_REGION: &str = "eu-west-3";

/// One signed request the fake received.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The access key id of the `Credential=` field.
    pub access_key: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// The `x-amz-security-token` header.
    pub session_token: Option<String>,
    /// The `X-Amz-Target` header, or `GET <path>` for S3.
    pub operation: String,
}

/// How the fake instance metadata service behaves.
#[derive(Debug, Clone, Default)]
pub struct ImdsMode {
    /// Answer the token request with this status instead of a token.
    pub token_status: Option<u16>,
    /// Answer the token request after this long (a hop limit of 1: the answer never comes
    /// back in time).
    pub token_delay: Option<std::time::Duration>,
    /// Refuse requests without a token (IMDSv2 required).
    pub v1_refused: bool,
    /// Answer the next this many metadata GETs with 500.
    pub fail_next: usize,
    /// After this many credential answers, answer every metadata request with 500.
    pub outage_after: Option<usize>,
    /// The `Expiration` of the credentials (2099 by default).
    pub expiration: Option<String>,
}

#[derive(Default)]
struct Inner {
    signed: Vec<Signed>,
    throttle: usize,
    /// The next answers to signed calls: status and error code.
    failures: Vec<(u16, String)>,
    /// The fake's clock minus the real one, in seconds.
    skew: i64,
    imds: ImdsMode,
    credential_answers: usize,
    container_fail: usize,
    metadata_log: Vec<String>,
    token_count: usize,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake, stopped when dropped.
pub struct FakeAws {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Shared,
    _server: crate::server::Server,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
fn signed(headers: &HeaderMap, operation: String) -> Option<Signed> {
    let auth = header(headers, "authorization")?;
    let credential = auth.split("Credential=").nth(1)?.split(',').next()?;
    let mut parts = credential.split('/');
    let access_key = parts.next()?.to_owned();
    let _date = parts.next()?;
    Some(Signed {
        access_key,
        region: parts.next()?.to_owned(),
        service: parts.next()?.to_owned(),
        session_token: header(headers, "x-amz-security-token"),
        operation,
    })
}

fn unsigned() -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"__type": "MissingAuthenticationTokenException", "message": "unsigned"})),
    )
        .into_response()
}

/// The fake's clock.
fn fake_now(skew: i64) -> std::time::SystemTime {
    let now = std::time::SystemTime::now();
    let d = std::time::Duration::from_secs(skew.unsigned_abs());
    if skew >= 0 { now + d } else { now - d }
}

/// Records the request; answers the error that is due (clock skew, a failure, throttling).
fn record(state: &Shared, s: Signed, amz_date: Option<String>) -> Option<Response> {
    let mut inner = lock(state);
    inner.signed.push(s);
    if inner.skew != 0 {
        let now = fake_now(inner.skew);
        let signed_at = amz_date.as_deref().and_then(|d| {
            proc_wrapper::time::parse_rfc3339(&format!(
                "{}-{}-{}T{}:{}:{}Z",
                d.get(0..4)?,
                d.get(4..6)?,
                d.get(6..8)?,
                d.get(9..11)?,
                d.get(11..13)?,
                d.get(13..15)?
            ))
        });
        let far = signed_at.is_none_or(|t| {
            let gap = now.duration_since(t).or_else(|e| Ok::<_, ()>(e.duration()));
            gap.is_ok_and(|g| g > std::time::Duration::from_secs(300))
        });
        if far {
            return Some(
                (
                    StatusCode::BAD_REQUEST,
                    [("date", httpdate::fmt_http_date(now))],
                    Json(json!({
                        "__type": "InvalidSignatureException",
                        "message": format!("Signature expired: {} is now earlier than the fake's time", amz_date.unwrap_or_default()),
                    })),
                )
                    .into_response(),
            );
        }
    }
    if !inner.failures.is_empty() {
        let (status, code) = inner.failures.remove(0);
        return Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({"__type": code, "message": "injected failure"})),
            )
                .into_response(),
        );
    }
    if inner.throttle > 0 {
        inner.throttle -= 1;
        return Some(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"__type": "ThrottlingException", "message": "Rate exceeded"})),
            )
                .into_response(),
        );
    }
    None
}

async fn json_call(state: Shared, headers: HeaderMap, body: Bytes) -> Response {
    let target = header(&headers, "x-amz-target").unwrap_or_default();
    let Some(s) = signed(&headers, target.clone()) else {
        return unsigned();
    };
    if let Some(r) = record(&state, s, header(&headers, "x-amz-date")) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match target.as_str() {
        "secretsmanager.GetSecretValue" => {
            let id = field("SecretId");
            Json(json!({"Name": id, "SecretString": format!("secret-of-{id}")})).into_response()
        }
        "AmazonSSM.GetParameter" => {
            let name = field("Name");
            Json(json!({"Parameter": {"Name": name, "Type": "String", "Value": format!("param-of-{name}")}}))
                .into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"__type": "UnknownOperationException"})),
        )
            .into_response(),
    }
}

async fn s3_get(state: Shared, bucket: String, key: String, headers: HeaderMap) -> Response {
    let Some(s) = signed(&headers, format!("GET /{bucket}/{key}")) else {
        return unsigned();
    };
    let region = s.region.clone();
    if let Some(r) = record(&state, s, header(&headers, "x-amz-date")) {
        return r;
    }
    if bucket == MOVED_BUCKET && region != MOVED_BUCKET_REGION {
        return (
            StatusCode::MOVED_PERMANENTLY,
            [("x-amz-bucket-region", MOVED_BUCKET_REGION)],
            "<Error><Code>PermanentRedirect</Code><Message>The bucket is in this region: \
             eu-north-1.</Message></Error>",
        )
            .into_response();
    }
    ([("content-type", "text/plain")], format!("object-of-{key}")).into_response()
}

fn temporary(key: &str, expiration: Option<&str>) -> Value {
    json!({
        "Code": "Success",
        "AccessKeyId": key,
        "SecretAccessKey": format!("secret-{key}"),
        "Token": format!("token-{key}"),
        "Expiration": expiration.unwrap_or("2099-01-01T00:00:00Z"),
    })
}

/// The token the fake IMDS hands out (a new one each time: `imds-token-N`).
fn token_ok(headers: &HeaderMap, inner: &Inner) -> Option<bool> {
    match header(headers, "x-aws-ec2-metadata-token") {
        Some(t) => Some(t.starts_with("imds-token-")),
        None if inner.imds.v1_refused => Some(false),
        None => None,
    }
}

async fn imds_token(state: Shared) -> Response {
    let (status, delay) = {
        let mut inner = lock(&state);
        inner.metadata_log.push("PUT /latest/api/token".into());
        (inner.imds.token_status, inner.imds.token_delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(status) = status {
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    let mut inner = lock(&state);
    inner.token_count += 1;
    format!("imds-token-{}", inner.token_count).into_response()
}

/// A metadata GET: logged (`GET path v2` or `v1`), failed when due, else `answer`.
fn imds_get(
    state: &Shared,
    headers: &HeaderMap,
    path: &str,
    credentials: bool,
) -> Result<(), StatusCode> {
    let mut inner = lock(state);
    let token = token_ok(headers, &inner);
    let how = match token {
        Some(true) => "v2",
        Some(false) => "bad-token",
        None => "v1",
    };
    inner.metadata_log.push(format!("GET {path} {how}"));
    let out = inner
        .imds
        .outage_after
        .is_some_and(|n| inner.credential_answers >= n);
    if inner.imds.fail_next > 0 || out {
        inner.imds.fail_next = inner.imds.fail_next.saturating_sub(1);
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if token == Some(false) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if credentials {
        inner.credential_answers += 1;
    }
    Ok(())
}

impl FakeAws {
    /// Starts the fake on a free loopback port.
    pub fn start() -> Self {
        let state: Shared = Arc::default();
        let s = state.clone();
        let server = crate::server::Server::start(move || {
            let (s1, s2, s3, s4, s5, s6) = (
                s.clone(),
                s.clone(),
                s.clone(),
                s.clone(),
                s.clone(),
                s.clone(),
            );
            let s7 = s;
            Router::new()
                .route(
                    "/",
                    post(move |headers: HeaderMap, body: Bytes| {
                        json_call(s1.clone(), headers, body)
                    }),
                )
                .route(
                    "/container-credentials",
                    get(move |headers: HeaderMap| {
                        let s = s3.clone();
                        async move {
                            let mut inner = lock(&s);
                            inner.metadata_log.push("GET /container-credentials".into());
                            if inner.container_fail > 0 {
                                inner.container_fail -= 1;
                                return StatusCode::SERVICE_UNAVAILABLE.into_response();
                            }
                            if header(&headers, "authorization").as_deref() == Some(CONTAINER_TOKEN)
                            {
                                Json(temporary(CONTAINER_KEY, None)).into_response()
                            } else {
                                StatusCode::UNAUTHORIZED.into_response()
                            }
                        }
                    }),
                )
                .route("/latest/api/token", put(move || imds_token(s4.clone())))
                .route(
                    "/latest/meta-data/iam/security-credentials/",
                    get(move |headers: HeaderMap| {
                        let s = s5.clone();
                        async move {
                            match imds_get(
                                &s,
                                &headers,
                                "/latest/meta-data/iam/security-credentials/",
                                false,
                            ) {
                                Ok(()) => "instance-role\n".into_response(),
                                Err(status) => status.into_response(),
                            }
                        }
                    }),
                )
                .route(
                    "/latest/meta-data/iam/security-credentials/instance-role",
                    get(move |headers: HeaderMap| {
                        let s = s6.clone();
                        async move {
                            let path = "/latest/meta-data/iam/security-credentials/instance-role";
                            match imds_get(&s, &headers, path, true) {
                                Ok(()) => {
                                    let expiration = lock(&s).imds.expiration.clone();
                                    Json(temporary(IMDS_KEY, expiration.as_deref())).into_response()
                                }
                                Err(status) => status.into_response(),
                            }
                        }
                    }),
                )
                .route(
                    "/latest/meta-data/placement/region",
                    get(move |headers: HeaderMap| {
                        let s = s7.clone();
                        async move {
                            match imds_get(
                                &s,
                                &headers,
                                "/latest/meta-data/placement/region",
                                false,
                            ) {
                                Ok(()) => IMDS_REGION.into_response(),
                                Err(status) => status.into_response(),
                            }
                        }
                    }),
                )
                .route(
                    "/{bucket}/{*key}",
                    get(
                        move |Path((bucket, key)): Path<(String, String)>, headers: HeaderMap| {
                            s3_get(s2.clone(), bucket, key, headers)
                        },
                    ),
                )
        });
        Self {
            url: format!("http://{}", server.addr),
            state,
            _server: server,
        }
    }

    /// The signed requests received so far.
    pub fn signed(&self) -> Vec<Signed> {
        lock(&self.state).signed.clone()
    }

    /// Answers the next `n` signed calls with `ThrottlingException`.
    pub fn throttle_next(&self, n: usize) {
        lock(&self.state).throttle = n;
    }

    /// Answers the next signed calls with these errors (HTTP status, error code), in order.
    pub fn fail_next(&self, failures: &[(u16, &str)]) {
        lock(&self.state).failures = failures
            .iter()
            .map(|(status, code)| (*status, (*code).to_owned()))
            .collect();
    }

    /// Gives the fake a clock `seconds` away from the real one: requests signed more than
    /// 5 minutes from it are refused as expired, with the fake's `Date`.
    pub fn skew_clock(&self, seconds: i64) {
        lock(&self.state).skew = seconds;
    }

    /// The fake's clock.
    pub fn now(&self) -> std::time::SystemTime {
        fake_now(lock(&self.state).skew)
    }

    /// Sets how the instance metadata service answers.
    pub fn imds(&self, mode: ImdsMode) {
        lock(&self.state).imds = mode;
    }

    /// Answers the next `n` container credentials requests with 503.
    pub fn container_fail_next(&self, n: usize) {
        lock(&self.state).container_fail = n;
    }

    /// The instance metadata and container credentials requests received:
    /// `PUT /latest/api/token`, `GET <path> v2|v1|bad-token`, `GET /container-credentials`.
    pub fn metadata_log(&self) -> Vec<String> {
        lock(&self.state).metadata_log.clone()
    }
}

/// How many entries of a [`FakeAws::metadata_log`] are exactly `entry` (`PUT /latest/api/token`,
/// `GET <path> v2`, ...).
pub fn count(log: &[String], entry: &str) -> usize {
    log.iter().filter(|l| l.as_str() == entry).count()
}
