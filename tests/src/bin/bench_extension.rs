//! Benchmarks of `cloudreactor-extension` (README "Test it", "Benchmarks"; targets: start to
//! the first `/next` ≤ 15 ms, RSS ≤ 10 MB, p50 ≤ 5 ms added per invocation with the API
//! server reachable) under `lambda-simulator`, with the real extension binary and a real
//! `lambda_runtime` function:
//!
//! * `startup N`: process start to the first `/next`, and the RSS when idle (the extension
//!   and its Runtime API proxy process together), over N starts;
//! * `invocations N MODE`: the time the extension adds after the runtime's response, from the
//!   runtime's response to the extension's next `/next` as the simulator reports them, over N
//!   back-to-back invocations; the RSS of the extension and its proxy process together after
//!   the first tenth of the invocations and at the end (memory must stay flat); what reached
//!   the API server. MODE:
//!   `up` (API server reachable; frequent invocations, reported in the background),
//!   `up-sporadic` (each invocation reported before `/next`, as for a function called less
//!   than once a minute), `wrapped-sporadic` (the same with the Rust handler wrapper handing
//!   the outcome over), `proxy-sporadic` (the same with the runtime started through the exec
//!   wrapper, talking to Lambda through the extension's Runtime API proxy, whose view of the
//!   response settles the outcome), `slow` (every answer after 1 s), `down` (connections refused),
//!   `outage` (503 with `Retry-After: 1` during the invocations, then healthy for one more)
//!   and `slow-then-fast` (1 s per answer, then fast): what the backlog delivered after the
//!   recovery, how soon, and the RSS meanwhile. Each mode also prints the bytes a waiting
//!   report takes in the backlog.
//!
//! * `roundtrip N`: the time the Runtime API proxy adds to a Runtime API round trip: N posts
//!   of a 1 KiB response (to a request id the simulator does not know: it answers at once)
//!   on one kept-alive connection, to the simulator directly and through the proxy of the
//!   running extension.
//!
//! Usage: `bench_extension EXTENSION FUNCTION startup|invocations|roundtrip N [MODE [PAUSE_MS]]`
//! (PAUSE_MS between invocations; 0, back to back, is the worst case for the extension, whose
//! telemetry then lags behind the invocations).

use std::time::{Duration, Instant};

use lambda_simulator::process::{ManagedProcess, ProcessConfig, ProcessRole};
use lambda_simulator::{ShutdownReason, Simulator};
use procwrapper_tests::bench::{ms, percentile};
use procwrapper_tests::fake_api::{API_KEY, FakeApi, Fault};
use procwrapper_tests::lambda::RuntimeApiProxy;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);
/// How long the simulator waits for the extension to call /next again before it goes on
/// without it (far above any time the extension may add: the cap is at most 500 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(7);

fn usage() -> ! {
    eprintln!("usage: bench_extension EXTENSION FUNCTION startup|invocations N [up|slow|down]");
    std::process::exit(2)
}

/// `VmRSS` and `VmHWM` of the extension and its Runtime API proxy's process (its
/// children), in KiB: the sums.
fn rss_kib(pid: u32) -> (u64, u64) {
    let mut sum = one_rss_kib(pid);
    for child in procwrapper_tests::children_of(pid) {
        let (rss, hwm) = one_rss_kib(child);
        sum = (sum.0 + rss, sum.1 + hwm);
    }
    sum
}

/// `VmRSS` and `VmHWM` of one process, in KiB.
fn one_rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn env_for(api_url: &str, cap_ms: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "PROC_WRAPPER_EXTENSION_FREQUENT_INTERVAL_SECONDS",
            "60".to_owned(),
        ),
        ("TEST_FUNCTION_WRAPPED", "FALSE".to_owned()),
        ("PROC_WRAPPER_API_BASE_URL", api_url.to_owned()),
        ("PROC_WRAPPER_API_KEY", API_KEY.to_owned()),
        (
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "bench".to_owned(),
        ),
        ("PROC_WRAPPER_LAMBDA_EXTENSION", "TRUE".to_owned()),
        ("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS", cap_ms.to_owned()),
        (
            "PROC_WRAPPER_LOG_LEVEL",
            std::env::var("BENCH_LOG_LEVEL").unwrap_or_else(|_| "WARNING".to_owned()),
        ),
        (
            "PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT",
            free_port().to_string(),
        ),
    ]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("UNWRAP: a free port")
        .port()
}

/// The time the proxy adds to a Runtime API round trip (see the module's documentation).
async fn roundtrip(extension: &str, n: usize) {
    let sim = Simulator::builder()
        .function_name("bench-fn")
        .build()
        .await
        .expect("UNWRAP: the simulator starts");
    let env = env_for("http://127.0.0.1:9", "500");
    let port = env
        .iter()
        .find(|(k, _)| *k == "PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT")
        .map(|(_, v)| v.clone())
        .expect("UNWRAP: set above");
    let _ext = spawn(&sim, extension, ProcessRole::Extension, &env);
    sim.wait_for(|| async { sim.extension_count().await >= 1 }, LIMIT)
        .await
        .expect("UNWRAP: the extension registers");
    let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(1010));
    let direct = format!("127.0.0.1:{}", sim.addr().port());
    let proxied = format!("127.0.0.1:{port}");
    let mut medians = Vec::new();
    for (name, addr) in [("direct", &direct), ("through the proxy", &proxied)] {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("UNWRAP: a client");
        let url = format!("http://{addr}/2018-06-01/runtime/invocation/bench-unknown/response");
        let mut times = Vec::with_capacity(n);
        // A warm-up round trip opens the connection kept for the others.
        for i in 0..=n {
            let started = Instant::now();
            let answer = client
                .post(&url)
                .body(body.clone())
                .send()
                .await
                .expect("UNWRAP: the Runtime API answers");
            let _ = answer.bytes().await;
            if i > 0 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        medians.push(percentile(&times, 0.5));
        report(&format!("Runtime API round trip, {name}"), "ms", times);
    }
    println!(
        "time the proxy adds to a round trip (difference of the medians): {:.3} ms (target p50 <= 0.3 ms)",
        ms(medians[1].saturating_sub(medians[0]))
    );
    sim.graceful_shutdown(ShutdownReason::Spindown).await;
}

fn spawn(sim: &Simulator, bin: &str, role: ProcessRole, env: &[(&str, String)]) -> ManagedProcess {
    spawn_with(sim, bin, &[], role, env)
}

fn spawn_with(
    sim: &Simulator,
    bin: &str,
    args: &[&str],
    role: ProcessRole,
    env: &[(&str, String)],
) -> ManagedProcess {
    let mut config =
        ProcessConfig::new(bin, role).inherit_stdio(std::env::var_os("BENCH_LOG_LEVEL").is_some());
    for a in args {
        config = config.arg(*a);
    }
    for (k, v) in env {
        config = config.env(*k, v.clone());
    }
    sim.spawn_process_with_config(config)
        .expect("UNWRAP: the process starts")
}

fn report(name: &str, unit: &str, mut values: Vec<Duration>) {
    values.sort();
    println!(
        "{name:<44} median {:8.3} {unit}  p90 {:8.3} {unit}  p99 {:8.3} {unit}  max {:8.3} {unit}  (n={})",
        ms(percentile(&values, 0.5)),
        ms(percentile(&values, 0.9)),
        ms(percentile(&values, 0.99)),
        ms(*values.last().expect("UNWRAP: samples")),
        values.len()
    );
}

async fn startup(extension: &str, n: usize) {
    let api = FakeApi::start();
    let mut to_next = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..n {
        let sim = Simulator::builder()
            .function_name("bench-fn")
            .build()
            .await
            .expect("UNWRAP: the simulator starts");
        let started = chrono::Utc::now();
        let ext = spawn(
            &sim,
            extension,
            ProcessRole::Extension,
            &env_for(&api.url, "500"),
        );
        let mut first = None;
        let deadline = Instant::now() + LIMIT;
        while first.is_none() && Instant::now() < deadline {
            if let Some(e) = sim.get_registered_extensions().await.first() {
                first = sim.first_next_poll_at(&e.id).await;
            }
            if first.is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let first = first.expect("UNWRAP: the extension polled /next");
        let micros = (first - started).num_microseconds().unwrap_or(0).max(0);
        to_next.push(Duration::from_micros(u64::try_from(micros).unwrap_or(0)));
        rss.push(rss_kib(ext.pid()).1);
        drop(ext);
        sim.shutdown().await;
    }
    report("process start to first /next", "ms", to_next);
    rss.sort_unstable();
    println!(
        "{:<44} median {:6} KiB  max {:6} KiB (target <= 10 MB)",
        "RSS idle after init, ext. + proxy (VmHWM)",
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
    println!("(the simulator records the first /next poll with millisecond resolution)");
}

async fn invocations(extension: &str, function: &str, n: usize, api_state: &str, pace: Duration) {
    let api = FakeApi::start();
    let (url, cap) = match api_state {
        "up" | "up-sporadic" | "wrapped-sporadic" | "proxy-sporadic" => (api.url.clone(), "500"),
        "slow" => {
            api.push_faults((0..n * 3).map(|_| Fault::Delay(Duration::from_secs(1))));
            (api.url.clone(), "100")
        }
        // The API server down (503 with `Retry-After: 1`) or slow (1 s per answer) during
        // the invocations, then healthy: the backlog delivers what waited.
        "outage" => {
            api.start_outage(Fault::RetryAfter(503, "1".to_owned()));
            (api.url.clone(), "100")
        }
        "slow-then-fast" => {
            api.start_outage(Fault::Delay(Duration::from_secs(1)));
            (api.url.clone(), "100")
        }
        "down" => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("UNWRAP: a free port")
                .port();
            (format!("http://127.0.0.1:{port}"), "100")
        }
        _ => usage(),
    };
    let sim = Simulator::builder()
        .function_name("bench-fn")
        .extension_ready_timeout(READY_TIMEOUT)
        .build()
        .await
        .expect("UNWRAP: the simulator starts");
    let mut env = env_for(&url, cap);
    for (k, v) in &mut env {
        if api_state.ends_with("sporadic")
            && *k == "PROC_WRAPPER_EXTENSION_FREQUENT_INTERVAL_SECONDS"
        {
            *v = "0".to_owned();
        }
        if api_state == "wrapped-sporadic" && *k == "TEST_FUNCTION_WRAPPED" {
            *v = "TRUE".to_owned();
        }
    }
    // Both talk to the simulator through a recording proxy, which times the runtime's
    // responses and the extension's /next calls.
    let recorder = RuntimeApiProxy::start(&format!("127.0.0.1:{}", sim.addr().port()), None);
    env.push(("AWS_LAMBDA_RUNTIME_API", recorder.addr.clone()));
    let ext = spawn(&sim, extension, ProcessRole::Extension, &env);
    sim.wait_for(|| async { sim.extension_count().await >= 1 }, LIMIT)
        .await
        .expect("UNWRAP: the extension registers");
    let _function = if api_state == "proxy-sporadic" {
        // As AWS_LAMBDA_EXEC_WRAPPER=/opt/cloudreactor-exec-wrapper starts the runtime.
        spawn_with(
            &sim,
            extension,
            &["--exec", function],
            ProcessRole::Runtime,
            &env,
        )
    } else {
        spawn(&sim, function, ProcessRole::Runtime, &env)
    };
    let mut added = Vec::new();
    let mut unmeasured = 0;
    let mut missed = 0;
    let mut early_rss = (0, 0);
    let started = Instant::now();
    for i in 0..n {
        let payload = if i % 2 == 0 {
            json!({"i": i})
        } else {
            json!({"i": i, "success_count": i})
        };
        let id = sim.enqueue_payload(payload).await;
        procwrapper_tests::lambda::invocation_done(&sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        let done = Instant::now();
        assert!(
            procwrapper_tests::lambda::extensions_ready(&sim, &id, LIMIT).await,
            "the extension did not call /next again"
        );
        // From the moment the simulator had the runtime's response (as Lambda counts it)
        // to the extension's next /next as the recording proxy saw it arrive; else the
        // simulator's own figure; else the time between the two polls (1 ms resolution).
        let responded = sim
            .get_invocation_state(&id)
            .await
            .and_then(|s| s.response)
            .map(|r| std::time::SystemTime::from(r.received_at))
            .or_else(|| recorder.answered_at(&id));
        // The simulator counts the extension ready once its /next arrived, which the
        // recorder logs first: none after the response means that it came before (the
        // extension did not wait for this invocation's outcome), and added nothing.
        let recorded = responded.map(|t0| recorder.next_call_after(t0).unwrap_or(Duration::ZERO));
        match (recorded, sim.get_extension_overhead_ms(&id).await) {
            (Some(d), _) => added.push(d),
            (None, Some(o)) => added.push(Duration::from_secs_f64(o.max(0.0) / 1000.0)),
            (None, None) => {
                let waited = done.elapsed();
                if waited + Duration::from_millis(50) >= READY_TIMEOUT {
                    // The simulator's tracking missed the extension's /next (which the
                    // extension had already made: it never waits this long) and went on
                    // at its ready timeout. Counted apart, not as time added.
                    missed += 1;
                } else {
                    unmeasured += 1;
                    added.push(waited);
                }
            }
        }
        if i + 1 == n.div_ceil(10) {
            early_rss = rss_kib(ext.pid());
        }
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
    }
    let elapsed = started.elapsed();
    let burst_rss = rss_kib(ext.pid());
    let recovering = matches!(api_state, "outage" | "slow-then-fast");
    let mut recovery = None;
    if recovering {
        // The server answers again; one more invocation, as Lambda would run, and the
        // backlog sends what waited meanwhile.
        api.end_outage();
        let back = Instant::now();
        let id = sim.enqueue_payload(json!({"i": n})).await;
        procwrapper_tests::lambda::invocation_done(&sim, &id, LIMIT)
            .await
            .expect("UNWRAP: the invocation completes");
        let all =
            procwrapper_tests::wait_until(Duration::from_secs(120), || api.finished().len() > n);
        recovery = Some((back.elapsed(), all));
    } else {
        // Reports still waiting for telemetry or for the API server finish, or give up.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let late_rss = rss_kib(ext.pid());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", ext.pid())).map_or(0, Iterator::count);
    let threads = std::fs::read_dir(format!("/proc/{}/task", ext.pid())).map_or(0, Iterator::count);
    println!("extension open files at the end: {fds}, threads: {threads}");
    println!(
        "API server {api_state}, cap {cap} ms, {n} invocations in {:.1} s ({} ms apart)",
        elapsed.as_secs_f64(),
        pace.as_millis()
    );
    report("time added after the runtime's response", "ms", added);
    if unmeasured > 0 {
        println!(
            "({unmeasured} invocation(s) without a figure from the simulator, measured by polling)"
        );
    }
    if missed > 0 {
        println!(
            "({missed} invocation(s) where the simulator missed the extension's /next and went on \
             at its {} s ready timeout; not counted)",
            READY_TIMEOUT.as_secs()
        );
    }
    println!(
        "{:<44} after {} invocations {} KiB, right after the last {} KiB, {} {} KiB (peak {} KiB)",
        "RSS, extension + proxy process",
        n.div_ceil(10),
        early_rss.0,
        burst_rss.0,
        if recovering { "delivered" } else { "3 s later" },
        late_rss.0,
        late_rss.1
    );
    if let Some((took, all)) = recovery {
        println!(
            "after the recovery: {} of {} final statuses delivered in {:.1} s{}",
            api.finished().len(),
            n + 1,
            took.as_secs_f64(),
            if all { "" } else { " (gave up waiting)" }
        );
    }
    record_sizes(&api);
    sim.graceful_shutdown(ShutdownReason::Spindown).await;
    // SHUTDOWN is acknowledged when delivered; the extension flushes, then exits.
    let mut ext = ext;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(ext.try_wait(), Ok(None)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ext);
    let total = if recovering { n + 1 } else { n };
    println!(
        "final statuses received by the API server: {} of {total}",
        api.finished().len()
    );
}

/// The bytes a waiting report takes in the backlog, from two creation bodies that reached
/// the server: the first is the template of every later one.
fn record_sizes(api: &FakeApi) {
    let bodies: Vec<serde_json::Map<String, serde_json::Value>> = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| r.body.as_object().cloned())
        .take(2)
        .collect();
    if let [first, second] = bodies.as_slice() {
        let whole = serde_json::to_string(second).map_or(0, |t| t.len());
        println!(
            "{:<44} {} bytes (the body: {whole} bytes; target about 2 KiB)",
            "a waiting report in the backlog",
            proc_wrapper::lambda::backlog::record_bytes(first, second)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        usage();
    }
    let n: usize = args[4].parse().unwrap_or_else(|_| usage());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("UNWRAP: a runtime");
    match args[3].as_str() {
        "startup" => runtime.block_on(startup(&args[1], n)),
        "roundtrip" => runtime.block_on(roundtrip(&args[1], n)),
        "invocations" => runtime.block_on(invocations(
            &args[1],
            &args[2],
            n,
            args.get(5).map_or("up", String::as_str),
            Duration::from_millis(args.get(6).and_then(|p| p.parse().ok()).unwrap_or(0)),
        )),
        _ => usage(),
    }
}
