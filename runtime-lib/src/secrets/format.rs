//! Value formats (`dotenv`, `json`, `yaml`, `text`): detection (§8.2), parsing, and the
//! text forms the original writes (§8.8, §8.9).

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

    /// Parses `text` in this format.
    pub fn parse(self, text: &str) -> Result<Value, SecretError> {
        match self {
            Format::Text => Ok(Value::String(text.to_owned())),
            Format::Json => serde_json::from_str(text)
                .map_err(|e| SecretError::Parse(format!("invalid JSON: {e}"))),
            Format::Yaml => serde_norway::from_str(text).map_err(|e| yaml_error(&e)),
            Format::Dotenv => parse_dotenv(text),
        }
    }
}

/// A YAML error that does not quote the text. serde's conversion errors quote the value, with
/// `"` or backticks (`invalid value: string "..."` for a tagged scalar such as `!!int ...`), and
/// the value may be a secret, so those messages are replaced by the position alone. libyaml's
/// syntax errors quote only punctuation (`','`) and are kept.
fn yaml_error(e: &serde_norway::Error) -> SecretError {
    let message = e.to_string();
    if !message.contains(['"', '`']) {
        return SecretError::Parse(format!("invalid YAML: {message}"));
    }
    SecretError::Parse(match e.location() {
        Some(at) => format!(
            "invalid YAML at line {} column {} (a value that does not match its tag; not \
             shown, as it may be secret)",
            at.line(),
            at.column()
        ),
        None => "invalid YAML (a value that does not match its tag; not shown, as it may be \
                 secret)"
            .to_owned(),
    })
}

/// Drops lines that cannot be assignments (no `=`, outside a multi-line quoted value), which
/// python-dotenv tolerates and dotenvy rejects.
fn assignment_lines(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut open_quote: Option<char> = None;
    for line in text.lines() {
        if let Some(q) = open_quote {
            if line.contains(q) {
                open_quote = None;
            }
        } else {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                let Some((_, value)) = t.split_once('=') else {
                    continue;
                };
                let value = value.trim_start();
                if let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'')
                    && !value[1..].contains(q)
                {
                    open_quote = Some(q);
                }
            }
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

fn parse_dotenv(text: &str) -> Result<Value, SecretError> {
    let mut map = Map::new();
    let text = assignment_lines(text);
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => {
                map.insert(k, Value::String(v));
            }
            // The line itself may hold a secret, so only its position is reported.
            Err(dotenvy::Error::LineParse(_, index)) => {
                return Err(SecretError::Parse(format!(
                    "invalid dotenv syntax (at character {index} of a line)"
                )));
            }
            Err(e) => return Err(SecretError::Parse(format!("invalid dotenv text: {e}"))),
        }
    }
    Ok(Value::Object(map))
}

/// JSON with Python's default separators (`", "` and `": "`), as the original writes
/// dictionaries and lists into environment variables.
pub fn python_json(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut ser);
    String::from_utf8(out).unwrap_or_default()
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// A value as an environment variable (§8.8): null → empty, booleans `TRUE`/`FALSE`,
/// objects and arrays as Python-style JSON, numbers and strings as text.
pub fn env_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => crate::child_env::bool_text(*b).to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => python_json(value),
    }
}

/// Writes a flat map as dotenv: `KEY='value'` lines, `'` escaped as `\'`.
pub fn to_dotenv(map: &Map<String, Value>) -> String {
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
        Format::Yaml => serde_norway::to_string(value)
            .map_err(|e| SecretError::Parse(format!("cannot write YAML: {e}"))),
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
        let err = Format::Dotenv
            .parse("A='unterminated\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("unterminated"), "{err}");
    }

    #[test]
    fn yaml_errors_never_quote_the_text() {
        for (text, position) in [
            ("a: !!int hunter2\n", "line 1 column 4"),
            ("a: !!float hunter2\n", "line 1 column 4"),
            ("b: 1\na: !!bool hunter2\n", "line 2 column 4"),
        ] {
            let err = Format::Yaml.parse(text).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{text:?}: {err}");
            assert!(err.contains(position), "{text:?}: {err}");
        }
        // Syntax errors keep libyaml's explanation, which names no text.
        let err = Format::Yaml.parse("a: [hunter2\n").unwrap_err().to_string();
        assert!(err.contains("did not find expected"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
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
