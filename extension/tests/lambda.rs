//! End-to-end tests of the real `cloudreactor-extension` binary and a real `lambda_runtime`
//! function (`examples/test_function.rs`), driven by `lambda-simulator`, reporting to the fake
//! CloudReactor API.
//!
//! The extension is started by the harness itself (with the simulator's environment), so
//! that its log can be read. Record shapes the simulator does not produce (a `runtimeDone`
//! with an `errorType`, failed init records, a report with the memory used up) are posted
//! to the extension's telemetry listener from `tests/fixtures/`, with the simulator's own
//! records of that type suppressed. An emulator without telemetry is the simulator with
//! every platform record suppressed, or a [`RuntimeApiProxy`] that refuses the
//! subscription; the proxy also counts the extension's `/next` calls.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_simulator::process::{ManagedProcess, ProcessConfig, ProcessRole};
use lambda_simulator::{
    DeliveryPolicy, InvocationBuilder, InvocationStatus, ShutdownReason, Simulator,
};
use procwrapper_tests::fake_api::{FakeApi, Fault, Recorded};
use procwrapper_tests::lambda::{RuntimeApiProxy, until};
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

/// The extension's log (its standard error), line by line, as it is written.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many lines contain `text`.
    fn count(&self, text: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(text)).count()
    }

    /// The lines at WARNING or ERROR.
    fn warnings(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(" WARNING: ") || l.contains(" ERROR: "))
            .collect()
    }
}

/// The extension process, killed when dropped if it still runs.
struct Extension {
    child: Child,
    log: Log,
    /// Reads its standard error into `log` until it closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Extension {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Harness {
    sim: Simulator,
    api: FakeApi,
    extension: Option<Extension>,
    proxy: Option<RuntimeApiProxy>,
    _function: ManagedProcess,
    status_port: u16,
}

/// What stands between the extension and the simulator.
#[derive(Clone, PartialEq)]
enum Proxy {
    /// Nothing: the extension talks to the simulator.
    None,
    /// A [`RuntimeApiProxy`] that forwards everything (to count `/next` calls).
    Forward,
    /// A [`RuntimeApiProxy`] that answers the telemetry subscription with this status and
    /// body, as an emulator without telemetry does.
    RefuseSubscription(u16, &'static str),
}

struct Options {
    api_url: Option<String>,
    env: Vec<(&'static str, String)>,
    /// Variables of the harness's defaults that are not set.
    unset: Vec<&'static str>,
    invocation_timeout: Duration,
    /// Start the extension (else the function is alone).
    extension: bool,
    /// Run the handler under runtime-lib's Lambda handler wrapper.
    wrapped: bool,
    proxy: Proxy,
    /// Telemetry record types the simulator does not deliver.
    suppressed: Vec<&'static str>,
    /// The function logs (`TEST_FUNCTION_LOG=TRUE`) to this file instead of the test's
    /// standard error.
    function_log: Option<PathBuf>,
    /// The function's runtime.
    runtime: Runtime,
    /// How the runtime starts: directly, or through the exec wrapper or the layer's
    /// bootstrap, which point it at the extension's Runtime API proxy.
    launcher: Launcher,
    /// Variables of the function only.
    function_env: Vec<(&'static str, String)>,
}

/// How the runtime starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Launcher {
    /// Lambda starts it.
    Direct,
    /// `cloudreactor-extension --exec RUNTIME`, as
    /// `AWS_LAMBDA_EXEC_WRAPPER=/opt/cloudreactor-exec-wrapper` starts it.
    ExecWrapper,
    /// `cloudreactor-extension --bootstrap` (the layer's `/opt/bootstrap`, for OS-only
    /// runtimes), with `_HANDLER` naming the runtime's executable.
    Bootstrap,
}

/// The runtime of the test function.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    /// `extension/examples/test_function.rs` on `lambda_runtime`.
    Rust,
    /// `tests/fixtures/python_function/handler.py` under AWS's runtime interface client
    /// `awslambdaric` (installed in `tests/.venv` by `tests/run.sh`).
    Python,
}

/// The Python of `tests/.venv`, which has `awslambdaric`.
fn venv_python() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/.venv/bin/python");
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh creates it (tests/services.sh setup_venv)",
        path.display()
    );
    path
}

fn python_function_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/python_function")
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_url: None,
            env: Vec::new(),
            unset: Vec::new(),
            invocation_timeout: Duration::from_secs(30),
            extension: true,
            wrapped: false,
            proxy: Proxy::None,
            suppressed: Vec::new(),
            function_log: None,
            runtime: Runtime::Rust,
            launcher: Launcher::Direct,
            function_env: Vec::new(),
        }
    }
}

/// Every platform record type the simulator delivers: suppressed, it is an emulator whose
/// telemetry never arrives (`cargo lambda watch`, the Runtime Interface Emulator).
const EVERY_PLATFORM_RECORD: [&str; 7] = [
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.start",
    "platform.runtimeDone",
    "platform.report",
    "platform.telemetrySubscription",
];

/// A file the test function waits for (`{"wait_for_file": ...}`): an invocation stays open
/// until the test opens its gate.
struct Gate(PathBuf);

impl Gate {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Self(std::env::temp_dir().join(format!(
            "cloudreactor-extension-gate-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )))
    }

    /// The payload of an invocation that waits for this gate.
    fn payload(&self) -> Value {
        json!({"wait_for_file": self.0})
    }

    fn open(&self) {
        std::fs::write(&self.0, b"").expect("UNWRAP: the temporary folder is writable");
    }

    /// `PATH.started`: the handler writes it once it has its event and waits.
    fn started_path(&self) -> PathBuf {
        let mut path = self.0.clone().into_os_string();
        path.push(".started");
        path.into()
    }

    /// Whether the handler has its event and waits at the gate.
    fn reached(&self) -> bool {
        self.started_path().exists()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.started_path());
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
    for kind in &options.suppressed {
        sim.set_telemetry_delivery_policy(*kind, DeliveryPolicy::Suppress)
            .await;
    }
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
        // Tests run at once: each extension's proxy has a port of its own.
        (
            "PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT",
            free_tcp_port().to_string(),
        ),
    ];
    common.extend(options.env);
    common.retain(|(k, _)| !options.unset.contains(k));
    let sim_api = format!("127.0.0.1:{}", sim.addr().port());
    let proxy = match options.proxy {
        Proxy::None => None,
        Proxy::Forward => Some(RuntimeApiProxy::start(&sim_api, None)),
        Proxy::RefuseSubscription(status, body) => Some(RuntimeApiProxy::start(
            &sim_api,
            Some((status, body.to_owned())),
        )),
    };
    let extension = options.extension.then(|| {
        let mut command = Command::new(extension_bin());
        command
            .envs(sim.lambda_env_vars())
            .envs(common.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = &proxy {
            command.env("AWS_LAMBDA_RUNTIME_API", &p.addr);
        }
        let mut child = command.spawn().expect("UNWRAP: the extension starts");
        let stderr = child.stderr.take().expect("UNWRAP: piped");
        let log = Log::default();
        let lines = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        Extension {
            child,
            log,
            reader: Some(reader),
        }
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
        // A message sent before the bind would be lost, so wait for the port to be taken
        // (offline mode has no status listener).
        let offline = common
            .iter()
            .any(|(k, v)| *k == "PROC_WRAPPER_OFFLINE_MODE" && v == "TRUE");
        assert!(
            offline || until(LIMIT, || !udp_addresses(status_port).is_empty()).await,
            "the extension did not listen on its status port"
        );
    }
    let mut command: Vec<String> = Vec::new();
    let mut function_env = options.function_env.clone();
    match options.launcher {
        Launcher::Direct => {}
        Launcher::ExecWrapper => {
            command.extend([
                extension_bin().to_string_lossy().into_owned(),
                "--exec".into(),
            ]);
        }
        Launcher::Bootstrap => {
            command.extend([
                extension_bin().to_string_lossy().into_owned(),
                "--bootstrap".into(),
            ]);
            function_env.push(("_HANDLER", function_bin().to_string_lossy().into_owned()));
        }
    }
    match options.runtime {
        Runtime::Rust if options.launcher == Launcher::Bootstrap => {}
        Runtime::Rust => command.push(function_bin().to_string_lossy().into_owned()),
        Runtime::Python => command.extend([
            venv_python().to_string_lossy().into_owned(),
            "-m".into(),
            "awslambdaric".into(),
            "handler.handle".into(),
        ]),
    }
    let func = match &options.function_log {
        None => command[1..].iter().fold(
            ProcessConfig::new(&command[0], ProcessRole::Runtime),
            |c, a| c.arg(a.clone()),
        ),
        // The simulator's processes inherit standard error or drop it: a shell that execs
        // the function (same process) sends it to the file.
        Some(path) => ProcessConfig::new("/bin/sh", ProcessRole::Runtime)
            .arg("-c")
            .arg(r#"log=$1; shift; exec "$@" 2>"$log""#)
            .arg("sh")
            .arg(path.to_string_lossy())
            .env("TEST_FUNCTION_LOG", "TRUE"),
    };
    let mut func = match &options.function_log {
        None => func,
        Some(_) => command.iter().fold(func, |c, a| c.arg(a.clone())),
    };
    for (k, v) in common.iter().chain(&function_env) {
        func = func.env(*k, v.clone());
    }
    if options.runtime == Runtime::Python {
        func = func.env("PYTHONPATH", python_function_dir().to_string_lossy());
    }
    // Behind the exec wrapper or the bootstrap, the runtime reaches Lambda's endpoint through
    // the extension's proxy, whose endpoint is the extension's: the harness's proxy when
    // there is one (the wrapper checks that it forwards to the runtime's endpoint).
    if let Some(p) = proxy
        .as_ref()
        .filter(|_| options.launcher != Launcher::Direct)
    {
        func = func.env("AWS_LAMBDA_RUNTIME_API", p.addr.clone());
    }
    let function = sim
        .spawn_process_with_config(func)
        .expect("UNWRAP: the function starts");
    Harness {
        sim,
        api,
        extension,
        proxy,
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

    /// The extension's log so far (and after [`Harness::shutdown`], all of it).
    fn log(&self) -> Log {
        self.extension
            .as_ref()
            .map(|e| e.log.clone())
            .unwrap_or_default()
    }

    /// The extension's calls of `/next` so far (with a proxy).
    fn next_calls(&self) -> usize {
        self.proxy
            .as_ref()
            .expect("UNWRAP: the test asked for a proxy")
            .next_calls()
    }

    /// Whether invocation `id` is still running.
    async fn running(&self, id: &str) -> bool {
        self.sim.get_invocation_state(id).await.is_some_and(|s| {
            !matches!(
                s.status,
                InvocationStatus::Success | InvocationStatus::Error | InvocationStatus::Timeout
            )
        })
    }

    /// Starts an invocation that stays open until `gate` opens, and waits until the
    /// extension has called `/next` `nexts` times in all. Asserts that it did so while the
    /// function still ran: it did not wait for the invocation's end, whose telemetry cannot
    /// come before the gate opens. Then opens the gate and waits for the end.
    async fn invoke_without_a_wait(&self, nexts: usize) -> String {
        let gate = Gate::new();
        let id = self.sim.enqueue_payload(gate.payload()).await;
        assert!(
            until(LIMIT, || self.next_calls() >= nexts).await,
            "the extension did not call /next again while the invocation ran ({} calls)",
            self.next_calls()
        );
        assert!(self.running(&id).await, "the gate is still closed");
        gate.open();
        procwrapper_tests::lambda::invocation_done(&self.sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        id
    }

    /// The final update of the execution created for `request_id` (its one request when it
    /// was reported with one), once the fake has it.
    async fn final_for(&self, request_id: &str) -> Recorded {
        let final_of = || {
            self.requests_for(request_id)
                .into_iter()
                .find(|r| r.status().is_some_and(|s| s != "RUNNING"))
        };
        assert!(
            until(LIMIT, || final_of().is_some()).await,
            "no final update for {request_id}: {:#?}",
            self.api.requests()
        );
        final_of().expect("UNWRAP: seen above")
    }

    /// Waits until the execution of `request_id` has been created.
    async fn created(&self, request_id: &str) -> bool {
        until(LIMIT, || !self.requests_for(request_id).is_empty()).await
    }

    async fn shutdown(mut self, reason: ShutdownReason) -> (FakeApi, Option<i32>) {
        self.sim.graceful_shutdown(reason).await;
        let mut code = None;
        if let Some(extension) = &mut self.extension {
            until(LIMIT, || {
                code = extension
                    .child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|s| s.code().unwrap_or(-1));
                code.is_some()
            })
            .await;
            // Its standard error is closed: the whole log is read.
            if code.is_some()
                && let Some(reader) = extension.reader.take()
            {
                let _ = reader.join();
            }
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
        json!({"kind": "lambda_error", "cause": "handler_error", "runtime_done_status": "error"}),
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
async fn shutdown_with_reason_timeout_or_failure_closes_the_open_invocation_and_names_why() {
    for (reason, status, cause) in [
        (
            ShutdownReason::Timeout,
            "TERMINATED_AFTER_TIME_OUT",
            "timed_out",
        ),
        (
            ShutdownReason::Failure,
            "FAILED",
            "environment_shutdown_failure",
        ),
    ] {
        let h = start(Options {
            invocation_timeout: Duration::from_millis(800),
            ..Options::default()
        })
        .await;
        let gate = Gate::new();
        let id = h.sim.enqueue_payload(gate.payload()).await;
        assert!(
            h.api
                .wait_for(LIMIT, |r| r.iter().any(|r| r.status() == Some("RUNNING"))),
            "the invocation was not created"
        );
        // Past the deadline the extension stops waiting and polls /next, where SHUTDOWN
        // arrives; the function still runs.
        assert!(h.running(&id).await);
        let (api, code) = h.shutdown(reason).await;
        assert_eq!(code, Some(0));
        let last = api.requests().pop().expect("UNWRAP: requests were made");
        assert_eq!(last.status(), Some(status), "{:#?}", api.requests());
        assert_eq!(
            last.body["error_details"],
            json!({"kind": "lambda_error", "cause": cause}),
            "{:#}",
            last.body
        );
        if status == "FAILED" {
            assert_eq!(
                last.body["last_status_message"],
                "the Lambda environment shut down (failure) before the invocation ended"
            );
        }
    }
}

/// Posts a fixture of `tests/fixtures/` for `request_id` to the extension's listener.
async fn post_fixture(port: u16, text: &str, request_id: &str) {
    let body = text.replace("REQUEST_ID", request_id);
    assert_eq!(post_telemetry(port, &body).await, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_failures_are_named_by_their_error_type_and_a_full_memory_after_one_is_out_of_memory()
 {
    let port = free_tcp_port();
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", port.to_string())],
        // The fixtures stand for the simulator's own records of these types.
        suppressed: vec!["platform.runtimeDone", "platform.report"],
        ..Options::default()
    })
    .await;
    for (fixture, status, cause, runtime_done_status, error_type) in [
        (
            include_str!("fixtures/runtime_done_out_of_memory.json"),
            "FAILED",
            "out_of_memory",
            "failure",
            "Runtime.OutOfMemory",
        ),
        (
            include_str!("fixtures/runtime_done_exit_error.json"),
            "FAILED",
            "exit_error",
            "error",
            "Runtime.ExitError",
        ),
        (
            include_str!("fixtures/runtime_done_sandbox_timedout.json"),
            "TERMINATED_AFTER_TIME_OUT",
            "timed_out",
            "timeout",
            "Sandbox.Timedout",
        ),
        (
            include_str!("fixtures/runtime_done_failure.json"),
            "FAILED",
            "runtime_failure",
            "failure",
            "Runtime.Unknown",
        ),
    ] {
        let gate = Gate::new();
        let id = h.sim.enqueue_payload(gate.payload()).await;
        assert!(h.created(&id).await, "the invocation was not created");
        post_fixture(port, fixture, &id).await;
        let last = h.final_for(&id).await;
        assert_eq!(last.status(), Some(status), "{:#}", last.body);
        assert_eq!(
            last.body["error_details"],
            json!({
                "kind": "lambda_error",
                "cause": cause,
                "runtime_done_status": runtime_done_status,
                "error_type": error_type,
            }),
            "{:#}",
            last.body
        );
        gate.open();
        procwrapper_tests::lambda::invocation_done(&h.sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        assert!(procwrapper_tests::lambda::extensions_ready(&h.sim, &id, LIMIT).await);
        if cause == "exit_error" {
            // Its report: the memory was used up, so the exit was the memory's doing.
            post_fixture(
                port,
                include_str!("fixtures/report_memory_exhausted.json"),
                &id,
            )
            .await;
            let is_report = |r: &Recorded| r.method == "PATCH" && is_late_report(r);
            assert!(
                until(LIMIT, || h.requests_for(&id).iter().any(is_report)).await,
                "no report update: {:#?}",
                h.requests_for(&id)
            );
            let report = h
                .requests_for(&id)
                .into_iter()
                .find(is_report)
                .expect("UNWRAP: seen above");
            assert_eq!(
                report.body["error_details"],
                json!({
                    "kind": "lambda_error",
                    "cause": "out_of_memory",
                    "runtime_done_status": "error",
                    "error_type": "Runtime.ExitError",
                }),
                "{:#}",
                report.body
            );
            assert_eq!(report.body["status"], "FAILED", "the final status again");
            assert_eq!(report.body["max_memory_mb"], 128);
            let lambda = &report.body["other_runtime_metadata"]["aws_lambda"];
            assert_eq!(lambda["memory_size_mb"], 128, "{lambda:#}");
            assert_eq!(lambda["max_memory_used_mb"], 128, "{lambda:#}");
        }
    }
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        api.requests().iter().filter(|r| r.method == "POST").count(),
        4,
        "one execution per invocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_failure_that_no_invocation_follows_is_one_failed_execution() {
    let port = free_tcp_port();
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", port.to_string())],
        suppressed: vec!["platform.initRuntimeDone", "platform.initReport"],
        ..Options::default()
    })
    .await;
    post_fixture(port, include_str!("fixtures/init_failed.json"), "").await;
    // Lambda resets an environment whose initialisation failed.
    let (api, code) = h.shutdown(ShutdownReason::Failure).await;
    assert_eq!(code, Some(0));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "one request: {reqs:#?}");
    let b = &reqs[0].body;
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(b["status"], "FAILED", "{b:#}");
    assert_eq!(
        b["error_details"],
        json!({"kind": "lambda_error", "cause": "init_failed", "error_type": "Runtime.ExitError"}),
        "{b:#}"
    );
    let lambda = &b["other_runtime_metadata"]["aws_lambda"];
    assert_eq!(lambda["init_status"], "error", "{lambda:#}");
    assert_eq!(lambda["init_phase"], "init", "{lambda:#}");
    assert_eq!(lambda["init_error_type"], "Runtime.ExitError", "{lambda:#}");
    let d = &b["execution_method_details"];
    assert_eq!(d["aws_request_id"], Value::Null, "no invocation: {d:#}");
    assert_eq!(d["function_name"], FUNCTION);
    assert_eq!(d["cold_start"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_init_names_the_failure_of_the_invocation_that_follows_it_or_runs_it() {
    let port = free_tcp_port();
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", port.to_string())],
        suppressed: vec!["platform.initRuntimeDone", "platform.initReport"],
        ..Options::default()
    })
    .await;
    // The Init phase failed; the first invocation fails too (its own initialisation did).
    post_fixture(port, include_str!("fixtures/init_failed.json"), "").await;
    let (first, status) = h.invoke(json!({"fail": true})).await;
    assert_eq!(status, InvocationStatus::Error);
    let b = h.final_for(&first).await.body;
    assert_eq!(b["status"], "FAILED", "{b:#}");
    assert_eq!(b["error_details"]["cause"], "init_failed", "{b:#}");
    assert_eq!(b["error_details"]["runtime_done_status"], "error", "{b:#}");
    assert_eq!(
        b["other_runtime_metadata"]["aws_lambda"]["init_phase"],
        "init"
    );
    // Only the invocation that follows the failed init is concerned.
    let (second, status) = h.invoke(json!({})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert_eq!(h.final_for(&second).await.status(), Some("SUCCEEDED"));
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        api.requests().iter().filter(|r| r.method == "POST").count(),
        2,
        "no execution for the init beside the invocations': {:#?}",
        api.requests()
    );

    // An initialisation run again within an invocation (after the Init phase failed or
    // timed out) that fails ends that invocation at once, before its runtimeDone.
    let port = free_tcp_port();
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", port.to_string())],
        suppressed: vec![
            "platform.initRuntimeDone",
            "platform.initReport",
            "platform.runtimeDone",
        ],
        ..Options::default()
    })
    .await;
    let gate = Gate::new();
    let id = h.sim.enqueue_payload(gate.payload()).await;
    assert!(h.created(&id).await, "the invocation was not created");
    post_fixture(
        port,
        include_str!("fixtures/init_failed_invoke_phase.json"),
        "",
    )
    .await;
    let b = h.final_for(&id).await.body;
    assert!(h.running(&id).await, "the gate is still closed");
    assert_eq!(b["status"], "FAILED", "{b:#}");
    assert_eq!(
        b["error_details"],
        json!({"kind": "lambda_error", "cause": "init_failed", "error_type": "Runtime.Unknown"}),
        "{b:#}"
    );
    assert_eq!(
        b["other_runtime_metadata"]["aws_lambda"]["init_phase"],
        "invoke"
    );
    gate.open();
    procwrapper_tests::lambda::invocation_done(&h.sim, &id, LIMIT)
        .await
        .expect("UNWRAP: the invocation completes");
    let (_, code) = h.shutdown(ShutdownReason::Failure).await;
    assert_eq!(code, Some(0));
}

/// What the extension may wait for, made longer than any test: a wait for the telemetry
/// watchdog or the deadline would last past the test's limit.
fn waits_longer_than_the_test() -> Vec<(&'static str, String)> {
    vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_WAIT_MS", "600000".into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_reporting_off_every_invoke_is_answered_by_next_at_once_and_it_is_said_once() {
    for (unset, set, said) in [
        (
            vec!["PROC_WRAPPER_API_KEY"],
            vec![],
            "not reporting invocations: no API key",
        ),
        (
            vec!["PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME"],
            vec![],
            "not reporting invocations: an auto-created Task needs a Run Environment",
        ),
        (
            vec![],
            vec![("PROC_WRAPPER_OFFLINE_MODE", "TRUE".to_owned())],
            "offline mode: not reporting invocations",
        ),
    ] {
        let mut env = waits_longer_than_the_test();
        env.extend(set);
        let h = start(Options {
            env,
            unset,
            invocation_timeout: Duration::from_secs(600),
            proxy: Proxy::Forward,
            ..Options::default()
        })
        .await;
        // The first /next delivers the first INVOKE; each next one comes while the
        // invocation still runs.
        for n in 2..=4 {
            h.invoke_without_a_wait(n).await;
        }
        let log = h.log();
        let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
        assert!(api.requests().is_empty(), "{:#?}", api.requests());
        assert_eq!(log.count(said), 1, "{:#?}", log.lines());
        assert_eq!(
            log.count("not reporting invocations"),
            1,
            "said once: {:#?}",
            log.lines()
        );
        let warnings = log.warnings();
        assert!(
            warnings.len() <= 1 && warnings.iter().all(|w| w.contains(said)),
            "{warnings:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_telemetry_arrives_only_the_first_invocation_waits_for_it_and_it_is_said_once() {
    let h = start(Options {
        env: vec![("PROC_WRAPPER_EXTENSION_TELEMETRY_WAIT_MS", "300".into())],
        invocation_timeout: Duration::from_secs(600),
        proxy: Proxy::Forward,
        suppressed: EVERY_PLATFORM_RECORD.to_vec(),
        ..Options::default()
    })
    .await;
    // The first invocation waits for telemetry (300 ms), then gives up on it.
    let first = h.invoke_without_a_wait(2).await;
    let no_telemetry = "no telemetry arrived within 300ms of an invocation";
    assert_eq!(h.log().count(no_telemetry), 1, "{:#?}", h.log().lines());
    // The others do not wait at all: the extension goes back to /next at once.
    let mut others = Vec::new();
    for n in 3..=5 {
        others.push(h.invoke_without_a_wait(n).await);
    }
    let log = h.log();
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    assert!(
        api.requests().is_empty(),
        "nothing created that could not be finished: {:#?}",
        api.requests()
    );
    assert_eq!(log.count(no_telemetry), 1, "said once: {:#?}", log.lines());
    assert_eq!(log.count(&format!("invocation {first}: not reported")), 0);
    for id in &others {
        assert_eq!(
            log.count(&format!(
                "invocation {id}: not reported; back to /next at once"
            )),
            1,
            "{:#?}",
            log.lines()
        );
    }
    let warnings = log.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains(no_telemetry),
        "{warnings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_telemetry_subscription_is_refused_every_invoke_is_answered_by_next_at_once() {
    for (status, body) in [
        (404, "404 page not found"),
        // The Runtime Interface Emulator's stub.
        (
            202,
            r#"{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}"#,
        ),
        (500, "internal error"),
    ] {
        let h = start(Options {
            env: waits_longer_than_the_test(),
            invocation_timeout: Duration::from_secs(600),
            proxy: Proxy::RefuseSubscription(status, body),
            ..Options::default()
        })
        .await;
        for n in 2..=3 {
            h.invoke_without_a_wait(n).await;
        }
        let log = h.log();
        let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
        assert!(api.requests().is_empty(), "{:#?}", api.requests());
        let said = "not reporting invocations: cannot subscribe to telemetry";
        assert_eq!(log.count(said), 1, "{status}: {:#?}", log.lines());
        let warnings = log.warnings();
        assert!(
            warnings.len() == 1
                && warnings[0].contains(said)
                && warnings[0].contains(&status.to_string()),
            "{status}: {warnings:#?}"
        );
    }
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
            "cause": "handler_error",
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
    // The server asks for a wait longer than the test: nothing goes until SHUTDOWN, whose
    // deadline comes first.
    h.api.start_outage(Fault::RetryAfter(503, "60".into()));
    for _ in 0..5 {
        h.invoke(json!({})).await;
    }
    let log = h.log();
    let (api, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    assert!(api.finished().is_empty());
    // Five reports for a bound of two: the three oldest dropped, the two others unsent.
    assert_eq!(
        log.count(
            "5 report(s) lost in all: 3 dropped from the full backlog, 0 given up, 2 unsent at \
             SHUTDOWN"
        ),
        1,
        "{:#?}",
        log.lines()
    );
    assert_eq!(
        log.count("the backlog of reports is full"),
        1,
        "warned once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrapped_handler_alone_keeps_what_an_outage_held_back_and_sends_it_later() {
    let h = start(Options {
        extension: false,
        wrapped: true,
        ..Options::default()
    })
    .await;
    h.api.start_outage(Fault::RetryAfter(503, "1".into()));
    for _ in 0..3 {
        let (_, status) = h.invoke(json!({})).await;
        assert_eq!(
            status,
            InvocationStatus::Success,
            "the function never fails for it"
        );
    }
    assert!(h.api.finished().is_empty());
    h.api.end_outage();
    for _ in 0..2 {
        h.invoke(json!({})).await;
    }
    assert!(
        procwrapper_tests::wait_until(LIMIT, || h.api.finished().len() >= 5),
        "{} of 5 final statuses delivered: {:#?}",
        h.api.finished().len(),
        h.api.requests()
    );
    assert_eq!(h.api.finished().len(), 5, "one execution per invocation");
}

/// `line` as a JSON object with Lambda's keys (panics otherwise).
fn lambda_json_line(line: &str) -> serde_json::Map<String, Value> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        panic!("not a JSON object: {line}");
    };
    for key in ["timestamp", "level", "message"] {
        assert!(object[key].is_string(), "no {key}: {line}");
    }
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lambdas_json_log_format_the_extension_writes_json_lines_with_the_request_id() {
    let h = start(Options {
        env: vec![("AWS_LAMBDA_LOG_FORMAT", "JSON".into())],
        ..Options::default()
    })
    .await;
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert_eq!(h.final_for(&id).await.status(), Some("SUCCEEDED"));
    let log = h.log();
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
    let lines: Vec<_> = log.lines().iter().map(|l| lambda_json_line(l)).collect();
    assert!(lines.len() > 3, "{:#?}", log.lines());
    let levels: Vec<_> = lines.iter().map(|l| l["level"].clone()).collect();
    assert!(
        levels.contains(&json!("DEBUG")),
        "PROC_WRAPPER_LOG_LEVEL: {levels:?}"
    );
    let of_the_invocation: Vec<_> = lines
        .iter()
        .filter(|l| l.get("requestId") == Some(&json!(id)))
        .collect();
    assert!(
        of_the_invocation
            .iter()
            .any(|l| l["message"] == "reported the invocation (SUCCEEDED)"),
        "{of_the_invocation:#?}"
    );
    let time = lines[0]["timestamp"]
        .as_str()
        .expect("UNWRAP: checked above");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{time}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_lambdas_json_log_format_the_handler_wrapper_logs_json_through_init_lambda() {
    // A unique path in the temporary folder, removed at the end.
    let log_file = Gate::new();
    let path = log_file.0.clone();
    let h = start(Options {
        extension: false,
        wrapped: true,
        env: vec![
            ("AWS_LAMBDA_LOG_FORMAT", "json".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR".into()),
            // Lambda's level applies only when the wrapper's own is not set.
            ("PROC_WRAPPER_LOG_LEVEL", "INFO".into()),
        ],
        function_log: Some(path.clone()),
        ..Options::default()
    })
    .await;
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    let reported = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("reported the invocation")
    };
    assert!(
        until(LIMIT, reported).await,
        "{:?}",
        std::fs::read_to_string(&path)
    );
    let text = std::fs::read_to_string(&path).expect("UNWRAP: seen above");
    let lines: Vec<_> = text.lines().map(lambda_json_line).collect();
    let line = lines
        .iter()
        .find(|l| l["message"] == "reported the invocation (SUCCEEDED)")
        .expect("UNWRAP: seen above");
    assert_eq!(line["requestId"], id.as_str(), "{text}");
    assert_eq!(line["level"], "INFO");
    assert!(
        lines.iter().all(|l| l["level"] != "DEBUG"),
        "at INFO: {text}"
    );
}

// The Runtime API proxy: the runtime starts through the exec wrapper, which points it at the
// extension's proxy (README "What the extension knows, with and without the proxy").

/// The error of the test function of `runtime` for a failing event, and its type and message.
fn failing(runtime: Runtime) -> (Value, &'static str, &'static str) {
    match runtime {
        // What lambda_runtime posts as the errorType of a boxed error.
        Runtime::Rust => (
            json!({"fail": true}),
            "&alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>",
            "the handler failed on purpose",
        ),
        Runtime::Python => (json!({"fail": "bad thing"}), "ValueError", "bad thing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_the_runtimes_answer_settles_the_outcome_and_cloudreactor_context_names_the_execution()
 {
    for runtime in [Runtime::Rust, Runtime::Python] {
        // Without `runtimeDone`, only what the proxy saw can settle an outcome.
        let h = start(Options {
            launcher: Launcher::ExecWrapper,
            runtime,
            env: vec![("PROC_WRAPPER_SEND_INPUT_VALUE", "TRUE".to_owned())],
            suppressed: vec!["platform.runtimeDone"],
            ..Options::default()
        })
        .await;
        let (id, status) = h.invoke(json!({"hello": "world"})).await;
        let done = h.final_for(&id).await;
        assert_eq!(
            status,
            InvocationStatus::Success,
            "{runtime:?}: {:#}",
            done.body
        );
        assert_eq!(done.status(), Some("SUCCEEDED"), "{:#}", done.body);
        // The input value goes with the creation: the one request, or the RUNNING one when
        // the handler outlasted the creation delay (awslambdaric's first call can).
        let creation = &h.requests_for(&id)[0];
        assert_eq!(creation.method, "POST");
        assert_eq!(
            creation.body["input_value"],
            json!({"hello": "world"}),
            "{runtime:?}: {:#}",
            creation.body
        );

        // An execution CloudReactor started: updated, never created.
        let known = "0c9d4f7e-8a1b-4c2d-9e3f-5a6b7c8d9e0f";
        let (event, after) = h
            .invoke_started_by_cloudreactor(known, &format!("{runtime:?}"))
            .await;
        let first = &after
            .iter()
            .find(|r| r.path.contains(known))
            .expect("UNWRAP: it was updated")
            .body;
        assert_eq!(first["status"], "SUCCEEDED", "{first:#}");
        assert_eq!(first["input_value"], event);
        assert!(first.get("task").is_none(), "{first:#}");

        // An error response: its type and message are the error details.
        let (payload, error_type, error_message) = failing(runtime);
        let (id, status) = h.invoke(payload).await;
        assert_eq!(status, InvocationStatus::Error);
        let done = h.final_for(&id).await;
        assert_eq!(done.status(), Some("FAILED"), "{:#}", done.body);
        assert_eq!(
            done.body["error_details"],
            json!({
                "kind": "lambda_error",
                "cause": "handler_error",
                "error_type": error_type,
                "error_message": error_message,
            }),
            "{runtime:?}"
        );
        let log = h.log();
        assert_eq!(
            log.count("the runtime talks to Lambda through the Runtime API proxy"),
            1
        );
        assert!(log.warnings().is_empty(), "{:#?}", log.warnings());
        let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_proxy_the_runtime_talks_to_lambda_and_telemetry_reports() {
    for (proxy_off, expected_log) in [(false, "does not answer on 127.0.0.1:"), (true, "")] {
        let log_file = std::env::temp_dir().join(format!(
            "cloudreactor-extension-no-proxy-{}-{proxy_off}.log",
            std::process::id()
        ));
        // The exec wrapper looks on a port where nothing listens, or the proxy is off.
        let closed = free_tcp_port().to_string();
        let (env, function_env) = if proxy_off {
            (
                vec![("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY", "FALSE".to_owned())],
                vec![],
            )
        } else {
            (
                vec![],
                vec![("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", closed)],
            )
        };
        let h = start(Options {
            launcher: Launcher::ExecWrapper,
            env,
            function_env,
            function_log: Some(log_file.clone()),
            ..Options::default()
        })
        .await;
        let (id, status) = h.invoke(json!({"hello": "world"})).await;
        assert_eq!(status, InvocationStatus::Success);
        let done = h.final_for(&id).await;
        assert_eq!(done.status(), Some("SUCCEEDED"));
        assert_eq!(
            h.log()
                .count("the runtime talks to Lambda through the Runtime API proxy"),
            0
        );
        let function_log = std::fs::read_to_string(&log_file).unwrap_or_default();
        let _ = std::fs::remove_file(&log_file);
        if proxy_off {
            assert!(
                !function_log.lines().any(|l| l.contains("WARNING")),
                "{function_log}"
            );
        } else {
            assert!(
                function_log.contains(expected_log) && function_log.contains("WARNING"),
                "the exec wrapper says why: {function_log}"
            );
        }
        let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_bootstrap_runs_the_handler_executable_through_the_proxy() {
    // Nothing is sampled in, but an execution CloudReactor started always is reported.
    let h = start(Options {
        launcher: Launcher::Bootstrap,
        suppressed: vec!["platform.runtimeDone"],
        env: vec![("PROC_WRAPPER_API_MANAGED_PROBABILITY", "0".to_owned())],
        ..Options::default()
    })
    .await;
    let known = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let (_, after) = h
        .invoke_started_by_cloudreactor(known, "the bootstrap")
        .await;
    let finals = h.api.finals_of(known);
    assert!(
        finals.iter().any(|r| r.status() == Some("SUCCEEDED")),
        "{finals:#?}"
    );
    let first = &after[0].body;
    assert_eq!(first["api_managed_probability"], json!(1.0), "{first:#}");
    assert_eq!(first["managed_probability"], json!(1.0), "{first:#}");
    // An invocation of its own is sampled out (a success is not reported).
    let (id, status) = h.invoke(json!({"hello": "world"})).await;
    assert_eq!(status, InvocationStatus::Success);
    assert!(h.requests_for(&id).is_empty());
    assert_eq!(
        h.log()
            .count("the runtime talks to Lambda through the Runtime API proxy"),
        1
    );
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_passes_through_the_proxy_intact() {
    // Lambda's endpoint is a recording proxy in front of the simulator, which has no response
    // streaming: it records what arrived and hands the simulator the JSON after the prelude.
    let h = start(Options {
        launcher: Launcher::ExecWrapper,
        proxy: Proxy::Forward,
        function_env: vec![("TEST_FUNCTION_STREAMING", "TRUE".to_owned())],
        suppressed: vec!["platform.runtimeDone"],
        ..Options::default()
    })
    .await;
    let (id, status) = h.invoke(json!({"parts": 40})).await;
    assert_eq!(status, InvocationStatus::Success);
    let recorder = h.proxy.as_ref().expect("UNWRAP: asked for");
    let body = recorder
        .streamed(&id)
        .expect("UNWRAP: the response was streamed");
    let expected = format!(
        "{{\"parts\": [{}]}}",
        (0..40)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let prelude_end = body
        .windows(8)
        .position(|w| w == [0; 8])
        .expect("UNWRAP: lambda_runtime writes a prelude");
    assert!(
        serde_json::from_slice::<Value>(&body[..prelude_end]).is_ok(),
        "the metadata prelude is intact: {body:?}"
    );
    assert_eq!(
        &body[prelude_end + 8..],
        expected.as_bytes(),
        "every chunk arrived, in order"
    );
    // The proxy saw Lambda accept the response: that settled the outcome.
    let done = h.final_for(&id).await;
    assert_eq!(done.status(), Some("SUCCEEDED"), "{:#}", done.body);
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_the_function_runs_whatever_the_api_server_does() {
    // 500, a refusal (400), every answer after 1 s, then healthy: the function's answers
    // reach Lambda through the proxy every time; what the server took is final.
    for fault in [
        Fault::Status(500),
        Fault::Status(400),
        Fault::Delay(Duration::from_secs(1)),
    ] {
        let h = start(Options {
            launcher: Launcher::ExecWrapper,
            runtime: Runtime::Python,
            ..Options::default()
        })
        .await;
        h.api.start_outage(fault.clone());
        for _ in 0..3 {
            let (_, status) = h.invoke(json!({"hello": "world"})).await;
            assert_eq!(status, InvocationStatus::Success, "{fault:?}");
        }
        h.api.end_outage();
        let (id, status) = h.invoke(json!({"fail": "after"})).await;
        assert_eq!(status, InvocationStatus::Error, "{fault:?}");
        assert_eq!(h.final_for(&id).await.status(), Some("FAILED"), "{fault:?}");
        let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0));
    }
    // The API server unreachable.
    let closed = format!("http://127.0.0.1:{}", free_tcp_port());
    let h = start(Options {
        launcher: Launcher::ExecWrapper,
        api_url: Some(closed),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let (_, status) = h.invoke(json!({"hello": "world"})).await;
        assert_eq!(status, InvocationStatus::Success);
    }
    let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
    assert_eq!(code, Some(0));
}

impl Harness {
    /// Invokes the function with an event that names Task Execution `known` (one that
    /// CloudReactor started) and waits until that execution has its final update; asserts
    /// that the invocation succeeded and that nothing was created meanwhile (`what` names
    /// the case). Returns the event and the requests sent since the invocation.
    async fn invoke_started_by_cloudreactor(
        &self,
        known: &str,
        what: &str,
    ) -> (Value, Vec<Recorded>) {
        let before = self.api.requests().len();
        let event = started_by_cloudreactor(known);
        let (_, status) = self.invoke(event.clone()).await;
        assert_eq!(status, InvocationStatus::Success, "{what}");
        assert!(
            until(LIMIT, || !self.api.finals_of(known).is_empty()).await,
            "{what}: the execution CloudReactor started was not updated: {:#?}",
            self.api.requests()
        );
        let after = self.api.requests().split_off(before);
        assert!(
            after.iter().all(|r| r.method == "PATCH"),
            "{what}: nothing is created: {after:#?}"
        );
        (event, after)
    }

    /// The extension's process id.
    fn extension_pid(&self) -> u32 {
        self.extension
            .as_ref()
            .expect("UNWRAP: the test starts the extension")
            .child
            .id()
    }

    /// The Runtime API proxy's process (the extension's one child), once there is one other
    /// than `not`.
    async fn proxy_process(&self, not: Option<u32>) -> u32 {
        let pid = self.extension_pid();
        let mut found = None;
        let seen = until(LIMIT, || {
            found = procwrapper_tests::children_of(pid)
                .into_iter()
                .find(|c| Some(*c) != not);
            found.is_some()
        })
        .await;
        assert!(
            seen,
            "the extension has no Runtime API proxy process other than {not:?}"
        );
        found.expect("UNWRAP: found above")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_killed_while_the_handler_runs_leaves_the_function_working() {
    for runtime in [Runtime::Rust, Runtime::Python] {
        let h = start(Options {
            launcher: Launcher::ExecWrapper,
            runtime,
            ..Options::default()
        })
        .await;
        let first = h.proxy_process(None).await;
        // The handler has its event and waits; the proxy dies.
        let gate = Gate::new();
        let id = h.sim.enqueue_payload(gate.payload()).await;
        assert!(
            until(LIMIT, || gate.reached()).await,
            "{runtime:?}: the handler did not get its event"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("UNWRAP: the proxy's process is the extension's child");
        assert!(
            until(LIMIT, || !procwrapper_tests::children_of(h.extension_pid())
                .contains(&first))
            .await,
            "{runtime:?}: the killed proxy was not reaped"
        );
        // The handler answers: its answer reaches Lambda, through whatever listens now.
        gate.open();
        let status = procwrapper_tests::lambda::invocation_done(&h.sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        assert_eq!(status, InvocationStatus::Success, "{runtime:?}");
        let answer = h
            .sim
            .get_invocation_state(&id)
            .await
            .and_then(|s| s.response)
            .expect("UNWRAP: a successful invocation has a response")
            .payload;
        assert_eq!(answer["echo"], gate.payload(), "{runtime:?}: {answer:#}");
        assert!(
            procwrapper_tests::lambda::extensions_ready(&h.sim, &id, LIMIT).await,
            "{runtime:?}: the extension did not call /next again"
        );
        // It is reported (from telemetry: the proxy that saw its event is gone).
        let done = h.final_for(&id).await;
        assert_eq!(done.status(), Some("SUCCEEDED"), "{:#}", done.body);

        // Another proxy process took over, and sees the next invocations' events and
        // answers: an execution CloudReactor started is updated, never created.
        let second = h.proxy_process(Some(first)).await;
        assert_ne!(second, first);
        let known = "5f0b6f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        h.invoke_started_by_cloudreactor(known, &format!("{runtime:?}, through the new proxy"))
            .await;
        let log = h.log();
        let ended = log
            .warnings()
            .into_iter()
            .filter(|w| w.contains("the Runtime API proxy's process ended"))
            .count();
        assert_eq!(ended, 1, "{runtime:?}: {:#?}", log.warnings());
        let (_, code) = h.shutdown(ShutdownReason::Spindown).await;
        assert_eq!(code, Some(0), "{runtime:?}");
        assert!(
            until(LIMIT, || procwrapper_tests::process_gone(second as i32)).await,
            "{runtime:?}: the proxy's process ends with the extension"
        );
    }
}
