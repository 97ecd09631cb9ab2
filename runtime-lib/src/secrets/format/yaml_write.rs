//! YAML written for output and input files (§8.9): block style, which PyYAML's
//! `safe_load` (and so 6.0.2, and our reader) reads back as the same value. A string is
//! written plain only when PyYAML would read it back as that string (and a YAML 1.2 reader
//! too); else it is double-quoted (`yes`, `0777`, `12:30`, `1e3`, `~`, `<<` stay strings). Floats are
//! written as PyYAML's representer writes them (`1.0e-05`: a YAML 1.1 float needs a dot).

use serde_json::{Map, Value};

use super::pynum::float_repr;

/// Longest key (in bytes, as written) written as an implicit `key: value` key; libyaml
/// limits those to 1024 bytes (PyYAML to 1024 characters), longer ones take the explicit
/// `? key` form.
const IMPLICIT_KEY_MAX: usize = 1000;

/// `value` as a YAML document.
pub(super) fn write(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0, false),
        v => {
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes what follows a key's `:` or a sequence entry's `-`.
fn after_indicator(out: &mut String, v: &Value, level: usize, in_seq: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if in_seq {
                out.push(' ');
                map(out, m, level + 2, true);
            } else {
                out.push('\n');
                map(out, m, level + 2, false);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if in_seq {
                out.push(' ');
                seq(out, a, level + 2, true);
            } else {
                // PyYAML's style: a list under a key is not indented further.
                out.push('\n');
                seq(out, a, level, false);
            }
        }
        v => {
            out.push(' ');
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

/// A mapping at `level`; `inline_first`: the first key goes where the output already is
/// (after a sequence's `- `).
fn map(out: &mut String, m: &Map<String, Value>, level: usize, inline_first: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if !(inline_first && i == 0) {
            indent(out, level);
        }
        let key = string(k);
        if key.len() > IMPLICIT_KEY_MAX {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            indent(out, level);
            out.push(':');
        } else {
            out.push_str(&key);
            out.push(':');
        }
        after_indicator(out, v, level, false);
    }
}

fn seq(out: &mut String, a: &[Value], level: usize, inline_first: bool) {
    for (i, v) in a.iter().enumerate() {
        if !(inline_first && i == 0) {
            indent(out, level);
        }
        out.push('-');
        after_indicator(out, v, level, true);
    }
}

/// A scalar, or an empty collection, on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => {
                // PyYAML's represent_float: `1e-05` would read back as a string.
                let r = float_repr(f);
                if !r.contains('.') && r.contains('e') {
                    r.replacen('e', ".0e", 1)
                } else {
                    r
                }
            }
            _ => n.to_string(),
        },
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A string plain when that reads back as the same string, else double-quoted.
fn string(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

/// Plain only for text starting with a letter, `_` or `/`, of letters, digits, spaces and
/// `_./-+`, that PyYAML reads as a string, and that no YAML 1.2 reader takes for a number
/// either (`1e3`, `0o17`, `.5` are quoted too, for the child's own YAML library).
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || matches!(first, '_' | '/'))
        && s.parse::<f64>().is_err()
        && !s.ends_with(' ')
        && !s.contains("  ")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '+' | ' '))
        && super::yaml::resolves_to_str(s)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            // What PyYAML's reader accepts as printable (beyond ASCII), less the line
            // separators and the byte-order mark.
            '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
                if !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                out.push(c)
            }
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}
