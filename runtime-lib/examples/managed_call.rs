//! A Rust program whose work is reported to CloudReactor as a Task Execution, configured by
//! the usual `PROC_WRAPPER_*` variables:
//!
//! ```sh
//! PROC_WRAPPER_OFFLINE_MODE=TRUE cargo run -p cloudreactor-procwrapper --example managed_call
//! PROC_WRAPPER_API_KEY=... PROC_WRAPPER_TASK_NAME="Row counter" \
//!   cargo run -p cloudreactor-procwrapper --example managed_call
//! ```

use proc_wrapper::managed::{ManagedCall, ManagedError};
use proc_wrapper::status::StatusUpdate;
use serde_json::{Map, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    proc_wrapper::logging::init(proc_wrapper::config::LogLevel::Info, true);
    let mut config = Map::new();
    config.insert("rows".into(), json!(3));
    let result = ManagedCall::new()
        .initial_config(config)
        .call(|ctx| async move {
            let rows = ctx.config.get("rows").and_then(|v| v.as_u64()).unwrap_or(0);
            for done in 1..=rows {
                ctx.update_status(StatusUpdate {
                    success_count: Some(i64::try_from(done).unwrap_or(i64::MAX)),
                    expected_count: Some(i64::try_from(rows).unwrap_or(i64::MAX)),
                    ..StatusUpdate::default()
                })
                .await;
            }
            Ok::<_, std::io::Error>(json!({"rows_processed": rows}))
        })
        .await;
    match result {
        Ok(value) => {
            println!("{value}");
            std::process::ExitCode::SUCCESS
        }
        Err(ManagedError::Function(e)) => {
            eprintln!("the work failed: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(78)
        }
    }
}
