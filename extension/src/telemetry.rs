//! The Telemetry API listener and its lenient parser.
//!
//! Lambda POSTs JSON arrays of `{"time", "type", "record"}` to the listener and re-sends a
//! batch that is not answered with 2xx, so the listener always answers 200: each record is
//! parsed on its own, records of unknown types are kept as [`Record::Other`], and a batch that
//! is not JSON is dropped with a warning.

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
    /// Any other record type (`platform.start`, `platform.initReport`, future types, ...).
    Other(String),
}

/// The final status that a `runtimeDone` status stands for.
pub fn final_status(status: &str) -> FinalStatus {
    match status {
        "success" => FinalStatus::Succeeded,
        "timeout" => FinalStatus::TerminatedAfterTimeOut,
        _ => FinalStatus::Failed,
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

    #[test]
    fn a_batch_that_is_not_an_array_gives_nothing() {
        assert!(parse_batch(b"{\"type\":\"platform.start\"}").is_empty());
        assert!(parse_batch(b"\xff\xfe").is_empty());
        assert!(parse_batch(b"").is_empty());
    }

    #[test]
    fn statuses_and_names() {
        assert_eq!(final_status("success"), FinalStatus::Succeeded);
        assert_eq!(final_status("error"), FinalStatus::Failed);
        assert_eq!(final_status("failure"), FinalStatus::Failed);
        assert_eq!(final_status("timeout"), FinalStatus::TerminatedAfterTimeOut);
        assert_eq!(snake_case("maxMemoryUsedMB"), "max_memory_used_mb");
        assert_eq!(snake_case("memorySizeMB"), "memory_size_mb");
        assert_eq!(snake_case("durationMs"), "duration_ms");
    }
}
