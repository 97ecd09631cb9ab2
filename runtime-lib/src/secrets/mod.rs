//! Secret fetching and resolution (README "Secrets and configuration").
//!
//! * [`location`]: the `[PROVIDER:]address[!FORMAT][|TRANSFORM]` grammar.
//! * [`mod@format`]: dotenv, JSON, YAML and text, detection and writing.
//! * [`jsonpath`]: the JSONPath subset of `|JP:` transforms and `CONFIG:` locations.
//! * [`merge`]: the six merge strategies.
//! * [`aws`]: Secrets Manager, SSM and S3, with lazily created clients.
//! * [`Fetcher`]: the cache (keyed by provider and address, with `config_ttl`) and the
//!   concurrent fetching of distinct locations.
//! * [`resolve`]: top-level fetching, resolution passes, and the environment projection.
//! * [`redact`]: the resolved secret values, hidden in the log tails sent to the API server.
//!
//! Secret values never reach the log or error messages unless `--log-secrets` is given:
//! errors name the variable and the location (with the text of `PLAIN` locations hidden).

pub mod aws;
pub mod format;
pub mod jsonpath;
pub mod location;
pub mod merge;
pub mod output;
pub mod redact;
pub mod resolve;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use location::{Location, Provider};
pub use redact::Redactor;
pub use resolve::{Failure, Resolved, Resolver, TopLevel, TopLevelError};

/// Why a location could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A malformed location or an unsupported feature.
    #[error("{0}")]
    Invalid(String),
    /// The provider could not deliver the value.
    #[error("{0}")]
    Fetch(String),
    /// The value could not be parsed or transformed.
    #[error("{0}")]
    Parse(String),
    /// An AWS call failed.
    #[error("{operation} failed: {error}")]
    Aws {
        /// The service and operation, such as `AWS SSM GetParameter`.
        operation: &'static str,
        /// Why.
        error: crate::aws::AwsError,
    },
    /// A variable or property that the locations did not resolve.
    #[error("not resolved: {0}")]
    NotResolved(String),
}

/// Text fetched from a provider, with the format the provider reported, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The text.
    pub text: String,
    /// Format reported by the provider (S3 content type, SSM `StringList`).
    pub format: Option<format::Format>,
}

type CacheKey = (Provider, String);

/// Fetches locations, caching by provider and address and fetching distinct ones
/// concurrently.
pub struct Fetcher {
    aws: aws::AwsClients,
    ttl: Option<Duration>,
    cache: Mutex<HashMap<CacheKey, (Instant, Fetched)>>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl Fetcher {
    /// A fetcher whose entries go stale after `ttl` (never when `None`), using
    /// `aws_region` for AWS locations that name no region.
    pub fn new(ttl: Option<Duration>, aws_region: Option<String>) -> Self {
        Self {
            aws: aws::AwsClients::new(aws_region),
            ttl,
            cache: Mutex::new(HashMap::new()),
            fetches: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many fetches from providers were made (cache hits excluded).
    pub fn fetch_count(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fresh(&self, key: &CacheKey) -> Option<Fetched> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (at, fetched) = cache.get(key)?;
        match self.ttl {
            Some(ttl) if at.elapsed() > ttl => None,
            _ => Some(fetched.clone()),
        }
    }

    async fn fetch_uncached(
        &self,
        provider: Provider,
        address: &str,
    ) -> Result<Fetched, SecretError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match provider {
            Provider::Plain => Ok(Fetched {
                text: address.to_owned(),
                format: None,
            }),
            Provider::File => tokio::fs::read_to_string(address)
                .await
                .map(|text| Fetched { text, format: None })
                .map_err(|e| SecretError::Fetch(format!("cannot read file '{address}': {e}"))),
            Provider::AwsSm => self.aws.secret(address).await,
            Provider::AwsSsm => self.aws.parameter(address).await,
            Provider::AwsS3 => self.aws.object(address).await,
            Provider::AwsAppConfig => Err(SecretError::Invalid(
                "AWS AppConfig locations are not supported by this version".to_owned(),
            )),
            Provider::Env | Provider::Config => Err(SecretError::Invalid(format!(
                "{} values are looked up, not fetched",
                provider.code()
            ))),
        }
    }

    /// Fetches every distinct cacheable location of `locations` that is not fresh in the
    /// cache, concurrently. Returns the errors by cache key; successes go to the cache.
    pub(crate) async fn prefetch<'a>(
        &self,
        locations: impl IntoIterator<Item = &'a Location>,
    ) -> HashMap<(Provider, String), SecretError> {
        let mut wanted: Vec<CacheKey> = Vec::new();
        for loc in locations {
            let key = loc.cache_key();
            if loc.provider.cacheable() && !wanted.contains(&key) && self.fresh(&key).is_none() {
                wanted.push(key);
            }
        }
        let results = join_all(wanted.into_iter().map(|key| async move {
            let result = self.fetch_uncached(key.0, &key.1).await;
            (key, result)
        }))
        .await;
        let mut errors = HashMap::new();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, result) in results {
            match result {
                Ok(fetched) => {
                    cache.insert(key, (Instant::now(), fetched));
                }
                Err(e) => {
                    errors.insert(key, e);
                }
            }
        }
        errors
    }

    /// The cached value of a cacheable location, fetching it if needed.
    pub async fn fetch(&self, loc: &Location) -> Result<Fetched, SecretError> {
        let key = loc.cache_key();
        if let Some(f) = self.fresh(&key) {
            return Ok(f);
        }
        if let Some(e) = self.prefetch([loc]).await.remove(&key) {
            return Err(e);
        }
        self.fresh(&key)
            .ok_or_else(|| SecretError::Fetch("the value expired from the cache at once".into()))
    }

    /// The cached value after [`Fetcher::prefetch`] (stale entries are still returned).
    fn cached(&self, loc: &Location) -> Option<Fetched> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&loc.cache_key()).map(|(_, f)| f.clone())
    }
}
