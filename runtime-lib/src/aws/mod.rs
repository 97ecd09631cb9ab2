//! A small AWS client for the calls the wrapper makes: Secrets Manager `GetSecretValue`,
//! SSM `GetParameter`, S3 `GetObject`, and STS for assumed roles. It signs requests with
//! Signature Version 4 ([`sigv4`]) over the same HTTPS client as the rest of the wrapper
//! (rustls, certificates verified against the system's roots), which keeps the binaries
//! about 3 MB smaller than with the AWS SDK.
//!
//! It follows the SDKs' conventions: the default credentials chain ([`credentials`]), the
//! region from `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile or the instance metadata,
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` for emulators, `AWS_USE_FIPS_ENDPOINT`,
//! `AWS_MAX_ATTEMPTS` (3 by default) with exponential backoff for throttling, server errors
//! and broken connections.

pub mod credentials;
pub mod profile;
pub mod sigv4;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

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
    pub fn signing_name(self) -> &'static str {
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
pub const MAX_OBJECT_BYTES: usize = 64 * 1024 * 1024;
/// Attempts per request unless `AWS_MAX_ATTEMPTS` says otherwise.
const DEFAULT_ATTEMPTS: u32 = 3;

/// The client: one per process, shared by every location; credentials and the default
/// region are looked up on first use.
pub struct Aws {
    /// The HTTPS client, built on first use (loading the root certificates takes a few
    /// milliseconds, which a run without AWS locations should not pay), or why it could not
    /// be built.
    http: OnceLock<Result<reqwest::Client, String>>,
    /// `PROC_WRAPPER_SECRETS_AWS_REGION`, before the standard chain.
    configured_region: Option<String>,
    region: OnceCell<Option<String>>,
    profiles: OnceLock<profile::Profiles>,
    credentials: Mutex<Option<Credentials>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
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

fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
    )
}

/// A call's failure.
#[derive(Debug)]
struct Failure {
    message: String,
    retryable: bool,
    /// S3's `x-amz-bucket-region` of a redirect or a wrong-region error.
    bucket_region: Option<String>,
}

/// A successful answer.
struct Answer {
    body: Vec<u8>,
    content_type: Option<String>,
}

/// [`Aws::endpoint`] with the variables read by `env`.
fn endpoint_with(
    service: Service,
    region: &str,
    env: impl Fn(&str) -> Option<String>,
) -> (String, bool) {
    let is_true = |name: &str| env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !is_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") {
        let specific = format!("AWS_ENDPOINT_URL_{}", service.env_suffix());
        if let Some(url) = env(&specific).or_else(|| env("AWS_ENDPOINT_URL")) {
            return (url.trim().trim_end_matches('/').to_owned(), true);
        }
    }
    let fips = if is_true("AWS_USE_FIPS_ENDPOINT") {
        "-fips"
    } else {
        ""
    };
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    (
        format!("https://{}{fips}.{region}.{suffix}", service.signing_name()),
        false,
    )
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
/// segment, left alone). S3 decodes the path into the key; the signature is over the key's
/// plain encoding (`a/../b.env`, see [`sigv4::canonical_path`]).
fn s3_key_path(key: &str) -> Result<String, String> {
    let dot_segment = key.split('/').any(|s| s == "." || s == "..");
    if !dot_segment {
        return Ok(uri_encode(key, true));
    }
    if key == "." || key == ".." {
        return Err(format!(
            "the S3 key '{key}' cannot be addressed in a URL; rename the object"
        ));
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
) -> Result<reqwest::Url, String> {
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
    let mut url = reqwest::Url::parse(&text).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    if let Some(v) = version {
        // Encoded as it is signed: a `+` is `%2B`, a space `%20`, never `+`.
        url.set_query(Some(&format!("versionId={}", uri_encode(v, false))));
    }
    Ok(url)
}

impl Aws {
    /// A client using `configured_region` for locations that name none (before the
    /// standard region chain).
    pub fn new(configured_region: Option<String>) -> Self {
        Self {
            http: OnceLock::new(),
            configured_region: configured_region.filter(|r| !r.trim().is_empty()),
            region: OnceCell::new(),
            profiles: OnceLock::new(),
            credentials: Mutex::new(None),
        }
    }

    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_millis(3100))
                    .timeout(Duration::from_secs(30))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("the HTTPS client for AWS could not be created: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn profiles(&self) -> &profile::Profiles {
        self.profiles.get_or_init(profile::Profiles::load)
    }

    /// The region for a call: `explicit` (from an ARN), else `PROC_WRAPPER_SECRETS_AWS_REGION`,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, the instance metadata.
    pub async fn region(&self, explicit: Option<&str>) -> Result<String, String> {
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
                if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
                {
                    return None;
                }
                let base = credentials::imds_endpoint();
                let token = self.imds_token(&base).await.ok()?;
                self.imds_get(&format!("{base}/latest/meta-data/placement/region"), &token)
                    .await
                    .ok()
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty())
            })
            .await;
        found.clone().ok_or_else(|| {
            "no AWS region: set AWS_REGION (or PROC_WRAPPER_SECRETS_AWS_REGION), or use an ARN \
             that names the region"
                .to_owned()
        })
    }

    /// The base URL of `service` in `region`, and whether it was configured (an emulator).
    fn endpoint(service: Service, region: &str) -> (String, bool) {
        endpoint_with(service, region, env)
    }

    fn attempts() -> u32 {
        env("AWS_MAX_ATTEMPTS")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or(DEFAULT_ATTEMPTS, |n| n.clamp(1, 10))
    }

    /// Sends `call`, signed (unless `creds` is `None`), retrying what is retryable.
    async fn send(&self, call: &Call<'_>, creds: Option<&Credentials>) -> Result<Answer, Failure> {
        let attempts = Self::attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(call, creds).await {
                Err(f) if f.retryable && attempt < attempts => {
                    // Full jitter over 100 ms, 200 ms, 400 ms, ...
                    let cap = 100u64 << (attempt - 1).min(6);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(cap / 2..=cap))).await;
                }
                Err(mut f) if attempt > 1 => {
                    f.message = format!("{} (after {attempt} attempts)", f.message);
                    return Err(f);
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        creds: Option<&Credentials>,
    ) -> Result<Answer, Failure> {
        let (host, query) = sigv4::host_and_query(&call.url);
        let http = self.http().map_err(|message| Failure {
            message,
            retryable: false,
            bucket_region: None,
        })?;
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
                    time: SystemTime::now(),
                },
                creds,
                sigv4::Settings::for_service(call.service.signing_name()),
            );
            for (k, v) in signed {
                request = request.header(k, v);
            }
        }
        let response = request.send().await.map_err(|e| Failure {
            message: format!(
                "{} is unreachable: {e}",
                call.url.origin().ascii_serialization()
            ),
            retryable: true,
            bucket_region: None,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cap = if status.is_success() {
            call.cap
        } else {
            MAX_ANSWER_BYTES
        };
        let body = read_body(response, cap)
            .await
            .map_err(|(message, retryable)| Failure {
                message,
                retryable,
                bucket_region: None,
            })?;
        if status.is_success() {
            return Ok(Answer { body, content_type });
        }
        let (code, message) = error_of(&headers, &body);
        let retryable = status.is_server_error()
            || status.as_u16() == 429
            || code.as_deref().is_some_and(retryable_code);
        let mut text = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error details".to_owned(),
        };
        text.push_str(&format!(" (HTTP {})", status.as_u16()));
        Err(Failure {
            message: text,
            retryable,
            bucket_region: headers
                .get("x-amz-bucket-region")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }

    /// Calls `operation` of a JSON-protocol service (Secrets Manager, SSM) with `body`.
    pub async fn json_call(
        &self,
        service: Service,
        region: Option<&str>,
        operation: &str,
        body: &Value,
    ) -> Result<Value, String> {
        // Credentials first: a bad profile is a better error than the region it lacks.
        let creds = self.credentials().await?;
        let region = self.region(region).await?;
        let (base, _) = Self::endpoint(service, &region);
        let url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| format!("the endpoint '{base}' is not a URL: {e}"))?;
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
            .map_err(|f| f.message)?;
        serde_json::from_slice(&answer.body).map_err(|e| format!("the answer is not JSON: {e}"))
    }

    /// S3 `GetObject`: the object's bytes and content type. A bucket in another region than
    /// the default is found through S3's `x-amz-bucket-region` answer.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(Vec<u8>, Option<String>), String> {
        let creds = self.credentials().await?;
        let mut region = self.region(None).await?;
        for redirected in [false, true] {
            let (base, custom) = Self::endpoint(Service::S3, &region);
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
                Err(f) => return Err(f.message),
            }
        }
        Err(format!(
            "the bucket '{bucket}' moved regions more than once"
        ))
    }

    /// An STS query call (`Action=...`), signed with `creds` when given. Returns the XML.
    async fn sts(
        &self,
        params: &[(&str, &str)],
        creds: Option<&Credentials>,
    ) -> Result<String, String> {
        // STS is regional; without a region, the global endpoint (signed as us-east-1).
        let region = self.region(None).await.ok();
        let (base, custom) = Self::endpoint(Service::Sts, region.as_deref().unwrap_or("us-east-1"));
        let base = if region.is_none() && !custom {
            "https://sts.amazonaws.com".to_owned()
        } else {
            base
        };
        let url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| format!("the endpoint '{base}' is not a URL: {e}"))?;
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
        let answer = self.send(&call, creds).await.map_err(|f| f.message)?;
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
            ("/bucket/a%2F..%2Fb.env".into(), "/bucket/a/../b.env".into())
        );
        assert_eq!(
            url("../x/./y"),
            ("/bucket/..%2Fx%2F.%2Fy".into(), "/bucket/../x/./y".into())
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
        assert!(s3_key_path("..").unwrap_err().contains("'..'"));
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
        assert!(code.as_deref().is_some_and(retryable_code));
    }

    #[test]
    fn endpoints() {
        let none = |_: &str| None;
        assert_eq!(
            endpoint_with(Service::Ssm, "eu-west-1", none),
            ("https://ssm.eu-west-1.amazonaws.com".to_owned(), false)
        );
        assert_eq!(
            endpoint_with(Service::SecretsManager, "cn-north-1", none).0,
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            endpoint_with(
                Service::Ssm,
                "us-east-1",
                vars(&[("AWS_USE_FIPS_ENDPOINT", "true")])
            )
            .0,
            "https://ssm-fips.us-east-1.amazonaws.com"
        );
        let emulator = &vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"),
        ]);
        assert_eq!(
            endpoint_with(Service::Ssm, "us-east-1", emulator),
            ("http://127.0.0.1:5000".to_owned(), true)
        );
        assert_eq!(
            endpoint_with(Service::S3, "us-east-1", emulator).0,
            "http://127.0.0.1:9000"
        );
        let ignored = vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert!(!endpoint_with(Service::Ssm, "us-east-1", ignored).1);
    }
}
