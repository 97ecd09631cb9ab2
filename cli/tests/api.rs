//! Wrapped mode against the fake CloudReactor API server: the lifecycle of a Task Execution
//! and how the wrapper behaves under API faults. Ports `test_wrapped_mode_with_server` of the
//! original's suite, plus fault scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::Signal;
use procwrapper_tests::fake_api::{API_KEY, FakeApi, Fault, Recorded, TASK_UUID};
use procwrapper_tests::net::{free_udp_port, refused_url};
use procwrapper_tests::wrapper::{bare, reporting, run, spawn_piped, stderr};
use procwrapper_tests::{process_gone, signal_child, wait_until};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);
/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proc_wrapper");

/// The settings of the original's tests, on top of [`reporting`]: a version signature, and
/// 1 s timeouts and retry delay so that API faults end the test quickly.
const ORIGINAL_TEST_SETTINGS: [(&str, &str); 6] = [
    (
        "PROC_WRAPPER_TASK_VERSION_SIGNATURE",
        "43cfd2b905d5cb4f3e8e4bd7b8ea3ac7",
    ),
    (
        "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
        "1",
    ),
    (
        "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
        "1",
    ),
    ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "1"),
    ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "1"),
    ("PROC_WRAPPER_API_RESUME_DELAY_SECONDS", "-1"),
];

/// `proc_wrapper` pointed at `api`, with the base environment of the original's tests.
fn wrapper(api: &FakeApi) -> Command {
    let mut cmd = reporting(BIN, &api.url);
    cmd.envs(ORIGINAL_TEST_SETTINGS);
    cmd
}

fn creation(requests: &[Recorded]) -> &Recorded {
    let first = requests.first().expect("a creation request");
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/api/v1/task_executions/");
    first
}

fn last(requests: &[Recorded]) -> &Recorded {
    requests.last().expect("requests")
}

fn uuid_of(requests: &[Recorded]) -> String {
    let patch = requests
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("an update");
    patch
        .path
        .trim_start_matches("/api/v1/task_executions/")
        .trim_end_matches('/')
        .to_owned()
}

#[test]
fn success_is_reported_with_creation_and_final_update() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["--", "sh", "-c", "env > /dev/null; echo hi"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let c = creation(&reqs);
    assert_eq!(c.authorization.as_deref(), Some("Bearer SOMEAPIKEY"));
    assert_eq!(c.content_type.as_deref(), Some("application/json"));
    assert_eq!(c.accept.as_deref(), Some("application/json"));
    let b = &c.body;
    assert_eq!(b["status"], "RUNNING");
    assert_eq!(b["is_service"], false);
    assert_eq!(b["embedded_mode"], false);
    assert_eq!(b["wrapper_family"], "CloudReactor Rust proc_wrapper");
    assert_eq!(b["wrapper_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(b["task"]["uuid"], TASK_UUID);
    assert_eq!(
        b["task_version_signature"],
        "43cfd2b905d5cb4f3e8e4bd7b8ea3ac7"
    );
    assert_eq!(b["process_max_retries"], 0);
    assert_eq!(b["api_resume_delay_seconds"], -1);
    assert_eq!(b["heartbeat_interval_seconds"], 300);
    assert!(b["started_at"].as_str().unwrap().ends_with("+00:00"));
    let f = last(&reqs);
    assert_eq!(f.method, "PATCH");
    assert_eq!(f.query.as_deref(), Some("content=false"));
    assert_eq!(f.status(), Some("SUCCEEDED"));
    assert_eq!(f.body["exit_code"], 0);
    assert!(f.body.get("failed_attempts").is_none());
    assert!(f.body["finished_at"].as_str().unwrap().contains('T'));
    assert_eq!(f.body["execution_method_type"], "Unknown");
    assert_eq!(api.status_of(&uuid_of(&reqs)).as_deref(), Some("SUCCEEDED"));
}

#[test]
fn child_environment_when_reporting() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["--", "env"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let env = String::from_utf8_lossy(&out.stdout).into_owned();
    let uuid = uuid_of(&api.requests());
    for line in [
        "PROC_WRAPPER_OFFLINE_MODE=FALSE".to_owned(),
        "PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS=300".to_owned(),
        "PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS=30".to_owned(),
        "PROC_WRAPPER_API_RETRY_DELAY_SECONDS=1".to_owned(),
        "PROC_WRAPPER_API_RESUME_DELAY_SECONDS=-1".to_owned(),
        "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER=FALSE".to_owned(),
        "PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS=-1".to_owned(),
        "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS=30".to_owned(),
        "PROC_WRAPPER_MAX_CONCURRENCY=-1".to_owned(),
        "PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION=FALSE".to_owned(),
        "PROC_WRAPPER_API_MANAGED_PROBABILITY=1.0".to_owned(),
        format!("PROC_WRAPPER_TASK_EXECUTION_UUID={uuid}"),
        format!("PROC_WRAPPER_TASK_UUID={TASK_UUID}"),
        format!("PROC_WRAPPER_API_BASE_URL={}", api.url),
        format!("PROC_WRAPPER_API_KEY={API_KEY}"),
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in\n{env}");
    }
}

#[test]
fn no_command_makes_no_api_calls() {
    let api = FakeApi::start();
    let out = run(&mut wrapper(&api));
    assert_eq!(out.status.code(), Some(78));
    assert!(api.requests().is_empty());
}

#[test]
fn timeout_is_reported() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
        .args(["--", "sleep", "60"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(creation(&reqs).body["process_timeout_seconds"], 1);
    let f = last(&reqs);
    assert_eq!(f.status(), Some("TERMINATED_AFTER_TIME_OUT"));
    assert_eq!(f.body["timed_out_attempts"], 1);
    assert_eq!(f.body["exit_code"], 1);
}

#[test]
fn failed_attempts_are_reported_then_the_final_failure() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_PROCESS_MAX_RETRIES", "1")
        .args(["--", "sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(reqs[1].status(), Some("RUNNING"));
    assert_eq!(reqs[1].body["failed_attempts"], 1);
    assert_eq!(reqs[1].body["exit_code"], 3);
    assert_eq!(reqs[2].status(), Some("FAILED"));
    assert_eq!(reqs[2].body["failed_attempts"], 2);
    assert_eq!(reqs[2].body["exit_code"], 3);
}

#[test]
fn known_execution_uuid_is_patched_instead_of_created() {
    let api = FakeApi::start();
    // Create one first, as CloudReactor does when it starts a Task itself.
    let out = run(wrapper(&api).args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0));
    let uuid = uuid_of(&api.requests());
    let api2 = FakeApi::start();
    let out = run(wrapper(&api2)
        .env("PROC_WRAPPER_TASK_EXECUTION_UUID", &uuid)
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api2.requests();
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(reqs[0].path, format!("/api/v1/task_executions/{uuid}/"));
    assert_eq!(reqs[0].query, None);
    assert!(reqs[0].body.get("task").is_none());
    assert_eq!(last(&reqs).status(), Some("SUCCEEDED"));
}

#[test]
fn send_pid_reports_the_process_id() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_SEND_PID", "TRUE")
        .args(["--", "sh", "-c", "echo $$"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .any(|r| r.body.get("pid").and_then(Value::as_i64) == Some(pid)),
        "{reqs:#?}"
    );
}

#[test]
fn server_down_for_the_whole_run_still_runs_the_child() {
    let url = refused_url();
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_API_BASE_URL", &url)
        .args(["--", "sh", "-c", "exit 4"]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not reach the API server"));
}

#[test]
fn a_503_then_recovery_delivers_everything() {
    let api = FakeApi::start();
    api.push_faults([Fault::RetryAfter(503, "1".into())]);
    let out = run(wrapper(&api)
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
            "60",
        )
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(last(&reqs).status(), Some("SUCCEEDED"));
}

#[test]
fn a_503_on_the_final_update_is_retried() {
    let api = FakeApi::start();
    let marker = tempfile::NamedTempFile::new().unwrap();
    // The creation succeeds; the final update is answered 503 once.
    let out = {
        let mut child = spawn_piped(
            wrapper(&api)
                .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "60")
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "while [ -e {} ]; do sleep 0.05; done",
                    marker.path().display()
                )),
        );
        assert!(api.wait_for(LIMIT, |r| r.len() == 1));
        api.push_faults([Fault::Status(503)]);
        drop(marker);
        let _ = child.try_wait();
        child.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(reqs[1].status(), Some("SUCCEEDED"));
    assert_eq!(reqs[2].status(), Some("SUCCEEDED"));
}

#[test]
fn creation_conflict_beyond_the_timeout_exits_75_without_starting() {
    let api = FakeApi::start();
    api.push_faults((0..20).map(|_| Fault::Status(409)));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let out = run(wrapper(&api)
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
            "3",
        )
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS",
            "1",
        )
        .args(["--", "touch"])
        .arg(&marker));
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(!marker.exists());
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.method == "POST"));
}

/// Starts `cmd` wrapping a child and a grandchild (2 s of grace period); see
/// [`procwrapper_tests::wrapper::start_tree`].
fn start_tree(cmd: &mut Command, dir: &Path) -> (Child, i32, i32) {
    procwrapper_tests::wrapper::start_tree(cmd, &[], dir, LIMIT)
}

#[test]
fn a_stop_request_terminates_the_group_exits_75_and_reports_why() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, child, grandchild) = start_tree(
        wrapper(&api).env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1"),
        dir.path(),
    );
    assert!(api.wait_for(LIMIT, |r| !r.is_empty()));
    let created = api.requests();
    assert_eq!(created.len(), 1);
    // The fake creates UUIDs in sequence; the first is ...000000000001.
    let uuid = "d9554f00-eaeb-4a16-96e4-000000000001";
    api.request_stop(uuid);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(wait_until(LIMIT, || process_gone(child) && process_gone(grandchild)));
    // Who stopped it and why, from the execution that the 409 carries, at WARNING.
    let err = stderr(&out);
    assert!(
        err.contains("WARNING")
            && err.contains("stopped the Task Execution (status STOPPED, by ")
            && err.contains(&format!("by {}", procwrapper_tests::fake_api::STOPPED_BY)),
        "{err}"
    );
    // The final update agrees with the server (STOPPED) and says why in error_details.
    let reqs = api.requests();
    let finals = api.finals_of(uuid);
    assert_eq!(finals.len(), 1, "{reqs:#?}");
    assert_eq!(finals[0].status(), Some("STOPPED"));
    assert_eq!(
        finals[0].body["error_details"],
        json!({"kind": "stopped", "killed_by": "alice"})
    );
    assert_eq!(api.status_of(uuid).as_deref(), Some("STOPPED"));
    assert_eq!(
        api.execution(uuid)["error_details"]["killed_by"],
        json!("alice")
    );
}

#[test]
fn a_slow_server_never_delays_noticing_the_exit() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let mut wrapper = spawn_piped(
        wrapper(&api)
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "60")
            .args(["--", "sh", "-c"])
            .arg(format!(
                "while [ ! -e {} ]; do sleep 0.05; done; exit 6",
                go.display()
            )),
    );
    assert!(api.wait_for(LIMIT, |r| r.len() == 1));
    // The first heartbeat hangs for ten minutes.
    api.push_faults([Fault::Delay(Duration::from_secs(600))]);
    assert!(
        api.wait_for(LIMIT, |r| r.len() == 2),
        "a heartbeat was sent"
    );
    std::fs::write(&go, "").unwrap();
    let exited = wait_until(LIMIT, || wrapper.try_wait().unwrap().is_some());
    assert!(exited, "the wrapper waited for the stuck heartbeat");
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(last(&reqs).status(), Some("FAILED"));
    assert_eq!(last(&reqs).body["exit_code"], 6);
}

#[test]
fn sigterm_reports_aborted() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (wrapper, _, _) = start_tree(&mut wrapper(&api), dir.path());
    signal_child(&wrapper, Signal::SIGTERM);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = api.requests();
    assert_eq!(last(&f).status(), Some("ABORTED"));
    assert_eq!(last(&f).body["exit_code"], 1);
}

#[test]
fn forbidden_with_prevent_offline_execution_exits_77() {
    let api = FakeApi::start();
    api.set_api_key("another key");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let out = run(wrapper(&api).args(["-p", "--", "touch"]).arg(&marker));
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(!marker.exists());
    // Without -p the command runs anyway.
    let out = run(wrapper(&api).args(["--", "touch"]).arg(&marker));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(marker.exists());
}

#[test]
fn prevent_offline_execution_without_an_api_key_exits_78() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env_remove("PROC_WRAPPER_API_KEY")
        .args(["-p", "--", "true"]));
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("no API key"));
    assert!(api.requests().is_empty());
    // Without -p it runs without reporting.
    let out = run(wrapper(&api)
        .env_remove("PROC_WRAPPER_API_KEY")
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(api.requests().is_empty());
}

#[test]
fn the_api_key_never_reaches_the_log() {
    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["-l", "DEBUG", "--", "true"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains(API_KEY), "{}", stderr(&out));
}

/// A child that sends UDP datagrams to the wrapper's status port with Python.
fn udp_sender(datagrams: &[&str]) -> Vec<String> {
    let script = format!(
        "import os, socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         port = int(os.environ['PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT'])\n\
         for d in {datagrams:?}:\n    s.sendto(d.encode(), ('127.0.0.1', port))\n    time.sleep(0.05)\n"
    );
    vec!["python3".into(), "-c".into(), script]
}

#[test]
fn status_updates_over_udp_are_coalesced_and_sent() {
    let api = FakeApi::start();
    let port = free_udp_port().to_string();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
        .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", &port)
        .env("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "600")
        .arg("--")
        .args(udp_sender(&[
            "{\"success_count\": 1}\n",
            "not json\n{\"success_count\": 2, \"expected_count\": 9}\n{\"error_",
            "count\": 1}\n",
            "{\"success_count\": 3, \"last_status_message\": \"almost\"}\n",
        ])));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    // The first message goes at once; the rest ride on the final update.
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(reqs[1].status(), Some("RUNNING"));
    assert_eq!(reqs[1].body["success_count"], 1);
    let f = &reqs[2].body;
    assert_eq!(f["status"], "SUCCEEDED");
    assert_eq!(f["success_count"], 3);
    assert_eq!(f["expected_count"], 9);
    assert_eq!(f["error_count"], 1);
    assert_eq!(f["last_status_message"], "almost");
}

#[test]
fn child_gets_the_status_listener_settings() {
    let api = FakeApi::start();
    let port = free_udp_port().to_string();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
        .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", &port)
        .args(["--", "env"]));
    let env = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER=TRUE".to_owned(),
        format!("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT={port}"),
        "PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES=65536".to_owned(),
        "PROC_WRAPPER_STATUS_UPDATE_HOST=127.0.0.1".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in\n{env}");
    }
    // Unset interval: not passed as the text "None" (6.0.2's quirk).
    assert!(!env.contains("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS"));
}

/// `test_wrapped_mode_with_logs_sent_to_server` of the original.
#[test]
fn log_tails_are_sent_with_the_final_update() {
    struct Case {
        vars: &'static [(&'static str, &'static str)],
        script: &'static str,
        debug_has: Option<&'static str>,
        error_has: Option<&'static str>,
    }
    let cases = [
        Case {
            vars: &[("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS", "2")],
            script: "echo hi",
            debug_has: Some("hi"),
            error_has: None,
        },
        Case {
            vars: &[("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")],
            script: "ls notafile",
            debug_has: Some("notafile"),
            error_has: None,
        },
        Case {
            vars: &[("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")],
            script: "echo aya; echo bus; echo cab; badcmd",
            debug_has: Some("cab"),
            error_has: None,
        },
        Case {
            vars: &[
                ("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2"),
                ("PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS", "0"),
            ],
            script: "ls notafile",
            debug_has: None,
            error_has: Some("notafile"),
        },
        Case {
            vars: &[
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "2"),
                ("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_TIMEOUT", "2"),
            ],
            script: "echo agh; sleep 5;",
            debug_has: Some("agh"),
            error_has: None,
        },
    ];
    for case in cases {
        let api = FakeApi::start();
        let out = run(wrapper(&api).envs(case.vars.iter().copied()).args([
            "--",
            "sh",
            "-c",
            case.script,
        ]));
        let f = last(&api.requests()).body.clone();
        let debug = f.get("debug_log_tail").and_then(Value::as_str);
        let error = f.get("error_log_tail").and_then(Value::as_str);
        match case.debug_has {
            Some(s) => assert!(debug.is_some_and(|d| d.contains(s)), "{}: {f}", case.script),
            None => assert!(debug.is_none(), "{}: {f}", case.script),
        }
        match case.error_has {
            Some(s) => assert!(error.is_some_and(|e| e.contains(s)), "{}: {f}", case.script),
            None => assert!(error.is_none(), "{}: {f}", case.script),
        }
        // The output still reaches the wrapper's own stdout/stderr.
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(all.contains(case.debug_has.or(case.error_has).unwrap()));
    }
}

#[test]
fn log_tails_keep_the_last_lines_truncated() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")
        .env("PROC_WRAPPER_MAX_LOG_LINE_LENGTH", "10")
        .args([
            "--",
            "sh",
            "-c",
            "echo first; echo second; echo a-very-long-third-line; exit 1",
        ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "first\nsecond\na-very-long-third-line\n",
        "output passes through unchanged"
    );
    let f = last(&api.requests()).body.clone();
    assert_eq!(f["debug_log_tail"], "second\na-very-...\n");
}

/// Cases 8 to 17 of `test_wrapped_mode_with_server`: input and result values.
#[test]
fn input_values_are_sent_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let plain_file = dir.path().join("input");
    std::fs::write(&plain_file, r#"{"a":7}"#).unwrap();
    let json_file = dir.path().join("input.json");
    std::fs::write(&json_file, r#"{"a":7}"#).unwrap();
    let plain = plain_file.to_str().unwrap();
    let json = json_file.to_str().unwrap();
    type Vars<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Vars, Option<Value>)> = vec![
        (
            vec![
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
                ("PROC_WRAPPER_INPUT_VALUE", "is cool"),
            ],
            Some(serde_json::json!("is cool")),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
                ("THE_INPUT", "is cool"),
            ],
            Some(serde_json::json!("is cool")),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
                ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
                ("THE_INPUT", r#"{"a":7}"#),
            ],
            Some(serde_json::json!({"a": 7})),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_VALUE", r#"{"a":7}"#),
                ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
            ],
            Some(serde_json::json!({"a": 7})),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_FILENAME", plain),
                ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
            ],
            Some(serde_json::json!({"a": 7})),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_FILENAME", json),
                ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
            ],
            Some(serde_json::json!({"a": 7})),
        ),
        (
            vec![
                ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
                ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
                ("THE_INPUT", r#"{"a":7}"#),
            ],
            None,
        ),
    ];
    for (vars, expected) in cases {
        let api = FakeApi::start();
        let out = run(wrapper(&api).envs(vars.iter().copied()).args([
            "--",
            "sh",
            "-c",
            "echo $PROC_WRAPPER_INPUT_VALUE",
        ]));
        assert_eq!(out.status.code(), Some(0), "{vars:?}: {}", stderr(&out));
        let reqs = api.requests();
        assert_eq!(
            creation(&reqs).body.get("input_value"),
            expected.as_ref(),
            "{vars:?}"
        );
        assert_eq!(last(&reqs).status(), Some("SUCCEEDED"));
        // Files the wrapper did not write are kept.
        assert!(plain_file.exists() && json_file.exists());
    }
    // The child gets the input value.
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_INPUT_VALUE", "is cool")
        .args(["--", "sh", "-c", "echo $PROC_WRAPPER_INPUT_VALUE"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "is cool\n");
}

#[test]
fn result_files_become_the_output_value() {
    for (name, format, cleanup) in [
        ("result", Some("json"), true),
        ("result.json", None, true),
        ("result", Some("json"), false),
    ] {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        let mut cmd = wrapper(&api);
        cmd.env("PROC_WRAPPER_RESULT_FILENAME", &file);
        if let Some(f) = format {
            cmd.env("PROC_WRAPPER_RESULT_VALUE_FORMAT", f);
        }
        if !cleanup {
            cmd.env("PROC_WRAPPER_CLEANUP_RESULT_FILE", "0");
        }
        let out = run(cmd.args([
            "--",
            "sh",
            "-c",
            "echo '{\"b\":8}' > $PROC_WRAPPER_RESULT_FILENAME",
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let f = last(&api.requests()).body.clone();
        assert_eq!(f["status"], "SUCCEEDED");
        assert_eq!(f["output_value"], serde_json::json!({"b": 8}));
        assert_eq!(file.exists(), !cleanup, "{name}");
    }
}

#[test]
fn an_unreadable_result_turns_success_into_failure() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("result.json");
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_RESULT_FILENAME", &file)
        .args([
            "--",
            "sh",
            "-c",
            "echo 'not json' > $PROC_WRAPPER_RESULT_FILENAME",
        ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(last(&api.requests()).status(), Some("FAILED"));
}

/// Cases 4 to 7 of `test_wrapped_mode_with_server`, and the sampled-out failure report.
#[test]
fn sampled_out_executions_report_only_failures() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
        .args(["--", "echo"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(api.requests().is_empty());

    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
        .args(["--", "fakecmdo"]));
    assert_eq!(out.status.code(), Some(78));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].status(), Some("FAILED"));
    assert_eq!(reqs[0].body["failed_attempts"], 1);
    assert!(reqs[0].body["finished_at"].is_string());
    assert_eq!(reqs[0].body["task"]["uuid"], TASK_UUID);

    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
        .env("PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "1e-10")
        .args(["--", "ls", "-zsfadsgadsg"]));
    assert_ne!(out.status.code(), Some(0));
    assert!(api.requests().is_empty());

    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
        .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
        .env("PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "1e-10")
        .args(["--", "sleep", "60"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(api.requests().is_empty());
}

/// `test_ecs_runtime_metadata` of the original, against the fake metadata endpoint.
#[test]
fn ecs_runtime_metadata_is_reported() {
    let ecs = procwrapper_tests::fake_ecs::FakeEcs::start("container.json");
    for auto_create in [true, false] {
        let api = FakeApi::start();
        let mut cmd = wrapper(&api);
        cmd.env("ECS_CONTAINER_METADATA_URI_V4", &ecs.uri);
        if auto_create {
            cmd.env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE").env(
                "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
                "myenv",
            );
        }
        let out = run(cmd.args(["--", "true"]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let reqs = api.requests();
        let b = &creation(&reqs).body;
        assert_eq!(b["execution_method_type"], "AWS ECS");
        assert_eq!(b["infrastructure_type"], "AWS");
        let d = &b["execution_method_details"];
        assert!(d["task_arn"].as_str().unwrap().contains(":task/"));
        assert_eq!(
            d["task_definition_arn"],
            "arn:aws:ecs:us-east-2:012345678910:task-definition/nginx:5"
        );
        assert_eq!(d["cluster_arn"], "default");
        assert_eq!(d["allocated_cpu_units"], 256);
        assert_eq!(d["allocated_memory_mb"], 512);
        assert_eq!(
            b["infrastructure_settings"]["network"]["region"],
            "us-east-2"
        );
        assert_eq!(
            b["infrastructure_settings"]["network"]["networks"][0]["network_mode"],
            "awsvpc"
        );
        let t = &b["task"];
        assert_eq!(t["execution_method_type"], "AWS ECS");
        assert_eq!(t["infrastructure_type"], "AWS");
        assert_eq!(
            t["infrastructure_settings"]["network"]["region"],
            "us-east-2"
        );
        let cap = &t["execution_method_capability_details"];
        assert_eq!(cap["cluster_arn"], "default");
        assert_eq!(cap["allocated_cpu_units"], 256);
        assert_eq!(t["was_auto_created"], auto_create);
        if auto_create {
            assert_eq!(t["passive"], true);
            assert_eq!(t["run_environment"]["name"], "myenv");
        }
        assert_eq!(last(&reqs).body["execution_method_type"], "AWS ECS");
    }
}

/// `test_passive_auto_created_task_with_unknown_em` of the original.
#[test]
fn unknown_execution_method_for_an_auto_created_task() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE")
        .env(
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "myenv",
        )
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    let b = &creation(&reqs).body;
    assert!(b.get("execution_method_details").is_none());
    assert_eq!(b["task"]["execution_method_type"], "Unknown");
    assert!(
        b["task"]
            .get("execution_method_capability_details")
            .is_none()
    );
    assert_eq!(b["task"]["was_auto_created"], true);
    assert_eq!(b["task"]["passive"], true);
}

#[test]
fn an_unreachable_ecs_endpoint_is_reported_as_unknown() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:9/v4")
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        creation(&api.requests()).body["execution_method_type"],
        "Unknown"
    );
}

#[test]
fn api_trouble_is_reported_to_rollbar() {
    let api = FakeApi::start();
    api.push_faults([Fault::Status(500)]);
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN", "rbtoken")
        .env("PROC_WRAPPER_ROLLBAR_BASE_URL", &api.url)
        .env("PROC_WRAPPER_DEPLOYMENT", "staging")
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let items = api.rollbar_items();
    assert_eq!(items.len(), 1, "{items:#?}");
    let (token, body) = &items[0];
    assert_eq!(token.as_deref(), Some("rbtoken"));
    let data = &body["data"];
    assert_eq!(data["environment"], "staging");
    assert_eq!(data["level"], "error");
    assert_eq!(data["context"], "proc_wrapper");
    assert_eq!(
        data["body"]["message"]["body"],
        "API Server not responding properly"
    );
    assert_eq!(data["body"]["message"]["task"]["uuid"], TASK_UUID);
    assert!(
        data["body"]["message"]["data"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    assert!(!body.to_string().contains(API_KEY));
}

/// ECS sidecar mode: no command; the wrapper reports the main container's exit.
#[test]
fn sidecar_mode_reports_the_main_containers_exit() {
    for code in [0, 3] {
        let mut task: Value =
            serde_json::from_str(&procwrapper_tests::fake_ecs::fixture("task.json")).unwrap();
        task["Containers"][1]["ExitCode"] = code.into();
        let ecs = procwrapper_tests::fake_ecs::FakeEcs::start_with_task(
            task.to_string(),
            "pause_container.json",
        );
        let api = FakeApi::start();
        let out = run(wrapper(&api)
            .env("ECS_CONTAINER_METADATA_URI_V4", &ecs.uri)
            .env("PROC_WRAPPER_MAIN_CONTAINER_NAME", "nginx-curl")
            .env("PROC_WRAPPER_MONITOR_CONTAINER_NAME", "~internal~ecs~pause"));
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        let reqs = api.requests();
        assert_eq!(creation(&reqs).body["execution_method_type"], "AWS ECS");
        let f = &last(&reqs).body;
        assert_eq!(f["status"], if code == 0 { "SUCCEEDED" } else { "FAILED" });
        assert_eq!(f["exit_code"], code);
    }
}

/// A signal ends a sidecar's watch by the same rule as a run: SIGTERM `ABORTED` (exit 0),
/// SIGINT `FAILED` (130), SIGHUP `ABORTED` (129).
#[test]
fn a_signal_ends_the_sidecars_watch_by_the_signal_rule() {
    for (sig, status, code) in [
        (Signal::SIGTERM, "ABORTED", 0),
        (Signal::SIGINT, "FAILED", 130),
        (Signal::SIGHUP, "ABORTED", 129),
    ] {
        let mut task: Value =
            serde_json::from_str(&procwrapper_tests::fake_ecs::fixture("task.json")).unwrap();
        // The main container is still running.
        task["Containers"][1]
            .as_object_mut()
            .unwrap()
            .remove("ExitCode");
        let ecs = procwrapper_tests::fake_ecs::FakeEcs::start_with_task(
            task.to_string(),
            "pause_container.json",
        );
        let api = FakeApi::start();
        let mut sidecar = spawn_piped(
            wrapper(&api)
                .env("ECS_CONTAINER_METADATA_URI_V4", &ecs.uri)
                .env("PROC_WRAPPER_MAIN_CONTAINER_NAME", "nginx-curl")
                .env("PROC_WRAPPER_MONITOR_CONTAINER_NAME", "~internal~ecs~pause"),
        );
        // Signalled once the execution exists (a signal during its creation ends the
        // wrapper before the watch, unreported).
        let mut log = std::io::BufReader::new(sidecar.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
            assert!(n > 0, "{sig}: the sidecar ended before creating: {seen}");
            seen.push_str(&line);
            if line.contains("created Task Execution") {
                break;
            }
        }
        signal_child(&sidecar, sig);
        let mut status_code = None;
        let ended = wait_until(LIMIT, || match sidecar.try_wait().unwrap() {
            Some(s) => {
                status_code = s.code();
                true
            }
            None => false,
        });
        if !ended {
            let _ = sidecar.kill();
        }
        std::io::Read::read_to_string(&mut log, &mut seen).unwrap();
        assert!(ended, "{sig}: the sidecar did not end: {seen}");
        assert_eq!(status_code, Some(code), "{sig}: {seen}");
        let reqs = api.requests();
        assert_eq!(reqs.len(), 2, "{sig}: {reqs:#?}");
        assert_eq!(last(&reqs).body["status"], status, "{sig}");
    }
}

#[test]
fn forced_ec2_metadata_comes_from_the_instance_metadata_service() {
    let imds = procwrapper_tests::fake_ecs::FakeEcs::start("container.json");
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_EXECUTION_METHOD_TYPE", "AWS EC2")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.base)
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    let b = &creation(&reqs).body;
    assert_eq!(b["execution_method_type"], "AWS EC2");
    assert_eq!(b["infrastructure_type"], "AWS");
    assert_eq!(
        b["execution_method_details"]["instance_id"],
        "i-0123456789abcdef0"
    );
    assert_eq!(b["execution_method_details"]["instance_type"], "t3.micro");
    assert_eq!(
        b["infrastructure_settings"]["network"]["region"],
        "us-east-2"
    );
    assert_eq!(b["ip_v4_addresses"], serde_json::json!(["10.1.2.3"]));
    assert_eq!(
        b["task"]["execution_method_capability_details"]["ami_id"],
        "ami-0abcdef1234567890"
    );
}

#[test]
fn a_signal_during_creation_retries_ends_the_wrapper_without_running_the_command() {
    let api = FakeApi::start();
    // The creation request hangs for ten minutes.
    api.push_faults([Fault::Delay(Duration::from_secs(600))]);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let wrapper = spawn_piped(
        wrapper(&api)
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
                "3600",
            )
            .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "3600")
            .args(["--", "touch"])
            .arg(&marker),
    );
    assert!(api.wait_for(LIMIT, |r| r.len() == 1));
    signal_child(&wrapper, Signal::SIGTERM);
    let out = wrapper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("received SIGTERM before the command started"));
    assert!(!marker.exists());
}

/// The whole environment the CloudReactor server gives a run it starts itself
/// (task_manager's `TaskExecution.make_environment`): the execution is known, the input is
/// JSON `null`, and the settings the Task has no value for are Python's `str(None)` or the
/// server's `-1`. The run must start and report like any other.
#[test]
fn a_run_the_server_started_reports_like_any_other() {
    let api = FakeApi::start();
    let uuid = "5c7d2a1e-3b9f-4e61-9a0c-7f1e2d3c4b5a";
    let dir = tempfile::tempdir().unwrap();
    let out = run(bare(BIN)
        .current_dir(dir.path())
        .env("PROC_WRAPPER_API_BASE_URL", &api.url)
        .env("PROC_WRAPPER_TASK_EXECUTION_UUID", uuid)
        .env("PROC_WRAPPER_TASK_NAME", "A Task")
        .env("PROC_WRAPPER_INPUT_VALUE", "null")
        .env("PROC_WRAPPER_MANAGED_PROBABILITY", "None")
        .env("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "None")
        .env("PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY", "None")
        .env("PROC_WRAPPER_DEPLOYMENT", "production")
        .env("PROC_WRAPPER_LOG_LEVEL", "INFO")
        .env(
            "PROC_WRAPPER_TASK_COMMAND",
            "echo \"input=$PROC_WRAPPER_INPUT_VALUE\" > seen; exit 0",
        )
        .env("PROC_WRAPPER_TASK_IS_SERVICE", "FALSE")
        .env("PROC_WRAPPER_PROCESS_MAX_RETRIES", "0")
        .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "3600")
        // The server writes this one with a leading space; nobody reads it.
        .env(
            " PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS",
            "30",
        )
        .env("PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION", "FALSE")
        .env("PROC_WRAPPER_API_KEY", API_KEY)
        .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "600")
        .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "30")
        .env("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "600")
        .env("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "300")
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
            "300",
        )
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
            "1800",
        )
        .env(
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS",
            "60",
        )
        .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "1800")
        .env("PROC_WRAPPER_API_RETRIES_FOR_FINAL_UPDATE", "None")
        .env(
            "PROC_WRAPPER_API_RETRIES_FOR_PROCESS_CREATION_CONFLICT",
            "None",
        )
        .env("PROC_WRAPPER_STATUS_UPDATE_PORT", "-1")
        .env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "FALSE")
        .env("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "-1")
        .env("PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES", "-1")
        .env("PROC_WRAPPER_PROCESS_IS_SERVICE", "FALSE"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen")).unwrap(),
        "input=null\n"
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    // The execution the server created is attached to, not created again.
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(reqs[0].path, format!("/api/v1/task_executions/{uuid}/"));
    assert_eq!(reqs[0].status(), Some("RUNNING"));
    assert!(reqs[0].body.get("task").is_none());
    assert_eq!(reqs[0].body["api_managed_probability"], 1.0);
    assert_eq!(reqs[0].body["process_timeout_seconds"], 3600);
    assert_eq!(reqs[0].body["heartbeat_interval_seconds"], 600);
    assert_eq!(reqs[0].body["status_update_message_max_bytes"], 65536);
    assert_eq!(reqs[1].path, format!("/api/v1/task_executions/{uuid}/"));
    assert_eq!(reqs[1].query.as_deref(), Some("content=false"));
    assert_eq!(reqs[1].status(), Some("SUCCEEDED"));
    assert_eq!(reqs[1].body["exit_code"], 0);
}

/// With merged logs (the default), the child's stdout and stderr share one pipe, as in
/// 6.0.2: the tail keeps the order the child wrote its lines in, down to the last ones.
#[test]
fn merged_log_tails_keep_the_order_of_the_child() {
    let script = "for i in $(seq 1 200); do echo out $i; echo err $i >&2; done; \
                  echo final error >&2; exit 2";
    let mut expected: Vec<String> = (191..=200)
        .flat_map(|i| [format!("out {i}\n"), format!("err {i}\n")])
        .collect();
    expected.push("final error\n".into());
    let expected: String = expected[expected.len() - 20..].concat();
    // Run it several times: interleaving bugs do not show every time.
    for _ in 0..5 {
        let api = FakeApi::start();
        let out = run(wrapper(&api)
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "20")
            .args(["--", "sh", "-c", script]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let f = last(&api.requests()).body.clone();
        assert_eq!(f["debug_log_tail"].as_str(), Some(expected.as_str()), "{f}");
        assert!(f.get("error_log_tail").is_none(), "{f}");
        // Both streams reach the wrapper's stdout, in the child's order.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.ends_with(&expected), "{stdout}");
        assert!(stdout.contains("out 1\nerr 1\nout 2\n"), "{stdout}");
    }
    // Kept apart, each stream reaches the wrapper's stream of the same name.
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")
        .env("PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS", "FALSE")
        .args(["--", "sh", "-c", script]));
    let f = last(&api.requests()).body.clone();
    assert_eq!(f["debug_log_tail"], "out 199\nout 200\n");
    assert_eq!(f["error_log_tail"], "err 200\nfinal error\n");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("out 200\n"));
    assert!(stderr(&out).contains("err 200\nfinal error\n"));
}

/// An auto-created Task asked to be active, with no execution method capability known
/// (no ECS or Lambda metadata), is sent passive with a warning, as 6.0.2 does: the real
/// server refuses an active Task with an Unknown execution method. A Task that is not
/// auto-created is active.
#[test]
fn passive_is_decided_as_in_the_original() {
    let api = FakeApi::start();
    let out = run(wrapper(&api)
        .env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE")
        .env(
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "myenv",
        )
        .args(["--force-task-active", "--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Task may not be active unless execution method capability can be determined"
        ),
        "{}",
        stderr(&out)
    );
    let reqs = api.requests();
    assert_eq!(creation(&reqs).body["task"]["passive"], true);
    assert_eq!(last(&reqs).status(), Some("SUCCEEDED"));

    let api = FakeApi::start();
    let out = run(wrapper(&api).args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = api.requests();
    assert_eq!(creation(&reqs).body["task"]["passive"], false);
    assert_eq!(creation(&reqs).body["task"]["was_auto_created"], false);
}
