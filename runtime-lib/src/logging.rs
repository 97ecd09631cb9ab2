//! The wrapper's own log: `tracing` events written to standard error, in one of two formats
//! ([`LogFormat`], chosen by `AWS_LAMBDA_LOG_FORMAT`):
//!
//! * text (the default), the format of the Python original:
//!   `PROC_WRAPPER: 2024-01-31 13:45:07,123 INFO: message`;
//! * JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`, any case), one object a line as Lambda's own runtimes
//!   write them with the function's log format set to JSON:
//!   `{"timestamp":"2024-01-31T13:45:07.123Z","level":"INFO","message":"...","requestId":"..."}`.
//!   `timestamp` is UTC with milliseconds; `level` is `TRACE`, `DEBUG`, `INFO`, `WARN` or
//!   `ERROR`; `requestId` is there when the event has a `request_id` field (the extension's
//!   and the handler wrapper's events about one invocation do). The event's other fields
//!   follow as keys of their own (numbers and booleans as such, anything else as text); a
//!   field named like one of the four keys above is left out.
//!
//! [`init`] is the wrapper's (`proc_wrapper`, the extension and its exec wrapper, embedded
//! mode): only events of this workspace's crates are shown at the configured level; other
//! crates (HTTP and AWS clients) are limited to warnings, because their debug output can
//! carry secrets and request bodies. [`init_lambda`] is for a Rust Lambda function that uses
//! the handler wrapper: the function's own events are shown too.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::config::LogFormat;
use crate::config::{Config, LogLevel};
use crate::time::UtcTime;

/// The crates whose events are the wrapper's own.
const OUR_TARGETS: [&str; 3] = ["proc_wrapper", "proc_wrapper_cli", "cloudreactor_extension"];

/// The HTTP client crates that [`init_lambda`] limits to warnings.
const CLIENT_TARGETS: [&str; 5] = ["hyper", "hyper_util", "h2", "reqwest", "rustls"];

/// Formats one event as a line of the log.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    /// Text or JSON.
    pub format: LogFormat,
    /// Print the timestamp (text only: a JSON line always has one).
    pub include_timestamps: bool,
    /// Text lines of events from other crates than ours start with `PROC_WRAPPER: ` too
    /// (else they have no prefix: a function's own lines are not the wrapper's).
    pub label_all: bool,
    /// The time of an event.
    pub clock: fn() -> UtcTime,
}

impl LogLine {
    fn new(format: LogFormat, include_timestamps: bool, label_all: bool) -> Self {
        Self {
            format,
            include_timestamps,
            label_all,
            clock: UtcTime::now,
        }
    }

    /// Like Python's `PROC_WRAPPER: %(asctime)s %(levelname)s: %(message)s`.
    fn text<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        if self.label_all || is_ours(event.metadata().target()) {
            write!(writer, "PROC_WRAPPER: ")?;
        }
        if self.include_timestamps {
            write!(writer, "{} ", (self.clock)().log_format())?;
        }
        write!(writer, "{level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match self.format {
            LogFormat::Text => self.text(ctx, writer, event),
            LogFormat::Json => writeln!(writer, "{}", json_line(&(self.clock)(), event)),
        }
    }
}

fn is_ours(target: &str) -> bool {
    OUR_TARGETS.iter().any(|ours| {
        target
            .strip_prefix(ours)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The keys of a JSON line that no field of the event can take.
const RESERVED: [&str; 4] = ["timestamp", "level", "message", "requestId"];

/// `event` as Lambda's JSON log line (without the newline).
fn json_line(time: &UtcTime, event: &Event<'_>) -> String {
    let mut fields = JsonFields::default();
    event.record(&mut fields);
    let level = match *event.metadata().level() {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    };
    let mut line = Map::new();
    line.insert("timestamp".into(), time.iso8601_millis().into());
    line.insert("level".into(), level.into());
    line.insert("message".into(), fields.message.unwrap_or_default().into());
    if let Some(id) = fields.request_id {
        line.insert("requestId".into(), id.into());
    }
    for (name, value) in fields.extra {
        if !RESERVED.contains(&name.as_str()) {
            line.entry(name).or_insert(value);
        }
    }
    Value::Object(line).to_string()
}

/// The fields of one event, for its JSON line.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    request_id: Option<String>,
    extra: Vec<(String, Value)>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match field.name() {
            "message" => self.message = Some(text(value)),
            "request_id" => self.request_id = Some(text(value)),
            name => self.extra.push((name.to_owned(), value)),
        }
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `format_args!` (the message) and `%value` print as their text here.
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities, which JSON has no numbers for, become null.
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

/// The `tracing` level of a configured log level.
pub(crate) fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    }
}

/// The wrapper's filter: our crates at `level`, the others at warnings at most.
fn wrapper_filter(level: LogLevel) -> Targets {
    let ours = level_filter(level);
    OUR_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::WARN.min(ours)),
        |filter, target| filter.with_target(*target, ours),
    )
}

/// A function's filter: everything at `level`, but the HTTP clients at warnings at most.
fn lambda_filter(level: LogLevel) -> Targets {
    let level = level_filter(level);
    CLIENT_TARGETS
        .iter()
        .fold(Targets::new().with_default(level), |filter, target| {
            filter.with_target(*target, LevelFilter::WARN.min(level))
        })
}

/// The subscriber of `filter` and `line`, writing to `writer`.
fn subscriber<W>(filter: Targets, line: LogLine, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .event_format(line);
    tracing_subscriber::registry().with(layer).with(filter)
}

/// Installs the global subscriber of the wrapper's log, in the format `AWS_LAMBDA_LOG_FORMAT`
/// of the process environment selects ([`LogFormat::from_env`]). Safe to call more than once
/// (later calls do nothing).
pub fn init(level: LogLevel, include_timestamps: bool) {
    init_with_format(level, include_timestamps, LogFormat::from_env());
}

/// [`init`] in the given format.
pub fn init_with_format(level: LogLevel, include_timestamps: bool, format: LogFormat) {
    let line = LogLine::new(format, include_timestamps, true);
    // An error only means a subscriber is already installed, which is fine.
    let _ = subscriber(wrapper_filter(level), line, std::io::stderr).try_init();
}

/// What [`init_lambda`] installs, from the environment `lookup`: the filter, the line
/// format and the warnings about the settings.
fn lambda_setup(lookup: &dyn Fn(&str) -> Option<String>) -> (Targets, LogLine, Vec<String>) {
    let format = LogFormat::from_lookup(lookup);
    let (level, include_timestamps, warnings) =
        match Config::from_sources(&crate::config::Args::default(), lookup) {
            Ok(c) => (c.log.level, c.log.include_timestamps, c.warnings),
            // The handler wrapper reports bad settings when it loads them.
            Err(_) => (LogLevel::Info, true, Vec::new()),
        };
    (
        lambda_filter(level),
        LogLine::new(format, include_timestamps, false),
        warnings,
    )
}

/// Installs a global subscriber for a Rust Lambda function, to be called first in its
/// `main` (before [`crate::lambda::handler::run`]), so that the handler wrapper's log and the
/// function's own `tracing` events reach CloudWatch in the function's log format:
///
/// * the format is `AWS_LAMBDA_LOG_FORMAT`'s ([`LogFormat`]): JSON lines with `requestId`
///   for events with a `request_id` field (the handler wrapper's about an invocation; give
///   the function's own events `request_id = %event.context.request_id` for the same), or
///   text lines (the wrapper's start with `PROC_WRAPPER: `, the function's have no prefix);
/// * the level is `PROC_WRAPPER_LOG_LEVEL`, else `AWS_LAMBDA_LOG_LEVEL` (Lambda's
///   application log level), else `INFO`, for every crate but the HTTP clients (`hyper`,
///   `h2`, `reqwest`, `rustls`), which show warnings at most;
/// * text lines have a timestamp unless `PROC_WRAPPER_INCLUDE_TIMESTAMPS_IN_LOG` is false.
///
/// Does nothing when a subscriber is already installed (a function with its own keeps it).
pub fn init_lambda() {
    let (filter, line, warnings) = lambda_setup(&|k| std::env::var(k).ok());
    if subscriber(filter, line, std::io::stderr).try_init().is_ok() {
        for w in warnings {
            tracing::warn!("{w}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a test subscriber wrote.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        fn json_lines(&self) -> Vec<Map<String, Value>> {
            self.text()
                .lines()
                .map(|l| match serde_json::from_str(l) {
                    Ok(Value::Object(o)) => o,
                    other => panic!("not a JSON object: {l} ({other:?})"),
                })
                .collect()
        }
    }

    fn fixed() -> UtcTime {
        UtcTime {
            year: 2024,
            month: 1,
            day: 31,
            hour: 13,
            minute: 45,
            second: 7,
            micros: 123_999,
        }
    }

    /// Runs `f` with a subscriber of `filter` and `line` (at the fixed time); what it wrote.
    fn logged(filter: Targets, mut line: LogLine, f: impl FnOnce()) -> Buf {
        line.clock = fixed;
        let buf = Buf::default();
        let out = buf.clone();
        tracing::subscriber::with_default(subscriber(filter, line, move || out.clone()), f);
        buf
    }

    fn wrapper(format: LogFormat, f: impl FnOnce()) -> Buf {
        logged(
            wrapper_filter(LogLevel::Trace),
            LogLine::new(format, true, true),
            f,
        )
    }

    #[test]
    fn json_lines_have_lambdas_keys_time_and_level_names() {
        let buf = wrapper(LogFormat::Json, || {
            tracing::trace!(target: "proc_wrapper", "t");
            tracing::debug!(target: "proc_wrapper", "d");
            tracing::info!(target: "proc_wrapper", "i {}", 1);
            tracing::warn!(target: "proc_wrapper", "w");
            tracing::error!(target: "proc_wrapper", "e");
        });
        assert_eq!(
            buf.text().lines().nth(2).unwrap(),
            r#"{"timestamp":"2024-01-31T13:45:07.123Z","level":"INFO","message":"i 1"}"#
        );
        let levels: Vec<_> = buf
            .json_lines()
            .iter()
            .map(|l| l["level"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(levels, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]);
    }

    #[test]
    fn json_lines_escape_the_message_and_carry_the_request_id_and_other_fields() {
        let id = String::from("8476a536-e9f4-11e8-9739-2dfe598c3fcd");
        let buf = wrapper(LogFormat::Json, || {
            tracing::warn!(
                target: "proc_wrapper::lambda",
                request_id = id,
                attempts = 3,
                late = true,
                ratio = 0.5,
                uuid = %"u-1",
                timestamp = "not ours",
                "said \"no\"\n\tbackslash \\ and \u{1} and é"
            );
            tracing::info!(target: "cloudreactor_extension", request_id = %id, "display");
            tracing::info!(target: "cloudreactor_extension", request_id = ?id, "debug");
        });
        let lines = buf.json_lines();
        assert_eq!(lines.len(), 3, "one line per event: {}", buf.text());
        let first = &lines[0];
        assert_eq!(
            first["message"],
            "said \"no\"\n\tbackslash \\ and \u{1} and é"
        );
        assert_eq!(first["requestId"], id.as_str());
        assert_eq!(first["attempts"], 3);
        assert_eq!(first["late"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["uuid"], "u-1");
        assert_eq!(first["timestamp"], "2024-01-31T13:45:07.123Z");
        assert!(!first.contains_key("request_id"), "{first:?}");
        let keys: Vec<_> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "message",
                "requestId",
                "attempts",
                "late",
                "ratio",
                "uuid"
            ]
        );
        assert_eq!(lines[1]["requestId"], id.as_str());
        // A Debug value keeps its quotes: the wrapper logs ids as values or with `%`.
        assert_eq!(lines[2]["requestId"], format!("{id:?}"));
    }

    #[test]
    fn events_without_a_request_id_have_no_request_id_key() {
        let buf = wrapper(LogFormat::Json, || {
            tracing::info!(target: "proc_wrapper", "plain");
        });
        assert!(!buf.json_lines()[0].contains_key("requestId"));
    }

    #[test]
    fn text_lines_are_the_python_originals() {
        let buf = wrapper(LogFormat::Text, || {
            tracing::info!(target: "proc_wrapper", "hello");
            tracing::warn!(target: "reqwest", request_id = "r-1", "from a client");
        });
        assert_eq!(
            buf.text(),
            "PROC_WRAPPER: 2024-01-31 13:45:07,123 INFO: hello\n\
             PROC_WRAPPER: 2024-01-31 13:45:07,123 WARNING: from a client request_id=\"r-1\"\n"
        );
        let buf = logged(
            wrapper_filter(LogLevel::Info),
            LogLine::new(LogFormat::Text, false, true),
            || tracing::error!(target: "proc_wrapper_cli", "bad"),
        );
        assert_eq!(buf.text(), "PROC_WRAPPER: ERROR: bad\n");
    }

    #[test]
    fn the_wrapper_filter_limits_other_crates_to_warnings() {
        let buf = logged(
            wrapper_filter(LogLevel::Debug),
            LogLine::new(LogFormat::Json, true, true),
            || {
                tracing::debug!(target: "proc_wrapper::api", "ours");
                tracing::info!(target: "reqwest::connect", "theirs");
                tracing::warn!(target: "reqwest::connect", "their warning");
            },
        );
        let messages: Vec<_> = buf
            .json_lines()
            .into_iter()
            .map(|l| l["message"].clone())
            .collect();
        assert_eq!(messages, ["ours", "their warning"]);
    }

    fn lambda(env: &[(&str, &str)], f: impl FnOnce()) -> (Buf, Vec<String>) {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (filter, line, warnings) = lambda_setup(&|k| env.get(k).cloned());
        (logged(filter, line, f), warnings)
    }

    #[test]
    fn init_lambda_picks_the_functions_format_and_level() {
        let events = || {
            tracing::debug!(target: "my_function", "the function's own");
            tracing::info!(target: "proc_wrapper::lambda::handler", request_id = "r-1", "ours");
            tracing::info!(target: "hyper::client", "a client's");
        };
        let env = [
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
        ];
        let (buf, warnings) = lambda(&env, events);
        assert!(warnings.is_empty(), "{warnings:?}");
        let lines = buf.json_lines();
        assert_eq!(lines.len(), 2, "{}", buf.text());
        assert_eq!(lines[0]["message"], "the function's own");
        assert_eq!(lines[0]["level"], "DEBUG");
        assert_eq!(lines[1]["requestId"], "r-1");
        // Text, at INFO: the wrapper's line is labelled, the function's own would not be.
        let (buf, _) = lambda(
            &[("PROC_WRAPPER_INCLUDE_TIMESTAMPS_IN_LOG", "FALSE")],
            || {
                events();
                tracing::warn!(target: "my_function", "careful");
            },
        );
        assert_eq!(
            buf.text(),
            "PROC_WRAPPER: INFO: ours request_id=\"r-1\"\nWARNING: careful\n"
        );
        // PROC_WRAPPER_LOG_LEVEL wins over Lambda's level.
        let (buf, _) = lambda(
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "json"),
                ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
                ("PROC_WRAPPER_LOG_LEVEL", "INFO"),
            ],
            events,
        );
        assert_eq!(buf.json_lines().len(), 1, "{}", buf.text());
    }

    #[test]
    fn our_targets_are_whole_crate_names() {
        assert!(is_ours("proc_wrapper"));
        assert!(is_ours("proc_wrapper::lambda::handler"));
        assert!(is_ours("cloudreactor_extension::invocation"));
        assert!(!is_ours("proc_wrapper_extra"));
        assert!(!is_ours("my_function"));
    }
}
