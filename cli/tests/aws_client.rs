//! The wrapper's own AWS client through the real binary: where its credentials and region
//! come from (environment, shared files, `credential_process`, container credentials, the
//! instance metadata, a web identity through moto's STS), retries of throttled calls, S3
//! buckets in another region, and the errors when nothing is configured. Calls go to
//! `procwrapper_tests::fake_aws`, which records who signed them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use procwrapper_tests::fake_aws::{self, FakeAws};
use procwrapper_tests::moto::Moto;

/// `proc_wrapper` resolving `DB_PASS` from Secrets Manager (secret `db`), with no AWS
/// variables but those given, the calls going to `fake` and the instance metadata off.
fn wrapper(fake: &FakeAws, home: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proc_wrapper"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("PROC_WRAPPER_OFFLINE_MODE", "TRUE")
        .env("AWS_ENDPOINT_URL", &fake.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE", "AWS_SM:db")
        .envs(vars.iter().copied())
        .args(["--", "sh", "-c", "echo \"DB_PASS=$DB_PASS\""]);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
