//! An example Rust Lambda function reported to CloudReactor: the handler is an ordinary
//! `lambda_runtime` handler, and one line (`proc_wrapper::lambda::handler::run`) makes each
//! invocation a Task Execution. Deployed by `template.yaml` (`RustExampleFunction`) with the
//! CloudReactor layer, which then owns the Task Execution and gets the handler's result from
//! it; without the layer the wrapper reports by itself.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use proc_wrapper::status::{StatusUpdate, StatusUpdater};
use serde_json::{Value, json};

/// Counts the items of `{"items": [...]}` and reports the progress.
async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let items = event
        .payload
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = StatusUpdater::from_env(false);
    let count = i64::try_from(items.len())?;
    status.send_update(StatusUpdate {
        success_count: Some(count),
        expected_count: Some(count),
        last_status_message: Some(format!("processed {count} item(s)")),
        ..StatusUpdate::default()
    });
    Ok(json!({ "processed": count }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The handler wrapper's log (and any `tracing` events of the handler) in the function's
    // log format: JSON lines with `AWS_LAMBDA_LOG_FORMAT=JSON`.
    proc_wrapper::logging::init_lambda();
    proc_wrapper::lambda::handler::run(service_fn(handler)).await
}
