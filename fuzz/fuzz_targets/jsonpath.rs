//! `jsonpath::query`. Input: a JSON document, a NUL byte, then the expression (UTF-8, lossy).
//! Without a NUL, the whole input is the expression, run against a small fixed document.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use proc_wrapper::secrets::jsonpath::query;
use serde_json::Value;

fn fixed() -> Value {
    serde_json::json!({
        "a": "b",
        "db": {"user": "u", "password": "p", "hosts": ["h1", "h2", "h3"]},
        "list": [1, [2, 3], {"x": null, "y": true}],
        "a b": {"c": 1.5}
    })
}

fuzz_target!(|data: &[u8]| {
    let (doc, expr) = match data.iter().position(|b| *b == 0) {
        Some(i) => match serde_json::from_slice::<Value>(&data[..i]) {
            Ok(v) => (v, &data[i + 1..]),
            Err(_) => return,
        },
        None => (fixed(), data),
    };
    let expr = String::from_utf8_lossy(expr);
    if let Ok(found) = query(&doc, &expr) {
        // Every match is a node of the document itself: nothing is copied or made up.
        let mut nodes = HashSet::new();
        let mut stack = vec![&doc];
        while let Some(n) = stack.pop() {
            nodes.insert(std::ptr::from_ref(n));
            match n {
                Value::Array(items) => stack.extend(items.iter()),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
        for m in found {
            assert!(nodes.contains(&std::ptr::from_ref(m)), "a match outside the document");
        }
    }
    let root = query(&doc, "$").expect("'$' is valid");
    assert_eq!(root, vec![&doc]);
});
