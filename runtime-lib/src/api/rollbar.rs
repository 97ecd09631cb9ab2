//! Reporting trouble with the CloudReactor API to Rollbar, as 6.0.2 does (README "Reporting
//! to CloudReactor", "Rollbar"), when `--rollbar-access-token` is given.
//!
//! Network errors are retried `rollbar_retries` times (forever with -1) after
//! `rollbar_retry_delay`; an HTTP error gives up at once. Once retries run out, Rollbar is
//! not used again in this run. The API key is never part of a report.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::config::Config;

/// The Rollbar endpoint unless `PROC_WRAPPER_ROLLBAR_BASE_URL` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.rollbar.com";

/// A Rollbar notifier.
pub struct Rollbar {
    http: reqwest::Client,
    url: String,
    token: String,
    retries: Option<u32>,
    retry_delay: std::time::Duration,
    disabled: bool,
}

/// Severity of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The API server is temporarily unavailable.
    Warning,
    /// Anything else.
    Error,
}

impl Rollbar {
    /// A notifier, or `None` without an access token.
    pub fn new(config: &Config) -> Option<Self> {
        let token = config.rollbar.access_token.clone()?;
        let http = reqwest::Client::builder()
            .timeout(config.rollbar.timeout)
            .build()
            .ok()?;
        Some(Self {
            http,
            url: format!(
                "{}/api/1/item/",
                config
                    .rollbar
                    .base_url
                    .as_deref()
                    .unwrap_or(DEFAULT_BASE_URL)
                    .trim_end_matches('/')
            ),
            token,
            retries: config.rollbar.retries,
            retry_delay: config.rollbar.retry_delay,
            disabled: false,
        })
    }

    /// The payload of a report.
    pub fn payload(
        config: &Config,
        execution_uuid: Option<&str>,
        message: &str,
        level: Level,
        data: Value,
    ) -> Value {
        let t = &config.task;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        json!({"data": {
            "environment": config.api.deployment.as_deref().unwrap_or("Unknown"),
            "body": {"message": {
                "body": message,
                "task": {
                    "uuid": t.uuid, "name": t.name, "version_number": t.version_number,
                    "version_text": t.version_text, "version_signature": t.version_signature,
                },
                "task_execution": {"uuid": execution_uuid},
                "task_instance_metadata": t.instance_metadata,
                "wrapper_version": crate::VERSION,
                "data": data,
            }},
            "level": match level { Level::Warning => "warning", Level::Error => "error" },
            "timestamp": timestamp,
            "code_version": t.version_signature,
            "context": "proc_wrapper",
            "server": {"host": crate::metadata::node_name()},
        }})
    }

    /// Sends `payload`; never fails the run.
    pub async fn send(&mut self, payload: &Value) {
        if self.disabled {
            return;
        }
        let mut attempt = 0u32;
        loop {
            let result = self
                .http
                .post(&self.url)
                .header("Accept", "application/json")
                .header("X-Rollbar-Access-Token", &self.token)
                .json(payload)
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => {
                    debug!("reported to Rollbar");
                    return;
                }
                Ok(r) => {
                    warn!("Rollbar answered {}; not retrying", r.status());
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    if self.retries.is_some_and(|r| attempt > r) {
                        warn!("could not reach Rollbar ({e}); not using it again");
                        self.disabled = true;
                        return;
                    }
                    warn!("could not reach Rollbar ({e}); retrying");
                    tokio::time::sleep(self.retry_delay).await;
                }
            }
        }
    }
}
