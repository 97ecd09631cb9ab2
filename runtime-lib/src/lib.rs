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
//! | [`logging`] | the wrapper's own log: the text format, or Lambda's JSON format (`AWS_LAMBDA_LOG_FORMAT`) |
//! | [`exit_codes`] | the exit codes of `proc_wrapper` |
//! | [`time`] | UTC timestamps |
//!
//! # Theory of operation
//!
//! Five front ends share four layers. From the bottom:
//!
//! 1. **Settings** ([`config`], [`config::table`], [`secrets`], [`settings`]). One table
//!    declares each setting once: its option, variables, the variable the child receives and
//!    its field on the wire. [`settings::Pipeline`] turns the command line, the environment
//!    and an initial configuration into the resolved environment and a typed
//!    [`config::Config`], in four phases (bootstrap, locations, secrets, final).
//! 2. **The Task Execution core** ([`task`]): *what* is sent, with no I/O: typed wire bodies,
//!    the body builder, one request type per endpoint (method and path), the sampling rule.
//! 3. **Services**, each owning its I/O: [`api`] (the HTTP client and its retry policy, an
//!    [`api::ExecutionClient`] for one execution, and the [`api::Reporter`] that keeps only
//!    the heartbeat timing and the fields waiting to be sent), [`status`] (the UDP listener,
//!    an actor with its own socket and buffer), [`metadata`] (ECS, CodeBuild, EC2, Lambda),
//!    [`aws`] (signed calls for secrets), [`process`] (the supervisor: attempts, timeouts,
//!    retries, log capture) and [`signals`] (how each signal ends a run).
//! 4. **Front ends**, each a composition of the layers below:
//!
//! | front end | entry point | settings | what runs | reporting |
//! |---|---|---|---|---|
//! | wrapped mode | `proc_wrapper` (crate `proc_wrapper_cli`) | `Pipeline`, wrapped | [`process::Supervisor`] | [`api::Reporter`], as the supervisor's [`process::Hooks`] |
//! | `--exec` and the layer's exec wrapper | `proc_wrapper --exec`, `cloudreactor-exec-wrapper` | `Pipeline`, wrapped | [`exec::exec`] replaces the process | none |
//! | embedded mode | [`managed::ManagedCall`] | `Pipeline`, embedded (`proc_wrapper_params`) | a Rust function, with retries | [`api::Reporter`] |
//! | Rust handler wrapper | `lambda::handler` (feature `lambda`) | `Pipeline`, wrapped | the handler | [`lambda::LambdaReporting`] |
//! | Lambda extension | `cloudreactor-extension` | `Pipeline`, wrapped | any function, seen through the Extensions and Telemetry APIs | [`lambda::LambdaReporting`] |
//!
//! Errors are typed in each layer ([`config::ConfigError`], [`secrets::SecretError`],
//! [`aws::AwsError`], [`settings::SettingsError`], [`api::ApiError`],
//! [`metadata::MetadataError`], [`values::ValueError`], [`managed::ManagedError`],
//! [`exec::ExecError`]); `proc_wrapper` turns them into its exit codes in one place (its
//! `CliError`), logging each once. The README's "Exit codes" and "Differences" sections are
//! the reference for what each front end promises.

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
