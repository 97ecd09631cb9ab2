//! End-to-end tests of the real `cloudreactor-extension` binary and a real `lambda_runtime`
//! function (`examples/test_function.rs`), driven by `lambda-simulator`, reporting to the fake
//! CloudReactor API.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use lambda_simulator::process::{ManagedProcess, ProcessConfig, ProcessRole};
use lambda_simulator::{InvocationBuilder, InvocationStatus, ShutdownReason, Simulator};
use procwrapper_tests::fake_api::{FakeApi, Fault, Recorded};
use procwrapper_tests::lambda::until;
use procwrapper_tests::net::{free_udp_port, udp_addresses};
use serde_json::{Value, json};

const FUNCTION: &str = "ext-test-fn";
const LIMIT: Duration = Duration::from_secs(20);

fn extension_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudreactor-extension"))
}

/// The example function, built next to the binaries by `cargo test`.
fn function_bin() -> PathBuf {
    let path = extension_bin()
        .parent()
        .expect("UNWRAP: binaries live in a folder")
        .join("examples/test_function");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p cloudreactor-extension --examples`",
        path.display()
    );
    path
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("UNWRAP: a free port")
        .port()
}

struct Harness {
    sim: Simulator,
    api: FakeApi,
    extension: Option<ManagedProcess>,
    _function: ManagedProcess,
    status_port: u16,
}

struct Options {
    api_url: Option<String>,
    env: Vec<(&'static str, String)>,
    invocation_timeout: Duration,
    /// Start the extension (else the function is alone).
    extension: bool,
    /// Run the handler under runtime-lib's Lambda handler wrapper.
    wrapped: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_url: None,
            env: Vec::new(),
            invocation_timeout: Duration::from_secs(30),
            extension: true,
            wrapped: false,
        }
    }
}

async fn start(options: Options) -> Harness {
    let sim = Simulator::builder()
        .function_name(FUNCTION)
        .account_id("123456789012")
        .invocation_timeout(options.invocation_timeout)
        // The simulator stops waiting for extensions after this and emits platform.report
        // anyway (its default, 2 s, is shorter than some of the API delays used here).
        .extension_ready_timeout(LIMIT)
        .build()
        .await
        .expect("UNWRAP: the simulator starts");
    let api = FakeApi::start();
    let status_port = free_udp_port();
    let mut common = vec![
        (
            "PROC_WRAPPER_API_BASE_URL",
            options.api_url.clone().unwrap_or_else(|| api.url.clone()),
        ),
        (
            "PROC_WRAPPER_API_KEY",
            procwrapper_tests::fake_api::API_KEY.to_owned(),
        ),
        (
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "test".to_owned(),
        ),
        (
            "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT",
            status_port.to_string(),
        ),
        (
            "PROC_WRAPPER_LAMBDA_EXTENSION",
            if options.extension { "TRUE" } else { "FALSE" }.to_owned(),
        ),
        (
            "TEST_FUNCTION_WRAPPED",
            if options.wrapped { "TRUE" } else { "FALSE" }.to_owned(),
        ),
        ("PROC_WRAPPER_LOG_LEVEL", "DEBUG".to_owned()),
    ];
    common.extend(options.env);
    let extension = options.extension.then(|| {
        let mut ext = ProcessConfig::new(extension_bin(), ProcessRole::Extension);
        for (k, v) in &common {
            ext = ext.env(*k, v.clone());
        }
        sim.spawn_process_with_config(ext)
            .expect("UNWRAP: the extension starts")
    });
    if options.extension {
        assert!(
            sim.wait_for(|| async { sim.extension_count().await >= 1 }, LIMIT)
                .await
                .is_ok(),
            "the extension did not register"
        );
        // The extension binds its status port after registering and before its first
        // `/next`; Lambda starts no invocation before that `/next`, but the simulator may.
        // A message sent before the bind would be lost, so wait for the port to be taken.
        assert!(
            until(LIMIT, || !udp_addresses(status_port).is_empty()).await,
            "the extension did not listen on its status port"
        );
    }
    let mut func = ProcessConfig::new(function_bin(), ProcessRole::Runtime);
    for (k, v) in &common {
        func = func.env(*k, v.clone());
    }
    let function = sim
        .spawn_process_with_config(func)
        .expect("UNWRAP: the function starts");
    Harness {
        sim,
        api,
        extension,
        _function: function,
        status_port,
    }
}

impl Harness {
    /// Invokes the function and waits until it answered and the extension is ready again.
    async fn invoke(&self, payload: Value) -> (String, InvocationStatus) {
        let id = self.sim.enqueue_payload(payload).await;
        let status = procwrapper_tests::lambda::invocation_done(&self.sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        if self.extension.is_some() {
            assert!(
                procwrapper_tests::lambda::extensions_ready(&self.sim, &id, LIMIT).await,
                "the extension did not call /next again"
            );
        }
        (id, status)
    }

    /// Requests about the execution created for `request_id`: its creation, then updates.
    fn requests_for(&self, request_id: &str) -> Vec<Recorded> {
        let all = self.api.requests();
        let is_creation = |r: &Recorded| {
            r.method == "POST" && r.body["execution_method_details"]["aws_request_id"] == request_id
        };
        // The fake numbers executions in creation order.
        let Some(n) = all
            .iter()
            .filter(|r| r.method == "POST")
            .position(is_creation)
        else {
            return Vec::new();
        };
        let uuid = format!("d9554f00-eaeb-4a16-96e4-{:012}", n + 1);
        all.into_iter()
            .filter(|r| is_creation(r) || r.path.contains(&uuid))
            .collect()
    }

    async fn shutdown(mut self, reason: ShutdownReason) -> (FakeApi, Option<i32>) {
        self.sim.graceful_shutdown(reason).await;
        let mut code = None;
        if let Some(extension) = &mut self.extension {
            until(LIMIT, || {
                code = extension
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|s| s.code().unwrap_or(-1));
                code.is_some()
            })
            .await;
        }
        (self.api, code)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_success_is_one_creation_with_the_final_status_and_lambda_metadata() {
    let h = start(Options::default()).await;
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert!(
        h.api.wait_for(LIMIT, |r| !r.is_empty()),
        "nothing was reported"
    );
    let reqs = h.requests_for(&id);
    let create = &reqs[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.authorization.as_deref(), Some("Bearer SOMEAPIKEY"));
    let b = &create.body;
    assert_eq!(b["status"], "SUCCEEDED", "{b:#}");
    assert_eq!(b["task"]["name"], FUNCTION);
    assert_eq!(b["task"]["was_auto_created"], true);
    assert_eq!(b["task"]["passive"], true);
    assert_eq!(b["task"]["run_environment"]["name"], "test");
    assert_eq!(b["execution_method_type"], "AWS Lambda");
    assert_eq!(b["infrastructure_type"], "AWS");
    let d = &b["execution_method_details"];
    assert_eq!(d["aws_request_id"], id.as_str());
    assert_eq!(d["function_name"], FUNCTION);
    assert_eq!(d["cold_start"], true);
    assert_eq!(d["account_id"], "123456789012");
    assert!(
        d["function_arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:lambda:")),
        "{d:#}"
    );
    assert!(d["deadline_at"].is_string(), "{d:#}");
    assert_eq!(
        b["task"]["execution_method_capability_details"]["function_name"],
        FUNCTION
    );
    assert!(b["finished_at"].is_string());
    assert!(
        b["other_runtime_metadata"]["aws_lambda"]["duration_ms"].is_number(),
        "{b:#}"
    );
    assert_eq!(b["wrapper_family"], "CloudReactor Rust proc_wrapper");

    // The second invocation is warm, and its own execution.
    let (id2, _) = h.invoke(json!({})).await;
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().filter(|r| r.method == "POST").count()
                >= 2)
    );
    let second = &h.requests_for(&id2)[0];
    assert_eq!(second.body["execution_method_details"]["cold_start"], false);
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0), "the extension exits 0 after SHUTDOWN");
    assert_eq!(
        api.requests().iter().filter(|r| r.method == "POST").count(),
        2,
        "one Task Execution per invocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_is_failed_with_its_error_type() {
    let h = start(Options::default()).await;
    let (id, status) = h.invoke(json!({"fail": true})).await;
    assert_eq!(status, InvocationStatus::Error);
    assert!(h.api.wait_for(LIMIT, |r| !r.is_empty()));
    let b = &h.requests_for(&id)[0].body;
    assert_eq!(b["status"], "FAILED", "{b:#}");
    let lambda = &b["other_runtime_metadata"]["aws_lambda"];
    assert_eq!(lambda["runtime_done_status"], "error", "{b:#}");
    assert_eq!(
        b["error_details"],
        json!({"kind": "lambda_error", "runtime_done_status": "error"}),
        "{b:#}"
    );
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_invocation_is_running_first_then_final_with_status_updates_and_the_late_report() {
    let h = start(Options::default()).await;
    let (id, status) = h.invoke(json!({"sleep_ms": 600, "success_count": 7})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert!(h.api.wait_for(LIMIT, |r| r.len() >= 2));
    let reqs = h.requests_for(&id);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].body["status"], "RUNNING");
    let last = &reqs[1];
    assert_eq!(last.method, "PATCH");
    assert_eq!(last.query.as_deref(), Some("content=false"));
    assert_eq!(last.body["status"], "SUCCEEDED", "{:#}", last.body);
    assert_eq!(
        last.body["success_count"], 7,
        "the function's status update"
    );
    assert_eq!(last.body["last_status_message"], "counted");
    // platform.report of this invocation arrives after the extension moved on to /next,
    // and is sent as an update that repeats the final status (the server takes an update
    // without one for RUNNING, refused after the end).
    let is_report = |r: &Recorded| {
        r.method == "PATCH"
            && r.body["other_runtime_metadata"]["aws_lambda"]["billed_duration_ms"].is_number()
    };
    assert!(
        h.api.wait_for(LIMIT, |r| r.iter().any(is_report)),
        "no report: {:#?}",
        h.api.requests()
    );
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    let report = api
        .requests()
        .into_iter()
        .find(is_report)
        .expect("UNWRAP: seen above");
    assert_eq!(report.body["status"], "SUCCEEDED", "{:#}", report.body);
    let lambda = &report.body["other_runtime_metadata"]["aws_lambda"];
    assert!(lambda["billed_duration_ms"].is_number(), "{lambda:#}");
    assert!(lambda["memory_size_mb"].is_number(), "{lambda:#}");
    assert!(lambda["duration_ms"].is_number(), "{lambda:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_an_invocation_is_sent_during_the_next_one() {
    let h = start(Options::default()).await;
    let (first, _) = h.invoke(json!({})).await;
    let (_second, _) = h.invoke(json!({"sleep_ms": 50})).await;
    let (_third, _) = h.invoke(json!({})).await;
    assert!(
        h.api.wait_for(LIMIT, |r| r
            .iter()
            .any(|r| r.method == "PATCH" && is_late_report(r))),
        "no report update before SHUTDOWN"
    );
    let reqs = h.requests_for(&first);
    let report = reqs
        .iter()
        .find(|r| r.method == "PATCH" && is_late_report(r))
        .expect("UNWRAP: the first invocation's report");
    assert!(report.body["other_runtime_metadata"]["aws_lambda"]["max_memory_used_mb"].is_number());
    // The server's own field, from platform.report's maxMemoryUsedMB.
    assert_eq!(
        report.body["max_memory_mb"],
        report.body["other_runtime_metadata"]["aws_lambda"]["max_memory_used_mb"],
        "{:#}",
        report.body
    );
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_down_every_invocation_completes_and_the_extension_keeps_going() {
    // The extension alone, then the wrapped handler reporting by itself.
    for (extension, wrapped) in [(true, false), (false, true)] {
        let closed = format!("http://127.0.0.1:{}", free_tcp_port());
        let h = start(Options {
            api_url: Some(closed),
            env: vec![("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS", "100".into())],
            extension,
            wrapped,
            ..Options::default()
        })
        .await;
        for i in 0..5 {
            let (_, status) = h.invoke(json!({"i": i})).await;
            assert_eq!(status, InvocationStatus::Success);
        }
        let (_, status) = h.invoke(json!({"fail": true})).await;
        assert_eq!(
            status,
            InvocationStatus::Error,
            "errors are still the function's own"
        );
        assert_eq!(h.sim.get_init_error().await, None, "no init error");
        let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
        if extension {
            assert_eq!(
                code,
                Some(0),
                "the extension exits 0 though nothing was reported"
            );
        }
        assert!(api.requests().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_api_key_or_an_unresolvable_secret_turns_reporting_off_but_not_the_function() {
    for env in [
        vec![("PROC_WRAPPER_API_KEY", "WRONG".to_owned())],
        vec![
            (
                "PROC_WRAPPER_API_KEY",
                "FILE:/nonexistent/cloudreactor-key".to_owned(),
            ),
            ("PROC_WRAPPER_RESOLVE_SECRETS", "TRUE".to_owned()),
        ],
    ] {
        let h = start(Options {
            env,
            ..Options::default()
        })
        .await;
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(status, InvocationStatus::Success);
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(status, InvocationStatus::Success);
        assert_eq!(h.sim.get_init_error().await, None);
        let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
        // A wrong key is rejected by the server; nothing is accepted.
        assert!(
            api.requests()
                .iter()
                .all(|r| r.authorization.as_deref() != Some("Bearer SOMEAPIKEY"))
        );
    }
}

/// Posts a telemetry batch to the extension's listener, as Lambda does.
async fn post_telemetry(port: u16, body: &str) -> u16 {
    let client = reqwest::Client::new();
    client
        .post(format!("http://127.0.0.1:{port}/"))
        .body(body.to_owned())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_broken_telemetry_is_answered_200_and_a_timeout_status_is_reported() {
    let port = free_tcp_port();
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", port.to_string())],
        ..Options::default()
    })
    .await;
    for body in [
        r#"[{"time":"2026-11-27T10:00:00Z","type":"platform.restoreStart","record":{}},
            {"type":"platform.initStart","record":{"initializationType":"lambda-managed-instances"}},
            {"type":"brand.new.type","record":[1,2,3]}, 17, "x"]"#,
        "this is not JSON",
        r#"{"type":"platform.start"}"#,
    ] {
        assert_eq!(post_telemetry(port, body).await, 200, "{body}");
    }
    let (_, status) = h.invoke(json!({})).await;
    assert_eq!(
        status,
        InvocationStatus::Success,
        "the extension still works"
    );
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("SUCCEEDED")))
    );

    // What the simulator cannot produce: a `timeout` runtimeDone, from a fixture.
    let id = h.sim.enqueue_payload(json!({"sleep_ms": 1500})).await;
    assert!(
        h.api.wait_for(LIMIT, |r| r.iter().any(
            |r| r.body["execution_method_details"]["aws_request_id"] == id.as_str()
        )),
        "the long invocation was not created"
    );
    let fixture = include_str!("fixtures/runtime_done_timeout.json").replace("REQUEST_ID", &id);
    assert_eq!(post_telemetry(port, &fixture).await, 200);
    assert!(
        h.api.wait_for(LIMIT, |r| r
            .iter()
            .any(|r| r.status() == Some("TERMINATED_AFTER_TIME_OUT"))),
        "the timeout was not reported: {:#?}",
        h.api.requests()
    );
    procwrapper_tests::lambda::invocation_done(&h.sim, &id, LIMIT)
        .await
        .expect("UNWRAP: the invocation completes");
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    let finals: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.status().is_some_and(|s| s != "RUNNING") && !is_late_report(r))
        .collect();
    assert_eq!(
        finals.len(),
        2,
        "one final status per invocation: {finals:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_reason_timeout_closes_the_open_invocation() {
    let h = start(Options {
        invocation_timeout: Duration::from_millis(800),
        ..Options::default()
    })
    .await;
    let id = h.sim.enqueue_payload(json!({"sleep_ms": 3000})).await;
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("RUNNING"))),
        "the invocation was not created"
    );
    // Past the deadline the extension stops waiting and polls /next, where SHUTDOWN arrives.
    assert!(h.sim.get_invocation_state(&id).await.is_some());
    let (api, code) = h.shutdown(ShutdownReason::Timeout).await;
    assert_eq!(code, Some(0));
    let last = api.requests().pop().expect("UNWRAP: requests were made");
    assert_eq!(
        last.status(),
        Some("TERMINATED_AFTER_TIME_OUT"),
        "{:#?}",
        api.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_execution_uuid_handed_over_by_the_function_is_updated_not_created() {
    // The hand-off makes the creation immediate; the long delay only keeps a loaded test
    // machine from creating the execution before the test's message arrives.
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_CREATION_DELAY_MS", "10000".into())],
        ..Options::default()
    })
    .await;
    let known = "8ae2c2d4-7c8b-4b30-a5c0-6d5a56bbd3d0";
    // What the handler wrapper of runtime-lib sends at the start of an invocation.
    let id = h
        .sim
        .enqueue(
            InvocationBuilder::new()
                .payload(json!({"sleep_ms": 300}))
                .build()
                .expect("UNWRAP: a valid invocation"),
        )
        .await;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("UNWRAP: a socket");
    let line = format!(
        "{}\n",
        json!({"lambda_request_id": id, "lambda_hand_off": "start", "task_execution_uuid": known, "log_stream": "2026/11/27/[$LATEST]abc"})
    );
    socket
        .send_to(line.as_bytes(), ("127.0.0.1", h.status_port))
        .expect("UNWRAP: sent");
    let end = format!(
        "{}\n",
        json!({"lambda_request_id": id, "lambda_hand_off": "end", "output_value": {"rows": 3}})
    );
    socket
        .send_to(end.as_bytes(), ("127.0.0.1", h.status_port))
        .expect("UNWRAP: sent");
    procwrapper_tests::lambda::invocation_done(&h.sim, &id, LIMIT)
        .await
        .expect("UNWRAP: completes");
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("SUCCEEDED")))
    );
    let reqs = h.api.requests();
    assert!(reqs.iter().all(|r| r.method == "PATCH"), "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.path.contains(known)));
    assert_eq!(reqs[0].body["status"], "RUNNING");
    assert!(reqs[0].body.get("task").is_none());
    assert_eq!(
        reqs[0].body["infrastructure_settings"]["logging"]["options"]["stream"],
        "2026/11/27/[$LATEST]abc"
    );
    let last = reqs
        .iter()
        .find(|r| r.status() == Some("SUCCEEDED"))
        .expect("UNWRAP: final");
    assert_eq!(last.body["output_value"], json!({"rows": 3}));
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

#[test]
fn outside_lambda_the_extension_says_so() {
    let out = std::process::Command::new(extension_bin())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AWS_LAMBDA_RUNTIME_API is not set"), "{err}");
    let out = std::process::Command::new(extension_bin())
        .arg("--bogus")
        .output()
        .expect("UNWRAP: runs");
    assert_eq!(out.status.code(), Some(78));
    let version = std::process::Command::new(extension_bin())
        .arg("--version")
        .output()
        .expect("UNWRAP: runs");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("cloudreactor-extension v"));
}

/// What CloudReactor puts in the input of an execution it starts.
fn started_by_cloudreactor(uuid: &str) -> Value {
    json!({
        "original_input_value": {"n": 1},
        "cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": uuid}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrapped_handler_alone_reports_each_invocation_with_the_runtime_context() {
    let h = start(Options {
        extension: false,
        wrapped: true,
        ..Options::default()
    })
    .await;
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    let reqs = h.requests_for(&id);
    assert_eq!(reqs.len(), 1, "one request per invocation: {reqs:#?}");
    let b = &reqs[0].body;
    assert_eq!(b["status"], "SUCCEEDED", "{b:#}");
    assert_eq!(b["output_value"], json!({"echo": {"hello": "world"}}));
    assert_eq!(b["task"]["name"], FUNCTION);
    assert_eq!(b["execution_method_type"], "AWS Lambda");
    let logging = &b["infrastructure_settings"]["logging"]["options"];
    assert!(
        logging["group"].is_string(),
        "the runtime knows the log group: {b:#}"
    );
    assert!(
        logging["stream"].is_string(),
        "the runtime knows the log stream: {b:#}"
    );

    let (id, status) = h.invoke(json!({"fail": true})).await;
    assert_eq!(status, InvocationStatus::Error);
    let b = &h.requests_for(&id)[0].body;
    assert_eq!(b["status"], "FAILED");
    assert!(b.get("output_value").is_none());
    let lambda = &b["other_runtime_metadata"]["aws_lambda"];
    assert_eq!(lambda["error_type"], "Box<dyn Error + Send + Sync>");
    assert_eq!(lambda["error_message"], "the handler failed on purpose");
    assert_eq!(
        b["error_details"],
        json!({
            "kind": "lambda_error",
            "error_type": "Box<dyn Error + Send + Sync>",
            "error_message": "the handler failed on purpose",
        })
    );
    // The function process's peak, as Lambda's maxMemoryUsedMB.
    assert!(
        b["max_memory_mb"].as_u64().is_some_and(|mb| mb >= 1),
        "{b:#}"
    );

    let (id, status) = h.invoke(json!({"panic": true})).await;
    assert_eq!(
        status,
        InvocationStatus::Error,
        "the panic still reaches the runtime"
    );
    let b = &h.requests_for(&id)[0].body;
    assert_eq!(b["status"], "FAILED");
    assert_eq!(
        b["other_runtime_metadata"]["aws_lambda"]["error_type"],
        "Panic"
    );
    assert_eq!(
        b["other_runtime_metadata"]["aws_lambda"]["error_message"],
        "the handler panicked on purpose"
    );

    let known = "5b7d2a5e-54a4-4d0e-9b8c-1f3c1c2f0a11";
    let (_, status) = h.invoke(started_by_cloudreactor(known)).await;
    assert_eq!(status, InvocationStatus::Success);
    let adopted: Vec<_> = h
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(known))
        .collect();
    assert_eq!(adopted.len(), 1, "{adopted:#?}");
    assert_eq!(adopted[0].method, "PATCH");
    assert_eq!(adopted[0].body["status"], "SUCCEEDED");
    assert!(adopted[0].body.get("task").is_none());
    assert_eq!(
        h.api.requests().len(),
        4,
        "one request per invocation: {:#?}",
        h.api.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrapped_handler_with_the_extension_is_one_task_execution_per_invocation() {
    let h = start(Options {
        wrapped: true,
        ..Options::default()
    })
    .await;
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("SUCCEEDED")))
    );
    let reqs = h.requests_for(&id);
    let creations = reqs.iter().filter(|r| r.method == "POST").count();
    assert_eq!(creations, 1, "{reqs:#?}");
    // The hand-off made the extension create at once (RUNNING), and the handler's value
    // and log stream reached the final update.
    assert_eq!(reqs[0].body["status"], "RUNNING");
    assert!(
        reqs[0].body["infrastructure_settings"]["logging"]["options"]["stream"].is_string(),
        "{:#}",
        reqs[0].body
    );
    let last = reqs
        .iter()
        .find(|r| r.status() == Some("SUCCEEDED"))
        .expect("UNWRAP: final update");
    assert_eq!(
        last.body["output_value"],
        json!({"echo": {"hello": "world"}})
    );

    let (id, _) = h.invoke(json!({"fail": true})).await;
    assert!(
        h.api
            .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("FAILED")))
    );
    let failed = h
        .requests_for(&id)
        .into_iter()
        .find(|r| r.status() == Some("FAILED"))
        .expect("UNWRAP: final update");
    let lambda = &failed.body["other_runtime_metadata"]["aws_lambda"];
    assert_eq!(
        lambda["error_message"], "the handler failed on purpose",
        "{lambda:#}"
    );
    // The end message carries the outcome, so the extension need not wait for telemetry.
    assert_eq!(lambda["error_type"], "Box<dyn Error + Send + Sync>");

    let known = "0c2b9a51-3f3e-4a57-8f2a-7d1b6b9e2c44";
    let (_, status) = h.invoke(started_by_cloudreactor(known)).await;
    assert_eq!(status, InvocationStatus::Success);
    assert!(h.api.wait_for(LIMIT, |r| {
        r.iter()
            .any(|r| r.path.contains(known) && r.status() == Some("SUCCEEDED"))
    }));
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        api.requests().iter().filter(|r| r.method == "POST").count(),
        2,
        "the adopted execution was not created again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frequent_invocations_do_not_hold_next_for_their_report() {
    use procwrapper_tests::fake_api::Fault;
    // The second execution the fake creates.
    let second = "d9554f00-eaeb-4a16-96e4-000000000002";
    for (interval, waits) in [("60", false), ("0", true)] {
        let h = start(Options {
            env: vec![
                ("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS", "10000".into()),
                (
                    "PROC_WRAPPER_EXTENSION_FREQUENT_INTERVAL_SECONDS",
                    interval.into(),
                ),
            ],
            ..Options::default()
        })
        .await;
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(status, InvocationStatus::Success);
        // Its creation, then its late platform.report (sent while the extension is idle).
        assert!(
            h.api.wait_for(LIMIT, |r| r.len() == 2),
            "{:#?}",
            h.api.requests()
        );
        // The report of the next invocation takes 2 s to be answered.
        h.api.push_faults([Fault::Delay(Duration::from_secs(2))]);
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(status, InvocationStatus::Success);
        assert_eq!(
            h.api.status_of(second).is_some(),
            waits,
            "interval {interval}: the extension {} for the report before /next",
            if waits { "waits" } else { "does not wait" }
        );
        assert!(
            until(LIMIT, || h.api.status_of(second).as_deref()
                == Some("SUCCEEDED"))
            .await,
            "the report of the frequent invocation was lost"
        );
        let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
    }
}

/// The late update with `platform.report`'s figures.
fn is_late_report(r: &Recorded) -> bool {
    r.body["other_runtime_metadata"]["aws_lambda"]["billed_duration_ms"].is_number()
}

/// Six invocations while the API server is down (`fault` answers every request), then three
/// while it is healthy: every final status reaches the server, as the later invocations run.
async fn outage_then_recovery(fault: Fault) {
    let h = start(Options::default()).await;
    h.api.start_outage(fault);
    for _ in 0..6 {
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(status, InvocationStatus::Success);
    }
    assert!(h.api.finished().is_empty());
    h.api.end_outage();
    for _ in 0..3 {
        h.invoke(json!({})).await;
    }
    assert!(
        procwrapper_tests::wait_until(LIMIT, || h.api.finished().len() >= 9),
        "{} of 9 final statuses delivered: {:#?}",
        h.api.finished().len(),
        h.api.requests()
    );
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    let finished = api.finished();
    assert_eq!(finished.len(), 9, "one execution per invocation");
    assert!(
        finished
            .iter()
            .all(|u| api.status_of(u).as_deref() == Some("SUCCEEDED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_outage_loses_no_final_status() {
    outage_then_recovery(Fault::RetryAfter(503, "1".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_outage_loses_no_final_status() {
    outage_then_recovery(Fault::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_drops_the_oldest_reports_and_shutdown_counts_them() {
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_BACKLOG_MAX", "2".to_owned())],
        ..Options::default()
    })
    .await;
    h.api.start_outage(Fault::Status(503));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.invoke(json!({})).await.0);
    }
    h.api.end_outage();
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    // The two newest reports were kept and sent at SHUTDOWN.
    let delivered: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status() == Some("SUCCEEDED"))
        .filter_map(|r| {
            r.body["execution_method_details"]["aws_request_id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(api.finished().len(), 2, "{:#?}", api.requests());
    assert!(
        delivered.contains(&ids[3]) && delivered.contains(&ids[4]),
        "{delivered:?}"
    );
}
