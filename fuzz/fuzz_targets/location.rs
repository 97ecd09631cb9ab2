//! `Location::parse` (every provider hint, top level or not) and `provider_from_name`.
//!
//! Input: UTF-8 text. When it holds a NUL byte, the part before it is also used as a
//! variable name whose legacy prefix (`AWS_SM_...`) selects the provider for the part after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_wrapper::secrets::location::{Location, Provider, Transform, provider_from_name};

const PROVIDERS: [Provider; 8] = Provider::ALL;

fn check(text: &str, provider: Option<Provider>, top_level: bool) {
    let Ok(loc) = Location::parse(text, provider, top_level) else {
        return;
    };
    if top_level {
        assert!(!matches!(loc.provider, Provider::Env | Provider::Config));
    }
    if let Some(p) = provider {
        assert_eq!(loc.provider, p, "a provider hint is always used");
    }
    assert!(loc.provider == Provider::Plain || !loc.address.is_empty());
    if let Some(Transform::JsonPath { expr, .. }) = &loc.transform {
        assert!(text.contains(expr.as_str()));
    }
    let shown = loc.to_string();
    if loc.provider == Provider::Plain {
        assert!(shown.starts_with("PLAIN:<hidden>"));
    }
    let _ = loc.cache_key();
    let _ = loc.provider.cacheable();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for top_level in [false, true] {
        check(text, None, top_level);
        for p in PROVIDERS {
            check(text, Some(p), top_level);
        }
    }
    let (name, rest) = text.split_once('\0').unwrap_or((text, text));
    if let Some((p, stripped)) = provider_from_name(name) {
        assert!(!stripped.is_empty());
        assert!(name.starts_with(p.code()));
        assert!(name.ends_with(stripped));
        check(rest, Some(p), false);
    }
});
