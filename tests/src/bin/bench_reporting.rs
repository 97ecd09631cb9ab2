//! Benchmarks of reporting to the CloudReactor API (README "Test it", "Benchmarks"), against
//! the fake API server on loopback:
//!
//! * `bench_reporting run PROC_WRAPPER [RUNS]`: the time a reported run (creation + final
//!   update) adds over an offline run of `true`. Target: ≤ 10 ms.
//! * `bench_reporting udp PROC_WRAPPER [MESSAGES]`: UDP status messages ingested per second
//!   while the child sends them as fast as it can, and the number of API updates they cause
//!   with a 1 s status update interval. Target: ≥ 50,000 messages/s, at most one update per
//!   interval.
//!
//! `tests/bench/reporting.sh` builds the release binaries and runs both.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use procwrapper_tests::bench::{ms, percentile, run_once_env};
use procwrapper_tests::fake_api::{API_KEY, FakeApi};

fn median_of(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.9))
}

fn run_bench(wrapper: &str, runs: usize) {
    let api = FakeApi::start();
    let online = [
        ("PROC_WRAPPER_API_BASE_URL", api.url.as_str()),
        ("PROC_WRAPPER_API_KEY", API_KEY),
        ("PROC_WRAPPER_TASK_NAME", "bench"),
    ];
    let offline = [("PROC_WRAPPER_OFFLINE_MODE", "TRUE")];
    let argv = [wrapper, "--", "true"];
    for _ in 0..10 {
        run_once_env(&argv, &offline);
        run_once_env(&argv, &online);
    }
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(run_once_env(&argv, &offline).wall);
        on.push(run_once_env(&argv, &online).wall);
    }
    let requests = api.requests().len();
    let (off_m, off_p) = median_of(off);
    let (on_m, on_p) = median_of(on);
    println!("runs: {runs} of each, alternating, after 10 warm-up runs");
    println!(
        "proc_wrapper -o -- true                  median {:7.3} ms  p90 {:7.3} ms",
        ms(off_m),
        ms(off_p)
    );
    println!(
        "proc_wrapper -- true (fake API)          median {:7.3} ms  p90 {:7.3} ms  ({requests} requests in all)",
        ms(on_m),
        ms(on_p)
    );
    println!(
        "added by reporting (creation + final update, median): {:.3} ms (target <= 10 ms)",
        ms(on_m.saturating_sub(off_m))
    );
}

fn udp_bench(wrapper: &str, messages: u64) {
    let api = FakeApi::start();
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("UNWRAP: a UDP port is free")
        .port()
        .to_string();
    let me = std::env::current_exe().expect("UNWRAP: the benchmark knows its path");
    let start = Instant::now();
    let out = Command::new(wrapper)
        .env("PROC_WRAPPER_API_BASE_URL", &api.url)
        .env("PROC_WRAPPER_API_KEY", API_KEY)
        .env("PROC_WRAPPER_TASK_NAME", "bench")
        .env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
        .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", &port)
        .env("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "1")
        .env("PROC_WRAPPER_LOG_LEVEL", "DEBUG")
        .arg("--")
        .arg(&me)
        .args(["send", &messages.to_string()])
        .output()
        .expect("UNWRAP: proc_wrapper runs");
    let total = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let send_secs: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent in seconds: "))
        .and_then(|s| s.trim().parse().ok())
        .expect("UNWRAP: the sender reports its time");
    let accepted: u64 = stderr
        .lines()
        .find_map(|l| l.split("accepted ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reqs = api.requests();
    let status_updates = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.status() == Some("RUNNING"))
        .count();
    let last = reqs.last().map(|r| r.body["success_count"].clone());
    println!(
        "sent {messages} messages in {send_secs:.3} s ({:.0}/s); the wrapper accepted {accepted} \
         ({:.1}%): {:.0} messages/s ingested (target >= 50,000)",
        messages as f64 / send_secs,
        accepted as f64 * 100.0 / messages as f64,
        accepted as f64 / send_secs,
    );
    println!(
        "API updates while running: {status_updates} RUNNING PATCH(es) over {:.2} s with a 1 s \
         interval (target: at most one per interval); final update success_count = {}",
        total.as_secs_f64(),
        last.unwrap_or_default()
    );
}

fn send(messages: u64) {
    let port: u16 = std::env::var("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("UNWRAP: run under proc_wrapper with the listener on");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("UNWRAP: a UDP socket");
    let start = Instant::now();
    for i in 1..=messages {
        let msg = format!("{{\"success_count\": {i}}}\n");
        let _ = socket.send_to(msg.as_bytes(), ("127.0.0.1", port));
    }
    println!("sent in seconds: {}", start.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(0), arg(1)) {
        (Some("run"), Some(w)) => {
            run_bench(w, arg(2).map_or(200, |r| r.parse().expect("UNWRAP: RUNS")))
        }
        (Some("udp"), Some(w)) => {
            udp_bench(
                w,
                arg(2).map_or(200_000, |r| r.parse().expect("UNWRAP: MESSAGES")),
            );
        }
        (Some("send"), Some(n)) => send(n.parse().expect("UNWRAP: MESSAGES")),
        _ => eprintln!("usage: bench_reporting run|udp PROC_WRAPPER [N]"),
    }
}
