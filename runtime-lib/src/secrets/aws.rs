//! Fetching from AWS Secrets Manager, SSM Parameter Store and S3 with the wrapper's own
//! client ([`crate::aws`]): created lazily, once per process, the first time a location needs
//! AWS. The standard variables apply: credentials from the usual chain, and
//! `AWS_ENDPOINT_URL` pointing every call at an emulator (S3 then uses path-style addressing).

use serde_json::{Value, json};

use super::format::Format;
use super::{Fetched, SecretError};
use crate::aws::{Aws, AwsError, Service};

/// The AWS client of a fetcher.
pub(crate) struct AwsClients {
    aws: Aws,
}

/// The region field of an ARN (`arn:aws:service:REGION:...`), if not empty.
pub(crate) fn region_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    parts.nth(2).filter(|r| !r.is_empty())
}

fn fetch_error(operation: &'static str) -> impl FnOnce(AwsError) -> SecretError {
    move |error| SecretError::Aws { operation, error }
}

impl AwsClients {
    /// Calls using `default_region` when a location names none (before `AWS_REGION`).
    pub(crate) fn new(default_region: Option<String>) -> Self {
        Self {
            aws: Aws::new(default_region),
        }
    }

    /// `GetSecretValue`; binary secrets are returned base64-encoded.
    pub(crate) async fn secret(&self, id: &str) -> Result<Fetched, SecretError> {
        let out = self
            .aws
            .json_call(
                Service::SecretsManager,
                region_of_arn(id),
                "GetSecretValue",
                &json!({ "SecretId": id }),
            )
            .await
            .map_err(fetch_error("AWS Secrets Manager GetSecretValue"))?;
        // The JSON protocol carries binary secrets base64-encoded already.
        let text = ["SecretString", "SecretBinary"]
            .iter()
            .find_map(|k| out.get(*k).and_then(Value::as_str))
            .ok_or_else(|| SecretError::Fetch("the secret has no value".into()))?;
        Ok(Fetched {
            text: text.to_owned(),
            format: None,
        })
    }

    /// `GetParameter` with decryption; a `StringList` becomes a JSON list.
    pub(crate) async fn parameter(&self, name: &str) -> Result<Fetched, SecretError> {
        let out = self
            .aws
            .json_call(
                Service::Ssm,
                region_of_arn(name),
                "GetParameter",
                &json!({ "Name": name, "WithDecryption": true }),
            )
            .await
            .map_err(fetch_error("AWS SSM GetParameter"))?;
        let param = out
            .get("Parameter")
            .ok_or_else(|| SecretError::Fetch("SSM returned no parameter".into()))?;
        let value = param
            .get("Value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if param.get("Type").and_then(Value::as_str) == Some("StringList") {
            let list: Vec<&str> = value.split(',').collect();
            return Ok(Fetched {
                text: serde_json::to_string(&list).unwrap_or_default(),
                format: Some(Format::Json),
            });
        }
        Ok(Fetched {
            text: value.to_owned(),
            format: None,
        })
    }

    /// `GetObject` of `bucket/key[#versionId]`; the format comes from the content type.
    pub(crate) async fn object(&self, address: &str) -> Result<Fetched, SecretError> {
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
        let (bytes, content_type) = self
            .aws
            .get_object(bucket, key, version)
            .await
            .map_err(fetch_error("AWS S3 GetObject"))?;
        let format = content_type.as_deref().and_then(Format::from_mime);
        let text = String::from_utf8(bytes)
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
