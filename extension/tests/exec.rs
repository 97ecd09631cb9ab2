//! The exec wrapper mode of the real binary (`cloudreactor-extension --exec`, what the
//! layer's `/opt/cloudreactor-exec-wrapper` runs), with secrets from the moto_server that
//! `tests/run.sh` starts.

use std::process::{Command, Stdio};

use procwrapper_tests::moto::Moto;
use procwrapper_tests::wrapper::{bare, parse_env, run_with_pid};

/// `cloudreactor-extension` with an empty environment (but `PATH`), its output piped.
fn extension() -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_cloudreactor-extension"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

#[test]
fn exec_resolves_secrets_into_the_runtime_environment_and_becomes_the_runtime() {
    let moto = Moto::connect();
    let arn = moto.secret_string(&Moto::unique("layer"), r#"{"password": "s3cr3t"}"#);
    let (pid, out) = run_with_pid(
        extension()
            .envs(moto.env())
            .env(
                "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
                format!("{arn}|JP:$.password"),
            )
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
            .args(["--exec", "sh", "-c", "echo PID=$$; env"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let env = parse_env(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        env["PID"],
        pid.to_string(),
        "the runtime replaced the wrapper"
    );
    assert_eq!(env["DB_PASSWORD"], "s3cr3t");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
    assert!(!env.contains_key("DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE"));
    assert!(
        !stderr.contains("s3cr3t"),
        "the secret reached the log: {stderr}"
    );
}

#[test]
fn exec_fails_closed_naming_the_variable() {
    let out = extension()
        .env(
            "API_TOKEN_FOR_PROC_WRAPPER_TO_RESOLVE",
            "ENV:NOT_SET_ANYWHERE",
        )
        .args(["--exec", "sh", "-c", "echo RAN"])
        .output()
        .expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(78));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RAN"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("API_TOKEN"), "{stderr}");
    let out = extension().args(["--exec"]).output().expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn exec_logs_json_lines_with_lambdas_json_log_format() {
    let out = extension()
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("PROC_WRAPPER_LOG_LEVEL", "DEBUG")
        .env(
            "API_TOKEN_FOR_PROC_WRAPPER_TO_RESOLVE",
            "ENV:NOT_SET_ANYWHERE",
        )
        .args(["--exec", "sh", "-c", "echo RAN"])
        .output()
        .expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("API_TOKEN")),
        "{error}"
    );
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
}

#[test]
fn the_proxy_process_mode_started_by_hand_says_that_the_extension_starts_it() {
    let out = extension()
        .args(["--runtime-api-proxy", "127.0.0.1:9001"])
        .output()
        .expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--runtime-api-proxy is started by the extension itself"),
        "{stderr}"
    );
}
