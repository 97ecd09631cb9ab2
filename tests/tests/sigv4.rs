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
        case.service == "s3",
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
