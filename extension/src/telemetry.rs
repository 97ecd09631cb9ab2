//! The Telemetry API listener and its lenient parser.
//!
//! Lambda POSTs JSON arrays of `{"time", "type", "record"}` to the listener and re-sends a
//! batch that is not answered with 2xx, so the listener always answers 200: each record is
//! parsed on its own, records of unknown types are kept as [`Record::Other`], and a batch that
//! is not JSON is dropped with a warning.
//!
//! [`ending`] names how an invocation ended from its `platform.runtimeDone` status and
//! `errorType` (the table in README "AWS Lambda").

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::SystemTime;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proc_wrapper::process::FinalStatus;
use proc_wrapper::task::wire::LambdaCause;
use proc_wrapper::time::parse_rfc3339_utc;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::Inbound;

/// Largest batch accepted: Lambda sends at most about twice `maxBytes` (256 KiB) plus
/// metadata.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A telemetry record the extension uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `platform.runtimeDone`: the runtime finished an invocation.
    RuntimeDone {
        /// The request id.
        request_id: String,
        /// When the runtime finished (the record's `time`), if readable.
        at: Option<SystemTime>,
        /// `success`, `error`, `failure` or `timeout`.
        status: String,
        /// `metrics.durationMs`.
        duration_ms: Option<f64>,
        /// `errorType`, if any.
        error_type: Option<String>,
    },
    /// `platform.report`: billing and memory figures of an invocation, which arrive after
    /// the extension has moved on to the next event.
    Report {
        /// The request id.
        request_id: String,
        /// The metrics, with snake-case names (`billed_duration_ms`, `max_memory_used_mb`, ...).
        metrics: Map<String, Value>,
    },
    /// `platform.initRuntimeDone`: the runtime finished (or failed) its initialisation.
    InitRuntimeDone(InitEnd),
    /// `platform.initReport`: the report of the initialisation, with its status.
    InitReport(InitEnd),
    /// Any other record type (`platform.start`, `function`, future types, ...).
    Other(String),
}

impl Record {
    /// A `platform.*` record: the extension subscribes to those only, so only they show
    /// that the subscription delivers (the Runtime Interface Emulator, whose subscription
    /// is a stub, may still post the function's output as `function` records).
    pub fn is_platform(&self) -> bool {
        match self {
            Self::Other(kind) => kind.starts_with("platform."),
            _ => true,
        }
    }
}

/// How the environment's initialisation ended (`platform.initRuntimeDone`,
/// `platform.initReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitEnd {
    /// `success`, `error`, `failure` or `timeout`, when the record says.
    pub status: Option<String>,
    /// `errorType` (`Runtime.ExitError`, ...), if any.
    pub error_type: Option<String>,
    /// `init` (the Init phase), or `invoke` (an initialisation run again inside the first
    /// invocation, after the Init phase failed or timed out).
    pub phase: Option<String>,
}

impl InitEnd {
    /// The initialisation did not succeed.
    pub fn failed(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s != "success")
    }

    /// The initialisation succeeded.
    pub fn succeeded(&self) -> bool {
        self.status.as_deref() == Some("success")
    }

    /// A failure that decides the outcome of the invocation it happens in: one of the
    /// invoke phase (or of an unnamed phase). A failure of the Init phase does not: when
    /// an invocation follows it in the same environment, Lambda initialises again within
    /// that invocation, which ends as that second initialisation goes.
    pub fn decides_the_invocation(&self) -> bool {
        self.failed() && self.phase.as_deref() != Some("init")
    }

    /// Fills what `self` does not know from `other` (the second record of the same
    /// initialisation).
    pub fn merge(&mut self, other: Self) {
        if self.status.is_none() {
            self.status = other.status;
        }
        if self.error_type.is_none() {
            self.error_type = other.error_type;
        }
        if self.phase.is_none() {
            self.phase = other.phase;
        }
    }
}

/// The final status and the cause that a `runtimeDone` `status` and `errorType` stand for
/// (the cause is `None` for a success):
///
/// | status | errorType | final status | cause |
/// |---|---|---|---|
/// | `success` | | `SUCCEEDED` | |
/// | `timeout`, or any | `Sandbox.Timedout` | `TERMINATED_AFTER_TIME_OUT` | `timed_out` |
/// | any other | `Runtime.OutOfMemory` | `FAILED` | `out_of_memory` |
/// | any other | `Runtime.ExitError` | `FAILED` | `exit_error` |
/// | `error` | any other | `FAILED` | `handler_error` |
/// | `failure` or unknown | any other | `FAILED` | `runtime_failure` |
pub fn ending(status: &str, error_type: Option<&str>) -> (FinalStatus, Option<LambdaCause>) {
    match (status, error_type) {
        ("success", _) => (FinalStatus::Succeeded, None),
        ("timeout", _) | (_, Some("Sandbox.Timedout")) => (
            FinalStatus::TerminatedAfterTimeOut,
            Some(LambdaCause::TimedOut),
        ),
        (_, Some("Runtime.OutOfMemory")) => (FinalStatus::Failed, Some(LambdaCause::OutOfMemory)),
        (_, Some("Runtime.ExitError")) => (FinalStatus::Failed, Some(LambdaCause::ExitError)),
        ("error", _) => (FinalStatus::Failed, Some(LambdaCause::HandlerError)),
        _ => (FinalStatus::Failed, Some(LambdaCause::RuntimeFailure)),
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

fn parse_record(item: &Value) -> Option<Record> {
    let kind = item.get("type")?.as_str()?;
    let record = item.get("record");
    let text = |k: &str| {
        record
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(match kind {
        "platform.runtimeDone" => Record::RuntimeDone {
            request_id: text("requestId")?,
            at: item
                .get("time")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339_utc),
            status: text("status")?.to_ascii_lowercase(),
            duration_ms: record
                .and_then(|r| r.get("metrics"))
                .and_then(|m| m.get("durationMs"))
                .and_then(Value::as_f64),
            error_type: text("errorType"),
        },
        "platform.initRuntimeDone" | "platform.initReport" => {
            let end = InitEnd {
                status: text("status").map(|s| s.to_ascii_lowercase()),
                error_type: text("errorType"),
                phase: text("phase").map(|s| s.to_ascii_lowercase()),
            };
            if kind == "platform.initReport" {
                Record::InitReport(end)
            } else {
                Record::InitRuntimeDone(end)
            }
        }
        "platform.report" => Record::Report {
            request_id: text("requestId")?,
            metrics: record
                .and_then(|r| r.get("metrics"))
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (snake_case(k), v.clone())).collect())
                .unwrap_or_default(),
        },
        other => Record::Other(other.to_owned()),
    })
}

/// Parses a batch. Records that are malformed are skipped (with a debug log); a body that is
/// not a JSON array gives no records.
pub fn parse_batch(body: &[u8]) -> Vec<Record> {
    let items: Vec<Value> = match serde_json::from_slice(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            warn!("ignoring a telemetry batch that is not a JSON array");
            return Vec::new();
        }
        Err(e) => {
            warn!("ignoring a telemetry batch that is not JSON: {e}");
            return Vec::new();
        }
    };
    items
        .iter()
        .filter_map(|item| {
            let r = parse_record(item);
            if r.is_none() {
                debug!("ignoring a malformed telemetry record");
            }
            r
        })
        .collect()
}

async fn handle(
    request: Request<Incoming>,
    tx: UnboundedSender<Inbound>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match Limited::new(request.into_body(), MAX_BATCH_BYTES)
        .collect()
        .await
    {
        Ok(body) => {
            for record in parse_batch(&body.to_bytes()) {
                // The receiver is gone only when the extension is exiting.
                let _ = tx.send(Inbound::Telemetry(record));
            }
        }
        Err(e) => warn!("ignoring a telemetry batch that could not be read: {e}"),
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Listens on `0.0.0.0:port` (0 = a free port) and forwards records to `tx`, until `cancel`.
/// Returns the port actually bound.
pub async fn listen(
    port: u16,
    tx: UnboundedSender<Inbound>,
    cancel: CancellationToken,
) -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Errors such as EMFILE repeat at once: wait before the next accept so
                    // that this loop cannot spin.
                    debug!("telemetry listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, tx.clone()));
                // One batch per connection: a sender that opens a connection per batch and
                // never closes it must not pile up idle connections.
                if let Err(e) = http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!("telemetry connection: {e}");
                }
            });
        }
    });
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_parsed_one_by_one() {
        let batch = br#"[
          {"time":"2026-11-27T10:00:00.000Z","type":"platform.start","record":{"requestId":"a"}},
          {"time":"2026-11-27T10:00:00.010Z","type":"platform.runtimeDone",
           "record":{"requestId":"a","status":"timeout","metrics":{"durationMs":3000.5,"producedBytes":0}}},
          {"time":"2026-11-27T10:00:00.020Z","type":"platform.restoreReport","record":{"metrics":{}}},
          {"time":"2026-11-27T10:00:00.030Z","type":"platform.runtimeDone","record":{"status":"success"}},
          {"type":"platform.report","record":{"requestId":"a","status":"timeout",
           "metrics":{"durationMs":3000.5,"billedDurationMs":3001,"memorySizeMB":128,"maxMemoryUsedMB":64,"initDurationMs":12.5}}},
          {"type":"platform.initStart","record":{"initializationType":"lambda-managed-instances"}},
          "garbage",
          {"type":"something.new","record":[1,2]}
        ]"#;
        let records = parse_batch(batch);
        assert_eq!(records.len(), 6, "{records:?}");
        assert_eq!(records[0], Record::Other("platform.start".into()));
        assert_eq!(
            records[1],
            Record::RuntimeDone {
                request_id: "a".into(),
                at: parse_rfc3339_utc("2026-11-27T10:00:00.010Z"),
                status: "timeout".into(),
                duration_ms: Some(3000.5),
                error_type: None
            }
        );
        assert_eq!(records[2], Record::Other("platform.restoreReport".into()));
        let Record::Report {
            request_id,
            metrics,
        } = &records[3]
        else {
            panic!("not a report: {:?}", records[3]);
        };
        assert_eq!(request_id, "a");
        assert_eq!(metrics["billed_duration_ms"], 3001);
        assert_eq!(metrics["memory_size_mb"], 128);
        assert_eq!(metrics["max_memory_used_mb"], 64);
        assert_eq!(metrics["init_duration_ms"], 12.5);
        assert_eq!(records[5], Record::Other("something.new".into()));
    }

    /// A fixture of `tests/fixtures/`, for request `a`.
    fn fixture(text: &str) -> Vec<Record> {
        parse_batch(text.replace("REQUEST_ID", "a").as_bytes())
    }

    /// The `(status, errorType)` of the one `runtimeDone` of a batch.
    fn runtime_done(records: &[Record]) -> (String, Option<String>) {
        match records {
            [
                Record::RuntimeDone {
                    request_id,
                    status,
                    error_type,
                    ..
                },
            ] if request_id == "a" => (status.clone(), error_type.clone()),
            other => panic!("not one runtimeDone of a: {other:?}"),
        }
    }

    #[test]
    fn every_runtime_done_fixture_names_its_ending() {
        use FinalStatus::{Failed, TerminatedAfterTimeOut};
        use LambdaCause::{ExitError, OutOfMemory, RuntimeFailure, TimedOut};
        for (text, status, error_type, expected) in [
            (
                include_str!("../tests/fixtures/runtime_done_timeout.json"),
                "timeout",
                None,
                (TerminatedAfterTimeOut, Some(TimedOut)),
            ),
            (
                include_str!("../tests/fixtures/runtime_done_sandbox_timedout.json"),
                "timeout",
                Some("Sandbox.Timedout"),
                (TerminatedAfterTimeOut, Some(TimedOut)),
            ),
            (
                include_str!("../tests/fixtures/runtime_done_out_of_memory.json"),
                "failure",
                Some("Runtime.OutOfMemory"),
                (Failed, Some(OutOfMemory)),
            ),
            (
                include_str!("../tests/fixtures/runtime_done_exit_error.json"),
                "error",
                Some("Runtime.ExitError"),
                (Failed, Some(ExitError)),
            ),
            (
                include_str!("../tests/fixtures/runtime_done_failure.json"),
                "failure",
                Some("Runtime.Unknown"),
                (Failed, Some(RuntimeFailure)),
            ),
        ] {
            let (s, e) = runtime_done(&fixture(text));
            assert_eq!((s.as_str(), e.as_deref()), (status, error_type));
            assert_eq!(ending(&s, e.as_deref()), expected, "{text}");
        }
    }

    #[test]
    fn the_memory_exhausted_report_fixture_keeps_size_and_peak() {
        let records = fixture(include_str!(
            "../tests/fixtures/report_memory_exhausted.json"
        ));
        let [
            Record::Report {
                request_id,
                metrics,
            },
        ] = records.as_slice()
        else {
            panic!("not one report: {records:?}");
        };
        assert_eq!(request_id, "a");
        assert_eq!(metrics["memory_size_mb"], 128);
        assert_eq!(metrics["max_memory_used_mb"], 128);
        assert!(proc_wrapper::lambda::memory_exhausted(metrics));
    }

    #[test]
    fn init_fixtures_give_failed_ends_with_their_phase() {
        let init = fixture(include_str!("../tests/fixtures/init_failed.json"));
        let failed = InitEnd {
            status: Some("error".into()),
            error_type: Some("Runtime.ExitError".into()),
            phase: Some("init".into()),
        };
        assert_eq!(
            init,
            [
                Record::InitRuntimeDone(failed.clone()),
                Record::InitReport(failed.clone())
            ]
        );
        assert!(failed.failed() && !failed.succeeded());
        assert!(
            !failed.decides_the_invocation(),
            "Lambda initialises again within the next invocation"
        );
        let invoke = fixture(include_str!(
            "../tests/fixtures/init_failed_invoke_phase.json"
        ));
        let [Record::InitRuntimeDone(end), Record::InitReport(_)] = invoke.as_slice() else {
            panic!("not the two init records: {invoke:?}");
        };
        assert_eq!(end.phase.as_deref(), Some("invoke"));
        assert_eq!(end.error_type.as_deref(), Some("Runtime.Unknown"));
        assert!(end.decides_the_invocation());
        // What the simulator sends: a success, which is not a failure.
        let ok = parse_batch(
            br#"[{"type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"success"}},
                 {"type":"platform.initReport","record":{"phase":"init","metrics":{"durationMs":3.0}}}]"#,
        );
        let [Record::InitRuntimeDone(ok), Record::InitReport(no_status)] = ok.as_slice() else {
            panic!("not the two init records: {ok:?}");
        };
        assert!(ok.succeeded() && !ok.failed() && !ok.decides_the_invocation());
        assert!(!no_status.failed() && !no_status.succeeded());
        let mut merged = InitEnd {
            phase: Some("init".into()),
            ..InitEnd::default()
        };
        merged.merge(failed.clone());
        assert_eq!(merged, failed);
    }

    #[test]
    fn only_platform_records_show_that_the_subscription_delivers() {
        let records = parse_batch(
            br#"[{"type":"function","record":"a line the function printed"},
                 {"type":"platform.start","record":{"requestId":"a"}},
                 {"type":"platform.report","record":{"requestId":"a","metrics":{}}}]"#,
        );
        let platform: Vec<bool> = records.iter().map(Record::is_platform).collect();
        assert_eq!(platform, [false, true, true]);
    }

    #[test]
    fn a_batch_that_is_not_an_array_gives_nothing() {
        assert!(parse_batch(b"{\"type\":\"platform.start\"}").is_empty());
        assert!(parse_batch(b"\xff\xfe").is_empty());
        assert!(parse_batch(b"").is_empty());
    }

    #[test]
    fn statuses_and_names() {
        use FinalStatus::{Failed, Succeeded, TerminatedAfterTimeOut};
        use LambdaCause::{ExitError, HandlerError, OutOfMemory, RuntimeFailure, TimedOut};
        for (status, error_type, expected) in [
            ("success", None, (Succeeded, None)),
            ("success", Some("Runtime.ExitError"), (Succeeded, None)),
            ("error", None, (Failed, Some(HandlerError))),
            ("error", Some("ValueError"), (Failed, Some(HandlerError))),
            ("failure", None, (Failed, Some(RuntimeFailure))),
            (
                "failure",
                Some("Runtime.Unknown"),
                (Failed, Some(RuntimeFailure)),
            ),
            ("something-new", None, (Failed, Some(RuntimeFailure))),
            (
                "failure",
                Some("Runtime.OutOfMemory"),
                (Failed, Some(OutOfMemory)),
            ),
            (
                "error",
                Some("Runtime.OutOfMemory"),
                (Failed, Some(OutOfMemory)),
            ),
            (
                "failure",
                Some("Runtime.ExitError"),
                (Failed, Some(ExitError)),
            ),
            (
                "error",
                Some("Runtime.ExitError"),
                (Failed, Some(ExitError)),
            ),
            ("timeout", None, (TerminatedAfterTimeOut, Some(TimedOut))),
            (
                "timeout",
                Some("Sandbox.Timedout"),
                (TerminatedAfterTimeOut, Some(TimedOut)),
            ),
            (
                "failure",
                Some("Sandbox.Timedout"),
                (TerminatedAfterTimeOut, Some(TimedOut)),
            ),
        ] {
            assert_eq!(
                ending(status, error_type),
                expected,
                "{status} / {error_type:?}"
            );
        }
        assert_eq!(snake_case("maxMemoryUsedMB"), "max_memory_used_mb");
        assert_eq!(snake_case("memorySizeMB"), "memory_size_mb");
        assert_eq!(snake_case("durationMs"), "duration_ms");
    }
}
