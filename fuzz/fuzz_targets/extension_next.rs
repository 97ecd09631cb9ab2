//! `cloudreactor_extension::runtime_api::parse_next` on arbitrary bytes (a `/next` body).
#![no_main]

use cloudreactor_extension::runtime_api::{NextEvent, parse_next};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_next(data) {
        Ok(NextEvent::Invoke(invoke)) => {
            if let Some(trace) = &invoke.trace_id {
                assert!(!trace.is_empty());
            }
        }
        Ok(NextEvent::Shutdown { reason, .. }) => {
            assert!(!reason.chars().any(|c| c.is_ascii_uppercase()));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
