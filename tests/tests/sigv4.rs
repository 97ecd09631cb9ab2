//! proc_wrapper's SigV4 signer (`proc_wrapper::aws::sigv4`) against the AWS SDK's own
//! (`aws-sigv4`), for the shapes of request the wrapper sends: the JSON protocol of Secrets
//! Manager and SSM, S3 GETs of awkward keys with a version, STS form posts, with and without
//! a session token, on default and custom ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use proc_wrapper::aws::credentials::Credentials;
use proc_wrapper::aws::sigv4;

struct Case {
    method: &'static str,
    url: &'static str,
    service: &'static str,
    region: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    token: Option<&'static str>,
}

fn ours(case: &Case, time: SystemTime) -> String {
    let url = reqwest::Url::parse(case.url).unwrap();
    let (host, query) = sigv4::host_and_query(&url);
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: case.token.map(str::to_owned),
        expires: None,
    };
    let headers = sigv4::sign(
        &sigv4::Request {
            method: case.method,
            host: &host,
            path: url.path(),
            query: &query,
            headers: case.headers,
            payload: case.body,
        },
        sigv4::Scope {
            region: case.region,
            service: case.service,
            time,
        },
        &creds,
        sigv4::Settings::for_service(case.service),
    );
    headers
        .into_iter()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v)
        .unwrap()
}

fn sdk(case: &Case, time: SystemTime) -> String {
    let identity: Identity = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        case.token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if case.service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(case.service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        case.method,
        case.url,
        case.headers.iter().copied(),
        SignableBody::Bytes(case.body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let (headers, _) = instructions.into_parts();
    headers
        .into_iter()
        .find(|h| h.name().eq_ignore_ascii_case("authorization"))
        .map(|h| h.value().to_owned())
        .unwrap()
}

#[test]
fn signatures_match_the_aws_sdk() {
    let cases = [
        Case {
            method: "POST",
            url: "https://secretsmanager.us-west-2.amazonaws.com/",
            service: "secretsmanager",
            region: "us-west-2",
            headers: &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "secretsmanager.GetSecretValue"),
            ],
            body: br#"{"SecretId":"arn:aws:secretsmanager:us-west-2:1:secret:db-AbC"}"#,
            token: None,
        },
        Case {
            method: "POST",
            url: "http://127.0.0.1:5000/",
            service: "ssm",
            region: "eu-central-1",
            headers: &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "AmazonSSM.GetParameter"),
            ],
            body: br#"{"Name":"/app/db password","WithDecryption":true}"#,
            token: Some("FwoGZXIvYXdzEJr//////////session+token="),
        },
        Case {
            method: "GET",
            url: "https://my-bucket.s3.us-east-1.amazonaws.com/dir/file%20with%20spaces%2Bplus%C3%BC.env?versionId=3%2FL4kqtJl40Nr8X8gdRQBpUMLUo",
            service: "s3",
            region: "us-east-1",
            headers: &[],
            body: b"",
            token: Some("TOKEN"),
        },
        Case {
            method: "GET",
            url: "http://localhost:4566/bucket.with.dots/a/b/c.json",
            service: "s3",
            region: "ap-southeast-2",
            headers: &[],
            body: b"",
            token: None,
        },
        Case {
            method: "POST",
            url: "https://sts.us-east-1.amazonaws.com/",
            service: "sts",
            region: "us-east-1",
            headers: &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s",
            token: Some("T"),
        },
    ];
    let times = [
        UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        UNIX_EPOCH + Duration::from_secs(1_795_000_000),
    ];
    for case in &cases {
        for time in times {
            assert_eq!(
                ours(case, time),
                sdk(case, time),
                "{} {}",
                case.method,
                case.url
            );
        }
    }
}

/// Our signature over `url` as the client sends it (`sigv4::host_and_query`, the URL's path).
fn ours_for(url: &reqwest::Url, case: &Case, time: SystemTime) -> String {
    let (host, query) = sigv4::host_and_query(url);
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: case.token.map(str::to_owned),
        expires: None,
    };
    sigv4::sign(
        &sigv4::Request {
            method: case.method,
            host: &host,
            path: url.path(),
            query: &query,
            headers: case.headers,
            payload: case.body,
        },
        sigv4::Scope {
            region: case.region,
            service: case.service,
            time,
        },
        &creds,
        sigv4::Settings::for_service(case.service),
    )
    .into_iter()
    .find(|(k, _)| *k == "authorization")
    .map(|(_, v)| v)
    .unwrap()
}

fn s3_case(url: &'static str, token: Option<&'static str>) -> Case {
    Case {
        method: "GET",
        url,
        service: "s3",
        region: "us-east-1",
        headers: &[],
        body: b"",
        token,
    }
}

/// S3 keys that must not be normalised, in the URLs the wrapper's client sends
/// (`s3_object_url`: the key's literal encoding, as the SDK sends it, but for `..` and `.`
/// segments, which travel with their slashes encoded), signed as the Rust SDK signs those
/// URLs in S3 mode: dot segments, empty segments, percent signs, `+`, unicode, reserved
/// characters, and a version id that needs encoding.
#[test]
fn s3_keys_sign_as_the_sdk_signs_them() {
    let time = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let keys = [
        "a/../b.env",
        "../up",
        "./c.env",
        "x/./y/.",
        "d//e.env",
        "//leading",
        "trailing/",
        "100% sure",
        "literal%2Fescape",
        "a+b=c&d",
        "ünï/cødé ✓.json",
        "~tilde*star(1)",
        "semi;colon:at@dollar$",
    ];
    for key in keys {
        for (version, token) in [(None, None), (Some("3/L4kq+tJl 40=="), Some("TOKEN+/="))] {
            let url = proc_wrapper::aws::s3_object_url(
                "https://s3.us-east-1.amazonaws.com",
                false,
                "my-bucket",
                key,
                version,
            )
            .unwrap();
            // The SDK sends the key's literal encoding (slashes kept, nothing normalised);
            // so does the wrapper, but for keys with dot segments, whose slashes travel
            // encoded (the URL parser would drop the segments).
            let literal = format!(
                "https://my-bucket.s3.us-east-1.amazonaws.com/{}",
                sigv4::uri_encode(key, true)
            );
            let dot_segment = key.split('/').any(|s| s == "." || s == "..");
            let ours_path = url.as_str().split('?').next().unwrap_or_default();
            assert_eq!(ours_path == literal, !dot_segment, "{key}: {url}");
            let case = s3_case(Box::leak(url.as_str().to_owned().into_boxed_str()), token);
            assert_eq!(
                ours_for(&url, &case, time),
                sdk(&case, time),
                "{key} {version:?}"
            );
        }
    }
    // Path style at an emulator with a path of its own, and a bucket with dots.
    let url = proc_wrapper::aws::s3_object_url(
        "http://localhost:4566/base%20path",
        true,
        "bucket.with.dots",
        "a/../b c.env",
        None,
    )
    .unwrap();
    assert_eq!(
        url.path(),
        "/base%20path/bucket.with.dots/a%2F..%2Fb%20c.env"
    );
    let case = s3_case(
        "http://localhost:4566/base%20path/bucket.with.dots/a%2F..%2Fb%20c.env",
        None,
    );
    assert_eq!(ours_for(&url, &case, time), sdk(&case, time));
}

/// Query strings out of order, repeated names, empty values and names, and characters that
/// need encoding (a `+` is a plus sign), for S3 and for a JSON service's custom endpoint.
#[test]
fn queries_sign_as_the_sdk_signs_them() {
    let time = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    for (service, url) in [
        (
            "s3",
            "https://b.s3.us-east-1.amazonaws.com/k?b=2&a=1&a=0&A=3&c&d=&e=x%2By%20z",
        ),
        (
            "s3",
            "https://b.s3.us-east-1.amazonaws.com/k?versionId=a&versionId=A&uploads",
        ),
        (
            "ssm",
            "http://127.0.0.1:4566/?z=%E2%9C%93&y=%7E&x=-_.~&w=%2F%3F%23",
        ),
        (
            "secretsmanager",
            "https://secretsmanager.us-east-1.amazonaws.com/?list-type=2&prefix=~p",
        ),
    ] {
        let case = Case {
            method: "GET",
            url,
            service,
            region: "us-east-1",
            headers: &[],
            body: b"",
            token: Some("FwoGZXIvYXdzEJr//////////session+token="),
        };
        let parsed = reqwest::Url::parse(url).unwrap();
        assert_eq!(ours_for(&parsed, &case, time), sdk(&case, time), "{url}");
    }
}

/// A request signed in the last millisecond of a day, at midnight, at the end of a leap day
/// and of a year: the date of the credential scope is the date of `X-Amz-Date`, and both
/// match the SDK's.
#[test]
fn requests_signed_around_midnight_utc() {
    let case = Case {
        method: "POST",
        url: "https://secretsmanager.us-west-2.amazonaws.com/",
        service: "secretsmanager",
        region: "us-west-2",
        headers: &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ],
        body: br#"{"SecretId":"db"}"#,
        token: Some("T"),
    };
    // 2024-02-29T23:59:59.999Z, 2024-03-01T00:00:00Z, 2025-12-31T23:59:59.999Z,
    // 2026-01-01T00:00:00Z.
    for (secs, millis, stamp) in [
        (1_709_251_199, 999, "20240229T235959Z"),
        (1_709_251_200, 0, "20240301T000000Z"),
        (1_767_225_599, 999, "20251231T235959Z"),
        (1_767_225_600, 0, "20260101T000000Z"),
    ] {
        let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        let (amz_date, date) = sigv4::amz_dates(time);
        assert_eq!(amz_date, stamp);
        assert!(amz_date.starts_with(&date));
        let ours = ours(&case, time);
        assert!(
            ours.contains(&format!(
                "Credential=AKIDEXAMPLE/{date}/us-west-2/secretsmanager/"
            )),
            "{ours}"
        );
        assert_eq!(ours, sdk(&case, time), "{stamp}");
    }
}

// ---------------------------------------------------------------------------------------
// The official SigV4 test suite (the CRT suite that ships inside the aws-sigv4 crate).
// ---------------------------------------------------------------------------------------

/// The source directory of the `aws-sigv4` crate this package depends on, from
/// `cargo metadata`: it holds `aws-signing-test-suite/`, wherever the registry is
/// (`$CARGO_HOME/registry/src/<index>/aws-sigv4-<version>/` on any machine).
fn aws_sigv4_dir() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The aws-sigv4 that this package resolves to (there could be several versions).
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let me = nodes
        .iter()
        .find(|n| {
            n["id"]
                .as_str()
                .is_some_and(|id| id.contains("procwrapper-tests") || id.contains("/tests#"))
        })
        .expect("this package is in the resolve graph");
    let dep_id = me["deps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "aws_sigv4")
        .and_then(|d| d["pkg"].as_str())
        .expect("aws-sigv4 is a dependency of this package")
        .to_owned();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == dep_id.as_str())
        .and_then(|p| p["manifest_path"].as_str())
        .expect("the aws-sigv4 package has a manifest");
    std::path::Path::new(manifest).parent().unwrap().to_owned()
}

/// A request of the suite (`request.txt`): the request line, headers (folded lines joined
/// with a space, as an HTTP parser presents them), body.
struct SuiteRequest {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_suite_request(text: &str) -> SuiteRequest {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    // The target may hold raw spaces: the method is the first word, the version the last.
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = match rest.rsplit_once(' ') {
        Some((target, version)) if version.starts_with("HTTP/") => target,
        _ => rest,
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap();
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // Our own query parsing, as the client reads the URLs it sends.
    let (_, query) =
        sigv4::host_and_query(&reqwest::Url::parse(&format!("https://{host}/?{query}")).unwrap());
    SuiteRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        host,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// What a case expects, for one signature location (`header-*` or `query-*` files).
struct Expected {
    canonical_request: String,
    string_to_sign: Option<String>,
    signature: Option<String>,
    signed_request: Option<String>,
}

fn read_expected(dir: &std::path::Path, location: &str) -> Option<Expected> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{location}-{name}")))
            .ok()
            .map(|t| t.replace("\r\n", "\n").trim().to_owned())
    };
    Some(Expected {
        canonical_request: read("canonical-request.txt")?,
        string_to_sign: read("string-to-sign.txt"),
        signature: read("signature.txt"),
        signed_request: read("signed-request.txt"),
    })
}

/// The signing context of a case (`context.json`).
struct Context {
    access_key: String,
    secret: String,
    token: Option<String>,
    region: String,
    service: String,
    time: SystemTime,
    settings: sigv4::Settings,
    omit_session_token: bool,
    expires: u64,
}

fn amz_date_to_time(stamp: &str) -> SystemTime {
    let b = stamp.as_bytes();
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    assert_eq!(b.len(), 16, "{stamp}");
    proc_wrapper::time::parse_rfc3339_utc(&rfc).unwrap()
}

/// The contexts of a case: one for its canonical request, one for its signature (the
/// same, but for the two cases aws-sigv4 added, whose files come from two of its tests).
fn read_context(dir: &std::path::Path) -> (Context, Context) {
    if let Ok(text) = std::fs::read_to_string(dir.join("context.json")) {
        let c: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        let ctx = || Context {
            access_key: s(&c["credentials"]["access_key_id"]),
            secret: s(&c["credentials"]["secret_access_key"]),
            token: c["credentials"]["token"].as_str().map(str::to_owned),
            region: s(&c["region"]),
            service: s(&c["service"]),
            time: proc_wrapper::time::parse_rfc3339_utc(c["timestamp"].as_str().unwrap()).unwrap(),
            // The CRT suite encodes paths once (aws-c-auth issue 162); `sign_body` asks
            // for the payload hash header, as S3 sends it.
            settings: sigv4::Settings {
                normalize_path: c["normalize"].as_bool().unwrap(),
                double_encode_path: false,
                content_sha256_header: c["sign_body"].as_bool().unwrap_or(true),
            },
            omit_session_token: c["omit_session_token"].as_bool().unwrap_or(false),
            expires: c["expiration_in_seconds"].as_u64().unwrap(),
        };
        return (ctx(), ctx());
    }
    // aws-sigv4's tests of these two: the canonical request at 20210511T154045Z with the
    // default settings (normalised, double-encoded); the signature of double-encode-path
    // with the SDK's test keys for us-east-1/service at 20150830T123600Z
    // (`test_sign_url_escape`), that of double-url-encode with the documentation's example
    // keys for us-east-2/lambda at 20210511T154045Z.
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let legacy = |key: &str, secret: &str, region: &str, service: &str, stamp: &str| Context {
        access_key: key.into(),
        secret: secret.into(),
        token: None,
        region: region.into(),
        service: service.into(),
        time: amz_date_to_time(stamp),
        settings: sigv4::Settings::DEFAULT,
        omit_session_token: false,
        expires: 3600,
    };
    const TEST_KEY: (&str, &str) = ("ANOTREAL", "notrealrnrELgWzOk3IfjzDKtFBhDby");
    const EXAMPLE_KEY: (&str, &str) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    let canonical = legacy(
        TEST_KEY.0,
        TEST_KEY.1,
        "test-region",
        "testservicename",
        "20210511T154045Z",
    );
    let signing = match name.as_str() {
        "double-encode-path" => legacy(
            TEST_KEY.0,
            TEST_KEY.1,
            "us-east-1",
            "service",
            "20150830T123600Z",
        ),
        "double-url-encode" => legacy(
            EXAMPLE_KEY.0,
            EXAMPLE_KEY.1,
            "us-east-2",
            "lambda",
            "20210511T154045Z",
        ),
        other => panic!("{other}: a case without context.json that this test does not know"),
    };
    (canonical, signing)
}

/// The headers of a signed request that its unsigned request lacks (lowercase names).
fn added_headers(signed: &str, unsigned: &SuiteRequest) -> Vec<(String, String)> {
    let signed = parse_suite_request(signed);
    let mut added: Vec<(String, String)> = signed
        .headers
        .into_iter()
        .filter(|(k, v)| {
            !unsigned
                .headers
                .iter()
                .any(|(uk, uv)| uk.eq_ignore_ascii_case(k) && uv == v)
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    added.sort();
    added
}

/// Runs one case in header form through [`sigv4::sign`] and its pieces; `Err` says what
/// differs.
fn run_header_case(dir: &std::path::Path) -> Result<(), String> {
    let req = parse_suite_request(&std::fs::read_to_string(dir.join("request.txt")).unwrap());
    let (ctx, signing) = read_context(dir);
    let expected = read_expected(dir, "header").ok_or("no header-canonical-request.txt")?;
    // The signer adds X-Amz-Date itself (the context-less cases carry it in the request).
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("x-amz-date"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let request = sigv4::Request {
        method: &req.method,
        host: &req.host,
        path: &req.path,
        query: &req.query,
        headers: &headers,
        payload: &req.body,
    };
    let payload_hash = sigv4::sha256_hex(&req.body);
    let canonical_of = |ctx: &Context| {
        // With omit_session_token the token is added after signing, unsigned (old STS
        // style).
        let creds = Credentials {
            access_key_id: ctx.access_key.clone(),
            secret_access_key: ctx.secret.clone(),
            session_token: ctx.token.clone().filter(|_| !ctx.omit_session_token),
            expires: None,
        };
        let (stamp, _) = sigv4::amz_dates(ctx.time);
        let mut extra = vec![("x-amz-date", stamp)];
        if ctx.settings.content_sha256_header {
            extra.push(("x-amz-content-sha256", payload_hash.clone()));
        }
        if let Some(t) = &creds.session_token {
            extra.push(("x-amz-security-token", t.clone()));
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (canonical, _) =
            sigv4::canonical_request(&request, &extra, &payload_hash, ctx.settings);
        (canonical, creds)
    };
    let (canonical, _) = canonical_of(&ctx);
    if canonical != expected.canonical_request {
        return Err(format!(
            "canonical request:\n{canonical}\nexpected:\n{}",
            expected.canonical_request
        ));
    }
    // The string to sign and the signature (in the signing context, which differs only for
    // the two legacy cases).
    let ctx = signing;
    let (canonical, creds) = canonical_of(&ctx);
    let (stamp, date) = sigv4::amz_dates(ctx.time);
    let scope = format!("{date}/{}/{}/aws4_request", ctx.region, ctx.service);
    let sts = sigv4::string_to_sign(&stamp, &scope, &canonical);
    if let Some(e) = &expected.string_to_sign
        && &sts != e
    {
        return Err(format!("string to sign:\n{sts}\nexpected:\n{e}"));
    }
    let signature = sigv4::signature(&ctx.secret, &date, &ctx.region, &ctx.service, &sts);
    if let Some(e) = &expected.signature
        && &signature != e
    {
        return Err(format!("signature {signature}, expected {e}"));
    }
    // The whole signer: the headers it adds are those of the signed request.
    let mut added: Vec<(String, String)> = sigv4::sign(
        &request,
        sigv4::Scope {
            region: &ctx.region,
            service: &ctx.service,
            time: ctx.time,
        },
        &creds,
        ctx.settings,
    )
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .filter(|(k, _)| {
        // The context-less cases' requests carry X-Amz-Date already.
        !(k == "x-amz-date" && req.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)))
    })
    .collect();
    if ctx.omit_session_token
        && let Some(t) = &ctx.token
    {
        added.push(("x-amz-security-token".into(), t.clone()));
    }
    added.sort();
    if let Some(signed) = &expected.signed_request {
        let want = added_headers(signed, &req);
        if added != want {
            return Err(format!("added headers {added:?}, expected {want:?}"));
        }
    }
    Ok(())
}

/// Runs one case in query form (a presigned URL), through the signer's pieces: the wrapper
/// never presigns, so [`sigv4::sign`] has no query form, but its canonicalisation, string to
/// sign and key derivation are the same.
fn run_query_case(dir: &std::path::Path) -> Result<(), String> {
    let req = parse_suite_request(&std::fs::read_to_string(dir.join("request.txt")).unwrap());
    let (ctx, _) = read_context(dir);
    let expected = read_expected(dir, "query").ok_or("no query-canonical-request.txt")?;
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_, signed_headers) = sigv4::canonical_headers(
        headers
            .iter()
            .copied()
            .chain(std::iter::once(("host", req.host.as_str()))),
    );
    let (stamp, date) = sigv4::amz_dates(ctx.time);
    let scope = format!("{date}/{}/{}/aws4_request", ctx.region, ctx.service);
    let mut query = req.query.clone();
    for (k, v) in [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("X-Amz-Credential", format!("{}/{scope}", ctx.access_key)),
        ("X-Amz-Date", stamp.clone()),
        ("X-Amz-Expires", ctx.expires.to_string()),
        ("X-Amz-SignedHeaders", signed_headers.clone()),
    ] {
        query.push((k.to_owned(), v));
    }
    if let Some(t) = ctx.token.as_ref().filter(|_| !ctx.omit_session_token) {
        query.push(("X-Amz-Security-Token".to_owned(), t.clone()));
    }
    let request = sigv4::Request {
        method: &req.method,
        host: &req.host,
        path: &req.path,
        query: &query,
        headers: &headers,
        payload: &req.body,
    };
    let payload_hash = sigv4::sha256_hex(&req.body);
    let (canonical, _) = sigv4::canonical_request(&request, &[], &payload_hash, ctx.settings);
    if canonical != expected.canonical_request {
        return Err(format!(
            "canonical request:\n{canonical}\nexpected:\n{}",
            expected.canonical_request
        ));
    }
    let sts = sigv4::string_to_sign(&stamp, &scope, &canonical);
    if let Some(e) = &expected.string_to_sign
        && &sts != e
    {
        return Err(format!("string to sign:\n{sts}\nexpected:\n{e}"));
    }
    let signature = sigv4::signature(&ctx.secret, &date, &ctx.region, &ctx.service, &sts);
    if let Some(e) = &expected.signature
        && &signature != e
    {
        return Err(format!("signature {signature}, expected {e}"));
    }
    if let Some(signed) = &expected.signed_request
        && !signed.contains(&format!("X-Amz-Signature={signature}"))
    {
        return Err(format!(
            "the signed request has another signature than {signature}"
        ));
    }
    Ok(())
}

/// Every case of the official SigV4 suite (`aws-signing-test-suite/v4`), in header form
/// through the wrapper's signer and, where the case has one, in query form through its
/// pieces. No case is excluded; the count is printed (`--nocapture`) and checked.
#[test]
fn the_official_sigv4_test_suite_passes() {
    let suite = aws_sigv4_dir().join("aws-signing-test-suite/v4");
    let mut cases: Vec<_> = std::fs::read_dir(&suite)
        .unwrap_or_else(|e| panic!("{}: {e}", suite.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("request.txt").exists())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "only {} cases in {}",
        cases.len(),
        suite.display()
    );
    let (mut header, mut query, mut failures) = (0, 0, Vec::new());
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match run_header_case(case) {
            Ok(()) => header += 1,
            Err(e) => failures.push(format!("{name} (header): {e}")),
        }
        if case.join("query-canonical-request.txt").exists() {
            match run_query_case(case) {
                Ok(()) => query += 1,
                Err(e) => failures.push(format!("{name} (query): {e}")),
            }
        }
    }
    println!(
        "SigV4 suite: {header}/{} cases pass in header form, {query} in query form",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(header, cases.len());
}
