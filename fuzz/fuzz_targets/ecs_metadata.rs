//! `metadata::ecs_from_documents` with the task and current-container documents from the
//! input: the task document, a NUL byte, then the container document (a part that is not
//! JSON is used as `null`). Run with the default configuration, and with one naming a main
//! and a monitor container (sidecar mode).
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proc_wrapper::config::{Args, Config};
use proc_wrapper::metadata::ecs_from_documents;
use serde_json::Value;

fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let default = Config::from_sources(&Args::default(), &|_| None).expect("default config");
        let vars = HashMap::from([
            ("PROC_WRAPPER_MAIN_CONTAINER_NAME", "main"),
            ("PROC_WRAPPER_MONITOR_CONTAINER_NAME", "nginx-curl"),
        ]);
        let sidecar = Config::from_sources(&Args::default(), &|k| {
            vars.get(k).map(|v| (*v).to_owned())
        })
        .expect("sidecar config");
        [default, sidecar]
    })
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fuzz_target!(|data: &[u8]| {
    let (task, current) = match data.iter().position(|b| *b == 0) {
        Some(i) => (json(&data[..i]), json(&data[i + 1..])),
        None => (json(data), Value::Null),
    };
    for config in configs() {
        if let Ok(m) = ecs_from_documents(&task, &current, config) {
            assert_eq!(m.execution_method_type, proc_wrapper::metadata::ExecutionMethod::AwsEcs);
            let _ = Value::Object(m.execution).to_string();
            let _ = Value::Object(m.task).to_string();
        }
    }
});
