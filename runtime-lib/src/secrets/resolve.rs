//! Resolution (README "Secrets and configuration"): top-level fetching and merging of env and
//! config locations, then passes that replace every `NAME_FOR_PROC_WRAPPER_TO_RESOLVE=<location>`
//! variable (and `name__to_resolve` property) with the value at the location.
//!
//! # Theory of operation
//!
//! Each pass first collects the locations still to resolve, fetches the distinct cacheable
//! ones concurrently (`super::Fetcher::prefetch`), then resolves every key from the cache
//! in order. `ENV` and `CONFIG` references that are not there yet are retried in the next
//! pass (up to `max_iterations`); whatever is still unresolved then is a failure. With
//! fail-fast, the first failure ends resolution. Each value resolved from a provider other
//! than `PLAIN` is also listed in [`Resolved::secrets`] (its text and the strings inside it),
//! for [`super::Redactor`], as are the values of the env and config locations
//! ([`TopLevel::secrets`]).

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use tracing::{debug, info};

use super::format::{Format, env_text, python_json};
use super::jsonpath;
use super::location::{Location, Provider, Transform, describe_text, provider_from_name};
use super::merge::merge;
use super::redact::collect_secret_texts;
use super::{Fetcher, SecretError};
use crate::config::{MergeStrategy, ResolverConfig};

/// A variable or property that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Variable name, or dotted property path (`db.user`, `hosts[0]`).
    pub name: String,
    /// The location, with secret text hidden.
    pub location: String,
    /// What went wrong.
    pub error: SecretError,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {}): {}", self.name, self.location, self.error)
    }
}

/// The result of resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// The environment, every value as text ([`format::env_text`](super::format::env_text)),
    /// including the configuration as JSON in `env_var_name_for_config`.
    pub env: Map<String, Value>,
    /// The resolved configuration.
    pub config: Map<String, Value>,
    /// Variables and properties that failed.
    pub failures: Vec<Failure>,
    /// The secret values resolution produced, in the environment and in the configuration:
    /// of every value resolved from a provider other than `PLAIN`, its text as a variable
    /// and every string inside it (a JSON value), each of at least
    /// [`super::redact::MIN_SECRET_CHARS`] characters. The values of the env and config
    /// locations are in [`TopLevel::secrets`].
    pub secrets: BTreeSet<String>,
}

/// What the env and config locations (`-e`, `--config`) give
/// ([`Resolver::fetch_top_level`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopLevel {
    /// The environment: the locations' variables, merged, with the process environment over
    /// them.
    pub env: Map<String, Value>,
    /// The configuration: the initial one with the locations' merged into it.
    pub config: Map<String, Value>,
    /// The values the locations brought, for [`super::Redactor`]: of each variable or
    /// top-level property of a location other than `PLAIN`, its text as a variable and every
    /// string inside it, each of at least [`super::redact::MIN_SECRET_CHARS`] characters. An
    /// env file from Secrets Manager is the usual way to bring many secrets at once; the
    /// ordinary settings such a location also holds are listed too, which errs on the side
    /// of hiding.
    pub secrets: BTreeSet<String>,
}

/// A top-level location (`-e`, `--config`) that could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot use {kind} location '{location}': {error}")]
pub struct TopLevelError {
    /// `env` or `config`.
    pub kind: &'static str,
    /// The location, with secret text hidden.
    pub location: String,
    /// What went wrong.
    pub error: SecretError,
}

enum Outcome {
    Resolved(Value),
    NotFound(String),
    Failed(SecretError),
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// One key to resolve.
struct Item {
    /// Path of the container holding the key (empty: top level).
    parent: Vec<Seg>,
    /// The key with prefix and suffix.
    key: String,
    /// The name the value goes to.
    target: String,
    /// Location text.
    text: String,
    /// Provider chosen by a legacy name prefix.
    provider: Option<Provider>,
}

fn display_path(parent: &[Seg], target: &str) -> String {
    let mut s = String::new();
    for seg in parent {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        target.to_owned()
    } else {
        format!("{s}.{target}")
    }
}

fn container_mut<'a>(root: &'a mut Value, path: &[Seg]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = root;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.as_object_mut()?.get_mut(k)?,
            Seg::Index(i) => cur.as_array_mut()?.get_mut(*i)?,
        };
    }
    cur.as_object_mut()
}

/// Resolves locations with a [`Fetcher`].
pub struct Resolver {
    params: ResolverConfig,
    fetcher: Fetcher,
}

impl Resolver {
    /// A resolver with `params`.
    pub fn new(params: ResolverConfig) -> Self {
        let fetcher = Fetcher::new(params.config_ttl, params.secrets_aws_region.clone());
        Self { params, fetcher }
    }

    /// The settings in use.
    pub fn params(&self) -> &ResolverConfig {
        &self.params
    }

    /// Replaces the settings (after the environment from env locations changed them); the
    /// cache is kept.
    pub(crate) fn set_params(&mut self, params: ResolverConfig) {
        self.params = params;
    }

    /// The fetcher, for its fetch count.
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Fetches and merges the env and config locations, then overlays `process_env` on the
    /// environment (the process environment wins).
    pub async fn fetch_top_level(
        &self,
        process_env: impl IntoIterator<Item = (String, String)>,
        initial_config: Map<String, Value>,
    ) -> Result<TopLevel, TopLevelError> {
        let parse = |kind: &'static str, text: &String| {
            Location::parse(text, None, true).map_err(|error| TopLevelError {
                kind,
                location: describe_text(text),
                error,
            })
        };
        let env_locs = self
            .params
            .env_locations
            .iter()
            .map(|t| parse("env", t))
            .collect::<Result<Vec<_>, _>>()?;
        let config_locs = self
            .params
            .config_locations
            .iter()
            .map(|t| parse("config", t))
            .collect::<Result<Vec<_>, _>>()?;
        self.fetcher
            .prefetch(env_locs.iter().chain(config_locs.iter()))
            .await;

        let mut secrets = BTreeSet::new();
        let mut collect = |loc: &Location, v: &Value| {
            if loc.provider != Provider::Plain
                && let Value::Object(m) = v
            {
                m.values()
                    .for_each(|v| collect_secret_texts(v, &mut secrets));
            }
        };
        let mut env = Value::Object(Map::new());
        for loc in &env_locs {
            let v = self.top_level_value(loc, Format::Dotenv, "env").await?;
            collect(loc, &v);
            merge(&mut env, v, self.params.merge_strategy).map_err(|error| TopLevelError {
                kind: "env",
                location: loc.to_string(),
                error,
            })?;
        }
        let mut env = match env {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in process_env {
            env.insert(k, Value::String(v));
        }
        let mut config = Value::Object(initial_config);
        for loc in &config_locs {
            let v = self.top_level_value(loc, Format::Json, "config").await?;
            collect(loc, &v);
            merge(&mut config, v, self.params.merge_strategy).map_err(|error| TopLevelError {
                kind: "config",
                location: loc.to_string(),
                error,
            })?;
        }
        let config = match config {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(TopLevel {
            env,
            config,
            secrets,
        })
    }

    async fn top_level_value(
        &self,
        loc: &Location,
        default: Format,
        kind: &'static str,
    ) -> Result<Value, TopLevelError> {
        let err = |error| TopLevelError {
            kind,
            location: loc.to_string(),
            error,
        };
        let fetched = self.fetcher.fetch(loc).await.map_err(err)?;
        let format = loc
            .format
            .or(fetched.format)
            .or_else(|| Format::guess(&loc.address))
            .unwrap_or(default);
        let value = format.parse(&fetched.text).map_err(err)?;
        let value = match apply_transform(value, loc.transform.as_ref()).map_err(err)? {
            Some(v) => v,
            None => {
                return Err(err(SecretError::Parse(
                    "the JSONPath matched nothing".into(),
                )));
            }
        };
        if value.is_object() {
            Ok(value)
        } else {
            Err(err(SecretError::Parse(format!(
                "the value is not a dictionary (it is {})",
                kind_of(&value)
            ))))
        }
    }

    /// Resolves the variables of `env` and the properties of `config`, then projects the
    /// environment to text and adds the configuration as JSON.
    pub async fn resolve(&self, env: Map<String, Value>, config: Map<String, Value>) -> Resolved {
        let mut env = Value::Object(env);
        let mut config = Value::Object(config);
        let mut failures = Vec::new();
        let mut secrets = BTreeSet::new();
        let p = &self.params;
        let enabled = p.max_depth > 0 && p.max_iterations > 0;
        if enabled {
            self.passes(&mut env, &mut config, &mut failures, &mut secrets)
                .await;
        }
        let config = match config {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut flat: Map<String, Value> = match env {
            Value::Object(m) => m
                .into_iter()
                .map(|(k, v)| {
                    let text = env_text(&v);
                    (k, Value::String(text))
                })
                .collect(),
            _ => Map::new(),
        };
        // As in 6.0.2, the configuration goes into the environment only when resolution is
        // on (PROC_WRAPPER_RESOLVE_SECRETS=FALSE leaves both as they were fetched).
        if enabled && let Some(name) = &self.params.env_var_name_for_config {
            flat.insert(
                name.clone(),
                Value::String(python_json(&Value::Object(config.clone()))),
            );
        }
        Resolved {
            env: flat,
            config,
            failures,
            secrets,
        }
    }

    fn collect(
        &self,
        value: &Value,
        path: &mut Vec<Seg>,
        level: u32,
        env_side: bool,
        out: &mut Vec<Item>,
    ) {
        if level >= self.params.max_depth {
            return;
        }
        let (prefix, suffix) = if env_side {
            (
                &self.params.env_var_name_prefix,
                &self.params.env_var_name_suffix,
            )
        } else {
            (
                &self.params.config_property_name_prefix,
                &self.params.config_property_name_suffix,
            )
        };
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if let Value::String(text) = v
                        && k.len() > prefix.len() + suffix.len()
                        && let Some(stripped) = k
                            .strip_prefix(prefix.as_str())
                            .and_then(|r| r.strip_suffix(suffix.as_str()))
                    {
                        let (provider, target) = match provider_from_name(stripped) {
                            Some((p, rest)) => (Some(p), rest),
                            None => (None, stripped),
                        };
                        out.push(Item {
                            parent: path.clone(),
                            key: k.clone(),
                            target: target.to_owned(),
                            text: text.clone(),
                            provider,
                        });
                        continue;
                    }
                    if v.is_object() || v.is_array() {
                        path.push(Seg::Key(k.clone()));
                        self.collect(v, path, level + 1, env_side, out);
                        path.pop();
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    if v.is_object() || v.is_array() {
                        path.push(Seg::Index(i));
                        self.collect(v, path, level + 1, env_side, out);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }

    async fn passes(
        &self,
        env: &mut Value,
        config: &mut Value,
        failures: &mut Vec<Failure>,
        secrets: &mut BTreeSet<String>,
    ) {
        let p = &self.params;
        for pass in 0..p.max_iterations {
            let last = pass + 1 == p.max_iterations;
            for env_side in [true, false] {
                let mut items = Vec::new();
                let root: &Value = if env_side { env } else { config };
                self.collect(root, &mut Vec::new(), 0, env_side, &mut items);
                if items.is_empty() {
                    continue;
                }
                let mut parsed = Vec::with_capacity(items.len());
                for item in items {
                    let loc = Location::parse(&item.text, item.provider, false);
                    parsed.push((item, loc));
                }
                let fetch_errors: HashMap<_, _> = self
                    .fetcher
                    .prefetch(parsed.iter().filter_map(|(_, l)| l.as_ref().ok()))
                    .await;
                for (item, loc) in parsed {
                    let name = if env_side {
                        item.target.clone()
                    } else {
                        display_path(&item.parent, &item.target)
                    };
                    let outcome = match &loc {
                        Err(e) => Outcome::Failed(e.clone()),
                        Ok(loc) => match fetch_errors.get(&loc.cache_key()) {
                            Some(e) if loc.provider.cacheable() => Outcome::Failed(e.clone()),
                            _ => self.resolve_one(loc, env, config),
                        },
                    };
                    let location = loc
                        .as_ref()
                        .map_or_else(|_| "an invalid location".to_owned(), ToString::to_string);
                    let root: &mut Value = if env_side { env } else { config };
                    match outcome {
                        Outcome::Resolved(value) => {
                            if p.log_secrets {
                                debug!("resolved {name} from {location}: {value}");
                            } else {
                                debug!("resolved {name} from {location}");
                            }
                            if loc.as_ref().is_ok_and(|l| l.provider != Provider::Plain) {
                                collect_secret_texts(&value, secrets);
                            }
                            self.apply(root, &item, Some(value));
                        }
                        Outcome::NotFound(why) if !last => {
                            debug!(
                                "{name} not resolved yet ({why}); trying again in the next pass"
                            );
                        }
                        Outcome::NotFound(why) => {
                            self.apply(root, &item, None);
                            failures.push(Failure {
                                name,
                                location,
                                error: SecretError::NotResolved(why),
                            });
                        }
                        Outcome::Failed(e) => {
                            self.apply(root, &item, None);
                            failures.push(Failure {
                                name,
                                location,
                                error: e,
                            });
                        }
                    }
                    if p.fail_fast && !failures.is_empty() {
                        return;
                    }
                }
            }
        }
        if !failures.is_empty() {
            info!(
                "{} variable(s) or propert(ies) could not be resolved",
                failures.len()
            );
        }
    }

    /// Removes the resolvable key and, with a value, stores it under the target name (merged
    /// onto an existing object unless the strategy is SHALLOW).
    fn apply(&self, root: &mut Value, item: &Item, value: Option<Value>) {
        let Some(map) = container_mut(root, &item.parent) else {
            return;
        };
        // The resolved key takes the place of the resolvable one, as in 6.0.2 (which builds
        // the resolved object in the order of the original).
        let position = map.keys().position(|k| *k == item.key);
        map.shift_remove(&item.key);
        let Some(value) = value else { return };
        match map.get_mut(&item.target) {
            Some(existing)
                if existing.is_object()
                    && value.is_object()
                    && self.params.merge_strategy != MergeStrategy::Shallow =>
            {
                if merge(existing, value.clone(), self.params.merge_strategy).is_err() {
                    *existing = value;
                }
            }
            Some(existing) => *existing = value,
            None => {
                let at = position.unwrap_or(map.len()).min(map.len());
                map.shift_insert(at, item.target.clone(), value);
            }
        }
    }

    fn resolve_one(&self, loc: &Location, env: &Value, config: &Value) -> Outcome {
        // `parsed`: the value is already structured (from the env or the config), so no
        // format applies to it.
        let (value, parsed, provider_format) = match loc.provider {
            Provider::Env => match env.get(&loc.address) {
                None => return Outcome::NotFound(format!("variable {} is not set", loc.address)),
                Some(Value::String(s)) => (Value::String(s.clone()), false, None),
                Some(v) => (v.clone(), true, None),
            },
            Provider::Config => match jsonpath::query(config, &loc.address) {
                Err(e) => {
                    return Outcome::Failed(SecretError::Invalid(format!(
                        "invalid JSONPath '{}': {e}",
                        loc.address
                    )));
                }
                Ok(found) if found.is_empty() => {
                    return Outcome::NotFound(format!("{} matched nothing", loc.address));
                }
                Ok(found) if found.len() == 1 => (found[0].clone(), true, None),
                Ok(found) => (
                    Value::Array(found.into_iter().cloned().collect()),
                    true,
                    None,
                ),
            },
            _ => match self.fetcher.cached(loc) {
                Some(f) => (Value::String(f.text), false, f.format),
                None => {
                    return Outcome::Failed(SecretError::Fetch("the value was not fetched".into()));
                }
            },
        };
        let guessed = match loc.provider {
            Provider::Plain | Provider::Env | Provider::Config => None,
            _ => Format::guess(&loc.address),
        };
        let value = match (value, loc.format.or(provider_format).or(guessed)) {
            (v, _) if parsed => v,
            // 6.0.2 keeps the text when it parses to nothing (`coalesce(parsed, text)`):
            // `PLAIN:~!yaml` and `PLAIN:null!json` resolve to `~` and `null`.
            (Value::String(text), Some(format)) => match format.parse(&text) {
                Ok(Value::Null) => Value::String(text),
                Ok(v) => v,
                Err(e) => return Outcome::Failed(e),
            },
            (Value::String(text), None)
                if matches!(loc.transform, Some(Transform::JsonPath { .. })) =>
            {
                match Format::Json.parse(&text) {
                    Ok(v) => v,
                    Err(e) => {
                        return Outcome::Failed(SecretError::Parse(format!(
                            "the value is not JSON, so the JSONPath cannot apply: {e}"
                        )));
                    }
                }
            }
            (v, _) => v,
        };
        match apply_transform(value, loc.transform.as_ref()) {
            Ok(Some(v)) => Outcome::Resolved(v),
            Ok(None) => Outcome::NotFound("the JSONPath matched nothing".into()),
            Err(e) => Outcome::Failed(e),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Applies a transform; `Ok(None)` when a JSONPath matched nothing.
fn apply_transform(
    value: Value,
    transform: Option<&Transform>,
) -> Result<Option<Value>, SecretError> {
    match transform {
        None | Some(Transform::SelfValue) => Ok(Some(value)),
        Some(Transform::JsonPath { expr, splat }) => {
            let found = jsonpath::query(&value, expr)
                .map_err(|e| SecretError::Invalid(format!("invalid JSONPath '{expr}': {e}")))?;
            Ok(match found.len() {
                0 => None,
                1 if !splat => Some(found[0].clone()),
                _ => Some(Value::Array(found.into_iter().cloned().collect())),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(vars: &[(&str, &str)]) -> ResolverConfig {
        crate::config::from_pairs(vars).resolver
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    async fn run(p: ResolverConfig, env: Value, config: Value) -> Resolved {
        Resolver::new(p).resolve(obj(env), obj(config)).await
    }

    #[tokio::test]
    async fn resolves_env_from_config() {
        let r = run(
            params(&[]),
            json!({"SOME_ENV_FOR_PROC_WRAPPER_TO_RESOLVE": "CONFIG:$.a"}),
            json!({"a": "bug"}),
        )
        .await;
        assert!(r.failures.is_empty());
        assert_eq!(r.env["SOME_ENV"], "bug");
        assert_eq!(r.env["TASK_CONFIG"], r#"{"a": "bug"}"#);
    }

    #[tokio::test]
    async fn splat_keeps_a_list() {
        let r = run(
            params(&[]),
            json!({}),
            json!({"x__to_resolve": r#"PLAIN:{"d": [1]}|JP:$.d[*]"#, "y__to_resolve": r#"PLAIN:{"d": [1]}|JP:$.d"#}),
        )
        .await;
        assert_eq!(r.config["x"], json!([[1]]));
        assert_eq!(r.config["y"], json!([1]));
    }

    #[tokio::test]
    async fn chained_values_are_not_re_resolved() {
        let r = run(
            params(&[]),
            json!({}),
            json!({"chain__to_resolve": "PLAIN:PLAIN:zzz"}),
        )
        .await;
        assert_eq!(r.config["chain"], "PLAIN:zzz");
    }

    #[tokio::test]
    async fn depth_limits_nested_resolution() {
        let config = json!({"a__to_resolve": "PLAIN:1", "n": {"b__to_resolve": "PLAIN:2"}});
        let r = run(
            params(&[("PROC_WRAPPER_MAX_CONFIG_RESOLUTION_DEPTH", "1")]),
            json!({}),
            config.clone(),
        )
        .await;
        assert_eq!(r.config["a"], "1");
        assert_eq!(r.config["n"], json!({"b__to_resolve": "PLAIN:2"}));
        let r = run(params(&[]), json!({}), config).await;
        assert_eq!(r.config["n"], json!({"b": "2"}));
    }

    #[tokio::test]
    async fn nested_failures_are_named_by_path() {
        let r = run(
            params(&[]),
            json!({}),
            json!({"lst": [{"a__to_resolve": "CONFIG:$.nothing"}]}),
        )
        .await;
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].name, "lst[0].a");
    }

    #[tokio::test]
    async fn zero_iterations_disable_resolution() {
        let r = run(
            params(&[("PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS", "0")]),
            json!({"X_FOR_PROC_WRAPPER_TO_RESOLVE": "PLAIN:y"}),
            json!({}),
        )
        .await;
        assert_eq!(r.env["X_FOR_PROC_WRAPPER_TO_RESOLVE"], "PLAIN:y");
        assert!(r.failures.is_empty());
    }

    #[tokio::test]
    async fn env_projection_stringifies_values() {
        let r = run(
            params(&[]),
            json!({"B": true, "N": null, "I": 1, "F": 1.5, "L": [1, 2], "D": {"a": 1}}),
            json!({}),
        )
        .await;
        assert_eq!(r.env["B"], "TRUE");
        assert_eq!(r.env["N"], "");
        assert_eq!(r.env["I"], "1");
        assert_eq!(r.env["F"], "1.5");
        assert_eq!(r.env["L"], "[1, 2]");
        assert_eq!(r.env["D"], r#"{"a": 1}"#);
    }

    #[tokio::test]
    async fn prefixes_and_suffixes_are_configurable() {
        let r = run(
            params(&[
                ("PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_PREFIX", "SECRET_"),
                ("PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_SUFFIX", "_LOC"),
            ]),
            json!({"SECRET_DB_LOC": "PLAIN:pw", "DB_FOR_PROC_WRAPPER_TO_RESOLVE": "PLAIN:x"}),
            json!({}),
        )
        .await;
        assert_eq!(r.env["DB"], "pw");
        assert_eq!(r.env["DB_FOR_PROC_WRAPPER_TO_RESOLVE"], "PLAIN:x");
    }

    #[tokio::test]
    async fn secret_values_are_listed_except_plain_and_short_ones() {
        let r = run(
            params(&[]),
            json!({
                "FROM_ENV_FOR_PROC_WRAPPER_TO_RESOLVE": "ENV:OTHER",
                "OTHER": "env-secret",
                "SHORT_FOR_PROC_WRAPPER_TO_RESOLVE": "ENV:FIVE",
                "FIVE": "12345",
                "LITERAL_FOR_PROC_WRAPPER_TO_RESOLVE": "PLAIN:plain-value",
                "PLAIN_LEGACY_FOR_PROC_WRAPPER_TO_RESOLVE": "legacy-plain",
                "DB_FOR_PROC_WRAPPER_TO_RESOLVE": "CONFIG:$.db",
            }),
            json!({
                "db": {"user": "admin", "password": "db-password"},
                "token__to_resolve": "CONFIG:$.db.password",
                "shown__to_resolve": "PLAIN:config-plain",
            }),
        )
        .await;
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        let got: Vec<&str> = r.secrets.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            [
                "db-password",
                "env-secret",
                r#"{"user": "admin", "password": "db-password"}"#,
            ]
        );
        // Without resolution, nothing is produced.
        let r = run(
            params(&[("PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS", "0")]),
            json!({"X_FOR_PROC_WRAPPER_TO_RESOLVE": "ENV:OTHER", "OTHER": "env-secret"}),
            json!({}),
        )
        .await;
        assert!(r.secrets.is_empty());
    }

    #[tokio::test]
    async fn values_of_env_and_config_locations_are_listed_except_plain_ones() {
        let dir = std::env::temp_dir().join(format!("pw-top-level-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join("a.env");
        std::fs::write(&env_file, "DB_PASSWORD=file-secret\nSHORT=abc\n").unwrap();
        let config_file = dir.join("c.json");
        std::fs::write(
            &config_file,
            r#"{"token": "config-secret", "n": {"deep": "nested-v"}, "port": 5432}"#,
        )
        .unwrap();
        let env_locations = format!("FILE:{},PLAIN:VISIBLE=plain-value", env_file.display());
        let config_locations = config_file.display().to_string();
        let p = params(&[
            ("PROC_WRAPPER_ENV_LOCATIONS", env_locations.as_str()),
            ("PROC_WRAPPER_CONFIG_LOCATIONS", config_locations.as_str()),
        ]);
        let top = Resolver::new(p)
            .fetch_top_level(
                vec![("PROCESS_VAR".into(), "process-value".into())],
                Map::new(),
            )
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(top.env["DB_PASSWORD"], "file-secret");
        assert_eq!(top.env["VISIBLE"], "plain-value");
        let got: Vec<&str> = top.secrets.iter().map(String::as_str).collect();
        // The process environment is not a location's: its values are not listed.
        assert_eq!(
            got,
            [
                "config-secret",
                "file-secret",
                "nested-v",
                r#"{"deep": "nested-v"}"#
            ]
        );
    }

    #[tokio::test]
    async fn a_plain_top_level_location_that_does_not_parse_is_not_quoted() {
        let p = params(&[("PROC_WRAPPER_ENV_LOCATIONS", "PLAIN:PASSWORD=hunter2|BAD")]);
        let e = Resolver::new(p)
            .fetch_top_level(Vec::new(), Map::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("'PLAIN:<hidden>'"), "{e}");
        // Other locations are named in full: they are addresses, not values.
        let p = params(&[("PROC_WRAPPER_CONFIG_LOCATIONS", "FILE:conf.json|BAD")]);
        let e = Resolver::new(p)
            .fetch_top_level(Vec::new(), Map::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("'FILE:conf.json|BAD'"), "{e}");
    }
}
