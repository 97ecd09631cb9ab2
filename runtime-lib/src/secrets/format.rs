//! Value formats (`dotenv`, `json`, `yaml`, `text`): detection (README "Secrets and
//! configuration"), parsing as 6.0.2's readers parse (checked by `format/parity_tests.rs`), and
//! the text forms the original writes (variables and output files).
//! Each reader is a module of its own; `pynum` holds Python's integers and float text.

mod dotenv;
mod json;
mod libyaml;
#[cfg(test)]
mod parity_tests;
mod pynum;
mod yaml;
mod yaml_write;

pub use pynum::float_repr;

use serde_json::{Map, Value};

use super::SecretError;

/// A format of fetched text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `KEY=value` lines.
    Dotenv,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// The text itself.
    Text,
}

impl Format {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Dotenv => "dotenv",
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Text => "text",
        }
    }

    /// Parses a format name (`env` and `yml` are accepted too).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "dotenv" | "env" => Format::Dotenv,
            "json" => Format::Json,
            "yaml" | "yml" => Format::Yaml,
            "text" | "txt" => Format::Text,
            _ => return None,
        })
    }

    /// The format named by a MIME type (parameters after `;` ignored).
    pub fn from_mime(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "text/x-json" => Some(Format::Json),
            "application/x-yaml" | "application/yaml" | "text/vnd.yaml" | "text/yaml"
            | "text/x-yaml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// Guesses from a file name or address: `.env.` anywhere means dotenv, else the
    /// extension (ignoring a `#fragment`).
    pub fn guess(address: &str) -> Option<Self> {
        if address.contains(".env.") {
            return Some(Format::Dotenv);
        }
        let path = address.split('#').next().unwrap_or(address);
        let file = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = file.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "env" => Some(Format::Dotenv),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// Parses `text` in this format, as 6.0.2 reads it: JSON like Python's `json.loads`,
    /// YAML like PyYAML's `safe_load` (YAML 1.1), dotenv like python-dotenv's
    /// `dotenv_values` (`${VAR}` interpolated from the process environment), text as is.
    /// Errors never quote the text (it may be secret), only positions.
    pub fn parse(self, text: &str) -> Result<Value, SecretError> {
        match self {
            Format::Text => Ok(Value::String(text.to_owned())),
            Format::Json => json::parse(text),
            Format::Yaml => yaml::parse(text),
            Format::Dotenv => Ok(Value::Object(dotenv::parse(text))),
        }
    }
}

/// Python's `str.isspace()` (and `\s` in its regular expressions): Rust's whitespace and
/// the separators U+001C to U+001F.
pub(crate) fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// JSON as Python's `json.dumps` writes it by default (`", "` and `": "` separators,
/// non-ASCII escaped as `\uXXXX`, floats as Python prints them), as the original writes
/// dictionaries and lists into environment variables, `TASK_CONFIG` and JSON files.
pub fn python_json(value: &Value) -> String {
    json::write(value)
}

/// A value as an environment variable, as Python's `str()` gives it: null → empty,
/// booleans `TRUE`/`FALSE`, objects and arrays as Python-style JSON, integers as digits,
/// floats as Python prints them (`1000.0`, `1e-05`, `1.5e+20`), strings as they are.
pub fn env_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => crate::child_env::bool_text(*b).to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => pynum::float_repr(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => python_json(value),
    }
}

/// Writes a flat map as dotenv: `KEY='value'` lines, `'` escaped as `\'`.
pub(crate) fn to_dotenv(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (k, v) in map {
        let text = env_text(v).replace('\\', "\\\\").replace('\'', "\\'");
        out.push_str(&format!("{k}='{text}'\n"));
    }
    out
}

/// Writes `value` in `format` (for output files).
pub fn serialize(value: &Value, format: Format) -> Result<String, SecretError> {
    match format {
        Format::Json => Ok(python_json(value)),
        Format::Yaml => Ok(yaml_write::write(value)),
        Format::Dotenv => match value {
            Value::Object(map) => Ok(to_dotenv(map)),
            _ => Err(SecretError::Parse(
                "only an object can be written as dotenv".into(),
            )),
        },
        Format::Text => Ok(env_text(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guesses_formats_from_names() {
        assert_eq!(Format::guess("tests/data/config.json"), Some(Format::Json));
        assert_eq!(Format::guess("x/.env.production"), Some(Format::Dotenv));
        assert_eq!(Format::guess("a.env"), Some(Format::Dotenv));
        assert_eq!(
            Format::guess("arn:aws:s3:::b/db.yml#v2"),
            Some(Format::Yaml)
        );
        assert_eq!(Format::guess("config_json.txt"), None);
        assert_eq!(Format::guess("dir.d/file"), None);
        assert_eq!(
            Format::from_mime("text/yaml; charset=utf-8"),
            Some(Format::Yaml)
        );
        assert_eq!(Format::from_mime("text/plain"), None);
    }

    #[test]
    fn parses_dotenv_like_python_dotenv() {
        let v = Format::Dotenv
            .parse("  USERNAME=theuser\n  PASSWORD=thepass\n# c\nexport Q='a b'\nD=\"x\"\n")
            .unwrap();
        assert_eq!(
            v,
            json!({"USERNAME": "theuser", "PASSWORD": "thepass", "Q": "a b", "D": "x"})
        );
        // python-dotenv skips a line it cannot parse (with a warning) and reads on.
        assert_eq!(
            Format::Dotenv.parse("A='unterminated\nB=1\n").unwrap(),
            json!({"B": "1"})
        );
    }

    #[test]
    fn python_json_separators() {
        assert_eq!(
            python_json(&json!({"height": 26, "weight": 66})),
            r#"{"height": 26, "weight": 66}"#
        );
        assert_eq!(python_json(&json!([1, 2])), "[1, 2]");
        assert_eq!(env_text(&json!(true)), "TRUE");
        assert_eq!(env_text(&json!(null)), "");
        assert_eq!(env_text(&json!(1.5)), "1.5");
    }

    #[test]
    fn dotenv_output_quotes_values() {
        let map = json!({"A": "it's", "B": 1});
        assert_eq!(to_dotenv(map.as_object().unwrap()), "A='it\\'s'\nB='1'\n");
    }
}
