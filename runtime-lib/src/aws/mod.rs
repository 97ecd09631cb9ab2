//! A small AWS client for the calls the wrapper makes: Secrets Manager `GetSecretValue`,
//! SSM `GetParameter`, S3 `GetObject`, and STS for assumed roles. It signs requests with
//! Signature Version 4 ([`sigv4`]) over the same HTTPS client as the rest of the wrapper
//! (rustls, certificates verified against the system's roots), which keeps the binaries
//! about 3 MB smaller than with the AWS SDK.
//!
//! It follows the SDKs' conventions: the default credentials chain ([`credentials`]), the
//! region from `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile or the instance metadata
//! ([`imds`]), endpoints (`endpoint_with`: `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`,
//! the profile's `endpoint_url` and `[services]` section, FIPS and dual-stack, the
//! partitions), and the retries of boto3's standard mode as proc_wrapper 6.0.2 configures it
//! (`send`: 6 attempts (5 retries), `AWS_MAX_ATTEMPTS` otherwise, exponential backoff with jitter,
//! the SDKs' retryable and throttling codes, the clock corrected after a skew error).

pub mod credentials;
pub mod imds;
pub mod profile;
pub mod sigv4;

use crate::config::table as T;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use credentials::Credentials;
use sigv4::uri_encode;

/// The services this client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// AWS Secrets Manager.
    SecretsManager,
    /// AWS Systems Manager (Parameter Store).
    Ssm,
    /// Amazon S3.
    S3,
    /// AWS Security Token Service.
    Sts,
}

impl Service {
    /// The signing name and endpoint prefix.
    pub(crate) fn signing_name(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::Ssm => "ssm",
            Self::S3 => "s3",
            Self::Sts => "sts",
        }
    }

    /// The suffix of its `AWS_ENDPOINT_URL_<SERVICE>` variable.
    fn env_suffix(self) -> &'static str {
        match self {
            Self::SecretsManager => "SECRETS_MANAGER",
            Self::Ssm => "SSM",
            Self::S3 => "S3",
            Self::Sts => "STS",
        }
    }

    /// Its key in a `[services]` section of the config file (the snake-case service id).
    fn config_key(self) -> &'static str {
        match self {
            Self::SecretsManager => "secrets_manager",
            Self::Ssm => "ssm",
            Self::S3 => "s3",
            Self::Sts => "sts",
        }
    }

    /// The `X-Amz-Target` prefix of its JSON protocol.
    fn target_prefix(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::Ssm => "AmazonSSM",
            Self::S3 | Self::Sts => "",
        }
    }
}

/// Bodies of JSON and XML answers are read up to this size.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// S3 objects are read up to this size.
pub(crate) const MAX_OBJECT_BYTES: usize = 64 * 1024 * 1024;
/// Attempts per request unless `AWS_MAX_ATTEMPTS` says otherwise: 6.0.2 configures boto3
/// with `retries={"max_attempts": 5, "mode": "standard"}`, and a client configuration's
/// `max_attempts` counts retries, so botocore makes 6 attempts in all
/// (`client.meta.config.retries` is `{'mode': 'standard', 'total_max_attempts': 6}`).
const DEFAULT_ATTEMPTS: u32 = 6;
/// The base of the backoff after a throttling error (boto3's standard mode:
/// `rand(0, 1) * min(base * 2^(attempt - 1), 20 s)`); other retryable errors use a base 20
/// times smaller (50 ms), as botocore does. `PROC_WRAPPER_AWS_RETRY_BASE_DELAY_SECONDS`
/// changes it.
const THROTTLING_BASE_DELAY: Duration = Duration::from_secs(1);
/// The cap of one backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// `x-amz-retry-after` may lengthen a backoff by at most this much (botocore).
const MAX_RETRY_AFTER_EXTRA: Duration = Duration::from_secs(5);
/// A call (all its attempts and backoffs) gives up rather than start an attempt later than
/// this after its first one; each attempt times out after [`ATTEMPT_TIMEOUT`].
const CALL_BUDGET: Duration = Duration::from_secs(60);
/// The timeout of one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// A server clock this far from ours, in the answer to a signature error, is skew to
/// correct (the AWS SDKs for Java and JavaScript use the same 4 to 5 minutes).
const SKEW_THRESHOLD: Duration = Duration::from_secs(4 * 60);

/// The client: one per process, shared by every location; credentials and the default
/// region are looked up on first use.
pub(crate) struct Aws {
    /// The HTTPS client, built on first use (loading the root certificates takes a few
    /// milliseconds, which a run without AWS locations should not pay), or why it could not
    /// be built.
    http: OnceLock<Result<reqwest::Client, AwsError>>,
    /// `PROC_WRAPPER_SECRETS_AWS_REGION`, before the standard chain.
    configured_region: Option<String>,
    region: OnceCell<Option<String>>,
    profiles: OnceLock<profile::Profiles>,
    credentials: Mutex<Option<Credentials>>,
    /// The server's clock minus ours, in milliseconds, learnt from the `Date` of an answer
    /// to a request refused for clock skew; added to the signing time.
    clock_offset_ms: AtomicI64,
    /// The IMDSv2 session token and when it expires, or the fallback to IMDSv1.
    imds_session: Mutex<Option<imds::Session>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether a boolean setting's text is true (`true`, any case).
fn is_true(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

/// Reads a response body, failing once it passes `cap` bytes; `Err` holds the message and
/// whether trying again may help (a broken connection, not a body too long).
async fn read_body(response: reqwest::Response, cap: usize) -> Result<Vec<u8>, (String, bool)> {
    crate::http::read_limited(response, cap)
        .await
        .map_err(|e| match e {
            crate::http::BodyError::TooLong => {
                (format!("the answer is larger than {cap} bytes"), false)
            }
            crate::http::BodyError::Read(e) => (format!("reading the answer failed: {e}"), true),
        })
}

/// [`read_body`] with the message alone.
pub(crate) async fn read_capped(
    response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, String> {
    read_body(response, cap)
        .await
        .map_err(|(message, _)| message)
}

/// The error code and message of a failed call, from the JSON protocol's `__type` and
/// `message`, the `x-amzn-ErrorType` header, or the XML `<Code>` and `<Message>`.
fn error_of(headers: &reqwest::header::HeaderMap, body: &[u8]) -> (Option<String>, Option<String>) {
    let header_code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let (code, message) = error_in_body(body);
    (code.or(header_code), message)
}

/// The error code and message in the body of a failed call: the JSON protocol's `__type`
/// (without its namespace) and `message`, or the XML `<Code>` and `<Message>`.
pub fn error_in_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(body);
    if let Ok(json) = serde_json::from_str::<Value>(&text) {
        let code = json
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| json.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        return (code, message);
    }
    (
        credentials::xml_text(&text, "Code"),
        credentials::xml_text(&text, "Message"),
    )
}

/// The throttling error codes of the SDKs (botocore's standard mode, `aws-smithy`'s
/// classifier).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Transient error codes: the SDKs' (`RequestTimeout`, `RequestTimeoutException`,
/// `PriorRequestNotComplete`), STS's `IDPCommunicationError` (botocore retries it), and the
/// internal errors that S3 and the JSON services send with a 500 or 503.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "IDPCommunicationError",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Error codes of a request refused for its time: retried once the clock is corrected from
/// the server's `Date` (as the AWS SDKs for Java and JavaScript do), when that shows skew.
const CLOCK_SKEW_CODES: &[&str] = &[
    "RequestTimeTooSkewed",
    "RequestExpired",
    "RequestInTheFuture",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
];

/// What kind of failure a call had, for its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Throttled: retried after the longer backoff.
    Throttling,
    /// A broken connection, a timeout, a server error: retried after the short backoff.
    Transient,
    /// Refused for its signing time: retried at once if the server's clock shows skew.
    ClockSkew,
    /// Anything else: not retried.
    Fatal,
}

/// The kind of an error answer with HTTP `status` and error `code`, as boto3's standard
/// mode sees it: throttling codes and 429, transient codes and 500, 502, 503, 504.
pub(crate) fn classify(status: u16, code: Option<&str>) -> FailureKind {
    let code = code.unwrap_or_default();
    if THROTTLING_CODES.contains(&code) {
        FailureKind::Throttling
    } else if TRANSIENT_CODES.contains(&code) || matches!(status, 500 | 502 | 503 | 504) {
        FailureKind::Transient
    } else if CLOCK_SKEW_CODES.contains(&code) {
        FailureKind::ClockSkew
    } else if status == 429 {
        FailureKind::Throttling
    } else {
        FailureKind::Fatal
    }
}

/// The backoff before attempt `attempt + 1`: full jitter over `base * 2^(attempt - 1)`,
/// capped at [`MAX_BACKOFF`], lengthened to an `x-amz-retry-after` (at most 5 s more).
fn backoff(attempt: u32, base: Duration, retry_after: Option<Duration>) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
        .min(MAX_BACKOFF);
    let delay = ceiling.mul_f64(fastrand::f64());
    match retry_after {
        Some(after) => delay.max(after.min(delay + MAX_RETRY_AFTER_EXTRA)),
        None => delay,
    }
}

/// The base delay of the backoff after throttling: `PROC_WRAPPER_AWS_RETRY_BASE_DELAY_SECONDS`
/// (0 to 20), else 1 s.
fn throttling_base_delay() -> Duration {
    env(T::AWS_RETRY_BASE_DELAY.var())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && (0.0..=20.0).contains(v))
        .map_or(THROTTLING_BASE_DELAY, Duration::from_secs_f64)
}

/// Why a call to AWS failed. The message of each case says what to fix, and never holds a
/// credential or a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// Settings that cannot work: no region, an endpoint that is not a URL, a region or an
    /// S3 key that cannot be addressed, an endpoint that does not exist.
    #[error("{0}")]
    Setup(String),
    /// No usable credentials (the default chain found none, or its source failed).
    #[error("{0}")]
    Credentials(String),
    /// The service refused the call or could not be reached, after the retries.
    #[error("{message}")]
    Call {
        /// How the last attempt failed.
        kind: FailureKind,
        /// The service's error code (`ResourceNotFoundException`, `NoSuchKey`, ...).
        code: Option<String>,
        /// The HTTP status of the last answer, if there was one.
        status: Option<u16>,
        /// The code, message, status and attempts, as one line.
        message: String,
    },
    /// The service answered, but not with what the operation returns.
    #[error("{0}")]
    Answer(String),
}

/// A call's failure.
#[derive(Debug)]
struct Failure {
    message: String,
    kind: FailureKind,
    /// The service's error code and the HTTP status, when it answered.
    code: Option<String>,
    status: Option<u16>,
    /// S3's `x-amz-bucket-region` of a redirect or a wrong-region error.
    bucket_region: Option<String>,
    /// The server's `Date`.
    server_date: Option<SystemTime>,
    /// `x-amz-retry-after`, in milliseconds.
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(message: String, kind: FailureKind) -> Self {
        Self {
            message,
            kind,
            code: None,
            status: None,
            bucket_region: None,
            server_date: None,
            retry_after: None,
        }
    }

    fn into_error(self) -> AwsError {
        AwsError::Call {
            kind: self.kind,
            code: self.code,
            status: self.status,
            message: self.message,
        }
    }
}

/// A successful answer.
struct Answer {
    body: Vec<u8>,
    content_type: Option<String>,
}

/// An AWS partition: its DNS suffixes, and whether its services have dual-stack endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partition {
    id: &'static str,
    dns_suffix: &'static str,
    dual_stack_suffix: &'static str,
    dual_stack: bool,
}

/// The partition of `region`, as botocore's `partitions.json` (1.44) places regions; a
/// region that matches none is in `aws`, as there. `Err` for a name that cannot be part of
/// a host name.
fn partition(region: &str) -> Result<Partition, AwsError> {
    let valid = !region.is_empty()
        && region.len() <= 63
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(AwsError::Setup(format!(
            "the AWS region '{region}' is not a region name (such as us-east-1)"
        )));
    }
    let p = |id, dns_suffix, dual_stack_suffix, dual_stack| Partition {
        id,
        dns_suffix,
        dual_stack_suffix,
        dual_stack,
    };
    Ok(
        match region.split('-').take(2).collect::<Vec<_>>().as_slice() {
            ["cn", _] => p(
                "aws-cn",
                "amazonaws.com.cn",
                "api.amazonwebservices.com.cn",
                true,
            ),
            ["us", "gov"] => p("aws-us-gov", "amazonaws.com", "api.aws", true),
            ["us", "iso"] => p("aws-iso", "c2s.ic.gov", "api.aws.ic.gov", true),
            ["us", "isob"] => p("aws-iso-b", "sc2s.sgov.gov", "api.aws.scloud", true),
            ["us", "isof"] => p("aws-iso-f", "csp.hci.ic.gov", "", false),
            ["eu", "isoe"] => p("aws-iso-e", "cloud.adc-e.uk", "", false),
            ["eusc", "de"] => p("aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu", true),
            _ => p("aws", "amazonaws.com", "api.aws", true),
        },
    )
}

/// The AWS endpoint of `service` in `region` (FIPS and dual-stack as asked), as botocore
/// 1.44's endpoint rules give it, but for S3 in us-east-1, which is regional
/// (`s3.us-east-1.amazonaws.com`, as the newer SDKs use) rather than global.
fn aws_endpoint(
    service: Service,
    region: &str,
    fips: bool,
    dual_stack: bool,
) -> Result<String, AwsError> {
    let p = partition(region)?;
    if dual_stack && !p.dual_stack {
        return Err(AwsError::Setup(format!(
            "{} has no dual-stack endpoint in region {region} (partition {}): unset \
             AWS_USE_DUALSTACK_ENDPOINT (use_dualstack_endpoint) or set an endpoint URL",
            service.signing_name(),
            p.id
        )));
    }
    let f = if fips { "-fips" } else { "" };
    let host = match service {
        Service::S3 => {
            if fips && p.id == "aws-cn" {
                return Err(AwsError::Setup(format!(
                    "S3 has no FIPS endpoint in region {region} (partition aws-cn): unset \
                     AWS_USE_FIPS_ENDPOINT (use_fips_endpoint) or set an endpoint URL"
                )));
            }
            let d = if dual_stack { ".dualstack" } else { "" };
            format!("s3{f}{d}.{region}.{}", p.dns_suffix)
        }
        Service::SecretsManager => {
            // Its endpoints in aws and aws-us-gov answer on both stacks under the usual
            // names; in China only the FIPS ones have dual-stack names.
            let dual_name =
                dual_stack && !matches!(p.id, "aws" | "aws-us-gov") && (p.id != "aws-cn" || fips);
            let suffix = if dual_name {
                p.dual_stack_suffix
            } else {
                p.dns_suffix
            };
            format!("secretsmanager{f}.{region}.{suffix}")
        }
        Service::Ssm | Service::Sts => {
            // GovCloud's regular endpoints are FIPS endpoints already.
            let f = if p.id == "aws-us-gov" && !dual_stack {
                ""
            } else {
                f
            };
            let suffix = if dual_stack {
                p.dual_stack_suffix
            } else {
                p.dns_suffix
            };
            format!("{}{f}.{region}.{suffix}", service.signing_name())
        }
    };
    Ok(format!("https://{host}"))
}

/// The endpoint of `service` in `region`, and whether it was configured (an emulator): the
/// first of `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the `endpoint_url` of the
/// service in the profile's `[services]` section, the profile's `endpoint_url` (unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` or the profile's `ignore_configured_endpoint_urls`),
/// else the AWS endpoint, with `AWS_USE_FIPS_ENDPOINT` / `use_fips_endpoint` and
/// `AWS_USE_DUALSTACK_ENDPOINT` / `use_dualstack_endpoint` (the variables first), as botocore
/// resolves them. Variables are read through `env`; `profile` is the selected profile's
/// settings and `profiles` gives its `[services]` section.
pub(crate) fn endpoint_with(
    service: Service,
    region: &str,
    env: impl Fn(&str) -> Option<String>,
    profiles: &profile::Profiles,
    profile_name: &str,
) -> Result<(String, bool), AwsError> {
    let profile = profiles.get(profile_name);
    let setting =
        |var: &str, key: &str| env(var).or_else(|| profile.and_then(|p| p.get(key)).cloned());
    let flag = |var: &str, key: &str| setting(var, key).is_some_and(|v| is_true(&v));
    let clean = |url: String| url.trim().trim_end_matches('/').to_owned();
    if !flag(
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "ignore_configured_endpoint_urls",
    ) {
        let specific = format!("AWS_ENDPOINT_URL_{}", service.env_suffix());
        if let Some(url) = env(&specific).or_else(|| env("AWS_ENDPOINT_URL")) {
            return Ok((clean(url), true));
        }
        if let Some(section) = profile
            .and_then(|p| p.get("services"))
            .filter(|s| !s.trim().is_empty())
        {
            let settings = profiles.services(section).ok_or_else(|| {
                AwsError::Setup(format!(
                    "the AWS profile '{profile_name}' names the services section '{section}', \
                     which is not in the config file"
                ))
            })?;
            if let Some(url) = settings
                .get(&format!("{}.endpoint_url", service.config_key()))
                .filter(|u| !u.trim().is_empty())
            {
                return Ok((clean(url.clone()), true));
            }
        }
        if let Some(url) = profile
            .and_then(|p| p.get("endpoint_url"))
            .filter(|u| !u.trim().is_empty())
        {
            return Ok((clean(url.clone()), true));
        }
    }
    let fips = flag("AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint");
    let dual_stack = flag("AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint");
    Ok((aws_endpoint(service, region, fips, dual_stack)?, false))
}

/// One request to send (and sign) again on each attempt.
struct Call<'a> {
    service: Service,
    region: &'a str,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: &'a [(&'a str, &'a str)],
    body: Vec<u8>,
    cap: usize,
}

/// The wire form of an S3 key in a URL path, without the leading `/`. Keys are literal, as
/// boto3 sends them: `a/../b.env` names the object `a/../b.env`, not `b.env`. URLs (WHATWG,
/// the `url` crate) remove `.` and `..` segments even when their dots are percent-encoded,
/// so a key holding such a segment travels with its slashes encoded (`a%2F..%2Fb.env`: one
/// segment, left alone), which S3 decodes into the key. The signature is over the path as
/// sent, as botocore signs S3 paths (see [`sigv4::canonical_path`]); moto, which recomputes
/// signatures with botocore, accepts it (`cli/tests/secrets.rs`).
fn s3_key_path(key: &str) -> Result<String, AwsError> {
    let dot_segment = key.split('/').any(|s| s == "." || s == "..");
    if !dot_segment {
        return Ok(uri_encode(key, true));
    }
    if key == "." || key == ".." {
        return Err(AwsError::Setup(format!(
            "the S3 key '{key}' cannot be addressed in a URL; rename the object"
        )));
    }
    Ok(uri_encode(key, false))
}

/// The URL of S3 object `key` in `bucket` (with `versionId` when given) at endpoint `base`:
/// virtual-hosted style for AWS when the bucket name allows it (no dots, which break the
/// TLS certificate's wildcard), path style for other buckets and for a configured endpoint
/// (`custom`, an emulator).
pub fn s3_object_url(
    base: &str,
    custom: bool,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<reqwest::Url, AwsError> {
    let key_path = s3_key_path(key)?;
    let virtual_host = !custom
        && !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let text = if virtual_host {
        base.replacen("://", &format!("://{bucket}."), 1) + "/" + &key_path
    } else {
        format!("{base}/{}/{key_path}", uri_encode(bucket, false))
    };
    let mut url = reqwest::Url::parse(&text)
        .map_err(|e| AwsError::Setup(format!("'{text}' is not a URL: {e}")))?;
    if let Some(v) = version {
        // Encoded as it is signed: a `+` is `%2B`, a space `%20`, never `+`.
        url.set_query(Some(&format!("versionId={}", uri_encode(v, false))));
    }
    Ok(url)
}

impl Aws {
    /// A client using `configured_region` for locations that name none (before the
    /// standard region chain).
    pub(crate) fn new(configured_region: Option<String>) -> Self {
        Self {
            http: OnceLock::new(),
            configured_region: configured_region.filter(|r| !r.trim().is_empty()),
            region: OnceCell::new(),
            profiles: OnceLock::new(),
            credentials: Mutex::new(None),
            clock_offset_ms: AtomicI64::new(0),
            imds_session: Mutex::new(None),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, AwsError> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_millis(3100))
                    .timeout(ATTEMPT_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| {
                        AwsError::Setup(format!(
                            "the HTTPS client for AWS could not be created: {e}"
                        ))
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn profiles(&self) -> &profile::Profiles {
        self.profiles.get_or_init(profile::Profiles::load)
    }

    /// The region for a call: `explicit` (from an ARN), else `PROC_WRAPPER_SECRETS_AWS_REGION`,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, the instance metadata.
    pub(crate) async fn region(&self, explicit: Option<&str>) -> Result<String, AwsError> {
        if let Some(r) = explicit.or(self.configured_region.as_deref()) {
            return Ok(r.to_owned());
        }
        let found = self
            .region
            .get_or_init(|| async {
                if let Some(r) = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")) {
                    return Some(r);
                }
                let (name, _) = profile::selected();
                if let Some(r) = self.profiles().get(&name).and_then(|p| p.get("region")) {
                    return Some(r.clone());
                }
                if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| is_true(&v)) {
                    return None;
                }
                self.imds_get("/latest/meta-data/placement/region")
                    .await
                    .ok()
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
            })
            .await;
        found.clone().ok_or_else(|| {
            AwsError::Setup(format!(
                "no AWS region: set AWS_REGION (or {}), or use an ARN that names the region",
                T::SECRETS_AWS_REGION.var()
            ))
        })
    }

    /// The base URL of `service` in `region`, and whether it was configured (an emulator);
    /// see [`endpoint_with`].
    fn endpoint(&self, service: Service, region: &str) -> Result<(String, bool), AwsError> {
        let (name, _) = profile::selected();
        endpoint_with(service, region, env, self.profiles(), &name)
    }

    fn attempts() -> u32 {
        env("AWS_MAX_ATTEMPTS")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or(DEFAULT_ATTEMPTS, |n| n.clamp(1, 10))
    }

    /// Now, corrected by the clock skew learnt from the servers.
    fn signing_time(&self) -> SystemTime {
        let offset = self.clock_offset_ms.load(Ordering::Relaxed);
        let magnitude = Duration::from_millis(offset.unsigned_abs());
        let now = SystemTime::now();
        if offset >= 0 {
            now.checked_add(magnitude).unwrap_or(now)
        } else {
            now.checked_sub(magnitude).unwrap_or(now)
        }
    }

    /// Learns the clock skew from a server's `Date`; whether it was skew worth correcting
    /// (then the request is worth signing again).
    fn correct_clock(&self, server: SystemTime) -> bool {
        let ours = self.signing_time();
        let (ahead, gap) = match server.duration_since(ours) {
            Ok(d) => (true, d),
            Err(e) => (false, e.duration()),
        };
        if gap < SKEW_THRESHOLD {
            return false;
        }
        let gap_ms = i64::try_from(gap.as_millis()).unwrap_or(i64::MAX);
        let current = self.clock_offset_ms.load(Ordering::Relaxed);
        let offset = if ahead {
            current.saturating_add(gap_ms)
        } else {
            current.saturating_sub(gap_ms)
        };
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
        tracing::warn!(
            "the clock differs from AWS's by {} s: requests are now signed with AWS's time",
            offset / 1000
        );
        true
    }

    /// Sends `call`, signed (unless `creds` is `None`), retrying as boto3's standard mode
    /// does: up to [`Self::attempts`] attempts, throttling errors after a backoff of base
    /// 1 s, other retryable failures after one of base 50 ms (both capped at 20 s), a
    /// clock-skew error at once with the corrected time; no attempt starts more than
    /// [`CALL_BUDGET`] after the first.
    async fn send(&self, call: &Call<'_>, creds: Option<&Credentials>) -> Result<Answer, Failure> {
        let attempts = Self::attempts();
        let base = throttling_base_delay();
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let offset = self.clock_offset_ms.load(Ordering::Relaxed);
            let mut f = match self.send_once(call, creds).await {
                Ok(answer) => return Ok(answer),
                Err(f) => f,
            };
            let delay = match f.kind {
                FailureKind::Fatal => None,
                // Signed again if this answer shows skew, or if another call corrected the
                // clock since this one was signed.
                FailureKind::ClockSkew => {
                    let corrected = f.server_date.is_some_and(|date| self.correct_clock(date));
                    let changed = self.clock_offset_ms.load(Ordering::Relaxed) != offset;
                    (corrected || changed).then_some(Duration::ZERO)
                }
                FailureKind::Throttling => Some(backoff(attempt, base, f.retry_after)),
                FailureKind::Transient => Some(backoff(attempt, base / 20, f.retry_after)),
            };
            let Some(delay) = delay.filter(|_| attempt < attempts) else {
                if attempt > 1 {
                    f.message = format!("{} (after {attempt} attempts)", f.message);
                }
                return Err(f);
            };
            if started.elapsed() + delay > CALL_BUDGET {
                f.message = format!(
                    "{} (after {attempt} attempts; no more within {} s)",
                    f.message,
                    CALL_BUDGET.as_secs()
                );
                return Err(f);
            }
            tracing::debug!(
                "AWS {} call failed ({}); attempt {} of {attempts} in {} ms",
                call.service.signing_name(),
                f.message,
                attempt + 1,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        creds: Option<&Credentials>,
    ) -> Result<Answer, Failure> {
        let (host, query) = sigv4::host_and_query(&call.url);
        let http = self
            .http()
            .map_err(|e| Failure::new(e.to_string(), FailureKind::Fatal))?;
        let mut request = http
            .request(call.method.clone(), call.url.clone())
            .body(call.body.clone());
        for (k, v) in call.headers {
            request = request.header(*k, *v);
        }
        if let Some(creds) = creds {
            let signed = sigv4::sign(
                &sigv4::Request {
                    method: call.method.as_str(),
                    host: &host,
                    path: call.url.path(),
                    query: &query,
                    headers: call.headers,
                    payload: &call.body,
                },
                sigv4::Scope {
                    region: call.region,
                    service: call.service.signing_name(),
                    time: self.signing_time(),
                },
                creds,
                sigv4::Settings::for_service(call.service.signing_name()),
            );
            for (k, v) in signed {
                request = request.header(k, v);
            }
        }
        let response = request.send().await.map_err(|e| {
            Failure::new(
                format!(
                    "{} is unreachable: {e}",
                    call.url.origin().ascii_serialization()
                ),
                FailureKind::Transient,
            )
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let content_type = header("content-type").map(str::to_owned);
        let cap = if status.is_success() {
            call.cap
        } else {
            MAX_ANSWER_BYTES
        };
        let body = read_body(response, cap)
            .await
            .map_err(|(message, retryable)| {
                let kind = if retryable {
                    FailureKind::Transient
                } else {
                    FailureKind::Fatal
                };
                Failure::new(message, kind)
            })?;
        if status.is_success() {
            return Ok(Answer { body, content_type });
        }
        let (code, message) = error_of(&headers, &body);
        let mut text = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error details".to_owned(),
        };
        text.push_str(&format!(" (HTTP {})", status.as_u16()));
        Err(Failure {
            message: text,
            kind: classify(status.as_u16(), code.as_deref()),
            status: Some(status.as_u16()),
            code,
            bucket_region: header("x-amz-bucket-region").map(str::to_owned),
            server_date: header("date").and_then(|d| httpdate::parse_http_date(d).ok()),
            retry_after: header("x-amz-retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis),
        })
    }

    /// Calls `operation` of a JSON-protocol service (Secrets Manager, SSM) with `body`.
    pub(crate) async fn json_call(
        &self,
        service: Service,
        region: Option<&str>,
        operation: &str,
        body: &Value,
    ) -> Result<Value, AwsError> {
        // Credentials first: a bad profile is a better error than the region it lacks.
        let creds = self.credentials().await.map_err(AwsError::Credentials)?;
        let region = self.region(region).await?;
        let (base, _) = self.endpoint(service, &region)?;
        let url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| AwsError::Setup(format!("the endpoint '{base}' is not a URL: {e}")))?;
        let target = format!("{}.{operation}", service.target_prefix());
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let call = Call {
            service,
            region: &region,
            method: reqwest::Method::POST,
            url,
            headers: &headers,
            body: serde_json::to_vec(body).unwrap_or_default(),
            cap: MAX_ANSWER_BYTES,
        };
        let answer = self
            .send(&call, Some(&creds))
            .await
            .map_err(Failure::into_error)?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| AwsError::Answer(format!("the answer is not JSON: {e}")))
    }

    /// S3 `GetObject`: the object's bytes and content type. A bucket in another region than
    /// the default is found through S3's `x-amz-bucket-region` answer.
    pub(crate) async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(Vec<u8>, Option<String>), AwsError> {
        let creds = self.credentials().await.map_err(AwsError::Credentials)?;
        let mut region = self.region(None).await?;
        for redirected in [false, true] {
            let (base, custom) = self.endpoint(Service::S3, &region)?;
            let url = s3_object_url(&base, custom, bucket, key, version)?;
            let call = Call {
                service: Service::S3,
                region: &region,
                method: reqwest::Method::GET,
                url,
                headers: &[],
                body: Vec::new(),
                cap: MAX_OBJECT_BYTES,
            };
            match self.send(&call, Some(&creds)).await {
                Ok(answer) => return Ok((answer.body, answer.content_type)),
                Err(Failure {
                    bucket_region: Some(r),
                    ..
                }) if !redirected && r != region => region = r,
                Err(f) => return Err(f.into_error()),
            }
        }
        Err(AwsError::Answer(format!(
            "the bucket '{bucket}' moved regions more than once"
        )))
    }

    /// An STS query call (`Action=...`), signed with `creds` when given. Returns the XML.
    async fn sts(
        &self,
        params: &[(&str, &str)],
        creds: Option<&Credentials>,
    ) -> Result<String, AwsError> {
        // STS is regional; without a region, the global endpoint (signed as us-east-1).
        let region = self.region(None).await.ok();
        let (base, custom) =
            self.endpoint(Service::Sts, region.as_deref().unwrap_or("us-east-1"))?;
        let base = if region.is_none() && !custom {
            "https://sts.amazonaws.com".to_owned()
        } else {
            base
        };
        let url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| AwsError::Setup(format!("the endpoint '{base}' is not a URL: {e}")))?;
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let call = Call {
            service: Service::Sts,
            region: region.as_deref().unwrap_or("us-east-1"),
            method: reqwest::Method::POST,
            url,
            headers: &headers,
            body: body.into_bytes(),
            cap: MAX_ANSWER_BYTES,
        };
        let answer = self.send(&call, creds).await.map_err(Failure::into_error)?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_keys_are_literal_in_urls() {
        let url = |key: &str| {
            let url = s3_object_url("http://127.0.0.1:1", true, "bucket", key, None).unwrap();
            let signed = sigv4::canonical_path(url.path(), sigv4::Settings::S3);
            (url.path().to_owned(), signed)
        };
        // Dot segments survive the URL parser, which would otherwise drop them.
        assert_eq!(
            url("a/../b.env"),
            (
                "/bucket/a%2F..%2Fb.env".into(),
                "/bucket/a%2F..%2Fb.env".into()
            )
        );
        assert_eq!(
            url("../x/./y"),
            (
                "/bucket/..%2Fx%2F.%2Fy".into(),
                "/bucket/..%2Fx%2F.%2Fy".into()
            )
        );
        // Other keys keep their slashes; names with dots are not dot segments.
        assert_eq!(
            url("a/b..c/.env"),
            ("/bucket/a/b..c/.env".into(), "/bucket/a/b..c/.env".into())
        );
        assert_eq!(url("a//b"), ("/bucket/a//b".into(), "/bucket/a//b".into()));
        assert_eq!(
            url("a b+c%"),
            ("/bucket/a%20b%2Bc%25".into(), "/bucket/a%20b%2Bc%25".into())
        );
        assert!(s3_key_path("..").unwrap_err().to_string().contains("'..'"));
        let aws = s3_object_url(
            "https://s3.eu-west-1.amazonaws.com",
            false,
            "my-bucket",
            "k",
            Some("v+1 2"),
        )
        .unwrap();
        assert_eq!(
            aws.as_str(),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/k?versionId=v%2B1%202"
        );
        let dotted = s3_object_url(
            "https://s3.eu-west-1.amazonaws.com",
            false,
            "a.b",
            "k",
            None,
        )
        .unwrap();
        assert_eq!(dotted.as_str(), "https://s3.eu-west-1.amazonaws.com/a.b/k");
    }

    #[test]
    fn error_details_from_json_and_xml() {
        let headers = reqwest::header::HeaderMap::new();
        let (code, message) = error_of(
            &headers,
            br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"not found"}"#,
        );
        assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(message.as_deref(), Some("not found"));
        let (code, message) = error_of(
            &headers,
            b"<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>",
        );
        assert_eq!(code.as_deref(), Some("NoSuchKey"));
        assert_eq!(message.as_deref(), Some("The key does not exist"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            reqwest::header::HeaderValue::from_static("ThrottlingException:http://internal"),
        );
        let (code, _) = error_of(&headers, b"");
        assert_eq!(classify(400, code.as_deref()), FailureKind::Throttling);
    }

    #[test]
    fn retries_are_classified_as_boto3_does() {
        use FailureKind::*;
        for (status, code, kind) in [
            (400, Some("ThrottlingException"), Throttling),
            (400, Some("TooManyRequestsException"), Throttling),
            (503, Some("SlowDown"), Throttling),
            (400, Some("PriorRequestNotComplete"), Throttling),
            (429, None, Throttling),
            (429, Some("SomethingModeled"), Throttling),
            (500, None, Transient),
            (502, None, Transient),
            (503, Some("ServiceUnavailable"), Transient),
            (504, None, Transient),
            (400, Some("RequestTimeout"), Transient),
            (400, Some("IDPCommunicationError"), Transient),
            (403, Some("RequestTimeTooSkewed"), ClockSkew),
            (400, Some("InvalidSignatureException"), ClockSkew),
            (403, Some("SignatureDoesNotMatch"), ClockSkew),
            (501, None, Fatal),
            (400, Some("ResourceNotFoundException"), Fatal),
            (403, Some("AccessDeniedException"), Fatal),
            (404, Some("NoSuchKey"), Fatal),
        ] {
            assert_eq!(classify(status, code), kind, "{status} {code:?}");
        }
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let base = Duration::from_secs(1);
        for attempt in 1..=12 {
            let ceiling = (base * 2u32.pow((attempt - 1).min(20))).min(MAX_BACKOFF);
            for _ in 0..50 {
                assert!(backoff(attempt, base, None) <= ceiling);
            }
        }
        assert!(backoff(40, base, None) <= MAX_BACKOFF);
        // x-amz-retry-after raises the delay, by at most 5 s over the jittered one.
        let d = backoff(1, Duration::ZERO, Some(Duration::from_secs(3)));
        assert_eq!(d, Duration::from_secs(3));
        let d = backoff(1, Duration::ZERO, Some(Duration::from_secs(60)));
        assert_eq!(d, MAX_RETRY_AFTER_EXTRA);
    }

    #[test]
    fn clock_skew_is_learnt_from_the_server_date() {
        let aws = Aws::new(None);
        // A server 10 minutes ahead: corrected; the signing time follows it.
        assert!(aws.correct_clock(SystemTime::now() + Duration::from_secs(600)));
        let ahead = aws
            .signing_time()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(ahead > Duration::from_secs(590) && ahead < Duration::from_secs(610));
        // The same server again: no skew left, so not worth another attempt.
        assert!(!aws.correct_clock(SystemTime::now() + Duration::from_secs(600)));
        // A server 20 minutes behind.
        assert!(aws.correct_clock(SystemTime::now() - Duration::from_secs(1200)));
        let behind = SystemTime::now()
            .duration_since(aws.signing_time())
            .unwrap_or_default();
        assert!(behind > Duration::from_secs(1190) && behind < Duration::from_secs(1210));
        // A minute is not skew.
        let fresh = Aws::new(None);
        assert!(!fresh.correct_clock(SystemTime::now() + Duration::from_secs(60)));
    }

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// botocore 1.44's endpoint rules, for the four services in one region of each
    /// partition (and a region of no known partition), with FIPS and dual-stack: the
    /// output of its `EndpointRulesetResolver`, kept in `endpoints_botocore.txt`. The one
    /// difference on purpose: S3 in us-east-1 is regional, not `s3.amazonaws.com`.
    #[test]
    fn endpoints_are_botocores() {
        let none = profile::Profiles::default();
        let mut checked = 0;
        for line in include_str!("endpoints_botocore.txt").lines() {
            let parts: Vec<&str> = line.splitn(5, ' ').collect();
            let [service, region, fips, dual, expected] = parts[..] else {
                continue;
            };
            let service = match service {
                "secretsmanager" => Service::SecretsManager,
                "ssm" => Service::Ssm,
                "sts" => Service::Sts,
                _ => Service::S3,
            };
            let got = aws_endpoint(service, region, fips == "fips", dual == "ds");
            let expected = expected.replace("https://mybucket.", "https://").replace(
                "https://s3.amazonaws.com",
                "https://s3.us-east-1.amazonaws.com",
            );
            match got {
                Ok(url) => assert_eq!(url, expected, "{line}"),
                Err(e) => {
                    assert!(expected.starts_with("ERR"), "{line}: {e}");
                    assert!(e.to_string().contains(region), "{e}");
                }
            }
            // The same through the configuration.
            let var = |name: &str| match name {
                "AWS_USE_FIPS_ENDPOINT" => Some((fips == "fips").to_string()),
                "AWS_USE_DUALSTACK_ENDPOINT" => Some((dual == "ds").to_string()),
                _ => None,
            };
            assert_eq!(
                endpoint_with(service, region, var, &none, "default").map(|(u, _)| u),
                aws_endpoint(service, region, fips == "fips", dual == "ds")
            );
            checked += 1;
        }
        assert_eq!(checked, 160);
        for bad in ["", "US-EAST-1", "us_east_1", "-x", "a.b", "x/y"] {
            let e = aws_endpoint(Service::Ssm, bad, false, false)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn configured_endpoints_in_botocores_order() {
        let profiles = profile::Profiles::parse(
            "[default]\nendpoint_url = http://profile:1\nservices = local\n\
             use_fips_endpoint = true\n\
             [services local]\nssm =\n  endpoint_url = http://services-ssm:2\n\
             [profile plain]\nuse_dualstack_endpoint = true\n\
             [profile broken]\nservices = missing\n\
             [profile ignoring]\nendpoint_url = http://profile:1\n\
             ignore_configured_endpoint_urls = true\n",
            "",
        );
        let none = |_: &str| None;
        let ep = |service, env: &dyn Fn(&str) -> Option<String>, name: &str| {
            endpoint_with(service, "eu-west-1", env, &profiles, name)
        };
        // The services section's entry for the service, then the profile's endpoint_url.
        assert_eq!(
            ep(Service::Ssm, &none, "default"),
            Ok(("http://services-ssm:2".to_owned(), true))
        );
        assert_eq!(
            ep(Service::SecretsManager, &none, "default"),
            Ok(("http://profile:1".to_owned(), true))
        );
        // The variables come first: the service's, then the global one.
        let env = vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"),
        ]);
        assert_eq!(
            ep(Service::Ssm, &env, "default"),
            Ok(("http://127.0.0.1:5000".to_owned(), true))
        );
        assert_eq!(
            ep(Service::S3, &env, "default").map(|e| e.0),
            Ok("http://127.0.0.1:9000".to_owned())
        );
        // Ignoring configured endpoints (variable or profile): FIPS from the profile.
        let ignore = vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(
            ep(Service::Ssm, &ignore, "default"),
            Ok(("https://ssm-fips.eu-west-1.amazonaws.com".to_owned(), false))
        );
        assert_eq!(ep(Service::Ssm, &none, "ignoring").map(|e| e.1), Ok(false));
        // The variable wins over the profile's use_fips_endpoint.
        let no_fips = vars(&[
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ("AWS_USE_FIPS_ENDPOINT", "false"),
        ]);
        assert_eq!(
            ep(Service::Sts, &no_fips, "default").map(|e| e.0),
            Ok("https://sts.eu-west-1.amazonaws.com".to_owned())
        );
        assert_eq!(
            ep(Service::Ssm, &none, "plain").map(|e| e.0),
            Ok("https://ssm.eu-west-1.api.aws".to_owned())
        );
        let dual = vars(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")]);
        assert_eq!(
            ep(Service::S3, &dual, "nobody").map(|e| e.0),
            Ok("https://s3.dualstack.eu-west-1.amazonaws.com".to_owned())
        );
        let err = ep(Service::Ssm, &none, "broken").unwrap_err().to_string();
        assert!(
            err.contains("'missing'") && err.contains("'broken'"),
            "{err}"
        );
    }
}
