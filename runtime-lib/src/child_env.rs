//! The environment given to the wrapped process (README "The wrapped process's environment").
//!
//! It starts from the (resolved) environment of the wrapper, adds the configuration as JSON
//! (`TASK_CONFIG` by default) and then the `PROC_WRAPPER_*` variables that tell the process
//! how it is being run. This module only computes the variables; spawning is
//! [`crate::process`]'s job.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use crate::config::Config;
use crate::config::table as T;

/// Variables for the child, in a stable order.
pub type ChildEnv = BTreeMap<OsString, OsString>;

/// `TRUE` or `FALSE`, as the original writes booleans.
pub(crate) fn bool_text(b: bool) -> &'static str {
    if b { "TRUE" } else { "FALSE" }
}

/// Whole seconds (or fractional ones when given so), `-1` for "no limit".
pub(crate) fn limit_text(d: Option<Duration>) -> String {
    d.map_or_else(|| "-1".to_owned(), seconds_text)
}

/// A duration as seconds: `30`, or `2.5` when not whole.
pub(crate) fn seconds_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}", d.as_secs_f64())
    }
}

/// A probability like Python's float `repr`: `1.0`, `0.5`, `1e-10`.
pub(crate) fn float_text(p: f64) -> String {
    // Rust's `Debug` of f64 matches Python's `repr` for these values.
    format!("{p:?}")
}

/// Builds the child's environment from `base` (the wrapper's resolved environment) and
/// `config_json`, the JSON text of the resolved configuration. When `None`, `base` holds it
/// already when there is one (the resolver adds it when resolution is on).
pub fn build<I, K, V>(config: &Config, base: I, config_json: Option<&str>) -> ChildEnv
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let mut env: ChildEnv = base
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    if let Some(name) = &config.resolver.env_var_name_for_config
        && let Some(json) = config_json
    {
        env.insert(name.into(), json.into());
    }
    let mut set = |k: &str, v: String| {
        env.insert(k.into(), v.into());
    };

    set(
        T::OFFLINE_MODE.child_var(),
        bool_text(config.offline_mode).to_owned(),
    );
    set(
        T::PROCESS_TIMEOUT.child_var(),
        limit_text(config.process.timeout),
    );
    set(
        T::PROCESS_TERMINATION_GRACE_PERIOD.child_var(),
        limit_text(config.process.termination_grace_period),
    );
    set(
        T::MAX_CONCURRENCY.child_var(),
        config.task.max_concurrency.unwrap_or(-1).to_string(),
    );
    set(
        T::PREVENT_OFFLINE_EXECUTION.child_var(),
        bool_text(config.prevent_offline_execution).to_owned(),
    );

    let r = &config.resolver;
    let io = &config.io;
    let optional: [(&str, Option<String>); 13] = [
        (
            T::ENV_OUTPUT_FILENAME.child_var(),
            r.env_output_filename.clone(),
        ),
        (
            T::ENV_OUTPUT_FORMAT.child_var(),
            r.env_output_format.clone(),
        ),
        (
            T::CONFIG_OUTPUT_FILENAME.child_var(),
            r.config_output_filename.clone(),
        ),
        (
            T::CONFIG_OUTPUT_FORMAT.child_var(),
            r.config_output_format.clone(),
        ),
        (T::INPUT_FILENAME.child_var(), io.input_filename.clone()),
        (
            T::INPUT_VALUE_FORMAT.child_var(),
            io.input_value_format.clone(),
        ),
        (
            T::INPUT_ENV_VAR_NAME.child_var(),
            io.input_env_var_name.clone(),
        ),
        (T::RESULT_FILENAME.child_var(), io.result_filename.clone()),
        (
            T::RESULT_VALUE_FORMAT.child_var(),
            io.result_value_format.clone(),
        ),
        (T::DEPLOYMENT.child_var(), config.api.deployment.clone()),
        (
            T::TASK_VERSION_NUMBER.child_var(),
            config.task.version_number.map(|n| n.to_string()),
        ),
        (
            T::TASK_VERSION_TEXT.child_var(),
            config.task.version_text.clone(),
        ),
        (
            T::TASK_VERSION_SIGNATURE.child_var(),
            config.task.version_signature.clone(),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            set(k, v);
        }
    }
    // With Rollbar on, its settings, under the names 6.0.2 gives them (the timeout without
    // `_SECONDS`); `-1` retries means forever.
    let rb = &config.rollbar;
    if let Some(token) = &rb.access_token {
        set(T::ROLLBAR_ACCESS_TOKEN.child_var(), token.clone());
        set(T::ROLLBAR_TIMEOUT.child_var(), seconds_text(rb.timeout));
        set(
            T::ROLLBAR_RETRIES.child_var(),
            rb.retries
                .map_or_else(|| "-1".to_owned(), |r| r.to_string()),
        );
        set(
            T::ROLLBAR_RETRY_DELAY.child_var(),
            seconds_text(rb.retry_delay),
        );
    }
    if let Some(meta) = &config.task.instance_metadata {
        set(
            T::TASK_INSTANCE_METADATA.child_var(),
            crate::secrets::format::python_json(&serde_json::Value::Object(meta.clone())),
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a ChildEnv, k: &str) -> Option<&'a str> {
        env.get(&OsString::from(k)).and_then(|v| v.to_str())
    }

    #[test]
    fn offline_child_environment() {
        let vars = [
            ("PROC_WRAPPER_OFFLINE_MODE", "TRUE"),
            ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "5"),
            ("PROC_WRAPPER_TASK_VERSION_SIGNATURE", "abc"),
            ("OTHER", "kept"),
        ];
        let config = crate::config::from_pairs(&vars);
        let env = build(&config, vars, None);
        assert_eq!(get(&env, "OTHER"), Some("kept"));
        assert_eq!(
            get(&env, "TASK_CONFIG"),
            None,
            "added by the resolver, not here"
        );
        assert_eq!(get(&env, "PROC_WRAPPER_OFFLINE_MODE"), Some("TRUE"));
        assert_eq!(get(&env, "PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS"), Some("5"));
        assert_eq!(
            get(
                &env,
                "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS"
            ),
            Some("30")
        );
        assert_eq!(get(&env, "PROC_WRAPPER_MAX_CONCURRENCY"), Some("-1"));
        assert_eq!(
            get(&env, "PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION"),
            Some("FALSE")
        );
        assert_eq!(
            get(&env, "PROC_WRAPPER_TASK_VERSION_SIGNATURE"),
            Some("abc")
        );
        assert_eq!(get(&env, "PROC_WRAPPER_DEPLOYMENT"), None);
        assert_eq!(
            get(&env, "PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS"),
            None
        );
    }

    #[test]
    fn json_settings_use_the_separators_of_the_original() {
        let vars = [(
            "PROC_WRAPPER_TASK_INSTANCE_METADATA",
            r#"{"a":1,"b":{"c":[1,2]}}"#,
        )];
        let config = crate::config::from_pairs(&vars);
        let env = build(&config, vars, None);
        assert_eq!(
            get(&env, "PROC_WRAPPER_TASK_INSTANCE_METADATA"),
            Some(r#"{"a": 1, "b": {"c": [1, 2]}}"#)
        );
    }

    #[test]
    fn number_texts() {
        assert_eq!(limit_text(None), "-1");
        assert_eq!(limit_text(Some(Duration::from_secs(30))), "30");
        assert_eq!(seconds_text(Duration::from_millis(2500)), "2.5");
        assert_eq!(float_text(1.0), "1.0");
        assert_eq!(float_text(0.5), "0.5");
        assert_eq!(float_text(1e-10), "1e-10");
    }
}
