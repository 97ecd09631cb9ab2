//! Embedded mode (`proc_wrapper::managed::ManagedCall`) against the fake API server: the
//! original's `test_embedded_*` cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proc_wrapper::api::StatusResult;
use proc_wrapper::managed::{ManagedCall, ManagedError};
use proc_wrapper::secrets::SecretError;
use proc_wrapper::settings::SettingsError;
use proc_wrapper::status::StatusUpdate;
use procwrapper_tests::fake_api::{API_KEY, FakeApi, TASK_UUID};
use serde_json::{Map, Value, json};

fn online(api: &FakeApi, extra: &[(&str, &str)]) -> ManagedCall {
    let mut vars: Vec<(String, String)> = vec![
        ("PROC_WRAPPER_TASK_UUID".into(), TASK_UUID.into()),
        ("PROC_WRAPPER_API_BASE_URL".into(), api.url.clone()),
        ("PROC_WRAPPER_API_KEY".into(), API_KEY.into()),
        ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS".into(), "1".into()),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ManagedCall::new().with_env(vars)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn offline_success_and_failure() {
    let r: Result<String, ManagedError<String>> = rt().block_on(
        ManagedCall::new()
            .with_env([("PROC_WRAPPER_OFFLINE_MODE", "TRUE")])
            .input(json!("duper"))
            .call(
                |ctx| async move { Ok(format!("super{}", ctx.input.unwrap().as_str().unwrap())) },
            ),
    );
    assert_eq!(r.unwrap(), "superduper");
    let r: Result<(), _> = rt().block_on(
        ManagedCall::new()
            .with_env([("PROC_WRAPPER_OFFLINE_MODE", "1")])
            .call(|_| async { Err::<(), _>("Nope!".to_owned()) }),
    );
    match r {
        Err(ManagedError::Function(e)) => assert_eq!(e, "Nope!"),
        other => panic!("{other:?}"),
    }
}

/// `test_embedded_mode_with_server`: failing 0, 1 or 2 times with 2 retries, then succeeding
/// after a status update.
#[test]
fn with_server_retries_and_status_updates() {
    for failures in 0..=2u32 {
        let api = FakeApi::start();
        let call = online(
            &api,
            &[
                ("PROC_WRAPPER_PROCESS_MAX_RETRIES", "2"),
                ("PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS", "0.01"),
                (
                    "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
                    "myenv",
                ),
            ],
        );
        let r = rt().block_on(call.call(|ctx| async move {
            if ctx.attempt <= failures {
                return Err(format!("failure {}", ctx.attempt));
            }
            let mut extra = Map::new();
            extra.insert("extra".into(), json!("yo"));
            let sent = ctx
                .update_status(StatusUpdate {
                    success_count: Some(4),
                    error_count: Some(5),
                    skipped_count: Some(6),
                    expected_count: Some(7),
                    last_status_message: Some("hello baby!".into()),
                    extra_props: Some(extra),
                })
                .await;
            Ok(format!("{sent:?}"))
        }));
        assert_eq!(
            r.unwrap(),
            format!("{:?}", StatusResult::Sent),
            "{failures}"
        );
        let reqs = api.requests();
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].body["status"], "RUNNING");
        assert_eq!(reqs[0].body["embedded_mode"], true);
        for i in 0..failures {
            let r = &reqs[1 + i as usize];
            assert_eq!(r.body["status"], "RUNNING");
            assert_eq!(r.body["failed_attempts"], i + 1);
            assert!(r.body.get("exit_code").is_none());
        }
        let status = &reqs[1 + failures as usize].body;
        assert_eq!(status["success_count"], 4);
        assert_eq!(status["error_count"], 5);
        assert_eq!(status["skipped_count"], 6);
        assert_eq!(status["expected_count"], 7);
        assert_eq!(status["last_status_message"], "hello baby!");
        assert_eq!(status["extra"], "yo");
        assert!(status["last_app_heartbeat_at"].is_string());
        let last = &reqs.last().unwrap().body;
        assert_eq!(last["status"], "SUCCEEDED");
        assert!(last.get("exit_code").is_none());
        assert!(last.get("failed_attempts").is_none());
        assert_eq!(last["output_value"], "Sent");
    }
}

#[test]
fn the_last_failure_is_reported_and_the_error_returned() {
    let api = FakeApi::start();
    let r: Result<(), _> = rt().block_on(
        online(&api, &[("PROC_WRAPPER_PROCESS_MAX_RETRIES", "1")])
            .call(|_| async { Err::<(), _>("broken".to_owned()) }),
    );
    assert!(matches!(r, Err(ManagedError::Function(ref e)) if e == "broken"));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(reqs[2].body["status"], "FAILED");
    assert_eq!(reqs[2].body["failed_attempts"], 2);
}

/// `test_embedded_mode_with_params_from_input`: an execution UUID in the input is adopted.
#[test]
fn execution_uuid_from_the_input_is_adopted() {
    let api = FakeApi::start();
    // The fake must know the execution: create it first.
    let _ = rt().block_on(online(&api, &[]).call(|_| async { Ok::<_, String>(1) }));
    let uuid = api.requests()[1]
        .path
        .trim_start_matches("/api/v1/task_executions/")
        .trim_end_matches('/')
        .to_owned();
    let api2 = FakeApi::start();
    let input = json!({"cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": uuid}}}});
    let r = rt().block_on(
        online(&api2, &[])
            .input(input)
            .call(|_| async { Ok::<_, String>(69) }),
    );
    assert_eq!(r.unwrap(), 69);
    let reqs = api2.requests();
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(reqs[0].path, format!("/api/v1/task_executions/{uuid}/"));
    assert_eq!(reqs[0].body["status"], "RUNNING");
    assert_eq!(reqs.last().unwrap().body["status"], "SUCCEEDED");
}

/// `test_embedded_mode_with_sampling`.
#[test]
fn sampled_out_calls_report_only_failures() {
    let api = FakeApi::start();
    let r = rt().block_on(
        online(
            &api,
            &[
                ("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-9"),
                ("PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "0"),
            ],
        )
        .call(|_| async { Ok::<_, String>("superduper") }),
    );
    assert_eq!(r.unwrap(), "superduper");
    assert!(api.requests().is_empty());
    let r: Result<(), _> = rt().block_on(
        online(&api, &[("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-9")])
            .call(|_| async { Err::<(), _>("no".to_owned()) }),
    );
    assert!(r.is_err());
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].body["status"], "FAILED");
}

/// Configuration and secrets reach the function.
#[test]
fn resolved_configuration_and_environment_reach_the_function() {
    let mut initial = Map::new();
    initial.insert("app_stuff".into(), json!({"a": 42}));
    initial.insert("b__to_resolve".into(), json!("CONFIG:$.app_stuff.a"));
    let r = rt().block_on(
        ManagedCall::new()
            .with_env([
                ("PROC_WRAPPER_OFFLINE_MODE", "TRUE"),
                ("SECRET_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:s3cr3t"),
            ])
            .initial_config(initial)
            .call(|ctx| async move {
                let a = ctx.config["app_stuff"]["a"].as_i64().unwrap();
                let b = ctx.config["b"].clone();
                let secret = ctx.config["ENV"]["SECRET"].clone();
                Ok::<_, String>((a + 58, b, secret))
            }),
    );
    assert_eq!(r.unwrap(), (100, json!(42), Value::String("s3cr3t".into())));
    let r: Result<(), _> = rt().block_on(
        ManagedCall::new()
            .with_env([
                ("PROC_WRAPPER_OFFLINE_MODE", "TRUE"),
                ("X_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:MISSING"),
            ])
            .call(|_| async { Ok::<_, String>(()) }),
    );
    match r {
        Err(ManagedError::Settings(SettingsError::Unresolved(failures))) => {
            let names: Vec<&str> = failures.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["X"]);
            assert!(
                matches!(failures[0].error, SecretError::NotResolved(_)),
                "{failures:?}"
            );
        }
        other => panic!("expected an unresolved variable, got {other:?}"),
    }
}

/// The runnable example reports to the API server.
#[test]
fn the_example_program_reports_its_work() {
    let api = FakeApi::start();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args([
            "run",
            "-q",
            "-p",
            "cloudreactor-procwrapper",
            "--example",
            "managed_call",
        ])
        .env("PROC_WRAPPER_TASK_UUID", TASK_UUID)
        .env("PROC_WRAPPER_API_BASE_URL", &api.url)
        .env("PROC_WRAPPER_API_KEY", API_KEY)
        .env("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "600")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"rows_processed":3}"#
    );
    let reqs = api.requests();
    let last = &reqs.last().unwrap().body;
    assert_eq!(last["status"], "SUCCEEDED");
    assert_eq!(last["output_value"], json!({"rows_processed": 3}));
    // The first status update goes at once; the last counts ride on the final update.
    assert_eq!(reqs[1].body["success_count"], 1);
    assert_eq!(last["success_count"], 3);
    assert_eq!(last["expected_count"], 3);
}

/// `test_embedded_mode_with_params_from_config`: settings in `proc_wrapper_params` of the
/// configuration win over the environment.
#[test]
fn settings_from_proc_wrapper_params_in_the_configuration() {
    let api = FakeApi::start();
    let mut initial = Map::new();
    initial.insert(
        "proc_wrapper_params".into(),
        json!({
            "task": {"name": "A task", "was_auto_created": true, "passive": true,
                     "run_environment": {"name": "myenv"}},
            "log_level": "DEBUG",
            "api_base_url": api.url,
            "api_key": API_KEY,
            "process_max_retries": 1
        }),
    );
    initial.insert("app_stuff".into(), json!({"a": 42}));
    let r = rt().block_on(
        ManagedCall::new()
            .with_env([("PROC_WRAPPER_API_BASE_URL", "http://127.0.0.1:9")])
            .initial_config(initial)
            .input(json!(58))
            .call(|ctx| async move {
                let a = ctx.config["app_stuff"]["a"].as_i64().unwrap();
                Ok::<_, String>(a + ctx.input.unwrap().as_i64().unwrap())
            }),
    );
    assert_eq!(r.unwrap(), 100);
    let reqs = api.requests();
    let task = &reqs[0].body["task"];
    assert_eq!(task["name"], "A task");
    assert_eq!(task["was_auto_created"], true);
    assert_eq!(task["passive"], true);
    assert_eq!(task["run_environment"]["name"], "myenv");
    assert_eq!(reqs[0].body["process_max_retries"], 1);
    assert_eq!(reqs[0].body["wrapper_log_level"], "DEBUG");
    assert_eq!(reqs.last().unwrap().body["status"], "SUCCEEDED");
}

/// The final update of the one execution the fake recorded.
fn final_body(api: &FakeApi) -> Value {
    api.requests()
        .into_iter()
        .rev()
        .find(|r| r.status().is_some_and(|s| s != "RUNNING"))
        .expect("a final update")
        .body
}

/// `test_embedded_mode_with_log_capture`: the program's log events, through
/// `EmbeddedLogLayer`, make the failure's log tail: the last 3 lines at INFO and above, in the
/// error tail or, when merged, the debug tail.
#[test]
fn log_events_make_the_log_tails() {
    use tracing_subscriber::layer::SubscriberExt;
    for merge in [true, false] {
        let api = FakeApi::start();
        let call = online(
            &api,
            &[
                ("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3"),
                (
                    "PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS",
                    if merge { "TRUE" } else { "FALSE" },
                ),
            ],
        );
        let subscriber = tracing_subscriber::registry().with(call.log_layer());
        let r: Result<(), _> = tracing::subscriber::with_default(subscriber, || {
            rt().block_on(call.call(|_| async {
                tracing::info!(target: "my_app", "This should be truncated");
                tracing::info!(target: "my_app", "This is an info message");
                tracing::error!(target: "my_app", "This is an error");
                tracing::debug!(target: "my_app", "This is a debug message");
                tracing::error!(target: "my_app", "another error message");
                Err::<(), _>("failed on purpose".to_owned())
            }))
        });
        assert!(matches!(r, Err(ManagedError::Function(_))));
        let creation = &api.requests()[0].body;
        assert_eq!(creation["num_log_lines_sent_on_failure"], 3);
        let body = final_body(&api);
        assert_eq!(body["status"], "FAILED");
        let (tail, other) = if merge {
            ("debug_log_tail", "error_log_tail")
        } else {
            ("error_log_tail", "debug_log_tail")
        };
        let text = body[tail]
            .as_str()
            .unwrap_or_else(|| panic!("no {tail}: {body:#}"));
        assert!(!text.contains("truncated"), "{text}");
        assert!(text.contains("another error message"), "{text}");
        assert!(!text.contains("debug message"), "{text}");
        if merge {
            assert!(text.contains("an info message\n"), "{text}");
            assert!(body.get(other).is_none());
        } else {
            // Apart, INFO lines go to the debug tail and errors to the error tail.
            assert!(body[other].as_str().unwrap().contains("an info message\n"));
        }
    }
}

/// `test_embedded_mode_with_debug_log_capture`: `debug_output` lines make the success's debug
/// tail (the last 3).
#[test]
fn debug_output_makes_the_debug_tail() {
    let api = FakeApi::start();
    let call = online(&api, &[("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS", "3")]);
    let r = rt().block_on(call.call(|ctx| async move {
        for line in ["Line one", "Line two", "Line three", "Line four"] {
            ctx.debug_output(line);
        }
        Ok::<_, String>("yes")
    }));
    assert_eq!(r.unwrap(), "yes");
    let body = final_body(&api);
    let tail = body["debug_log_tail"].as_str().unwrap();
    assert!(!tail.contains("one"), "{tail}");
    assert!(
        tail.contains("Line two\n") && tail.contains("Line four"),
        "{tail}"
    );
}

/// Embedded mode hides resolved secret values in its tails too (README "Differences" D42),
/// in the lines of `debug_output` and of the program's log events, unless
/// `PROC_WRAPPER_LOG_SECRETS`; and it applies the byte cap (D43).
#[test]
fn resolved_secrets_are_redacted_from_the_embedded_tails() {
    use tracing_subscriber::layer::SubscriberExt;
    let secret = "embedded-token-1234";
    let failing_call = |extra: &[(&str, &str)]| {
        let api = FakeApi::start();
        let mut vars = vec![
            ("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "5"),
            ("PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS", "FALSE"),
            ("TOKEN_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:RAW_TOKEN"),
            ("RAW_TOKEN", secret),
        ];
        vars.extend_from_slice(extra);
        let call = online(&api, &vars);
        let subscriber = tracing_subscriber::registry().with(call.log_layer());
        let r: Result<(), _> = tracing::subscriber::with_default(subscriber, || {
            rt().block_on(call.call(|ctx| async move {
                let token = ctx.config["ENV"]["TOKEN"].as_str().unwrap().to_owned();
                ctx.debug_output(&format!("using token {token}"));
                tracing::error!(target: "my_app", "refused: {token}");
                Err::<(), _>("failed on purpose".to_owned())
            }))
        });
        assert!(matches!(r, Err(ManagedError::Function(_))));
        final_body(&api)
    };
    let body = failing_call(&[]);
    assert_eq!(body["status"], "FAILED");
    assert_eq!(body["debug_log_tail"], "using token [REDACTED]\n");
    let error_tail = body["error_log_tail"].as_str().unwrap();
    assert!(error_tail.contains("refused: [REDACTED]"), "{error_tail}");
    assert!(!body.to_string().contains(secret), "{body:#}");
    // With log_secrets, as written.
    let body = failing_call(&[("PROC_WRAPPER_LOG_SECRETS", "TRUE")]);
    assert_eq!(
        body["debug_log_tail"],
        format!("using token {secret}\n").as_str()
    );
    // The byte cap: the debug line (23 bytes redacted) does not fit in 20; its end does.
    let body = failing_call(&[("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", "20")]);
    assert_eq!(body["debug_log_tail"], "ng token [REDACTED]\n");
}

/// Input and result values in embedded mode: the input from the variable named by
/// `input_env_var_name` (JSON), sent with `send_input_value`; a function that returns nothing
/// reports the result file, which is deleted afterwards.
#[test]
fn input_from_a_variable_and_output_from_the_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.json");
    let api = FakeApi::start();
    let call = online(
        &api,
        &[
            ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
            ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
            ("PROC_WRAPPER_SEND_INPUT_VALUE", "TRUE"),
            ("THE_INPUT", r#"{"a": 7}"#),
            ("PROC_WRAPPER_RESULT_FILENAME", result.to_str().unwrap()),
        ],
    );
    let path = result.clone();
    let r = rt().block_on(call.call(|ctx| {
        let path = path.clone();
        async move {
            assert_eq!(ctx.input, Some(json!({"a": 7})));
            std::fs::write(&path, r#"{"b": 8}"#).unwrap();
            Ok::<(), String>(())
        }
    }));
    assert!(r.is_ok());
    assert_eq!(api.requests()[0].body["input_value"], json!({"a": 7}));
    assert_eq!(final_body(&api)["output_value"], json!({"b": 8}));
    assert!(!result.exists(), "the result file is deleted");
}

#[test]
fn an_unresolved_variable_is_reported_as_a_failed_run_and_the_function_never_runs() {
    let api = FakeApi::start();
    let ran = std::sync::atomic::AtomicBool::new(false);
    let r: Result<(), _> = rt().block_on(
        online(&api, &[("X_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:MISSING")]).call(|_| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(())
        }),
    );
    assert!(
        matches!(r, Err(ManagedError::Settings(SettingsError::Unresolved(_)))),
        "{r:?}"
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].status(), Some("FAILED"));
    let details = &requests[0].body["error_details"];
    assert_eq!(details["kind"], json!("unresolved_secrets"), "{details}");
    assert_eq!(details["failures"][0]["name"], json!("X"), "{details}");
    assert_eq!(requests[0].body["embedded_mode"], json!(true));
}
