//! Writing the resolved environment and configuration to files (`--env-output-filename`,
//! `--config-output-filename`), so that programs that cannot read environment variables can
//! read them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::SecretError;
use super::format::{Format, serialize};

/// A file written for the wrapped process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Where.
    pub path: PathBuf,
    /// In which format.
    pub format: Format,
}

/// Decides the file and format from the configured name and format: a name without a format
/// guesses it from the name (else `default`); a format without a name uses `<stem>.<ext>`.
/// `None` when neither is given.
pub fn plan(
    filename: Option<&str>,
    format: Option<&str>,
    default: Format,
    stem: &str,
    what: &str,
) -> Result<Option<OutputFile>, SecretError> {
    let format = match format {
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            SecretError::Invalid(format!(
                "unknown {what} output format '{name}': expected dotenv, json, yaml or text"
            ))
        })?),
        None => None,
    };
    Ok(match (filename, format) {
        (None, None) => None,
        (Some(name), f) => Some(OutputFile {
            path: PathBuf::from(name),
            format: f.or_else(|| Format::guess(name)).unwrap_or(default),
        }),
        (None, Some(f)) => {
            let name = match f {
                Format::Dotenv => format!("{}.env", if stem == "env" { "" } else { stem }),
                Format::Json => format!("{stem}.json"),
                Format::Yaml => format!("{stem}.yml"),
                Format::Text => format!("{stem}.txt"),
            };
            Some(OutputFile {
                path: PathBuf::from(name),
                format: f,
            })
        }
    })
}

/// Writes `value` (an object) to `file`. A new file is readable by its owner only (mode
/// 0600), since it holds the resolved secrets; an existing file keeps its permissions.
pub fn write(file: &OutputFile, value: &Map<String, Value>) -> Result<(), SecretError> {
    let text = serialize(&Value::Object(value.clone()), file.format)?;
    let fail = |e: std::io::Error| {
        SecretError::Fetch(format!("cannot write '{}': {e}", file.path.display()))
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file.path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_names_and_formats() {
        let p = |f: Option<&str>, fmt: Option<&str>| plan(f, fmt, Format::Dotenv, "env", "env");
        assert_eq!(p(None, None).unwrap(), None);
        assert_eq!(
            p(Some("out.json"), None).unwrap().unwrap().format,
            Format::Json
        );
        assert_eq!(
            p(Some("out"), None).unwrap().unwrap().format,
            Format::Dotenv
        );
        assert_eq!(
            p(None, Some("json")).unwrap().unwrap().path,
            PathBuf::from("env.json")
        );
        assert_eq!(
            p(None, Some("dotenv")).unwrap().unwrap().path,
            PathBuf::from(".env")
        );
        assert!(p(Some("x"), Some("toml")).is_err());
        let c = plan(None, Some("dotenv"), Format::Json, "config", "config")
            .unwrap()
            .unwrap();
        assert_eq!(c.path, PathBuf::from("config.env"));
    }
}
