//! # proc_wrapper for Rust
//!
//! The shared library of the Rust re-implementation of CloudReactor's `proc_wrapper`: it
//! configures, resolves secrets for, supervises and reports on a task.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the command line, the `PROC_WRAPPER_*` variables, their precedence and validation |
//! | [`secrets`] | secret locations, fetching (files, AWS), formats, merging, resolution |
//! | [`settings`] | the one settings pipeline: bootstrap, locations, secrets, final `Config` |
//! | [`process`] | command resolution, spawning, timeouts, retries, signal forwarding, reaping, log capture |
//! | [`signals`] | the signals that stop the wrapper and how each ends a run |
//! | [`exec`] | resolve secrets into the environment, then exec a command |
//! | [`child_env`] | the environment given to the wrapped process |
//! | [`api`] | the CloudReactor API client and the lifecycle of a Task Execution |
//! | [`metadata`] | runtime metadata (ECS, CodeBuild, EC2, Lambda) |
//! | [`status`] | UDP status updates: the message buffer and the `StatusUpdater` client |
//! | [`values`] | input and result values |
//! | [`task`] | the typed core of a Task Execution: wire bodies, the body builder, requests, sampling |
//! | [`managed`] | embedded mode: a Rust function run as a Task Execution |
//! | [`lambda`] | reporting Lambda invocations; with feature `lambda`, the handler wrapper |
//! | [`handoff`] | what code in a Lambda function tells `cloudreactor-extension` |
//! | [`logging`] | the wrapper's own log format |
//! | [`exit_codes`] | the exit codes of `proc_wrapper` |
//! | [`time`] | UTC timestamps |

#![warn(missing_docs)]

pub mod api;
pub mod aws;
pub mod child_env;
pub mod config;
pub mod exec;
pub mod exit_codes;
pub mod handoff;
mod http;
pub mod lambda;
pub mod logging;
pub mod managed;
pub mod metadata;
pub mod process;
pub mod secrets;
pub mod settings;
pub mod signals;
pub mod status;
pub mod task;
pub mod time;
pub mod values;

/// Version of this crate, reported as `wrapper_version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `wrapper_family` reported to the API server.
pub const WRAPPER_FAMILY: &str = "CloudReactor Rust proc_wrapper";
