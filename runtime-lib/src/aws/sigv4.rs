//! AWS Signature Version 4 (header form), as documented in "Create a signed AWS API
//! request": canonical request, string to sign, derived signing key, `Authorization` header.
//!
//! The pieces ([`canonical_path`], [`canonical_query`], [`canonical_headers`],
//! [`string_to_sign`], [`signature`]) are public so that the official SigV4 test suite can
//! check each of them (`tests/tests/sigv4.rs`).

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
    /// The path as sent on the wire, percent-encoded (characters that cannot be on the
    /// wire, such as spaces and non-ASCII ones, are encoded as they would be).
    pub path: &'a str,
    /// Query parameters, decoded.
    pub query: &'a [(String, String)],
    /// Headers other than `host` and the `x-amz-*` ones this module adds; a name given more
    /// than once has its values joined with `,` in the order given.
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

/// The rules that differ between S3 and the other services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Remove `.` and `..` segments and empty segments from the path before it is signed
    /// (every service but S3, whose keys are literal).
    pub normalize_path: bool,
    /// Encode the (already encoded) path once more (every service but S3, which signs its
    /// path encoded once).
    pub double_encode_path: bool,
    /// Send and sign `x-amz-content-sha256` (S3).
    pub content_sha256_header: bool,
}

impl Settings {
    /// Amazon S3: the path as it is, encoded once; the payload hash in a header.
    pub const S3: Self = Self {
        normalize_path: false,
        double_encode_path: false,
        content_sha256_header: true,
    };
    /// Every other service: the path normalised and encoded twice.
    pub const DEFAULT: Self = Self {
        normalize_path: true,
        double_encode_path: true,
        content_sha256_header: false,
    };

    /// The settings of the service with signing name `service`.
    pub fn for_service(service: &str) -> Self {
        if service == "s3" {
            Self::S3
        } else {
            Self::DEFAULT
        }
    }
}

/// The `Host` header reqwest sends for `url` (the port only when not the scheme's default),
/// and its query parameters, percent-decoded (a `+` is a plus sign, as AWS reads it).
pub fn host_and_query(url: &reqwest::Url) -> (String, Vec<(String, String)>) {
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let query = url
        .query()
        .filter(|q| !q.is_empty())
        .map(|q| {
            q.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode_lossy(k), percent_decode_lossy(v))
                })
                .collect()
        })
        .unwrap_or_default();
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

fn encode_bytes(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
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

/// Percent-encodes everything but the unreserved characters of RFC 3986 (`A-Z a-z 0-9 - _ . ~`),
/// and `/` too when `keep_slash`.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    encode_bytes(text.as_bytes(), keep_slash)
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| bytes.get(j).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make a byte: hi * 16 + lo < 256.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn percent_decode_lossy(text: &str) -> String {
    String::from_utf8_lossy(&percent_decode(text)).into_owned()
}

/// `20150830T123600Z` and `20150830` for `time`.
pub fn amz_dates(time: SystemTime) -> (String, String) {
    let t = UtcTime::from_system(time);
    let date = format!("{:04}{:02}{:02}", t.year, t.month, t.day);
    let stamp = format!("{date}T{:02}{:02}{:02}Z", t.hour, t.minute, t.second);
    (stamp, date)
}

/// Removes `.` and `..` segments (RFC 3986, 5.2.4) and empty segments from an absolute path,
/// keeping a trailing slash, as the SDKs normalise paths before signing them.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    let trailing = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The bytes of a path that cannot be on the wire as they are, encoded as a URL parser
/// encodes them (the WHATWG path percent-encode set: controls, space, `"`, `#`, `<`, `>`,
/// `?`, `` ` ``, `{`, `}`, and non-ASCII bytes); escapes and everything else kept.
fn wire_form(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b <= b' '
            || b >= 0x7f
            || matches!(b, b'"' | b'#' | b'<' | b'>' | b'?' | b'`' | b'{' | b'}')
        {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// The canonical URI of a path as sent (`path` of [`Request`]), normalised if
/// [`Settings::normalize_path`]. With [`Settings::double_encode_path`], the wire form is
/// encoded once more (`%3D` becomes `%253D`, `@` becomes `%40`). Otherwise (S3) it is the
/// wire form as it is, as botocore signs S3 paths and as S3-compatible servers and moto
/// verify them: a key whose slashes travel encoded (`a%2F..%2Fb`, see `s3_key_path` in the
/// client) is signed so.
pub fn canonical_path(path: &str, settings: Settings) -> String {
    // The canonical URI is an absolute path.
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let path = if settings.normalize_path {
        normalize_path(&path)
    } else {
        path
    };
    let wire = wire_form(&path);
    if settings.double_encode_path {
        encode_bytes(wire.as_bytes(), true)
    } else {
        wire
    }
}

/// The canonical query string: each name and value encoded, the pairs sorted by name, then
/// value (a repeated name keeps all its values).
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses runs of spaces into one, as the SDKs do (S3 trims
/// spaces only, so tabs are kept).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical headers block (each `name:value` line, names in lowercase and sorted, the
/// values of a repeated name joined with `,` in their order) and the signed headers list.
pub fn canonical_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (String, String) {
    let mut all: Vec<(String, String)> = headers
        .into_iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), trim_all(v)))
        .collect();
    // A stable sort by name keeps the values of one name in their order.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (k, v) in &all {
        if names.last() == Some(&k.as_str()) {
            block.pop();
            let _ = writeln!(block, ",{v}");
        } else {
            let _ = writeln!(block, "{k}:{v}");
            names.push(k);
        }
    }
    (block, names.join(";"))
}

/// The canonical request of `req` with the `extra` headers the signer adds, and the signed
/// headers list.
pub fn canonical_request(
    req: &Request<'_>,
    extra: &[(&str, &str)],
    payload_hash: &str,
    settings: Settings,
) -> (String, String) {
    let (headers, signed) = canonical_headers(
        req.headers
            .iter()
            .chain(extra)
            .chain(std::iter::once(&("host", req.host)))
            .copied(),
    );
    let request = format!(
        "{}\n{}\n{}\n{headers}\n{signed}\n{payload_hash}",
        req.method,
        canonical_path(req.path, settings),
        canonical_query(req.query),
    );
    (request, signed)
}

/// The string to sign: the algorithm, the time stamp, the credential scope
/// (`DATE/REGION/SERVICE/aws4_request`) and the hash of the canonical request.
pub fn string_to_sign(stamp: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{credential_scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signature of `string_to_sign` with the key derived from `secret` for `date`
/// (`20150830`), `region` and `service`, in hex.
pub fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref())
}

/// Signs `req`: returns the headers to add to it (`x-amz-date`, `x-amz-content-sha256` when
/// [`Settings::content_sha256_header`] (S3), `x-amz-security-token` with temporary
/// credentials, and `authorization`).
pub fn sign(
    req: &Request<'_>,
    scope: Scope<'_>,
    creds: &Credentials,
    settings: Settings,
) -> Vec<(&'static str, String)> {
    let (stamp, date) = amz_dates(scope.time);
    let payload_hash = sha256_hex(req.payload);
    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", stamp.clone())];
    if settings.content_sha256_header {
        added.push(("x-amz-content-sha256", payload_hash.clone()));
    }
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let extra: Vec<(&str, &str)> = added.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (request, signed) = canonical_request(req, &extra, &payload_hash, settings);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let signature = signature(
        &creds.secret_access_key,
        &date,
        scope.region,
        scope.service,
        &string_to_sign(&stamp, &credential_scope, &request),
    );
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
        let (canonical, signed) = canonical_request(
            &req,
            &[("x-amz-date", "20150830T123600Z")],
            EMPTY_SHA256,
            Settings::DEFAULT,
        );
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let headers = sign(&req, scope, &example_creds(None), Settings::DEFAULT);
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
        let headers = sign(&req, scope, &example_creds(Some("TOKEN")), Settings::S3);
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

    #[test]
    fn paths_are_normalised_and_encoded_per_service() {
        let s3 = Settings::S3;
        let other = Settings::DEFAULT;
        // S3: literal, encoded once; escapes as the client sends them are kept.
        assert_eq!(canonical_path("/b/a/../c", s3), "/b/a/../c");
        assert_eq!(canonical_path("/b/./c//d/", s3), "/b/./c//d/");
        assert_eq!(canonical_path("/b/a%20b%2Bc%25", s3), "/b/a%20b%2Bc%25");
        assert_eq!(canonical_path("/b/a%2F..%2Fc", s3), "/b/a%2F..%2Fc");
        assert_eq!(canonical_path("/b/x:y@z=", s3), "/b/x:y@z=");
        assert_eq!(canonical_path("/b/ü\"", s3), "/b/%C3%BC%22");
        assert_eq!(canonical_path("/b/a b", s3), "/b/a%20b");
        assert_eq!(canonical_path("", s3), "/");
        // Other services: normalised, then the wire form encoded again.
        assert_eq!(canonical_path("/a/./b/../c//d/", other), "/a/c/d/");
        assert_eq!(canonical_path("/a/..", other), "/");
        assert_eq!(canonical_path("/../x", other), "/x");
        assert_eq!(canonical_path("/p%3Aq/@r", other), "/p%253Aq/%40r");
    }

    #[test]
    fn percent_decoding_leaves_broken_escapes() {
        assert_eq!(percent_decode("a%41%4"), b"aA%4");
        assert_eq!(percent_decode("%zz%"), b"%zz%");
        assert_eq!(percent_decode("%e1%88%b4"), "ሴ".as_bytes());
    }

    #[test]
    fn repeated_headers_keep_their_order() {
        let (block, signed) = canonical_headers([
            ("My-Header1", "value4"),
            ("Host", "example.com"),
            ("my-header1", "  value1   with  spaces "),
            ("MY-HEADER1", "value3"),
        ]);
        assert_eq!(
            block,
            "host:example.com\nmy-header1:value4,value1 with spaces,value3\n"
        );
        assert_eq!(signed, "host;my-header1");
    }

    #[test]
    fn queries_are_sorted_by_name_then_value() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            canonical_query(&q(&[
                ("b", "2"),
                ("a", "z"),
                ("a", "1"),
                ("A", " "),
                ("c", "")
            ])),
            "A=%20&a=1&a=z&b=2&c="
        );
        let url = reqwest::Url::parse("http://h:8080/?x=a+b&y=%2B&z&&w=").unwrap();
        let (host, query) = host_and_query(&url);
        assert_eq!(host, "h:8080");
        assert_eq!(query, q(&[("x", "a+b"), ("y", "+"), ("z", ""), ("w", "")]));
    }

    #[test]
    fn arbitrary_input_never_panics_and_canonical_forms_are_ascii() {
        let alphabet: Vec<char> = "/.%+=&?# ~aZ09-_\\\u{e9}\u{1234}\u{1F600}\t\n\""
            .chars()
            .collect();
        for _ in 0..3000 {
            let len = fastrand::usize(0..24);
            let text: String = (0..len)
                .map(|_| alphabet[fastrand::usize(0..alphabet.len())])
                .collect();
            for settings in [Settings::S3, Settings::DEFAULT] {
                let path = canonical_path(&text, settings);
                assert!(
                    path.is_ascii() && path.starts_with('/'),
                    "{text:?} -> {path:?}"
                );
            }
            let _ = percent_decode(&text);
            let q = vec![(text.clone(), text.clone())];
            assert!(canonical_query(&q).is_ascii());
            let (block, _) = canonical_headers([("x-h", text.as_str())]);
            assert!(block.starts_with("x-h:"));
            let _ = crate::time::parse_rfc3339(&text);
        }
    }
}
