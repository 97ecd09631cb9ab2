//! `secrets::Resolver`: `fetch_top_level` then `resolve` over an environment and a
//! configuration built from the input, in a current-thread tokio runtime.
//!
//! Input: one knob byte (resolution passes, depth, fail-fast, merge strategy), then UTF-8
//! lines: `NAME=value` adds a variable; the first line starting with `{` that is a JSON
//! object is the initial configuration (its `*__to_resolve` properties are resolved too).
//!
//! # Nothing reaches the network or the file system
//!
//! No `-e`/`--config` locations are configured (`PROC_WRAPPER_ENV_LOCATIONS` and
//! `PROC_WRAPPER_CONFIG_LOCATIONS` are empty, and that is checked). Inputs are skipped unless
//! every location that resolution can ever see is a `PLAIN:`, `ENV:` or `CONFIG:` one:
//!
//! * every string value under a key ending in `_FOR_PROC_WRAPPER_TO_RESOLVE` or
//!   `__to_resolve` (at any depth, env or config side) must parse, with the provider its
//!   name prefix selects, to one of those providers, or not parse at all;
//! * resolution must not be able to *make* new keys to resolve: a key may hold one of the
//!   two suffixes only once, at its end; no other string may hold either suffix; the input
//!   has no `\` (so JSON escapes cannot spell a suffix) and no `!yaml`/`!dotenv` (dotenv
//!   substitution and YAML escapes could). Every key that resolution produces is then a
//!   substring of a string that holds no suffix.
//!
//! As a tripwire, the fetch count must not exceed the number of distinct `PLAIN:` texts, and
//! the runtime has no I/O driver, so any socket would panic.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proc_wrapper::config::{Args, Config, ResolverConfig};
use proc_wrapper::secrets::location::{Location, Provider, provider_from_name};
use proc_wrapper::secrets::Resolver;
use serde_json::{Map, Value};

const ENV_SUFFIX: &str = "_FOR_PROC_WRAPPER_TO_RESOLVE";
const CONFIG_SUFFIX: &str = "__to_resolve";
const STRATEGIES: [&str; 6] = [
    "DEEP",
    "SHALLOW",
    "REPLACE",
    "ADDITIVE",
    "TYPESAFE_REPLACE",
    "TYPESAFE_ADDITIVE",
];

fn params(knob: u8) -> ResolverConfig {
    static ALL: OnceLock<Vec<ResolverConfig>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        (0..=u8::MAX)
            .map(|k| {
                let k = usize::from(k);
                let vars: HashMap<&str, String> = HashMap::from([
                    ("PROC_WRAPPER_ENV_LOCATIONS", String::new()),
                    ("PROC_WRAPPER_CONFIG_LOCATIONS", String::new()),
                    (
                        "PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS",
                        (k % 3 + 1).to_string(),
                    ),
                    (
                        "PROC_WRAPPER_MAX_CONFIG_RESOLUTION_DEPTH",
                        ((k / 3) % 6).to_string(),
                    ),
                    (
                        "PROC_WRAPPER_FAIL_FAST_CONFIG_RESOLUTION",
                        if (k / 18) % 2 == 0 { "FALSE" } else { "TRUE" }.to_owned(),
                    ),
                    (
                        "PROC_WRAPPER_CONFIG_MERGE_STRATEGY",
                        STRATEGIES[(k / 36) % 6].to_owned(),
                    ),
                ]);
                let lookup = |name: &str| vars.get(name).cloned();
                let p = Config::from_sources(&Args::default(), &lookup)
                    .expect("a valid configuration")
                    .resolver;
                assert!(p.env_locations.is_empty() && p.config_locations.is_empty());
                assert_eq!(p.env_var_name_prefix, "");
                assert_eq!(p.env_var_name_suffix, ENV_SUFFIX);
                assert_eq!(p.config_property_name_prefix, "");
                assert_eq!(p.config_property_name_suffix, CONFIG_SUFFIX);
                p
            })
            .collect()
    });
    all[usize::from(knob)].clone()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // No I/O driver: a socket opened by mistake panics instead of connecting.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// `RESOLVER_FUZZ_DEBUG=1` prints each input as used, and whether it passed the check.
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("RESOLVER_FUZZ_DEBUG").is_some())
}

fn suffix_count(s: &str) -> usize {
    s.matches(ENV_SUFFIX).count() + s.matches(CONFIG_SUFFIX).count()
}

/// What the safety check collects: the distinct `PLAIN:` addresses.
#[derive(Default)]
struct Check {
    plain: HashSet<String>,
}

impl Check {
    fn key(&mut self, key: &str, value: &Value) -> bool {
        let suffix = [ENV_SUFFIX, CONFIG_SUFFIX]
            .into_iter()
            .find(|s| key.ends_with(s));
        match suffix {
            None => suffix_count(key) == 0 && self.value(value),
            Some(suffix) => {
                let stripped = &key[..key.len() - suffix.len()];
                if suffix_count(stripped) != 0 {
                    return false;
                }
                match value {
                    Value::String(text) => self.location(stripped, text),
                    other => self.value(other),
                }
            }
        }
    }

    fn location(&mut self, stripped: &str, text: &str) -> bool {
        if suffix_count(text) != 0 {
            return false;
        }
        let allowed = |p: Provider| matches!(p, Provider::Plain | Provider::Env | Provider::Config);
        let hint = provider_from_name(stripped).map(|(p, _)| p);
        if hint.is_some_and(|p| !allowed(p)) {
            return false;
        }
        match Location::parse(text, hint, false) {
            Ok(loc) if !allowed(loc.provider) => false,
            Ok(loc) => {
                if loc.provider == Provider::Plain {
                    self.plain.insert(loc.address);
                }
                true
            }
            Err(_) => true,
        }
    }

    fn value(&mut self, value: &Value) -> bool {
        match value {
            Value::String(s) => suffix_count(s) == 0,
            Value::Array(items) => items.iter().all(|v| self.value(v)),
            Value::Object(map) => map.iter().all(|(k, v)| self.key(k, v)),
            _ => true,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    if text.contains('\\') || lower.contains("!yaml") || lower.contains("!dotenv") {
        return;
    }
    let mut env: Vec<(String, String)> = Vec::new();
    let mut config: Option<Map<String, Value>> = None;
    for line in text.lines() {
        if line.starts_with('{') {
            if config.is_none() {
                config = serde_json::from_str(line).ok();
            }
        } else if let Some((name, value)) = line.split_once('=')
            && !name.is_empty()
        {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    let config = config.unwrap_or_default();

    let mut check = Check::default();
    let safe = env
        .iter()
        .all(|(k, v)| check.key(k, &Value::String(v.clone())))
        && config.iter().all(|(k, v)| check.key(k, v));
    if debug() {
        eprintln!("resolver: env {env:?} config {config:?} safe {safe}");
    }
    if !safe {
        return;
    }

    let params = params(knob);
    let fail_fast = params.fail_fast;
    let resolver = Resolver::new(params);
    runtime().block_on(async {
        let Ok((env, config)) = resolver.fetch_top_level(env, config).await else {
            panic!("no top-level locations, so fetch_top_level cannot fail");
        };
        let resolved = resolver.resolve(env, config).await;
        if debug() {
            eprintln!("resolver: resolved {resolved:?}");
        }
        assert!(
            resolver.fetcher().fetch_count() <= check.plain.len(),
            "HARNESS TRIPWIRE: a location other than the PLAIN ones checked was fetched"
        );
        assert!(resolved.env.values().all(Value::is_string));
        assert!(resolved.env.contains_key("TASK_CONFIG"));
        if fail_fast {
            assert!(resolved.failures.len() <= 1);
        }
    });
});
