//! A Lambda function on `lambda_runtime` for the extension's end-to-end tests. The event
//! decides what it does:
//!
//! * `{"sleep_ms": N}`: sleeps N ms first;
//! * `{"wait_for_file": PATH}`: waits until PATH exists (the test's way to hold an
//!   invocation open for as long as it needs, and no longer);
//! * `{"success_count": N}`: sends a status update over UDP (to the extension);
//! * `{"fail": true}`: returns an error (`errorType` is the error's type);
//! * `{"panic": true}`: panics;
//! * anything else: answers `{"echo": <event>}`.
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var("TEST_FUNCTION_LOG").is_ok_and(|v| v == "TRUE") {
        proc_wrapper::logging::init_lambda();
    }
    if std::env::var("TEST_FUNCTION_WRAPPED").is_ok_and(|v| v == "TRUE") {
        proc_wrapper::lambda::handler::run(service_fn(handler)).await
    } else {
        lambda_runtime::run(service_fn(handler)).await
    }
}
