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
//! [`FakeAws::throttle_next`] makes the next calls fail with `ThrottlingException`.

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

#[derive(Default)]
struct Inner {
    signed: Vec<Signed>,
    throttle: usize,
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

/// Records the request; answers the throttling error if one is due.
fn record(state: &Shared, s: Signed) -> Option<Response> {
    let mut inner = lock(state);
    inner.signed.push(s);
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
    if let Some(r) = record(&state, s) {
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
    if let Some(r) = record(&state, s) {
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

fn temporary(key: &str) -> Value {
    json!({
        "Code": "Success",
        "AccessKeyId": key,
        "SecretAccessKey": format!("secret-{key}"),
        "Token": format!("token-{key}"),
        "Expiration": "2099-01-01T00:00:00Z",
    })
}

impl FakeAws {
    /// Starts the fake on a free loopback port.
    pub fn start() -> Self {
        let state: Shared = Arc::default();
        let s = state.clone();
        let server = crate::server::Server::start(move || {
            let (s1, s2) = (s.clone(), s);
            Router::new()
                .route(
                    "/",
                    post(move |headers: HeaderMap, body: Bytes| {
                        json_call(s1.clone(), headers, body)
                    }),
                )
                .route(
                    "/container-credentials",
                    get(|headers: HeaderMap| async move {
                        if header(&headers, "authorization").as_deref() == Some(CONTAINER_TOKEN) {
                            Json(temporary(CONTAINER_KEY)).into_response()
                        } else {
                            StatusCode::UNAUTHORIZED.into_response()
                        }
                    }),
                )
                .route("/latest/api/token", put(|| async { "imds-token" }))
                .route(
                    "/latest/meta-data/iam/security-credentials/",
                    get(|| async { "instance-role\n" }),
                )
                .route(
                    "/latest/meta-data/iam/security-credentials/instance-role",
                    get(|headers: HeaderMap| async move {
                        if header(&headers, "x-aws-ec2-metadata-token").as_deref()
                            == Some("imds-token")
                        {
                            Json(temporary(IMDS_KEY)).into_response()
                        } else {
                            StatusCode::UNAUTHORIZED.into_response()
                        }
                    }),
                )
                .route(
                    "/latest/meta-data/placement/region",
                    get(|| async { IMDS_REGION }),
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
}
