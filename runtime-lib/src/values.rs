//! Input and result values, as in 6.0.2 (README "Input and result"): the value a Task
//! Execution starts with, and the value the process leaves behind in its result file.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::config::table as T;
use crate::secrets::format::{Format, env_text};

/// Why an input or result value could not be read or written. The CLI exits 78 for an input
/// value and fails the run for a result file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// `--input-value-format` or `--result-value-format` names no format.
    #[error("unknown value format '{0}': expected json, yaml, dotenv or text")]
    UnknownFormat(String),
    /// The text is not in its format.
    #[error("cannot parse the {what}: {reason}")]
    Parse {
        /// "input value", "input file" or "result file".
        what: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read the {what} '{file}': {reason}")]
    Read {
        /// "input file" or "result file".
        what: &'static str,
        /// The file.
        file: String,
        /// The system's message.
        reason: String,
    },
    /// The configured result file was not written by the process.
    #[error(
        "the result file '{0}' ({var} or {option}) was not written",
        var = T::RESULT_FILENAME.var(),
        option = T::RESULT_FILENAME.option()
    )]
    ResultNotWritten(String),
    /// The input value cannot be written in the input file's format.
    #[error("cannot write the input value as the input file's format: {0}")]
    Serialize(String),
    /// The input file could not be written.
    #[error("cannot write the input file '{file}': {reason}")]
    Write {
        /// The file.
        file: String,
        /// The system's message.
        reason: String,
    },
}

fn format_for(explicit: Option<&str>, filename: Option<&str>) -> Result<Format, ValueError> {
    match explicit {
        Some(name) => {
            Format::from_name(name).ok_or_else(|| ValueError::UnknownFormat(name.to_owned()))
        }
        None => Ok(filename.and_then(Format::guess).unwrap_or(Format::Text)),
    }
}

fn parse(text: &str, format: Format, what: &'static str) -> Result<Value, ValueError> {
    format.parse(text).map_err(|e| ValueError::Parse {
        what,
        reason: e.to_string(),
    })
}

fn read<'a>(file: &'a str, what: &'static str) -> impl FnOnce(std::io::Error) -> ValueError + 'a {
    move |e| ValueError::Read {
        what,
        file: file.to_owned(),
        reason: e.to_string(),
    }
}

/// The input value: `-i`/`PROC_WRAPPER_INPUT_VALUE`, else (when it is to be sent) the
/// variable named by `--input-env-var-name` in `env`, or the input file.
pub fn input_value(config: &Config, env: &Map<String, Value>) -> Result<Option<Value>, ValueError> {
    let io = &config.io;
    let format = format_for(
        io.input_value_format.as_deref(),
        io.input_filename.as_deref(),
    )?;
    if let Some(text) = &io.input_value {
        let format = format_for(io.input_value_format.as_deref(), None)?;
        return parse(text, format, "input value").map(Some);
    }
    if !config.api.send_input_value {
        return Ok(None);
    }
    if let Some(name) = &io.input_env_var_name {
        return match env.get(name).and_then(Value::as_str) {
            Some(text) => parse(text, format, "input value").map(Some),
            None => Ok(None),
        };
    }
    if let Some(file) = &io.input_filename {
        return match std::fs::read_to_string(file) {
            Ok(text) => parse(&text, format, "input file").map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read(file, "input file")(e)),
        };
    }
    Ok(None)
}

/// The input value as the child receives it.
pub fn input_text(value: &Value) -> String {
    env_text(value)
}

/// Writes the input value to the input file when there is one and it does not exist yet;
/// returns whether it was written.
pub fn write_input_file(config: &Config, value: &Value) -> Result<bool, ValueError> {
    let Some(file) = &config.io.input_filename else {
        return Ok(false);
    };
    if Path::new(file).exists() {
        return Ok(false);
    }
    let format = format_for(config.io.input_value_format.as_deref(), Some(file))?;
    let text = match (format, value) {
        (Format::Text, v) => env_text(v),
        (f, v) => crate::secrets::format::serialize(v, f)
            .map_err(|e| ValueError::Serialize(e.to_string()))?,
    };
    std::fs::write(file, text).map_err(|e| ValueError::Write {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    Ok(true)
}

/// Reads the result file, if one is configured. A configured file that the process did not
/// write is an error, as in 6.0.2 (which cannot read it and reports a failure).
pub fn result_value(config: &Config) -> Result<Option<Value>, ValueError> {
    let io = &config.io;
    let Some(file) = &io.result_filename else {
        return Ok(None);
    };
    let format = format_for(io.result_value_format.as_deref(), Some(file))?;
    match std::fs::read_to_string(file) {
        Ok(text) => parse(&text, format, "result file").map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ValueError::ResultNotWritten(file.clone()))
        }
        Err(e) => Err(read(file, "result file")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(vars: &[(&str, &str)]) -> Config {
        crate::config::from_pairs(vars)
    }

    #[test]
    fn input_from_value_env_and_formats() {
        let env = Map::new();
        let c = config(&[("PROC_WRAPPER_INPUT_VALUE", "is cool")]);
        assert_eq!(input_value(&c, &env).unwrap(), Some(json!("is cool")));
        let c = config(&[
            ("PROC_WRAPPER_INPUT_VALUE", r#"{"a":7}"#),
            ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
        ]);
        assert_eq!(input_value(&c, &env).unwrap(), Some(json!({"a": 7})));
        let mut env = Map::new();
        env.insert("THE_INPUT".into(), json!(r#"{"a":7}"#));
        let c = config(&[
            ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
            ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
        ]);
        assert_eq!(
            input_value(&c, &env).unwrap(),
            None,
            "not sent, so not read"
        );
        let c = config(&[
            ("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT"),
            ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json"),
            ("PROC_WRAPPER_SEND_INPUT_VALUE", "1"),
        ]);
        assert_eq!(input_value(&c, &env).unwrap(), Some(json!({"a": 7})));
        let c = config(&[
            ("PROC_WRAPPER_INPUT_VALUE", "x"),
            ("PROC_WRAPPER_INPUT_VALUE_FORMAT", "toml"),
        ]);
        assert!(input_value(&c, &env).is_err());
    }
}
