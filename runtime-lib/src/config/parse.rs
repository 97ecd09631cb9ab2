//! Value parsing shared by every setting, with the rules of the Python original (README
//! "Options and environment variables") and errors that name the option or variable at fault.
//!
//! A `Sources` pairs one command-line value with the environment variable(s) of the same
//! setting and picks the winner; the `parse_*` functions turn the winner's text into a typed
//! value. Nothing here reads the process environment directly: the environment arrives as a
//! lookup function so that tests, embedded mode and the Lambda extension can supply their own.

use std::time::Duration;

use super::ConfigError;
use super::table::Setting;

/// Reads one environment variable; `None` when it is not set.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line option, such as `--process-timeout`.
    Option(&'static str),
    /// An environment variable, such as `PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS`.
    Env(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Option(name) => write!(f, "option {name}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Option or variable that supplied the value.
    pub origin: Origin,
    /// The text, trimmed.
    pub text: String,
}

/// The environment as seen by the configuration: a lookup, and whether offline mode hides
/// the variables that only matter when talking to the API server.
pub(crate) struct Sources<'a> {
    lookup: Lookup<'a>,
    /// When true, [`Sources::online_env`] reads nothing (the variables the README marks
    /// *online*, which 6.0.2 ignores in offline mode).
    pub offline: bool,
}

impl<'a> Sources<'a> {
    /// Creates sources over `lookup`, online until [`Sources::offline`] is set.
    pub(crate) fn new(lookup: Lookup<'a>) -> Self {
        Self {
            lookup,
            offline: false,
        }
    }

    /// The first of `names` that is set to something other than blanks, trimmed. Where a
    /// setting has two spellings, the first name (the documented one) wins.
    pub(crate) fn env(&self, names: &[&'static str]) -> Option<Raw> {
        names.iter().find_map(|name| {
            let value = (self.lookup)(name)?;
            let text = value.trim();
            (!text.is_empty()).then(|| Raw {
                origin: Origin::Env(name),
                text: text.to_owned(),
            })
        })
    }

    /// Like [`Sources::env`], but reads nothing in offline mode.
    pub(crate) fn online_env(&self, names: &[&'static str]) -> Option<Raw> {
        if self.offline { None } else { self.env(names) }
    }

    /// The untrimmed value of one variable, for settings where blanks are meaningful.
    pub(crate) fn raw_env(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The value of `setting` from the environment: the first of its variables that is set
    /// (its documented one first); nothing in offline mode for an online setting.
    pub(crate) fn var(&self, setting: &Setting) -> Option<Raw> {
        if setting.online {
            self.online_env(setting.env)
        } else {
            self.env(setting.env)
        }
    }

    /// The untrimmed value of `setting`'s documented variable (offline mode aside).
    pub(crate) fn raw_var(&self, setting: &Setting) -> Option<String> {
        if setting.online && self.offline {
            return None;
        }
        self.raw_env(setting.var())
    }
}

/// The command-line value of `setting`, if given.
pub fn flag(setting: &Setting, value: Option<&String>) -> Option<Raw> {
    cli(setting.option(), value)
}

/// The command-line value of a setting, if given.
pub fn cli(option: &'static str, value: Option<&String>) -> Option<Raw> {
    value.map(|text| Raw {
        origin: Origin::Option(option),
        text: text.trim().to_owned(),
    })
}

/// `None` when the value is Python's `str(None)`, which the CloudReactor server writes into
/// the numeric and boolean variables of a run it starts when the Task has no value for them
/// (`PROC_WRAPPER_MANAGED_PROBABILITY=None`): for such settings it means "not set".
pub(crate) fn unless_none(raw: Option<Raw>) -> Option<Raw> {
    raw.filter(|r| r.text != "None")
}

/// The environment value wins over the command-line value, as in 6.0.2 (README "Options and
/// environment variables"). Used for numbers, where an environment value of `None` means unset
/// ([`unless_none`]).
pub(crate) fn env_wins(env: Option<Raw>, cli: Option<Raw>) -> Option<Raw> {
    unless_none(env).or(cli)
}

/// The command-line value wins over the environment value (resolver settings).
pub(crate) fn cli_wins(env: Option<Raw>, cli: Option<Raw>) -> Option<Raw> {
    cli.or(env)
}

/// `"1"` or case-insensitive `"TRUE"` is true; anything else is false, as 6.0.2 reads boolean
/// variables.
pub(crate) fn parse_bool_text(text: &str) -> bool {
    let text = text.trim();
    text == "1" || text.eq_ignore_ascii_case("true")
}

/// A boolean setting: the environment value if set (and not `None`, [`unless_none`]), else
/// the command-line flag.
pub(crate) fn bool_setting(env: Option<Raw>, flag: bool) -> bool {
    optional_bool(env).unwrap_or(flag)
}

/// A boolean from the environment, `None` when unset or `None`.
pub(crate) fn optional_bool(env: Option<Raw>) -> Option<bool> {
    unless_none(env).map(|raw| parse_bool_text(&raw.text))
}

fn invalid(raw: &Raw, expected: &'static str) -> ConfigError {
    let mut value = raw.text.clone();
    if value.chars().count() > 40 {
        value = value.chars().take(40).collect::<String>() + "...";
    }
    ConfigError::InvalidValue {
        origin: raw.origin.clone(),
        value,
        expected,
    }
}

/// An integer. Blank values never reach here (they count as unset).
pub(crate) fn parse_int(raw: Option<Raw>) -> Result<Option<i64>, ConfigError> {
    raw.map(|raw| {
        raw.text
            .parse::<i64>()
            .map_err(|_| invalid(&raw, "an integer"))
    })
    .transpose()
}

/// A number of seconds where a negative value means "no limit" (`None`); `default` applies
/// when the setting is not given.
pub(crate) fn parse_limit(
    raw: Option<Raw>,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    Ok(match parse_seconds(raw)? {
        None => default,
        Some(s) if s < 0.0 => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
    })
}

/// A number of seconds where a negative value means zero.
pub(crate) fn parse_delay(raw: Option<Raw>, default: Duration) -> Result<Duration, ConfigError> {
    Ok(match parse_seconds(raw)? {
        None => default,
        Some(s) => Duration::from_secs_f64(s.max(0.0)),
    })
}

/// A number of seconds: an integer or a decimal number, finite.
fn parse_seconds(raw: Option<Raw>) -> Result<Option<f64>, ConfigError> {
    raw.map(|raw| match raw.text.parse::<f64>() {
        Ok(v) if v.is_finite() && v < 1e12 => Ok(v),
        _ => Err(invalid(&raw, "a number of seconds")),
    })
    .transpose()
}

/// A count where a negative value means zero.
pub(crate) fn parse_count(raw: Option<Raw>, default: usize) -> Result<usize, ConfigError> {
    Ok(match parse_int(raw)? {
        None => default,
        Some(n) => usize::try_from(n.max(0)).unwrap_or(usize::MAX),
    })
}

/// A byte cap: a number of bytes, 0 or more, or `-1` for no cap (`None`, the "no limit" value
/// of the other settings); `default` applies when the setting is not given. Other negative
/// numbers are refused rather than read as "no limit", since a cap is a safety limit that a
/// typo must not lift.
pub(crate) fn parse_byte_cap(
    raw: Option<Raw>,
    default: Option<usize>,
) -> Result<Option<usize>, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.text.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| invalid(&raw, BYTE_CAP)),
        Err(_) => Err(invalid(&raw, BYTE_CAP)),
    }
}

/// What [`parse_byte_cap`] accepts.
const BYTE_CAP: &str = "a number of bytes (0 or more), or -1 for no cap";

/// A probability between 0 and 1; a negative value means `default`.
pub(crate) fn parse_probability(raw: Option<Raw>, default: f64) -> Result<f64, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.text.parse::<f64>() {
        Ok(p) if p < 0.0 => Ok(default),
        Ok(p) if p <= 1.0 => Ok(p),
        _ => Err(invalid(&raw, "a probability between 0.0 and 1.0")),
    }
}

/// A JSON object, read as Python's `json.loads` reads it (as 6.0.2 does).
pub(crate) fn parse_json_object(
    raw: Option<Raw>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ConfigError> {
    raw.map(
        |raw| match crate::secrets::format::Format::Json.parse(&raw.text) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(invalid(&raw, "a JSON object")),
        },
    )
    .transpose()
}

/// Splits a location list on `,` or `;`, except where the separator is escaped with a
/// backslash; items are trimmed and empty items dropped, as 6.0.2 splits its location
/// variables.
pub(crate) fn split_locations(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(',' | ';')) => {
                current.extend(chars.next());
            }
            ',' | ';' => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Option<Raw> {
        Some(Raw {
            origin: Origin::Env("PROC_WRAPPER_X"),
            text: text.to_owned(),
        })
    }

    #[test]
    fn booleans_follow_the_original() {
        for t in ["1", "TRUE", "true", "True", " true "] {
            assert!(parse_bool_text(t), "{t}");
        }
        for t in ["yes", "false", "0", "on", "2"] {
            assert!(!parse_bool_text(t), "{t}");
        }
        assert!(bool_setting(None, true));
        assert!(!bool_setting(env("FALSE"), true));
    }

    #[test]
    fn limits_map_negative_to_none() {
        let d = Some(Duration::from_secs(300));
        assert_eq!(parse_limit(None, d).unwrap(), d);
        assert_eq!(parse_limit(env("-1"), d).unwrap(), None);
        assert_eq!(
            parse_limit(env("2.5"), d).unwrap(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            parse_delay(env("-5"), Duration::from_secs(1)).unwrap(),
            Duration::ZERO
        );
    }

    #[test]
    fn byte_caps_take_bytes_or_minus_one() {
        assert_eq!(parse_byte_cap(None, Some(7)).unwrap(), Some(7));
        assert_eq!(parse_byte_cap(env("100"), Some(7)).unwrap(), Some(100));
        assert_eq!(parse_byte_cap(env("0"), Some(7)).unwrap(), Some(0));
        assert_eq!(parse_byte_cap(env("-1"), Some(7)).unwrap(), None);
        for bad in ["-5", "abc", "1.5", "1e3"] {
            let e = parse_byte_cap(env(bad), Some(7)).unwrap_err().to_string();
            assert!(e.contains("PROC_WRAPPER_X"), "{e}");
            assert!(e.contains("-1 for no cap"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_variable_and_the_value() {
        let err = parse_limit(env("abc"), None).unwrap_err().to_string();
        assert!(err.contains("PROC_WRAPPER_X"), "{err}");
        assert!(err.contains("'abc'"), "{err}");
        let err = parse_int(cli("--max-concurrency", Some(&"1.5".to_owned())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-concurrency"), "{err}");
        assert!(parse_probability(env("1.5"), 1.0).is_err());
        assert_eq!(parse_probability(env("-1"), 1.0).unwrap(), 1.0);
        assert!(parse_json_object(env("[1]")).is_err());
        assert!(parse_seconds(env("inf")).is_err());
        assert!(parse_seconds(env("NaN")).is_err());
    }

    #[test]
    fn location_lists_split_with_escapes() {
        assert_eq!(split_locations("a, b;c"), ["a", "b", "c"]);
        assert_eq!(split_locations(r"a\,b , c\;d"), ["a,b", "c;d"]);
        assert!(split_locations("").is_empty());
        assert!(split_locations("  ").is_empty());
        assert!(split_locations(",").is_empty());
        assert_eq!(split_locations("PLAIN:{}"), ["PLAIN:{}"]);
    }
}
