//! A Lambda function on `lambda_runtime` for the extension's end-to-end tests. The event
//! decides what it does:
//!
//! * `{"sleep_ms": N}`: sleeps N ms first;
//! * `{"wait_for_file": PATH}`: creates `PATH.started`, then waits until PATH exists (the
//!   test's way to hold an invocation open for as long as it needs, and no longer);
//! * `{"success_count": N}`: sends a status update over UDP (to the extension);
//! * `{"fail": true}`: returns an error (`errorType` is the error's type);
//! * `{"panic": true}`: panics;
//! * anything else: answers `{"echo": <event>}`.
//!
//! With `TEST_FUNCTION_STREAMING=TRUE` it streams its response instead (Lambda's response
//! streaming, `Lambda-Runtime-Function-Response-Mode: streaming`): `{"parts": N}` answers
//! `{"parts": [0, 1, ..., N-1]}` in N + 2 chunks, 5 ms apart.
//!
//! With `TEST_FUNCTION_WRAPPED=TRUE` the handler runs under runtime-lib's Lambda handler
//! wrapper (`proc_wrapper::lambda::handler::run`); with `TEST_FUNCTION_LOG=TRUE` it logs
//! through `proc_wrapper::logging::init_lambda` (else it installs no subscriber and is
//! silent).

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use proc_wrapper::status::{StatusUpdate, StatusUpdater};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let p = event.payload;
    if let Some(ms) = p.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(path) = p.get("wait_for_file").and_then(Value::as_str) {
        std::fs::write(format!("{path}.started"), b"")?;
        while !std::path::Path::new(path).exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if let Some(n) = p.get("success_count").and_then(Value::as_i64) {
        let mut updater = StatusUpdater::from_env(false);
        updater.send_update(StatusUpdate {
            success_count: Some(n),
            last_status_message: Some("counted".into()),
            ..StatusUpdate::default()
        });
    }
    if p.get("panic") == Some(&json!(true)) {
        panic!("the handler panicked on purpose");
    }
    if p.get("fail") == Some(&json!(true)) {
        return Err("the handler failed on purpose".into());
    }
    Ok(json!({ "echo": p }))
}

async fn streaming(
    event: LambdaEvent<Value>,
) -> Result<lambda_runtime::streaming::Response<lambda_runtime::streaming::Body>, Error> {
    let parts = event
        .payload
        .get("parts")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let (mut tx, rx) = lambda_runtime::streaming::channel();
    tokio::spawn(async move {
        let mut chunks = vec!["{\"parts\": [".to_owned()];
        chunks.extend((0..parts).map(|i| {
            if i == 0 {
                i.to_string()
            } else {
                format!(", {i}")
            }
        }));
        chunks.push("]}".to_owned());
        for chunk in chunks {
            if tx.send_data(chunk.into()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    Ok(lambda_runtime::streaming::Response::from(rx))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var("TEST_FUNCTION_STREAMING").is_ok_and(|v| v == "TRUE") {
        return lambda_runtime::run(service_fn(streaming)).await;
    }
    if std::env::var("TEST_FUNCTION_LOG").is_ok_and(|v| v == "TRUE") {
        proc_wrapper::logging::init_lambda();
    }
    if std::env::var("TEST_FUNCTION_WRAPPED").is_ok_and(|v| v == "TRUE") {
        proc_wrapper::lambda::handler::run(service_fn(handler)).await
    } else {
        lambda_runtime::run(service_fn(handler)).await
    }
}
