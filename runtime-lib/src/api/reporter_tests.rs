//! The reporter's timing rules, in process and with paused time, against a tiny HTTP server
//! that records every request and answers with scripted statuses: heartbeats at the
//! configured interval, the due rule of status fields (sent at once when due, else with the
//! next heartbeat or the final update), and a 409 on an update as the server's request to
//! stop.
//!
//! # Why the virtual times are exact
//!
//! With paused time, Tokio moves its clock to the next timer each time the runtime has
//! nothing to run, including while a request waits for its answer on the socket. The clock
//! therefore only jumps to the reporter's own timers if no other timer exists while a request
//! is in flight. So the configuration has no request timeout (reqwest's only per-request
//! timer), and the server answers `connection: close` and closes each connection after one
//! request, so that no connection goes back to reqwest's pool (whose idle-eviction task would
//! be a 90 s timer). The server itself has no timers. (The reporter's instants are Tokio's
//! for the same reason: with std's, a paused clock would not apply to them.) Then a heartbeat is sent at exactly one interval, and the server can assert the
//! virtual time at which each request arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;
use crate::config::{ProcessConfig, ShellMode};
use crate::process::{Command, Supervisor};
use crate::signals::StopSignals;

const UUID: &str = "11111111-2222-3333-4444-555555555555";
const UPDATE_PATH: &str =
    "/api/v1/task_executions/11111111-2222-3333-4444-555555555555/?content=false";

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
    /// The virtual time it arrived at.
    at: Instant,
}

/// The fake API server: answers the n-th request with the n-th scripted status (200 once the
/// script is used up) and an empty JSON object, then closes the connection.
struct FakeApi {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeApi {
    async fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("UNWRAP: a local port is free");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("UNWRAP: bound socket")
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let statuses = statuses.to_vec();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut conn, _)) = listener.accept().await {
                let Some(mut request) = read_request(&mut conn).await else {
                    continue;
                };
                request.at = Instant::now();
                log.lock().expect("UNWRAP: not poisoned").push(request);
                let status = statuses.get(n).copied().unwrap_or(200);
                n += 1;
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\n\
                     content-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        Self { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("UNWRAP: not poisoned").clone()
    }
}

/// Reads one HTTP/1.1 request (head, then a `content-length` body).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let (method, path) = (start.next()?.to_owned(), start.next()?.to_owned());
    let header = |name: &str| {
        head.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
    while data.len() < head_end + length {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = serde_json::from_slice(&data[head_end..head_end + length]).unwrap_or(Value::Null);
    Some(Received {
        method,
        path,
        authorization: header("authorization"),
        body,
        at: Instant::now(),
    })
}

/// A reporter for the known execution [`UUID`], talking to `api`; `vars` win over the
/// defaults of these tests.
fn reporter(api: &FakeApi, vars: &[(&str, &str)]) -> Reporter {
    let mut pairs = vars.to_vec();
    pairs.extend_from_slice(&[
        ("PROC_WRAPPER_API_BASE_URL", api.url.as_str()),
        ("PROC_WRAPPER_API_KEY", "unit-key"),
        ("PROC_WRAPPER_TASK_NAME", "unit"),
        ("PROC_WRAPPER_TASK_EXECUTION_UUID", UUID),
        // No per-request timer: see the module doc.
        ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "-1"),
        ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "-1"),
    ]);
    let config = crate::config::from_pairs(&pairs);
    assert_eq!(config.api.request_timeout, None);
    Reporter::new(&config, RuntimeMetadata::default(), Mode::Wrapped)
        .expect("UNWRAP: the HTTP client builds")
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every request is an update of the execution, with the API key.
fn assert_updates(received: &[Received]) {
    for r in received {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("PATCH", UPDATE_PATH));
        assert_eq!(r.authorization.as_deref(), Some("Bearer unit-key"));
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_go_at_the_configured_interval_until_a_409_stops_the_execution() {
    let api = FakeApi::start(&[200, 200, 200, 409]).await;
    let mut reporter = reporter(
        &api,
        &[("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "30")],
    );
    let t0 = Instant::now();
    reporter.attempt_started(1, 4242).await;
    assert!(!reporter.stop_wanted());

    let StopRequest = reporter.stop_requested().await;

    let received = api.received();
    assert_updates(&received);
    let at: Vec<Duration> = received.iter().map(|r| r.at - t0).collect();
    assert_eq!(at, [secs(30), secs(60), secs(90), secs(120)]);
    for r in &received {
        assert_eq!(
            r.body,
            json!({"status": "RUNNING"}),
            "a heartbeat is a bare RUNNING"
        );
    }
    assert!(reporter.stop_wanted());
    // The server stopped the execution: no final update.
    reporter.final_update(&Outcome::exited(0), Map::new()).await;
    assert_eq!(api.received().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_heartbeat_still_waits_a_full_interval() {
    // 400 is not retried: the heartbeat fails at once.
    let api = FakeApi::start(&[400, 400, 409]).await;
    let mut reporter = reporter(
        &api,
        &[("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "45")],
    );
    let t0 = Instant::now();
    reporter.attempt_started(1, 4242).await;

    reporter.stop_requested().await;

    let at: Vec<Duration> = api.received().iter().map(|r| r.at - t0).collect();
    assert_eq!(at, [secs(45), secs(90), secs(135)]);
}

#[tokio::test(start_paused = true)]
async fn status_fields_are_sent_at_once_only_when_due() {
    let api = FakeApi::start(&[]).await;
    let mut reporter = reporter(
        &api,
        &[
            ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
            ("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "60"),
        ],
    );
    assert_eq!(reporter.config().status.interval, Some(secs(60)));
    let t0 = Instant::now();
    reporter.attempt_started(1, 4242).await;

    // The first status fields are always due.
    let first = reporter
        .update_status(fields(json!({"success_count": 1})))
        .await;
    assert_eq!(first, StatusResult::Sent);
    assert_eq!(api.received().len(), 1);

    // Within the interval after that update, fields wait.
    tokio::time::sleep(secs(10)).await;
    let soon = reporter
        .update_status(fields(json!({"success_count": 2})))
        .await;
    tokio::time::sleep(secs(49)).await;
    let later = reporter
        .update_status(fields(json!({"error_count": 1})))
        .await;
    assert_eq!(
        (soon, later),
        (StatusResult::Skipped, StatusResult::Skipped)
    );
    assert_eq!(api.received().len(), 1);

    // Past the interval, they go at once, with everything that waited.
    tokio::time::sleep(secs(2)).await;
    let due = reporter
        .update_status(fields(
            json!({"success_count": 3, "last_status_message": "m"}),
        ))
        .await;
    assert_eq!(due, StatusResult::Sent);

    let received = api.received();
    assert_updates(&received);
    let at: Vec<Duration> = received.iter().map(|r| r.at - t0).collect();
    assert_eq!(at, [secs(0), secs(61)]);
    assert_eq!(
        received[0].body,
        json!({"success_count": 1, "status": "RUNNING"})
    );
    assert_eq!(
        received[1].body,
        json!({"success_count": 3, "error_count": 1, "last_status_message": "m", "status": "RUNNING"})
    );
}

#[tokio::test(start_paused = true)]
async fn status_fields_that_are_not_due_go_with_the_next_heartbeat() {
    let api = FakeApi::start(&[200, 409]).await;
    let mut reporter = reporter(
        &api,
        &[
            ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "30"),
            ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
            ("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "600"),
        ],
    );
    assert_eq!(reporter.config().status.interval, Some(secs(600)));
    let t0 = Instant::now();
    reporter.attempt_started(1, 4242).await;
    let sent = reporter
        .update_status(fields(json!({"success_count": 1})))
        .await;
    tokio::time::sleep(secs(5)).await;
    let held = reporter
        .update_status(fields(json!({"success_count": 2})))
        .await;
    assert_eq!((sent, held), (StatusResult::Sent, StatusResult::Skipped));

    reporter.stop_requested().await;

    let received = api.received();
    assert_updates(&received);
    let at: Vec<Duration> = received.iter().map(|r| r.at - t0).collect();
    // The heartbeat comes one interval after the last successful update.
    assert_eq!(at, [secs(0), secs(30)]);
    assert_eq!(
        received[1].body,
        json!({"success_count": 2, "status": "RUNNING"})
    );
}

#[tokio::test(start_paused = true)]
async fn without_an_interval_later_status_fields_wait_for_the_final_update() {
    let api = FakeApi::start(&[]).await;
    let mut reporter = reporter(&api, &[]);
    assert_eq!(reporter.config().status.interval, None);
    reporter.attempt_started(1, 4242).await;
    let first = reporter
        .update_status(fields(json!({"success_count": 1})))
        .await;
    tokio::time::sleep(secs(3600)).await;
    let second = reporter
        .update_status(fields(json!({"success_count": 2, "expected_count": 9})))
        .await;
    assert_eq!((first, second), (StatusResult::Sent, StatusResult::Skipped));
    assert_eq!(api.received().len(), 1);

    reporter.final_update(&Outcome::exited(0), Map::new()).await;

    let received = api.received();
    assert_updates(&received);
    assert_eq!(received.len(), 2);
    let last = &received[1].body;
    assert_eq!(last["status"], "SUCCEEDED");
    assert_eq!(last["exit_code"], 0);
    assert_eq!(last["success_count"], 2);
    assert_eq!(last["expected_count"], 9);
}

#[tokio::test(start_paused = true)]
async fn a_409_on_a_status_update_asks_to_stop() {
    let api = FakeApi::start(&[409]).await;
    let mut reporter = reporter(
        &api,
        &[("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "30")],
    );
    reporter.attempt_started(1, 4242).await;

    let result = reporter
        .update_status(fields(json!({"success_count": 1})))
        .await;

    assert_eq!(result, StatusResult::Failed);
    assert!(reporter.stop_wanted());
    // stop_requested resolves at once (before any heartbeat), without another request.
    let t = Instant::now();
    reporter.stop_requested().await;
    assert_eq!(Instant::now(), t);
    reporter.final_update(&Outcome::exited(0), Map::new()).await;
    assert_eq!(api.received().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_status_message_from_the_listener_is_sent_at_once() {
    // No heartbeats: the runtime has no timer at all, so the clock stands still while the
    // datagram is on its way.
    let api = FakeApi::start(&[409]).await;
    let mut reporter = reporter(
        &api,
        &[("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")],
    );
    reporter.config.status.port = 0;
    reporter.start_listener().await;
    let port = reporter
        .listener
        .as_ref()
        .expect("UNWRAP: the listener is bound")
        .port();
    let t0 = Instant::now();
    reporter.attempt_started(1, 4242).await;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("UNWRAP: a local port is free");
    socket
        .send_to(b"{\"success_count\": 7}\n", ("127.0.0.1", port))
        .expect("UNWRAP: loopback UDP");

    reporter.stop_requested().await;

    let received = api.received();
    assert_updates(&received);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].at, t0);
    assert_eq!(
        received[0].body,
        json!({"success_count": 7, "status": "RUNNING"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_409_on_a_heartbeat_stops_the_supervised_child() {
    let api = FakeApi::start(&[200, 409]).await;
    let mut reporter = reporter(
        &api,
        &[
            ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "30"),
            ("PROC_WRAPPER_SEND_PID", "TRUE"),
        ],
    );
    let config = ProcessConfig {
        command: Vec::new(),
        command_line: None,
        work_dir: std::env::temp_dir(),
        shell_mode: ShellMode::Auto,
        strip_shell_wrapping: true,
        group_termination: true,
        timeout: None,
        max_retries: Some(3),
        retry_delay: secs(0),
        check_interval: secs(10),
        termination_grace_period: Some(secs(5)),
    };
    let command = Command::Exec(vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "exec sleep 1000".to_owned(),
    ]);
    let mut env = crate::child_env::ChildEnv::new();
    env.insert(
        "PATH".into(),
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
    );
    let mut supervisor = Supervisor::new(
        &config,
        command,
        env,
        "unit".to_owned(),
        StopSignals::new().unwrap(),
    )
    .expect("UNWRAP: signal handlers can be registered");

    let out = supervisor.run(&mut reporter).await;

    assert_eq!(
        (
            out.status,
            out.exit_code,
            out.wrapper_exit_code,
            out.attempts
        ),
        (FinalStatus::Stopped, None, 75, 1)
    );
    reporter.final_update(&out, Map::new()).await;
    let received = api.received();
    assert_updates(&received);
    // The PID at once, then the heartbeat that got the 409; no final update.
    assert_eq!(received.len(), 2);
    // A heartbeat carries the child's resident memory (the `sleep`: at least 1 MB).
    assert_eq!(received[1].body["status"], json!("RUNNING"));
    assert!(
        received[1].body["current_memory_mb"]
            .as_u64()
            .is_some_and(|mb| mb >= 1),
        "{}",
        received[1].body
    );
    let pid = received[0].body["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .expect("UNWRAP: the first update carries the PID");
    // The child was stopped and reaped.
    assert_eq!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    );
}
