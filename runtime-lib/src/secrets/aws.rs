//! Fetching from AWS Secrets Manager, SSM Parameter Store and S3.
//!
//! The SDK configuration is loaded lazily, the first time a location needs AWS, and once per
//! process; clients are created once per region and shared. The standard variables apply:
//! credentials from the usual chain, and `AWS_ENDPOINT_URL` pointing every client at an
//! emulator (S3 then uses path-style addressing).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use base64::Engine;
use tokio::sync::OnceCell;

use super::format::Format;
use super::{Fetched, SecretError};

/// Lazily created AWS clients.
#[derive(Default)]
pub struct AwsClients {
    /// Region from `PROC_WRAPPER_SECRETS_AWS_REGION`; otherwise the SDK's own chain
    /// (`AWS_REGION`, `AWS_DEFAULT_REGION`, profile).
    default_region: Option<String>,
    sdk: OnceCell<SdkConfig>,
    sm: Mutex<HashMap<String, aws_sdk_secretsmanager::Client>>,
    ssm: Mutex<HashMap<String, aws_sdk_ssm::Client>>,
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
}

fn aws_error(what: &str, e: &impl std::error::Error) -> SecretError {
    // The SDK's Display is terse ("service error"); the source chain names the cause.
    let mut msg = format!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    SecretError::Fetch(msg)
}

/// The HTTPS client of every AWS client: rustls with ring (smaller than aws-lc, which the
/// SDK uses by default), certificates verified against the system's roots.
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The region field of an ARN (`arn:aws:service:REGION:...`), if not empty.
pub fn region_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    parts.nth(2).filter(|r| !r.is_empty())
}

impl AwsClients {
    /// Clients using `default_region` when a location names none.
    pub fn new(default_region: Option<String>) -> Self {
        Self {
            default_region,
            ..Self::default()
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader =
                    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
                if let Some(region) = &self.default_region {
                    loader = loader.region(Region::new(region.clone()));
                }
                loader.load().await
            })
            .await
    }

    fn region_key(&self, sdk: &SdkConfig, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_owned)
            .or_else(|| sdk.region().map(ToString::to_string))
            .unwrap_or_default()
    }

    async fn client<C: Clone>(
        &self,
        cache: &Mutex<HashMap<String, C>>,
        region: Option<&str>,
        make: impl FnOnce(&SdkConfig, Option<Region>) -> C,
    ) -> C {
        let sdk = self.sdk().await;
        let key = self.region_key(sdk, region);
        let mut clients = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(key)
            .or_insert_with(|| make(sdk, region.map(|r| Region::new(r.to_owned()))))
            .clone()
    }

    /// `GetSecretValue`; binary secrets are returned base64-encoded.
    pub async fn secret(&self, id: &str) -> Result<Fetched, SecretError> {
        let client = self
            .client(&self.sm, region_of_arn(id), |sdk, region| {
                let mut b = aws_sdk_secretsmanager::config::Builder::from(sdk);
                if let Some(r) = region {
                    b = b.region(r);
                }
                aws_sdk_secretsmanager::Client::from_conf(b.build())
            })
            .await;
        let out = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| aws_error("AWS Secrets Manager GetSecretValue failed", &e))?;
        let text = match (out.secret_string, out.secret_binary) {
            (Some(s), _) => s,
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b.into_inner()),
            (None, None) => return Err(SecretError::Fetch("the secret has no value".into())),
        };
        Ok(Fetched { text, format: None })
    }

    /// `GetParameter` with decryption; a `StringList` becomes a JSON list.
    pub async fn parameter(&self, name: &str) -> Result<Fetched, SecretError> {
        let client = self
            .client(&self.ssm, region_of_arn(name), |sdk, region| {
                let mut b = aws_sdk_ssm::config::Builder::from(sdk);
                if let Some(r) = region {
                    b = b.region(r);
                }
                aws_sdk_ssm::Client::from_conf(b.build())
            })
            .await;
        let out = client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| aws_error("AWS SSM GetParameter failed", &e))?;
        let param = out
            .parameter
            .ok_or_else(|| SecretError::Fetch("SSM returned no parameter".into()))?;
        let value = param.value.unwrap_or_default();
        if param.r#type == Some(aws_sdk_ssm::types::ParameterType::StringList) {
            let list: Vec<&str> = value.split(',').collect();
            return Ok(Fetched {
                text: serde_json::to_string(&list).unwrap_or_default(),
                format: Some(Format::Json),
            });
        }
        Ok(Fetched {
            text: value,
            format: None,
        })
    }

    /// `GetObject` of `bucket/key[#versionId]`; the format comes from the content type.
    pub async fn object(&self, address: &str) -> Result<Fetched, SecretError> {
        let path = address.strip_prefix("arn:aws:s3:::").unwrap_or(address);
        let (path, version) = match path.split_once('#') {
            Some((p, v)) => (p, Some(v)),
            None => (path, None),
        };
        let (bucket, key) = path
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| {
                SecretError::Invalid(format!(
                    "S3 location '{address}' is not of the form arn:aws:s3:::bucket/key"
                ))
            })?;
        let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let client = self
            .client(&self.s3, None, |sdk, _| {
                let b = aws_sdk_s3::config::Builder::from(sdk).force_path_style(custom_endpoint);
                aws_sdk_s3::Client::from_conf(b.build())
            })
            .await;
        let out = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| aws_error("AWS S3 GetObject failed", &e))?;
        let format = out.content_type.as_deref().and_then(Format::from_mime);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| aws_error("reading the S3 object failed", &e))?
            .into_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| SecretError::Parse("the S3 object is not UTF-8 text".into()))?;
        Ok(Fetched { text, format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_of_arns() {
        assert_eq!(
            region_of_arn("arn:aws:secretsmanager:us-west-1:1:secret:x"),
            Some("us-west-1")
        );
        assert_eq!(region_of_arn("arn:aws:s3:::b/k"), None);
        assert_eq!(region_of_arn("my-secret"), None);
    }
}
