//! The location grammar `[PROVIDER:]address[!FORMAT][|TRANSFORM]` (README "Secrets and
//! configuration"): which provider fetches a value, from where, how to parse it and what part
//! of it to keep.

use std::fmt;

use super::SecretError;
use super::format::Format;

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// The literal text after `PLAIN:`.
    Plain,
    /// Another variable of the environment being resolved.
    Env,
    /// A JSONPath over the configuration being resolved.
    Config,
    /// AWS Secrets Manager.
    AwsSm,
    /// AWS Systems Manager Parameter Store.
    AwsSsm,
    /// AWS AppConfig (recognised, not supported).
    AwsAppConfig,
    /// AWS S3.
    AwsS3,
    /// A local file.
    File,
}

impl Provider {
    /// Every provider, in the order they are checked (as in the original).
    pub const ALL: [Provider; 8] = [
        Provider::Plain,
        Provider::Env,
        Provider::Config,
        Provider::AwsSm,
        Provider::AwsSsm,
        Provider::AwsAppConfig,
        Provider::AwsS3,
        Provider::File,
    ];

    /// The provider code used in prefixes.
    pub fn code(self) -> &'static str {
        match self {
            Provider::Plain => "PLAIN",
            Provider::Env => "ENV",
            Provider::Config => "CONFIG",
            Provider::AwsSm => "AWS_SM",
            Provider::AwsSsm => "AWS_SSM",
            Provider::AwsAppConfig => "AWS_APP_CONFIG",
            Provider::AwsS3 => "AWS_S3",
            Provider::File => "FILE",
        }
    }

    /// Value prefixes that select the provider without a code.
    fn auto_prefixes(self) -> &'static [&'static str] {
        match self {
            Provider::AwsSm => &["arn:aws:secretsmanager:"],
            Provider::AwsSsm => &["ssm:", "arn:aws:ssm:"],
            Provider::AwsAppConfig => &["aws:appconfig:"],
            Provider::AwsS3 => &["arn:aws:s3:::"],
            Provider::File => &["file://"],
            _ => &[],
        }
    }

    /// Values of these providers are fetched once and cached.
    pub fn cacheable(self) -> bool {
        !matches!(self, Provider::Env | Provider::Config)
    }
}

/// What to keep of a parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// A JSONPath expression; `splat` when it ended in `[*]`, so the result is always a list.
    JsonPath {
        /// The expression, without a trailing `[*]` when `splat`.
        expr: String,
        /// Keep the matches as a list even when there is one.
        splat: bool,
    },
    /// The parsed value itself.
    SelfValue,
}

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Provider.
    pub provider: Provider,
    /// Provider-specific address (secret ID, file path, parameter name, ...).
    pub address: String,
    /// Explicit format (`!json`, ...).
    pub format: Option<Format>,
    /// Transform (`|JP:...`).
    pub transform: Option<Transform>,
}

impl fmt::Display for Location {
    /// The location without secret material: the text of `PLAIN` locations is hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            Provider::Plain => write!(f, "PLAIN:<hidden>")?,
            p => write!(f, "{}:{}", p.code(), self.address)?,
        }
        if let Some(fmt_) = self.format {
            write!(f, "!{}", fmt_.name())?;
        }
        match &self.transform {
            Some(Transform::JsonPath { expr, splat }) => {
                write!(f, "|JP:{expr}{}", if *splat { "[*]" } else { "" })
            }
            Some(Transform::SelfValue) => write!(f, "|SELF"),
            None => Ok(()),
        }
    }
}

/// The text of a location for messages when it could not be parsed: the literal value of a
/// `PLAIN` location is hidden, as [`Location`]'s `Display` hides it.
pub(crate) fn describe_text(text: &str) -> String {
    let text = text.trim();
    if text.starts_with("PLAIN:") {
        "PLAIN:<hidden>".to_owned()
    } else {
        text.to_owned()
    }
}

/// Strips a leading `<CODE>_` from a variable name, selecting that provider (the legacy
/// name prefix, e.g. `AWS_SM_DB_PASS`).
pub fn provider_from_name(name: &str) -> Option<(Provider, &str)> {
    Provider::ALL.iter().find_map(|p| {
        let rest = name.strip_prefix(p.code())?.strip_prefix('_')?;
        (!rest.is_empty()).then_some((*p, rest))
    })
}

impl Location {
    /// Parses `text`. `provider` is the one chosen by a name prefix, if any. At top level
    /// (`-e`, `--config`) `ENV` and `CONFIG` are not allowed.
    pub fn parse(
        text: &str,
        provider: Option<Provider>,
        top_level: bool,
    ) -> Result<Self, SecretError> {
        let text = text.trim();
        let (main, transform) = split_transform(text)?;
        let (main, format) = split_format(main);
        let (provider, address) = match provider {
            Some(p) => {
                let code_prefix = format!("{}:", p.code());
                (p, main.strip_prefix(&code_prefix).unwrap_or(main))
            }
            None => detect(main),
        };
        if top_level && matches!(provider, Provider::Env | Provider::Config) {
            return Err(SecretError::Invalid(format!(
                "{} locations can only be used in variables to resolve, not with -e/--config",
                provider.code()
            )));
        }
        let address = match provider {
            Provider::File => address.strip_prefix("file://").unwrap_or(address),
            Provider::AwsSsm => address.strip_prefix("ssm:").unwrap_or(address),
            _ => address,
        };
        if address.is_empty() && provider != Provider::Plain {
            return Err(SecretError::Invalid(format!(
                "empty {} location",
                provider.code()
            )));
        }
        Ok(Self {
            provider,
            address: address.to_owned(),
            format,
            transform,
        })
    }

    /// The cache key: provider and address, without format or transform, so that a secret
    /// read with several JSONPaths is fetched once (as in 6.0.2).
    pub fn cache_key(&self) -> (Provider, String) {
        (self.provider, self.address.clone())
    }
}

fn detect(main: &str) -> (Provider, &str) {
    for p in Provider::ALL {
        if let Some(rest) = main
            .strip_prefix(p.code())
            .and_then(|r| r.strip_prefix(':'))
        {
            return (p, rest);
        }
        if p.auto_prefixes().iter().any(|pre| main.starts_with(pre)) {
            return (p, main);
        }
    }
    (Provider::File, main)
}

/// `|` starts the transform only at index > 0 and before the last two characters.
fn split_transform(text: &str) -> Result<(&str, Option<Transform>), SecretError> {
    let Some(idx) = text.find('|') else {
        return Ok((text, None));
    };
    if idx == 0 || idx + 2 >= text.len() {
        return Ok((text, None));
    }
    let spec = &text[idx + 1..];
    let transform = if let Some(expr) = spec.strip_prefix("JP:") {
        match expr.strip_suffix("[*]") {
            Some(base) => Transform::JsonPath {
                expr: base.to_owned(),
                splat: true,
            },
            None => Transform::JsonPath {
                expr: expr.to_owned(),
                splat: false,
            },
        }
    } else if spec == "SELF" {
        Transform::SelfValue
    } else {
        return Err(SecretError::Invalid(
            "unknown transform after '|': expected JP:<JSONPath> or SELF".to_owned(),
        ));
    };
    Ok((&text[..idx], Some(transform)))
}

fn split_format(main: &str) -> (&str, Option<Format>) {
    if let Some(idx) = main.rfind('!') {
        let suffix = &main[idx + 1..];
        let format = match suffix.to_ascii_lowercase().as_str() {
            "dotenv" => Some(Format::Dotenv),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            _ => None,
        };
        if format.is_some() {
            return (&main[..idx], format);
        }
    }
    (main, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str) -> Location {
        Location::parse(text, None, false).unwrap()
    }

    #[test]
    fn providers_by_code_and_by_prefix() {
        assert_eq!(loc("PLAIN:abc").provider, Provider::Plain);
        assert_eq!(loc("PLAIN:abc").address, "abc");
        assert_eq!(loc("ENV:X").provider, Provider::Env);
        assert_eq!(loc("CONFIG:$.a").address, "$.a");
        let sm = loc("arn:aws:secretsmanager:us-east-2:123:secret:db-AbCd");
        assert_eq!(sm.provider, Provider::AwsSm);
        assert_eq!(
            sm.address,
            "arn:aws:secretsmanager:us-east-2:123:secret:db-AbCd"
        );
        assert_eq!(loc("AWS_SM:db").address, "db");
        assert_eq!(loc("ssm:/a/b:1").address, "/a/b:1");
        assert_eq!(loc("AWS_SSM:/a/b").address, "/a/b");
        assert_eq!(
            loc("arn:aws:ssm:us-east-2:1:parameter/a").provider,
            Provider::AwsSsm
        );
        assert_eq!(loc("arn:aws:s3:::b/k#v1").provider, Provider::AwsS3);
        assert_eq!(loc("file://tests/x.json").address, "tests/x.json");
        assert_eq!(loc("FILE:x.env").address, "x.env");
        assert_eq!(loc("x/y.env").provider, Provider::File);
    }

    #[test]
    fn formats_and_transforms() {
        let l = loc(r#"PLAIN:{"a": "bug"}!json|JP:$.a"#);
        assert_eq!(l.address, r#"{"a": "bug"}"#);
        assert_eq!(l.format, Some(Format::Json));
        assert_eq!(
            l.transform,
            Some(Transform::JsonPath {
                expr: "$.a".into(),
                splat: false
            })
        );
        let l = loc("PLAIN:[1]|JP:$.d[*]");
        assert_eq!(
            l.transform,
            Some(Transform::JsonPath {
                expr: "$.d".into(),
                splat: true
            })
        );
        assert_eq!(loc("x.txt!YAML").format, Some(Format::Yaml));
        assert_eq!(loc("x.txt!yml").format, None);
        assert_eq!(loc("PLAIN:a|SELF").transform, Some(Transform::SelfValue));
        // Too close to the end to be a transform.
        assert_eq!(loc("PLAIN:a|b").transform, None);
        assert!(Location::parse("PLAIN:abc|XYZ:1", None, false).is_err());
    }

    #[test]
    fn name_prefixes_select_providers() {
        assert_eq!(
            provider_from_name("AWS_SM_DB"),
            Some((Provider::AwsSm, "DB"))
        );
        assert_eq!(
            provider_from_name("ENV_SOME_ENV"),
            Some((Provider::Env, "SOME_ENV"))
        );
        assert_eq!(provider_from_name("ENVIRONMENT"), None);
        let l = Location::parse("ANOTHER_VAR|JP:$.password", Some(Provider::Env), false).unwrap();
        assert_eq!(
            (l.provider, l.address.as_str()),
            (Provider::Env, "ANOTHER_VAR")
        );
    }

    #[test]
    fn top_level_rejects_env_and_config() {
        assert!(Location::parse("ENV:X", None, true).is_err());
        assert!(Location::parse("CONFIG:$.a", None, true).is_err());
    }

    #[test]
    fn display_hides_plain_text() {
        assert_eq!(loc("PLAIN:hunter2").to_string(), "PLAIN:<hidden>");
        assert_eq!(loc("ssm:/a|JP:$.b").to_string(), "AWS_SSM:/a|JP:$.b");
    }
}
