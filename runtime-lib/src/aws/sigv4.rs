//! AWS Signature Version 4 (header form), as documented in "Create a signed AWS API
//! request": canonical request, string to sign, derived signing key, `Authorization` header.

use std::fmt::Write as _;
use std::time::SystemTime;

use ring::{digest, hmac};

use super::credentials::Credentials;
use crate::time::UtcTime;

/// The SHA-256 of an empty payload, in hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What is signed of a request.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The `Host` header as sent: host, plus `:port` when not the scheme's default.
    pub host: &'a str,
    /// The path as sent on the wire, already percent-encoded.
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(String, String)],
    /// Headers other than `host` and the `x-amz-*` ones this module adds.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
}

/// Where and when a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The region, `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service, `secretsmanager`.
    pub service: &'a str,
    /// The signing time.
    pub time: SystemTime,
}

/// The `Host` header reqwest sends for `url` (the port only when not the scheme's default),
/// and its query parameters, decoded: the parts of a URL that [`Request`] signs.
pub fn host_and_query(url: &reqwest::Url) -> (String, Vec<(String, String)>) {
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let query = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (host, query)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// SHA-256 of `data`, in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Percent-encodes everything but the unreserved characters of RFC 3986 (`A-Z a-z 0-9 - _ . ~`),
/// and `/` too when `keep_slash`.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `20150830T123600Z` and `20150830`.
fn amz_dates(time: SystemTime) -> (String, String) {
    let t = UtcTime::from_system(time);
    let date = format!("{:04}{:02}{:02}", t.year, t.month, t.day);
    let stamp = format!("{date}T{:02}{:02}{:02}Z", t.hour, t.minute, t.second);
    (stamp, date)
}

/// The canonical request and the list of signed header names.
fn canonical_request(
    req: &Request<'_>,
    extra: &[(&str, &str)],
    payload_hash: &str,
) -> (String, String) {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .chain(extra)
        .chain(std::iter::once(&("host", req.host)))
        .map(|(k, v)| {
            // Trimmed, with runs of spaces collapsed.
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), value)
        })
        .collect();
    headers.sort();
    let mut canonical_headers = String::new();
    for (k, v) in &headers {
        let _ = writeln!(canonical_headers, "{k}:{v}");
    }
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}",
        req.method, req.path
    );
    (request, signed)
}

/// Signs `req`: returns the headers to add to it (`x-amz-date`, `x-amz-security-token` with
/// temporary credentials, `x-amz-content-sha256` when `content_sha256_header` (S3), and
/// `authorization`).
pub fn sign(
    req: &Request<'_>,
    scope: Scope<'_>,
    creds: &Credentials,
    content_sha256_header: bool,
) -> Vec<(&'static str, String)> {
    let (stamp, date) = amz_dates(scope.time);
    let payload_hash = sha256_hex(req.payload);
    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", stamp.clone())];
    if content_sha256_header {
        added.push(("x-amz-content-sha256", payload_hash.clone()));
    }
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let extra: Vec<(&str, &str)> = added.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (request, signed) = canonical_request(req, &extra, &payload_hash);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{credential_scope}\n{}",
        sha256_hex(request.as_bytes())
    );
    let k_date = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(k_date.as_ref(), scope.region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), scope.service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    added.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn example_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
            expires: None,
        }
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's documented example.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn authorization<'a>(headers: &'a [(&'static str, String)]) -> &'a str {
        headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    #[test]
    fn documented_example_signature() {
        // "Signature Version 4 signing process" example: IAM ListUsers.
        let req = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: &[
                ("Action".to_owned(), "ListUsers".to_owned()),
                ("Version".to_owned(), "2010-05-08".to_owned()),
            ],
            headers: &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            payload: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "iam",
            time: example_time(),
        };
        let (canonical, signed) =
            canonical_request(&req, &[("x-amz-date", "20150830T123600Z")], EMPTY_SHA256);
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let headers = sign(&req, scope, &example_creds(None), false);
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(
            headers
                .iter()
                .any(|(k, v)| *k == "x-amz-date" && v == "20150830T123600Z")
        );
    }

    #[test]
    fn session_token_and_content_hash_are_signed() {
        let req = Request {
            method: "GET",
            host: "bucket.s3.us-east-1.amazonaws.com",
            path: "/a%20b/c",
            query: &[],
            headers: &[],
            payload: b"",
        };
        let scope = Scope {
            region: "us-east-1",
            service: "s3",
            time: example_time(),
        };
        let headers = sign(&req, scope, &example_creds(Some("TOKEN")), true);
        assert!(
            authorization(&headers).contains(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
            )
        );
        assert!(
            headers
                .iter()
                .any(|(k, v)| *k == "x-amz-security-token" && v == "TOKEN")
        );
        assert!(
            headers
                .iter()
                .any(|(k, v)| *k == "x-amz-content-sha256" && v == EMPTY_SHA256)
        );
    }

    #[test]
    fn encodes_like_aws() {
        assert_eq!(uri_encode("a b/c~d+e*", false), "a%20b%2Fc~d%2Be%2A");
        assert_eq!(uri_encode("dir/ü.txt", true), "dir/%C3%BC.txt");
    }
}
