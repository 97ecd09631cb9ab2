//! The one settings pipeline of every front end: wrapped mode and `--exec` (`cli`), the exec
//! wrapper of the Lambda layer ([`crate::exec`]), embedded mode ([`crate::managed`]), the
//! Lambda handler wrapper and the extension ([`crate::lambda`]).
//!
//! [`Pipeline::load`] goes through four phases, each reading the settings once:
//!
//! 1. **Bootstrap** ([`Pipeline::new`]): the command line and the environment give the
//!    resolver's settings (locations, prefixes, merge strategy, TTL) and the log settings.
//! 2. **Locations**: the env and config locations are fetched and merged, the process
//!    environment over them. When env locations were given, the resolver's settings are read
//!    again from the merged environment, since an env file may set them (as in 6.0.2).
//! 3. **Secrets**: every location of the environment and the configuration is resolved; a
//!    failure stops here (nothing runs with a partial environment).
//! 4. **Final**: the whole [`Config`] is read from the resolved environment (as in 6.0.2,
//!    settings may come from secrets).
//!
//! The one difference between the modes is where else settings come from
//! ([`Mode::Embedded`], as 6.0.2's `managed_call`): the `proc_wrapper_params` object of the
//! configuration, which wins over the environment, in phase 1 (of the initial configuration)
//! and in phase 4 (of the resolved one).
//!
//! Loading again ([`Pipeline::load`] after a failure, when `config_ttl` is set) keeps the
//! resolver's cache, so that only the values whose time to live has passed are fetched again.
//! It also keeps the pipeline's [`Redactor`]: each load adds the secret values it produced,
//! and every [`Settings`] holds that one handle, so what was given the redactor of the first
//! load (the log capture) hides the values of later loads too.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::config::table::params_as_env;
use crate::config::{Args, Config, ConfigError};
use crate::secrets::{Failure, Redactor, Resolver, TopLevel, TopLevelError};
use crate::task::Mode;

/// Settings with their secrets resolved: what [`Pipeline::load`] gives.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings, read from the resolved environment (and `proc_wrapper_params`).
    pub config: Config,
    /// The resolved environment, every value as text.
    pub env: Map<String, Value>,
    /// The resolved configuration (the `--config` locations and their secrets).
    pub values: Map<String, Value>,
    /// The secret values resolution produced ([`crate::secrets::Resolved::secrets`]), for
    /// the log tails; shared with the pipeline, which adds those of each later load.
    pub redactor: Redactor,
}

/// Why the settings could not be loaded; each case names what is wrong (never a secret
/// value). `proc_wrapper` exits 78 for all of them.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting that does not parse, or settings that contradict each other.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An env or config location that cannot be fetched or read.
    #[error(transparent)]
    Location(#[from] TopLevelError),
    /// Variables or properties that could not be resolved.
    #[error("could not resolve {}", list(.0))]
    Unresolved(Vec<Failure>),
}

fn list(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The settings of one run, from its command line, environment and initial configuration.
pub struct Pipeline {
    args: Args,
    env: Vec<(String, String)>,
    initial_config: Map<String, Value>,
    mode: Mode,
    resolver: Resolver,
    bootstrap: Config,
    redactor: Redactor,
}

/// The `proc_wrapper_params` of a configuration, as variables (embedded mode only).
fn params_of(mode: Mode, config: &Map<String, Value>) -> HashMap<String, String> {
    match mode {
        Mode::Wrapped => HashMap::new(),
        Mode::Embedded => config
            .get("proc_wrapper_params")
            .and_then(Value::as_object)
            .map(params_as_env)
            .unwrap_or_default(),
    }
}

/// Reads `Config` with `params` over `env`.
fn read(
    args: &Args,
    params: &HashMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    Config::from_sources(args, &|k| params.get(k).cloned().or_else(|| env(k)))
}

fn text_of(map: &Map<String, Value>) -> impl Fn(&str) -> Option<String> + '_ {
    |k| map.get(k).and_then(Value::as_str).map(str::to_owned)
}

impl Pipeline {
    /// Phase 1: the bootstrap settings, from `args` and `env` (and, in embedded mode, the
    /// `proc_wrapper_params` of `initial_config`). Returns them beside the pipeline, for the
    /// log settings.
    pub fn new(
        args: Args,
        env: Vec<(String, String)>,
        initial_config: Map<String, Value>,
        mode: Mode,
    ) -> Result<(Self, Config), ConfigError> {
        let bootstrap = {
            let vars: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            read(&args, &params_of(mode, &initial_config), &|k| {
                vars.get(k).map(|v| (*v).to_owned())
            })?
        };
        let resolver = Resolver::new(bootstrap.resolver.clone());
        Ok((
            Self {
                args,
                env,
                initial_config,
                mode,
                resolver,
                bootstrap: bootstrap.clone(),
                redactor: Redactor::default(),
            },
            bootstrap,
        ))
    }

    /// The bootstrap settings (phase 1: nothing resolved). Enough to report a run whose
    /// secrets did not resolve ([`crate::api::report_unresolved`]), when the API key and the
    /// Task are not secrets themselves.
    pub fn bootstrap(&self) -> &Config {
        &self.bootstrap
    }

    /// Phases 2 to 4: the settings with their secrets resolved.
    pub async fn load(&mut self) -> Result<Settings, SettingsError> {
        // 2. Locations.
        let TopLevel {
            env,
            config,
            secrets,
        } = self
            .resolver
            .fetch_top_level(self.env.iter().cloned(), self.initial_config.clone())
            .await?;
        self.redactor.add(secrets);
        if !self.resolver.params().env_locations.is_empty() {
            let params = params_of(self.mode, &self.initial_config);
            self.resolver
                .set_params(read(&self.args, &params, &text_of(&env))?.resolver);
        }
        // 3. Secrets.
        let resolved = self.resolver.resolve(env, config).await;
        self.redactor.add(resolved.secrets);
        tracing::debug!(
            "{} fetch(es) from secret providers so far",
            self.resolver.fetcher().fetch_count()
        );
        if !resolved.failures.is_empty() {
            return Err(SettingsError::Unresolved(resolved.failures));
        }
        // 4. Final.
        let params = params_of(self.mode, &resolved.config);
        let config = read(&self.args, &params, &text_of(&resolved.env))?;
        Ok(Settings {
            config,
            env: resolved.env,
            values: resolved.config,
            redactor: self.redactor.clone(),
        })
    }

    /// The secret values of every load so far; the handle that each [`Settings`] holds.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// [`Pipeline`] in one call, for front ends that load once: `env` and no command line.
pub async fn load(
    env: &HashMap<String, String>,
    initial_config: Map<String, Value>,
    mode: Mode,
) -> Result<Settings, SettingsError> {
    let env = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let (mut pipeline, _) = Pipeline::new(Args::default(), env, initial_config, mode)?;
    pipeline.load().await
}
