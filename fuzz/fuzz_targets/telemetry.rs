//! `cloudreactor_extension::telemetry::parse_batch` on arbitrary bytes.
#![no_main]

use cloudreactor_extension::telemetry::{Record, final_status, parse_batch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let records = parse_batch(data);
    let items = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Array(items)) => items.len(),
        _ => 0,
    };
    assert!(records.len() <= items, "more records than items in the batch");
    for record in &records {
        match record {
            Record::RuntimeDone { status, .. } => {
                assert!(!status.chars().any(|c| c.is_ascii_uppercase()));
                let _ = final_status(status);
            }
            Record::Report { metrics, .. } => {
                for key in metrics.keys() {
                    assert!(!key.chars().any(|c| c.is_ascii_uppercase()), "{key:?}");
                }
            }
            Record::Other(_) => {}
        }
    }
});
