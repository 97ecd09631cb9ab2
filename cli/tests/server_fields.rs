//! The Task Execution fields that the CloudReactor server stores and 6.0.2 never sends
//! (README "Reporting to CloudReactor", "What the server is told"), through the real binary
//! against the fake API, which checks each field as the server's serializer does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procwrapper_tests::fake_api::{DASHBOARD_BASE, FakeApi, Fault, Recorded, STOPPED_BY};
use procwrapper_tests::wait_until;
use procwrapper_tests::wrapper::{reporting, run, spawn_piped, stderr};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);
/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proc_wrapper");

/// `proc_wrapper` reporting to `api`, with short API timeouts so that faults end quickly.
fn wrapper(api: &FakeApi) -> Command {
    let mut cmd = reporting(BIN, &api.url);
    cmd.envs([
        ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "5"),
        (
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
            "1",
        ),
        ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "1"),
    ]);
    cmd
}

fn creation(api: &FakeApi) -> Recorded {
    let requests = api.requests();
    let first = requests.first().expect("a creation request").clone();
    assert_eq!(first.method, "POST", "{requests:#?}");
    first
}

/// The one final update of the first execution.
fn final_update(api: &FakeApi) -> Recorded {
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    let finals = api.finals_of(&uuid);
    assert_eq!(finals.len(), 1, "{:#?}", api.requests());
    finals[0].clone()
}

/// A shell script that waits (polling) for `go` in `dir`, then runs `then`.
fn wait_for_go(dir: &Path, then: &str) -> String {
    format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; {then}",
        dir.join("go").display()
    )
}

#[test]
fn sampling_goes_under_the_servers_names_and_its_variables_are_read() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        // The variables the server sets for a run it starts.
        .env("PROC_WRAPPER_MANAGED_PROBABILITY", "1.0")
        .env("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "0.25")
        .env("PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY", "None")
        .args(["true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let body = creation(&api).body;
    for object in [&body, &body["task"]] {
        assert_eq!(object["managed_probability"], json!(1.0), "{object}");
        assert_eq!(object["api_managed_probability"], json!(1.0), "{object}");
        assert_eq!(
            object["failure_report_probability"],
            json!(0.25),
            "{object}"
        );
        assert_eq!(object["api_failure_report_probability"], json!(0.25));
        // `None` is unset: the default.
        assert_eq!(
            object["timeout_report_probability"],
            object["api_timeout_report_probability"]
        );
        assert!(object["timeout_report_probability"].is_number(), "{object}");
    }
    let stored = api.execution(&procwrapper_tests::fake_api::execution_uuid(1));
    assert_eq!(stored["failure_report_probability"], json!(0.25));
}

#[test]
fn the_deployment_is_sent_and_cut_to_what_the_server_keeps() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_DEPLOYMENT", "staging")
        .args(["true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(creation(&api).body["deployment"], json!("staging"));
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    assert_eq!(api.execution(&uuid)["deployment"], json!("staging"));

    // The server refuses more than 200 characters with 400; the wrapper sends the first 200.
    let api = FakeApi::start();
    let long = "é".repeat(250);
    let out = run(wrapper(&api).args(["--deployment", &long, "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sent = creation(&api).body["deployment"].clone();
    assert_eq!(sent, json!("é".repeat(200)));
    assert_eq!(
        api.execution(&uuid)["deployment"],
        sent,
        "the server took it"
    );
}

#[test]
fn the_dashboard_url_of_the_creation_is_logged_at_info() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    let line = stderr(&out)
        .lines()
        .find(|l| l.contains(DASHBOARD_BASE))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no dashboard URL in {}", stderr(&out)));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains(&format!("{DASHBOARD_BASE}{uuid}")), "{line}");
}

#[test]
fn a_creation_409_with_a_message_logs_it() {
    let api = FakeApi::start();
    let message = "Task has reached its maximum number of concurrent executions";
    api.push_faults([Fault::Body(
        409,
        "application/json".into(),
        json!({"detail": message}).to_string(),
    )]);
    let out = run(wrapper(&api).args(["true"]));
    assert!(stderr(&out).contains(message), "{}", stderr(&out));
}

#[test]
fn an_update_409_with_a_message_logs_it_and_stops() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_piped(
        wrapper(&api)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .env("PROC_WRAPPER_SEND_PID", "FALSE")
            .args(["sh", "-c", &wait_for_go(dir.path(), "true")]),
    );
    assert!(api.wait_for(LIMIT, |r| !r.is_empty()));
    let message = "Status cannot be set to RUNNING after SUCCEEDED";
    api.push_faults([Fault::Body(
        409,
        "application/json".into(),
        json!({"status": message}).to_string(),
    )]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("WARNING"), "{line}");
    // Nothing more after a 409 that refused a status.
    assert!(
        api.finals_of(&procwrapper_tests::fake_api::execution_uuid(1))
            .is_empty()
    );
}

#[test]
fn a_stop_for_exceeding_the_max_time_says_so_in_the_log_and_the_final_update() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_piped(
        wrapper(&api)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(["sh", "-c", &wait_for_go(dir.path(), "true")]),
    );
    assert!(api.wait_for(LIMIT, |r| !r.is_empty()));
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    api.request_stop_for(&uuid, "MAX_EXECUTION_TIME_EXCEEDED");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.contains("WARNING")
            && l.contains("stop reason MAX_EXECUTION_TIME_EXCEEDED")
            && !l.contains(&format!("by {STOPPED_BY}"))),
        "{err}"
    );
    let last = final_update(&api);
    assert_eq!(last.status(), Some("STOPPED"));
    assert_eq!(
        last.body["error_details"],
        json!({"kind": "stopped", "stop_reason": "MAX_EXECUTION_TIME_EXCEEDED"})
    );
    assert_eq!(api.status_of(&uuid).as_deref(), Some("STOPPED"));
}

#[test]
fn a_command_that_cannot_start_gets_the_os_error() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["/nonexistent/program"]));
    assert_ne!(out.status.code(), Some(0));
    let last = final_update(&api);
    assert_eq!(last.status(), Some("FAILED"));
    let details = &last.body["error_details"];
    assert_eq!(details["kind"], json!("spawn_failed"), "{details}");
    assert_eq!(details["program"], json!("/nonexistent/program"));
    assert_eq!(details["os_error"], json!(2), "ENOENT: {details}");
    assert!(details["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn a_command_killed_by_a_signal_gets_its_name() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["sh", "-c", "kill -KILL $$"]));
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let details = final_update(&api).body["error_details"].clone();
    assert_eq!(
        details,
        json!({"kind": "killed_by_signal", "signal": "SIGKILL", "signal_number": 9})
    );
}

#[test]
fn a_timeout_names_the_limit_and_the_attempt() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
        .env("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .args(["sleep", "60"]));
    assert_ne!(out.status.code(), Some(0));
    let last = final_update(&api);
    assert_eq!(last.status(), Some("TERMINATED_AFTER_TIME_OUT"));
    assert_eq!(
        last.body["error_details"],
        json!({"kind": "timed_out", "timeout_seconds": 1, "attempt": 1})
    );
}

#[test]
fn a_signal_to_the_wrapper_is_named() {
    let api = FakeApi::start();
    let child = spawn_piped(wrapper(&api).args(["sleep", "60"]));
    assert!(api.wait_for(LIMIT, |r| !r.is_empty()));
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        final_update(&api).body["error_details"],
        json!({"kind": "wrapper_signalled", "signal": "SIGTERM"}),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_result_file_is_named() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("result.json");
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_RESULT_FILENAME", &file)
        .args(["true"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let details = final_update(&api).body["error_details"].clone();
    assert_eq!(details["kind"], json!("result_file"), "{details}");
    assert!(
        details["message"]
            .as_str()
            .is_some_and(|m| m.contains("was not written")),
        "{details}"
    );
}

#[test]
fn a_plain_success_sends_no_deployment_and_no_error_details() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let body = creation(&api).body;
    assert!(body.get("deployment").is_none(), "{body}");
    let body = final_update(&api).body;
    assert!(body.get("error_details").is_none(), "{body}");
}

/// A variable whose location cannot be read: the secret text in its location stays hidden.
const UNRESOLVABLE: (&str, &str) = (
    "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
    "file:///nonexistent/hunter2-secret.txt",
);

#[test]
fn an_unresolved_secret_is_reported_and_the_command_never_runs() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = run(wrapper(&api)
        .env(UNRESOLVABLE.0, UNRESOLVABLE.1)
        .args(["touch".as_ref(), marker.as_os_str()]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(!marker.exists(), "the command did not run");
    // One creation that carries the end.
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let body = &requests[0].body;
    assert_eq!(requests[0].method, "POST");
    assert_eq!(body["status"], json!("FAILED"), "{body}");
    let details = &body["error_details"];
    assert_eq!(details["kind"], json!("unresolved_secrets"), "{details}");
    let failures = details["failures"].as_array().expect("a list");
    assert_eq!(failures.len(), 1, "{details}");
    assert_eq!(failures[0]["name"], json!("DB_PASSWORD"), "{details}");
    assert!(failures[0]["location"].as_str().is_some(), "{details}");
    assert!(failures[0]["error"].as_str().is_some(), "{details}");
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    assert_eq!(api.status_of(&uuid).as_deref(), Some("FAILED"));
    // A creation that carries the end gives the dashboard's link too.
    assert!(
        stderr(&out).contains(&format!("{DASHBOARD_BASE}{uuid}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unresolved_secret_of_a_run_the_server_started_fails_that_execution() {
    let api = FakeApi::start();
    let uuid = "0b3d2b7e-1111-4c1a-9f00-000000000abc";
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_TASK_EXECUTION_UUID", uuid)
        .env(UNRESOLVABLE.0, UNRESOLVABLE.1)
        .args(["true"]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(requests[0].execution_uuid(), Some(uuid));
    assert_eq!(requests[0].status(), Some("FAILED"));
    assert_eq!(
        requests[0].body["error_details"]["kind"],
        json!("unresolved_secrets")
    );
}

#[test]
fn an_unresolved_secret_is_not_reported_offline_or_when_the_key_is_the_secret() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_OFFLINE_MODE", "TRUE")
        .env(UNRESOLVABLE.0, UNRESOLVABLE.1)
        .args(["true"]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let out = run(wrapper(&api)
        .env_remove("PROC_WRAPPER_API_KEY")
        .env(
            "PROC_WRAPPER_API_KEY_FOR_PROC_WRAPPER_TO_RESOLVE",
            UNRESOLVABLE.1,
        )
        .args(["true"]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(api.requests().is_empty(), "{:#?}", api.requests());
}

#[test]
fn sigterm_ends_the_report_of_an_unresolved_secret() {
    let api = FakeApi::start();
    api.push_faults([Fault::Stall]);
    let child = spawn_piped(
        wrapper(&api)
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_TIMEOUT_SECONDS",
                "600",
            )
            .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "600")
            .env(UNRESOLVABLE.0, UNRESOLVABLE.1)
            .args(["true"]),
    );
    assert!(api.wait_for(LIMIT, |r| !r.is_empty()));
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
}

/// Python that holds about 64 MB of its own, written so that the pages are resident.
fn hold_memory(then: &str) -> Vec<String> {
    vec![
        "python3".to_owned(),
        "-c".to_owned(),
        format!("import os, subprocess\nx = b'\\x01' * (64 << 20)\nos.system({then:?})\n"),
    ]
}

#[test]
fn the_peak_memory_of_the_child_is_in_the_final_update() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(hold_memory("true")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mb = final_update(&api).body["max_memory_mb"].as_u64();
    assert!(mb.is_some_and(|mb| (64..1024).contains(&mb)), "{mb:?}");
    let uuid = procwrapper_tests::fake_api::execution_uuid(1);
    assert_eq!(api.execution(&uuid)["max_memory_mb"], json!(mb));
}

#[test]
fn heartbeats_carry_the_current_memory_of_the_child() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_piped(
        wrapper(&api)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(hold_memory(&wait_for_go(dir.path(), "true"))),
    );
    let heavy = |r: &[Recorded]| {
        r.iter().any(|r| {
            r.status() == Some("RUNNING")
                && r.body["current_memory_mb"]
                    .as_u64()
                    .is_some_and(|mb| mb >= 64)
        })
    };
    let seen = api.wait_for(LIMIT, heavy);
    std::fs::write(dir.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(seen, "{:#?}\n{}", api.requests(), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(wait_until(LIMIT, || api
        .finals_of(&procwrapper_tests::fake_api::execution_uuid(1))
        .len()
        == 1));
}
