//! Settings of the extension itself, besides the `PROC_WRAPPER_*` settings it shares with
//! `proc_wrapper`. A bad value is logged (naming the variable) and the default used: the
//! extension never fails the function.

use proc_wrapper::config::table as T;
use std::time::Duration;

/// The extension's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Longest time added after the runtime's response, per invocation
    /// (`PROC_WRAPPER_LAMBDA_MAX_ADDED_MS`, default 500). Never past the deadline.
    pub max_added: Duration,
    /// How long after an invocation starts the Task Execution is created when the function
    /// is still running (`PROC_WRAPPER_EXTENSION_CREATION_DELAY_MS`, default 100). Shorter
    /// invocations are reported with one request when they end.
    pub creation_delay: Duration,
    /// Port of the Telemetry API listener (`PROC_WRAPPER_EXTENSION_TELEMETRY_PORT`, default 0:
    /// any free port, so it never clashes with another extension).
    pub telemetry_port: u16,
    /// Time kept free before the SHUTDOWN deadline (`PROC_WRAPPER_EXTENSION_SHUTDOWN_MARGIN_MS`,
    /// default and minimum 300).
    pub shutdown_margin: Duration,
    /// How long to wait for the first telemetry record of an invocation before concluding
    /// that telemetry does not arrive (`PROC_WRAPPER_EXTENSION_TELEMETRY_WAIT_MS`, default 2000).
    pub telemetry_wait: Duration,
    /// Invocations that follow the previous one within this interval do not wait for their
    /// outcome: it is reported in the background, at the latest during the next invocation
    /// (`PROC_WRAPPER_EXTENSION_FREQUENT_INTERVAL_SECONDS`, default 60; 0: always wait).
    pub frequent_interval: Duration,
    /// The most reports kept while the API server does not answer
    /// (`PROC_WRAPPER_EXTENSION_BACKLOG_MAX`, default 1000, at least 1); beyond it the oldest
    /// are dropped, counted.
    pub backlog_max: usize,
    /// The port of the Runtime API proxy on `127.0.0.1`, or `None` when it is off
    /// (`PROC_WRAPPER_LAMBDA_RUNTIME_PROXY`, default on;
    /// `PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT`, default 2374).
    pub runtime_proxy: Option<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_added: proc_wrapper::lambda::DEFAULT_MAX_ADDED,
            creation_delay: Duration::from_millis(100),
            telemetry_port: 0,
            shutdown_margin: Duration::from_millis(300),
            telemetry_wait: Duration::from_millis(2000),
            frequent_interval: Duration::from_secs(60),
            backlog_max: proc_wrapper::lambda::backlog::DEFAULT_MAX,
            runtime_proxy: Some(crate::proxy::DEFAULT_PORT),
        }
    }
}

/// A whole number read from `name`, at least `min`; `unit` names it in the warnings.
fn number(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    (default, min): (u64, u64),
    unit: &str,
    warnings: &mut Vec<String>,
) -> u64 {
    let Some(text) = env(name) else {
        return default;
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n >= min => n,
        Ok(_) => {
            warnings.push(format!(
                "{name} must be at least {min} {unit}; using {min} {unit}"
            ));
            min
        }
        Err(_) => {
            warnings.push(format!(
                "{name}='{text}' is not a whole number of {unit}; using {default} {unit}"
            ));
            default
        }
    }
}

fn millis(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
    min: Duration,
    warnings: &mut Vec<String>,
) -> Duration {
    let as_ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(number(
        env,
        name,
        (as_ms(default), as_ms(min)),
        "milliseconds",
        warnings,
    ))
}

impl Settings {
    /// Reads the settings; the second value lists the variables that were ignored, and why.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let d = Self::default();
        let mut warnings = Vec::new();
        let (max_added, warning) = proc_wrapper::lambda::max_added(env);
        warnings.extend(warning);
        let creation_delay = millis(
            env,
            T::EXTENSION_CREATION_DELAY.var(),
            d.creation_delay,
            Duration::ZERO,
            &mut warnings,
        );
        let shutdown_margin = millis(
            env,
            T::EXTENSION_SHUTDOWN_MARGIN.var(),
            d.shutdown_margin,
            d.shutdown_margin,
            &mut warnings,
        );
        let telemetry_wait = millis(
            env,
            T::EXTENSION_TELEMETRY_WAIT.var(),
            d.telemetry_wait,
            Duration::from_millis(100),
            &mut warnings,
        );
        let frequent_interval = Duration::from_secs(number(
            env,
            T::EXTENSION_FREQUENT_INTERVAL.var(),
            (d.frequent_interval.as_secs(), 0),
            "seconds",
            &mut warnings,
        ));
        let (backlog_max, warning) = proc_wrapper::lambda::backlog::max_from_env(env);
        warnings.extend(warning);
        let (runtime_proxy, proxy_warnings) = crate::proxy::port_from_env(env);
        warnings.extend(proxy_warnings);
        let telemetry_port = match env(T::EXTENSION_TELEMETRY_PORT.var()) {
            None => d.telemetry_port,
            Some(text) => match text.trim().parse::<u16>() {
                Ok(9001) => {
                    warnings.push(format!(
                        "{} cannot be 9001 (reserved by Lambda); using a free port",
                        T::EXTENSION_TELEMETRY_PORT.var()
                    ));
                    0
                }
                Ok(p) => p,
                Err(_) => {
                    warnings.push(format!(
                        "{}='{text}' is not a port number; using a free port",
                        T::EXTENSION_TELEMETRY_PORT.var()
                    ));
                    0
                }
            },
        };
        (
            Self {
                max_added,
                creation_delay,
                telemetry_port,
                shutdown_margin,
                telemetry_wait,
                frequent_interval,
                backlog_max,
                runtime_proxy,
            },
            warnings,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let env = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        };
        Settings::from_env(&env)
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(read(&[]), (Settings::default(), vec![]));
        let (s, w) = read(&[
            ("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS", "50"),
            ("PROC_WRAPPER_EXTENSION_CREATION_DELAY_MS", "0"),
            ("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", "8999"),
            ("PROC_WRAPPER_EXTENSION_SHUTDOWN_MARGIN_MS", "500"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.max_added, Duration::from_millis(50));
        assert_eq!(s.creation_delay, Duration::ZERO);
        assert_eq!(s.telemetry_port, 8999);
        assert_eq!(s.shutdown_margin, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_name_the_variable_and_fall_back() {
        let (s, w) = read(&[
            ("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS", "fast"),
            ("PROC_WRAPPER_EXTENSION_TELEMETRY_PORT", "9001"),
            ("PROC_WRAPPER_EXTENSION_SHUTDOWN_MARGIN_MS", "10"),
        ]);
        assert_eq!(s.max_added, Settings::default().max_added);
        assert_eq!(s.telemetry_port, 0);
        assert_eq!(s.shutdown_margin, Duration::from_millis(300));
        assert_eq!(w.len(), 3);
        assert!(w[0].contains("PROC_WRAPPER_LAMBDA_MAX_ADDED_MS='fast'"));
        assert!(w.iter().any(|m| m.contains("9001")));
    }
}
