//! YAML written for output and input files (README "Differences" D41): block style with the
//! keys sorted, as PyYAML's `dump` writes it, which PyYAML's
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
    // Keys in order, as PyYAML's `dump` writes them (`sort_keys`), so 6.0.2 and we write the
    // same files.
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in entries.into_iter().enumerate() {
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

/// A string in the style PyYAML's emitter picks for it (`analyze_scalar`,
/// `choose_scalar_style`): plain when that is allowed and reads back as the same string,
/// else single-quoted when allowed, else double-quoted. Unlike PyYAML, a string that a YAML
/// 1.2 reader would take for a number (`1e3`, `0o17`, `.5`) is quoted too, for the child's
/// own YAML library, and a string on several lines is double-quoted (PyYAML single-quotes it
/// over several lines); long strings are not folded at 80 columns.
fn string(s: &str) -> String {
    let a = analyze(s);
    if a.allow_plain && s.parse::<f64>().is_err() && super::yaml::resolves_to_str(s) {
        s.to_owned()
    } else if a.allow_single_quoted && !a.multiline {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        double_quoted(s)
    }
}

/// What PyYAML's `Emitter.analyze_scalar` finds about a string, for a block context (the
/// only one written here), with `allow_unicode` off as in `yaml.dump`.
struct Analysis {
    multiline: bool,
    allow_plain: bool,
    allow_single_quoted: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        // A plain empty scalar would read back as null.
        return Analysis {
            multiline: false,
            allow_plain: false,
            allow_single_quoted: true,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let is_space = |c: char| {
        matches!(
            c,
            '\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    let is_break = |c: char| matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut trailing_space, mut break_space, mut space_break) =
        (false, false, false, false);
    let (mut leading_break, mut trailing_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_space = true;
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_space = i == last || is_space(chars[i + 1]);
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                block_indicators = true;
            }
            if (c == '?' || c == ':' || c == '-') && followed_by_space {
                block_indicators = true;
            }
        } else if (c == ':' && followed_by_space) || (c == '#' && preceded_by_space) {
            block_indicators = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        // Only printable ASCII and line feeds are written as they are (no `allow_unicode`).
        if !(c == '\n' || (' '..='~').contains(&c)) {
            special = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_space = is_space(c);
    }
    let mut allow_plain = !(leading_space || leading_break || trailing_space || trailing_break);
    let mut allow_single_quoted = true;
    if break_space {
        allow_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special {
        allow_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks || block_indicators {
        allow_plain = false;
    }
    Analysis {
        multiline: line_breaks,
        allow_plain,
        allow_single_quoted,
    }
}

/// A double-quoted string with PyYAML's escapes (`write_double_quoted` with `allow_unicode`
/// off): everything but printable ASCII is escaped.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let named = match c {
            '\0' => Some('0'),
            '\u{7}' => Some('a'),
            '\u{8}' => Some('b'),
            '\t' => Some('t'),
            '\n' => Some('n'),
            '\u{b}' => Some('v'),
            '\u{c}' => Some('f'),
            '\r' => Some('r'),
            '\u{1b}' => Some('e'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\u{85}' => Some('N'),
            '\u{a0}' => Some('_'),
            '\u{2028}' => Some('L'),
            '\u{2029}' => Some('P'),
            _ => None,
        };
        match (named, c as u32) {
            (Some(n), _) => {
                out.push('\\');
                out.push(n);
            }
            (None, 0x20..=0x7e) => out.push(c),
            (None, n @ ..=0xff) => out.push_str(&format!("\\x{n:02X}")),
            (None, n @ ..=0xffff) => out.push_str(&format!("\\u{n:04X}")),
            (None, n) => out.push_str(&format!("\\U{n:08X}")),
        }
    }
    out.push('"');
    out
}
