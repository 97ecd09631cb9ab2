//! Security properties of the real `cloudreactor-extension` binary (see SECURITY.md), under
//! `lambda-simulator`: the API key and secret values stay out of its log, even at DEBUG level
//! and when the API server or a secret fails, and its status listener is on loopback only.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use lambda_simulator::process::{ProcessConfig, ProcessRole};
use lambda_simulator::{InvocationStatus, ShutdownReason, Simulator};
use procwrapper_tests::fake_api::FakeApi;
use procwrapper_tests::lambda::until;
use procwrapper_tests::net::{free_udp_port, udp_addresses};
use procwrapper_tests::wrapper::bare;
use serde_json::json;

/// The API key and the secret value of these tests: either in the log is a leak.
const API_KEY: &str = "key-e4a1b7c903";
const SECRET: &str = "sv-ext-52d8f0";
const LIMIT: Duration = Duration::from_secs(20);

/// The example function, built next to the binaries by `cargo test`.
fn function_bin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_cloudreactor-extension"))
        .parent()
        .expect("UNWRAP: binaries live in a folder")
        .join("examples/test_function");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

async fn simulator() -> Simulator {
    Simulator::builder()
        .function_name("security-test-fn")
        .extension_ready_timeout(LIMIT)
        .build()
        .await
        .expect("UNWRAP: the simulator starts")
}

/// Starts the extension (not through the simulator, so that its output can be kept) with the
/// simulator's Lambda variables and `env`, its output going to `log`.
fn start_extension(sim: &Simulator, env: &[(&str, String)], log: &Path) -> Child {
    let out = File::create(log).expect("UNWRAP: the log file can be created");
    bare(env!("CARGO_BIN_EXE_cloudreactor-extension"))
        .envs(sim.lambda_env_vars())
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(out.try_clone().expect("UNWRAP: the file can be shared"))
        .stderr(out)
        .spawn()
        .expect("UNWRAP: the extension starts")
}

/// A file for the extension's output, unique to this test process and `name`.
fn log_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "cloudreactor-extension-security-{}-{name}.log",
        std::process::id()
    ))
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The whole log, once the extension has ended; the file is deleted.
fn take(log: &Path) -> String {
    let text = read(log);
    let _ = std::fs::remove_file(log);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_and_secrets_stay_out_of_the_log_and_the_status_listener_is_on_loopback() {
    let sim = simulator().await;
    let api = FakeApi::start();
    // The server rejects the key: every report fails with 403.
    api.set_api_key("another-key");
    let status_port = free_udp_port();
    let common = [
        ("PROC_WRAPPER_API_BASE_URL", api.url.clone()),
        ("PROC_WRAPPER_API_KEY", API_KEY.to_owned()),
        (
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "test".to_owned(),
        ),
        (
            "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER",
            "TRUE".to_owned(),
        ),
        (
            "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT",
            status_port.to_string(),
        ),
        ("PROC_WRAPPER_LAMBDA_EXTENSION", "TRUE".to_owned()),
        ("TEST_FUNCTION_WRAPPED", "FALSE".to_owned()),
        ("PROC_WRAPPER_LOG_LEVEL", "DEBUG".to_owned()),
    ];
    let mut env = common.to_vec();
    env.push((
        "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
        format!("PLAIN:{SECRET}"),
    ));
    let log = log_file("key");
    let mut extension = start_extension(&sim, &env, &log);
    assert!(
        until(LIMIT, || !udp_addresses(status_port).is_empty()).await,
        "the status listener did not open: {}",
        read(&log)
    );
    let loopback = format!("{:08X}", u32::from_ne_bytes(Ipv4Addr::LOCALHOST.octets()));
    assert_eq!(udp_addresses(status_port), [loopback]);

    let mut function = ProcessConfig::new(function_bin(), ProcessRole::Runtime);
    for (k, v) in &common {
        function = function.env(*k, v.clone());
    }
    let _function = sim
        .spawn_process_with_config(function)
        .expect("UNWRAP: the function starts");
    let id = sim.enqueue_payload(json!({})).await;
    let status = procwrapper_tests::lambda::invocation_done(&sim, &id, LIMIT).await;
    assert_eq!(status, Some(InvocationStatus::Success));
    assert!(
        api.wait_for(LIMIT, |r| !r.is_empty()),
        "nothing was reported"
    );
    sim.graceful_shutdown(ShutdownReason::Spindown).await;
    let mut code = None;
    until(LIMIT, || {
        code = extension.try_wait().ok().flatten().map(|s| s.code());
        code.is_some()
    })
    .await;
    assert_eq!(code, Some(Some(0)), "{}", read(&log));

    let log = take(&log);
    assert!(
        log.contains("resolved DB_PASSWORD from PLAIN:<hidden>"),
        "{log}"
    );
    assert!(log.contains("403"), "the rejection is logged: {log}");
    for secret in [API_KEY, SECRET] {
        assert!(!log.contains(secret), "'{secret}' reached the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_secret_location_is_logged_without_its_value() {
    let sim = simulator().await;
    let api = FakeApi::start();
    let env = [
        ("PROC_WRAPPER_API_BASE_URL", api.url.clone()),
        ("PROC_WRAPPER_API_KEY", API_KEY.to_owned()),
        ("PROC_WRAPPER_LOG_LEVEL", "DEBUG".to_owned()),
        (
            "PROC_WRAPPER_ENV_LOCATIONS",
            format!("PLAIN:A={SECRET}|BOGUS"),
        ),
    ];
    let log = log_file("location");
    let mut extension = start_extension(&sim, &env, &log);
    let off = until(LIMIT, || read(&log).contains("not reporting invocations")).await;
    extension.kill().expect("UNWRAP: the extension runs");
    extension.wait().expect("UNWRAP: the extension is reaped");
    let log = take(&log);
    assert!(off, "{log}");
    assert!(log.contains("PLAIN:<hidden>"), "{log}");
    for secret in [API_KEY, SECRET] {
        assert!(!log.contains(secret), "'{secret}' reached the log:\n{log}");
    }
}
