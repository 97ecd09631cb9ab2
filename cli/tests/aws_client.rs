//! The wrapper's own AWS client through the real binary: where its credentials and region
//! come from (environment, shared files, `credential_process`, container credentials, the
//! instance metadata with its IMDSv2 token, IMDSv1 fallback, retries and outages, a web
//! identity through moto's STS), retries of failed calls and clock-skew correction,
//! endpoints from the profile, S3 buckets in another region, and the errors when nothing is
//! configured. Calls go to `procwrapper_tests::fake_aws`, which records who signed them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use procwrapper_tests::fake_aws::{self, FakeAws, ImdsMode, count};
use procwrapper_tests::moto::Moto;
use procwrapper_tests::wrapper::{offline, run, stderr};

/// `proc_wrapper` resolving `DB_PASS` from Secrets Manager (secret `db`), with no AWS
/// variables but those given, the calls going to `fake` and the instance metadata off.
fn wrapper(fake: &FakeAws, home: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = offline(env!("CARGO_BIN_EXE_proc_wrapper"));
    cmd.env("HOME", home)
        .env("AWS_ENDPOINT_URL", &fake.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Backoffs of 10 ms after throttling (0.5 ms otherwise, 1 ms for metadata).
        .env("PROC_WRAPPER_AWS_RETRY_BASE_DELAY_SECONDS", "0.01")
        .env("DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE", "AWS_SM:db")
        .envs(vars.iter().copied())
        .args(["--", "sh", "-c", "echo \"DB_PASS=$DB_PASS\""]);
    cmd
}

fn assert_resolved(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "DB_PASS=secret-of-db"
    );
}

#[test]
fn environment_credentials_sign_with_their_session_token() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
            ("AWS_REGION", "us-west-2"),
        ],
    ));
    assert_resolved(&out);
    let signed = fake.signed();
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].access_key, "AKIDENV");
    assert_eq!(signed[0].region, "us-west-2");
    assert_eq!(signed[0].service, "secretsmanager");
    assert_eq!(signed[0].session_token.as_deref(), Some("session"));
    assert_eq!(signed[0].operation, "secretsmanager.GetSecretValue");
}

#[test]
fn the_region_of_an_arn_wins() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let arn = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:db";
    let out = run(wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "us-west-2"),
            ("PROC_WRAPPER_SECRETS_AWS_REGION", "eu-west-1"),
            (
                "DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE",
                &format!("AWS_SM:{arn}"),
            ),
        ],
    )
    .env("ALSO_FOR_PROC_WRAPPER_TO_RESOLVE", "AWS_SSM:/app/also"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let signed = fake.signed();
    let region_of = |service: &str| {
        signed
            .iter()
            .find(|s| s.service == service)
            .map(|s| s.region.clone())
    };
    assert_eq!(region_of("secretsmanager").as_deref(), Some("ap-south-1"));
    // No ARN: PROC_WRAPPER_SECRETS_AWS_REGION before AWS_REGION.
    assert_eq!(region_of("ssm").as_deref(), Some("eu-west-1"));
}

#[test]
fn profile_from_the_shared_files() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n\
         [dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = s\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-2\n[profile dev]\nregion = eu-south-1\n",
    )
    .unwrap();
    assert_resolved(&run(&mut wrapper(&fake, home.path(), &[])));
    assert_resolved(&run(&mut wrapper(
        &fake,
        home.path(),
        &[("AWS_PROFILE", "dev")],
    )));
    let signed = fake.signed();
    let keys: Vec<_> = signed
        .iter()
        .map(|s| (s.access_key.as_str(), s.region.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("AKIDDEFAULT", "us-east-2"), ("AKIDDEV", "eu-south-1")]
    );
}

#[test]
fn profile_errors_name_the_profile() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile sso]\nsso_session = corp\nsso_account_id = 1\nregion = us-east-1\n",
    )
    .unwrap();
    let out = run(&mut wrapper(&fake, home.path(), &[("AWS_PROFILE", "nope")]));
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("could not resolve DB_PASS"), "{err}");
    assert!(err.contains("the AWS profile 'nope'"), "{err}");
    let out = run(&mut wrapper(&fake, home.path(), &[("AWS_PROFILE", "sso")]));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("IAM Identity Center (SSO)"),
        "{}",
        stderr(&out)
    );
    assert!(fake.signed().is_empty());
}

#[test]
fn credential_process_of_a_profile() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = ca-central-1\ncredential_process = printf '%s' \
         '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS\", \"SecretAccessKey\": \"s\", \
         \"SessionToken\": \"process-token\", \"Expiration\": \"2099-01-01T00:00:00Z\"}'\n",
    )
    .unwrap();
    assert_resolved(&run(&mut wrapper(&fake, home.path(), &[])));
    let signed = fake.signed();
    assert_eq!(signed[0].access_key, "ASIAPROCESS");
    assert_eq!(signed[0].session_token.as_deref(), Some("process-token"));
    assert_eq!(signed[0].region, "ca-central-1");
}

#[test]
fn container_credentials_with_a_token_file() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    std::fs::write(&token_file, format!("{}\n", fake_aws::CONTAINER_TOKEN)).unwrap();
    let uri = format!("{}/container-credentials", fake.url);
    assert_resolved(&run(&mut wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
        ],
    )));
    let signed = fake.signed();
    assert_eq!(signed[0].access_key, fake_aws::CONTAINER_KEY);
    assert_eq!(
        signed[0].session_token.as_deref(),
        Some(format!("token-{}", fake_aws::CONTAINER_KEY).as_str())
    );
    // A wrong token: the configured source fails, and says where.
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"),
        ],
    ));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("the container credentials endpoint"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn instance_metadata_gives_credentials_and_region() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    assert_resolved(&run(wrapper(&fake, home.path(), &[])
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &fake.url)));
    let signed = fake.signed();
    assert_eq!(signed[0].access_key, fake_aws::IMDS_KEY);
    assert_eq!(signed[0].region, fake_aws::IMDS_REGION);
}

#[test]
fn web_identity_through_sts() {
    let moto = Moto::connect();
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("web-identity");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_STS", &moto.endpoint),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/pod-role"),
            ("AWS_ROLE_SESSION_NAME", "pod"),
        ],
    ));
    assert_resolved(&out);
    let signed = fake.signed();
    // moto's STS hands out temporary credentials: an ASIA key and a session token.
    assert!(signed[0].access_key.starts_with("ASIA"), "{signed:?}");
    assert!(signed[0].session_token.is_some());
}

#[test]
fn no_credentials_or_no_region_is_a_clear_error() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[("AWS_REGION", "us-east-1")],
    ));
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("no AWS credentials found"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")],
    ));
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("no AWS region"), "{}", stderr(&out));
    assert!(fake.signed().is_empty());
}

#[test]
fn throttled_calls_are_retried_up_to_aws_max_attempts() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    fake.throttle_next(2);
    assert_resolved(&run(&mut wrapper(&fake, home.path(), &creds)));
    assert_eq!(
        fake.signed().len(),
        3,
        "two throttled attempts, then success"
    );
    fake.throttle_next(1);
    let out = run(wrapper(&fake, home.path(), &creds).env("AWS_MAX_ATTEMPTS", "1"));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("ThrottlingException: Rate exceeded (HTTP 400)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.signed().len(), 4);
}

#[test]
fn an_s3_bucket_in_another_region_is_followed() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let location = format!(
        "AWS_S3:arn:aws:s3:::{}/dir/conf.txt",
        fake_aws::MOVED_BUCKET
    );
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "us-east-1"),
            ("DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE", &location),
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "DB_PASS=object-of-dir/conf.txt"
    );
    let regions: Vec<_> = fake.signed().into_iter().map(|s| s.region).collect();
    assert_eq!(regions, ["us-east-1", fake_aws::MOVED_BUCKET_REGION]);
}

/// `wrapper` reading credentials and region from the fake's instance metadata.
fn with_imds(fake: &FakeAws, home: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = wrapper(fake, home, vars);
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &fake.url);
    cmd
}

/// A second secret to resolve, so that the wrapper makes two signed calls.
const ALSO: (&str, &str) = ("ALSO_FOR_PROC_WRAPPER_TO_RESOLVE", "AWS_SSM:/app/also");

const ROLE_LIST: &str = "GET /latest/meta-data/iam/security-credentials/";
const ROLE_CREDS: &str = "GET /latest/meta-data/iam/security-credentials/instance-role";
const REGION_PATH: &str = "GET /latest/meta-data/placement/region";

#[test]
fn the_imdsv2_token_is_fetched_once_and_reused() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let out = run(with_imds(&fake, home.path(), &[]).env(ALSO.0, ALSO.1));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fake.metadata_log();
    // The region, the role and its credentials, all with the one token.
    assert_eq!(count(&log, "PUT /latest/api/token"), 1, "{log:?}");
    assert_eq!(count(&log, &format!("{REGION_PATH} v2")), 1, "{log:?}");
    assert_eq!(count(&log, &format!("{ROLE_LIST} v2")), 1, "{log:?}");
    assert_eq!(count(&log, &format!("{ROLE_CREDS} v2")), 1, "{log:?}");
    assert!(log.iter().all(|l| !l.ends_with(" v1")), "{log:?}");
    assert_eq!(fake.signed().len(), 2);
    assert!(
        fake.signed()
            .iter()
            .all(|s| s.access_key == fake_aws::IMDS_KEY)
    );
}

/// boto3 reads the metadata with IMDSv1 when the token request is refused (403, 404, 405)
/// or never answered (a container on an instance with a hop limit of 1), and so does the
/// wrapper, saying so.
#[test]
fn imdsv1_is_used_when_the_token_request_fails() {
    for status in [403, 404, 405] {
        let fake = FakeAws::start();
        fake.imds(ImdsMode {
            token_status: Some(status),
            ..ImdsMode::default()
        });
        let home = tempfile::tempdir().unwrap();
        let out = run(&mut with_imds(&fake, home.path(), &[]));
        assert_resolved(&out);
        let log = fake.metadata_log();
        assert_eq!(count(&log, "PUT /latest/api/token"), 1, "{status}: {log:?}");
        assert_eq!(
            count(&log, &format!("{ROLE_CREDS} v1")),
            1,
            "{status}: {log:?}"
        );
        assert!(
            stderr(&out).contains(&format!("HTTP {status}")) && stderr(&out).contains("IMDSv1"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fake.signed()[0].access_key, fake_aws::IMDS_KEY);
        assert_eq!(fake.signed()[0].region, fake_aws::IMDS_REGION);
    }
    // The token's answer never comes in time (the metadata timeout is 1 s).
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        token_delay: Some(std::time::Duration::from_secs(3)),
        ..ImdsMode::default()
    });
    let home = tempfile::tempdir().unwrap();
    let out = run(&mut with_imds(&fake, home.path(), &[]));
    assert_resolved(&out);
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    let log = fake.metadata_log();
    assert_eq!(count(&log, "PUT /latest/api/token"), 1, "{log:?}");
    assert_eq!(count(&log, &format!("{ROLE_CREDS} v1")), 1, "{log:?}");
}

#[test]
fn imdsv1_fallback_can_be_disabled() {
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        token_status: Some(403),
        ..ImdsMode::default()
    });
    let home = tempfile::tempdir().unwrap();
    let out = run(
        with_imds(&fake, home.path(), &[("AWS_REGION", "us-east-1")])
            .env("AWS_EC2_METADATA_V1_DISABLED", "true"),
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("IMDSv1 is disabled"),
        "{}",
        stderr(&out)
    );
    // The same from the profile.
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\nec2_metadata_v1_disabled = true\n",
    )
    .unwrap();
    let out = run(&mut with_imds(&fake, home.path(), &[]));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("IMDSv1 is disabled"),
        "{}",
        stderr(&out)
    );
    let log = fake.metadata_log();
    assert!(log.iter().all(|l| !l.starts_with("GET")), "{log:?}");
    assert!(fake.signed().is_empty());
}

#[test]
fn instance_metadata_requests_are_retried_three_times() {
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        fail_next: 2,
        ..ImdsMode::default()
    });
    let home = tempfile::tempdir().unwrap();
    assert_resolved(&run(&mut with_imds(
        &fake,
        home.path(),
        &[("AWS_REGION", "us-east-1")],
    )));
    let log = fake.metadata_log();
    assert_eq!(count(&log, &format!("{ROLE_LIST} v2")), 3, "{log:?}");
    // Three failures in a row are the error.
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        fail_next: 3,
        ..ImdsMode::default()
    });
    let out = run(&mut with_imds(
        &fake,
        home.path(),
        &[("AWS_REGION", "us-east-1")],
    ));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("answered HTTP 500 (after 3 attempts)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn container_credentials_are_retried_three_times() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let uri = format!("{}/container-credentials", fake.url);
    let vars = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            fake_aws::CONTAINER_TOKEN,
        ),
    ];
    fake.container_fail_next(2);
    assert_resolved(&run(&mut wrapper(&fake, home.path(), &vars)));
    assert_eq!(count(&fake.metadata_log(), "GET /container-credentials"), 3);
    fake.container_fail_next(3);
    let out = run(&mut wrapper(&fake, home.path(), &vars));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("(after 3 attempts)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&fake.metadata_log(), "GET /container-credentials"), 6);
}

/// Credentials near their expiry are fetched again; when the instance metadata is down then,
/// the ones held are used until they expire, as the SDKs do.
#[test]
fn credentials_are_kept_through_an_instance_metadata_outage() {
    let in_two_minutes = proc_wrapper::time::UtcTime::from_system(
        std::time::SystemTime::now() + std::time::Duration::from_secs(120),
    )
    .iso8601();
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        outage_after: Some(1),
        expiration: Some(in_two_minutes),
        ..ImdsMode::default()
    });
    let home = tempfile::tempdir().unwrap();
    let out =
        run(with_imds(&fake, home.path(), &[("AWS_REGION", "us-east-1")]).env(ALSO.0, ALSO.1));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not be refreshed"),
        "{}",
        stderr(&out)
    );
    let signed = fake.signed();
    assert_eq!(signed.len(), 2);
    assert!(signed.iter().all(|s| s.access_key == fake_aws::IMDS_KEY));
    // The refresh was tried (3 attempts) during the outage.
    assert_eq!(count(&fake.metadata_log(), &format!("{ROLE_LIST} v2")), 4);
    // Expired credentials are not used.
    let fake = FakeAws::start();
    fake.imds(ImdsMode {
        outage_after: Some(1),
        expiration: Some("2001-01-01T00:00:00+01:00".into()),
        ..ImdsMode::default()
    });
    let out =
        run(with_imds(&fake, home.path(), &[("AWS_REGION", "us-east-1")]).env(ALSO.0, ALSO.1));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(after 3 attempts)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.signed().len(), 1);
}

/// A `credential_process` whose expiry has an offset other than UTC (`+01:00`) is fetched
/// again when it nears it.
#[test]
fn credential_process_expiry_with_an_offset_is_refreshed() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let counter = home.path().join("runs");
    let script = home.path().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexp=$(TZ=Etc/GMT-1 date -d '+2 min' +%Y-%m-%dT%H:%M:%S%:z)\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS\", \"SecretAccessKey\": \"s\", \
             \"SessionToken\": \"t\", \"Expiration\": \"%s\"}}' \"$exp\"\n",
            counter.display()
        ),
    )
    .unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[default]\nregion = eu-west-1\ncredential_process = sh {}\n",
            script.display()
        ),
    )
    .unwrap();
    let out = run(wrapper(&fake, home.path(), &[]).env(ALSO.0, ALSO.1));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(
        runs.lines().count(),
        2,
        "expiring in 2 minutes: fetched for each call"
    );
    // An expiry that is not a time is an error naming the source, not credentials forever.
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = eu-west-1\ncredential_process = printf '{\"Version\": 1, \
         \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"s\", \"Expiration\": \"tomorrow\"}'\n",
    )
    .unwrap();
    let out = run(&mut wrapper(&fake, home.path(), &[]));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("credential_process") && stderr(&out).contains("'tomorrow'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn login_session_profiles_are_refused_clearly() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile console]\nlogin_session = arn:aws:iam::123456789012:user/me\nregion = us-east-1\n",
    )
    .unwrap();
    let out = run(&mut wrapper(
        &fake,
        home.path(),
        &[("AWS_PROFILE", "console")],
    ));
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("the AWS profile 'console'") && err.contains("login_session"),
        "{err}"
    );
    assert!(err.contains("aws configure export-credentials"), "{err}");
    assert!(fake.signed().is_empty());
}

fn env_creds() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// Six attempts by default, as 6.0.2's boto3 configuration makes (`max_attempts: 5` in a
/// client configuration counts retries): server errors and the SDKs' transient and
/// throttling codes are retried; other errors are not.
#[test]
fn retries_follow_boto3s_standard_mode() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    fake.fail_next(&[
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
        (400, "RequestTimeoutException"),
        (429, "TooManyRequestsException"),
        (504, "GatewayTimeout"),
    ]);
    assert_resolved(&run(&mut wrapper(&fake, home.path(), &env_creds())));
    assert_eq!(fake.signed().len(), 6, "five failures, then success");
    fake.fail_next(&[(502, "BadGateway"); 6]);
    let out = run(&mut wrapper(&fake, home.path(), &env_creds()));
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("(after 6 attempts)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.signed().len(), 12);
    // Not retryable: one attempt.
    for (status, code) in [(400, "AccessDeniedException"), (501, "NotImplemented")] {
        fake.fail_next(&[(status, code)]);
        let before = fake.signed().len();
        let out = run(&mut wrapper(&fake, home.path(), &env_creds()));
        assert_eq!(out.status.code(), Some(78));
        assert!(stderr(&out).contains(code), "{}", stderr(&out));
        assert_eq!(fake.signed().len(), before + 1, "{code}");
    }
}

/// A clock 15 minutes slow: the request is refused as expired, the clock corrected from the
/// server's Date, and the request signed again with the server's time.
#[test]
fn clock_skew_is_corrected_from_the_server_date() {
    for skew in [15 * 60, -20 * 60] {
        let fake = FakeAws::start();
        fake.skew_clock(skew);
        let home = tempfile::tempdir().unwrap();
        let out = run(&mut wrapper(&fake, home.path(), &env_creds()));
        assert_resolved(&out);
        assert!(
            stderr(&out).contains("the clock differs from AWS's"),
            "{}",
            stderr(&out)
        );
        // One refused request, then one signed with the corrected time.
        assert_eq!(fake.signed().len(), 2, "{skew}");
        // Two calls at once: each refused one is signed again once the clock is known.
        let fake = FakeAws::start();
        fake.skew_clock(skew);
        let out = run(wrapper(&fake, home.path(), &env_creds()).env(ALSO.0, ALSO.1));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!((3..=4).contains(&fake.signed().len()), "{skew}");
    }
}

/// Endpoints from the profile: its `endpoint_url`, and a `[services]` section's entry for
/// one service; dual-stack and region errors name the region.
#[test]
fn endpoints_from_the_profile() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9/\nservices = local\n\
             [services local]\nsecrets_manager =\n  endpoint_url = {}\n\
             [profile global]\nregion = us-east-1\nendpoint_url = {}\n",
            fake.url, fake.url
        ),
    )
    .unwrap();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let mut cmd = wrapper(&fake, home.path(), &creds);
    cmd.env_remove("AWS_ENDPOINT_URL");
    assert_resolved(&run(&mut cmd));
    let mut cmd = wrapper(&fake, home.path(), &creds);
    cmd.env_remove("AWS_ENDPOINT_URL")
        .env("AWS_PROFILE", "global")
        .env(ALSO.0, ALSO.1);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.signed().len(), 3);
    // A partition without dual-stack endpoints, a region that is no region.
    for (region, dual, what) in [
        (
            "us-isof-south-1",
            "true",
            "no dual-stack endpoint in region us-isof-south-1",
        ),
        (
            "US_EAST_1",
            "false",
            "the AWS region 'US_EAST_1' is not a region name",
        ),
    ] {
        let mut cmd = wrapper(&fake, home.path(), &creds);
        cmd.env_remove("AWS_ENDPOINT_URL")
            .env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
            .env("AWS_REGION", region)
            .env("AWS_USE_DUALSTACK_ENDPOINT", dual);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(78));
        assert!(stderr(&out).contains(what), "{}", stderr(&out));
    }
    assert_eq!(fake.signed().len(), 3);
}
