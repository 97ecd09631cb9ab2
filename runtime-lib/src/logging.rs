//! The wrapper's own log: `tracing` events written to standard error in the format of the
//! Python original, `PROC_WRAPPER: 2024-01-31 13:45:07,123 INFO: message`.
//!
//! Only events of this workspace's crates are shown at the configured level; other crates
//! (HTTP and AWS clients) are limited to warnings, because their debug output can carry
//! secrets and request bodies.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogLevel;
use crate::time::UtcTime;

/// Formats events like Python's `PROC_WRAPPER: %(asctime)s %(levelname)s: %(message)s`.
#[derive(Debug, Clone)]
pub(crate) struct WrapperFormat {
    /// Print the timestamp.
    pub include_timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for WrapperFormat
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
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        write!(writer, "PROC_WRAPPER: ")?;
        if self.include_timestamps {
            write!(writer, "{} ", UtcTime::now().log_format())?;
        }
        write!(writer, "{level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(level: LogLevel, include_timestamps: bool) {
    let ours = level_filter(level);
    let filter = Targets::new()
        .with_default(LevelFilter::WARN.min(ours))
        .with_target("proc_wrapper", ours)
        .with_target("proc_wrapper_cli", ours)
        .with_target("cloudreactor_extension", ours);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(WrapperFormat { include_timestamps });
    // An error only means a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}
