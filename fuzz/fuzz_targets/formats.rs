//! `Format::{Dotenv, Json, Yaml, Text}.parse`, `Format::guess`, `Format::from_mime`,
//! `Format::from_name`, and `serialize` of every parsed value in every format (JSON and
//! YAML written must read back as the same value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_wrapper::secrets::format::{Format, serialize};
use serde_json::Value;

const FORMATS: [Format; 4] = [Format::Dotenv, Format::Json, Format::Yaml, Format::Text];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let _ = Format::guess(text);
    let _ = Format::from_mime(text);
    if let Some(f) = Format::from_name(text) {
        assert_eq!(Format::from_name(f.name()), Some(f));
    }
    for format in FORMATS {
        let Ok(value) = format.parse(text) else {
            continue;
        };
        match format {
            Format::Text => assert_eq!(value, Value::String(text.to_owned())),
            Format::Dotenv => assert!(value.is_object()),
            _ => {}
        }
        for out in FORMATS {
            let written = serialize(&value, out);
            match out {
                Format::Json => {
                    // Python-style JSON is still JSON, and reads back the same.
                    let written = written.expect("JSON output cannot fail");
                    assert!(
                        serde_json::from_str::<Value>(&written).is_ok(),
                        "python_json wrote invalid JSON: {written:?}"
                    );
                    assert_eq!(Format::Json.parse(&written).ok(), Some(value.clone()));
                }
                Format::Yaml => {
                    // Written YAML reads back as the same value (strings stay strings).
                    let written = written.expect("YAML output cannot fail");
                    assert_eq!(
                        Format::Yaml.parse(&written).ok(),
                        Some(value.clone()),
                        "YAML written does not read back: {written:?}"
                    );
                }
                _ => {}
            }
        }
    }
});
