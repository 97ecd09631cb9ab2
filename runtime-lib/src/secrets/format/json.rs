//! JSON read as Python's `json.loads` reads it and written as `json.dumps` writes it, the
//! two 6.0.2 uses (reading locations, input and result files; writing `TASK_CONFIG`,
//! dictionaries and lists in environment variables, JSON output files).
//!
//! Reading: `NaN`, `Infinity` and `-Infinity` are accepted, integers keep every digit
//! (beyond 64 bits as their decimal text, see `pynum`), a float too large is infinite
//! (`1e400`), a duplicate key's last value wins at the first key's place. Writing: `", "`
//! and `": "` separators, everything outside printable ASCII escaped (`ensure_ascii`),
//! floats in Python's `repr`.

use serde_json::{Map, Value};

use super::pynum::{self, BigUint};
use crate::secrets::SecretError;

/// Nesting deeper than this is refused (Python's decoder stops at its recursion limit,
/// about 1000 levels).
const MAX_DEPTH: usize = 512;

/// Reads `text` as `json.loads` does.
pub(super) fn parse(text: &str) -> Result<Value, SecretError> {
    if text.starts_with('\u{feff}') {
        return Err(SecretError::Parse(
            "invalid JSON: it starts with a UTF-8 byte-order mark".into(),
        ));
    }
    let mut p = Reader {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.error("extra data after the value"));
    }
    Ok(v)
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> SecretError {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|c| **c == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|c| *c == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        SecretError::Parse(format!(
            "invalid JSON: {what} at line {line} column {column}"
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SecretError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b'n') if self.word("null") => Ok(Value::Null),
            Some(b't') if self.word("true") => Ok(Value::Bool(true)),
            Some(b'f') if self.word("false") => Ok(Value::Bool(false)),
            Some(b'N') if self.word("NaN") => Ok(pynum::float_value(f64::NAN)),
            Some(b'I') if self.word("Infinity") => Ok(pynum::float_value(f64::INFINITY)),
            Some(b'-') if self.word("-Infinity") => Ok(pynum::float_value(f64::NEG_INFINITY)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expecting a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SecretError> {
        self.i += 1;
        let mut map = Map::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expecting a property name in double quotes"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.error("expecting ':' after a property name"));
            }
            self.i += 1;
            self.ws();
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expecting ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SecretError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expecting ',' or ']'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SecretError> {
        let digits = self.s.get(self.i..self.i + 4).unwrap_or_default();
        let text = std::str::from_utf8(digits).unwrap_or_default();
        if text.len() != 4 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\uXXXX escape"));
        }
        self.i += 4;
        u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\uXXXX escape"))
    }

    fn string(&mut self) -> Result<String, SecretError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.error("unterminated string"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                                } else {
                                    self.i = save;
                                    hi
                                }
                            } else {
                                hi
                            };
                            // A lone surrogate, which Python keeps and a Rust string
                            // cannot hold, becomes U+FFFD.
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.error("invalid control character in a string")),
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        // The input is a `str` and escapes add whole characters, so this is UTF-8.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`: an int without fraction and
    /// exponent, else a float.
    fn number(&mut self) -> Result<Value, SecretError> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(self.error("expecting a value")),
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.peek() == Some(b'.') && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9')) {
            is_float = true;
            self.i += 1;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                is_float = true;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            } else {
                // Python's scanner stops the number before an incomplete exponent.
                self.i = save;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        if is_float {
            let f: f64 = text.parse().map_err(|_| self.error("invalid number"))?;
            return Ok(pynum::float_value(f));
        }
        let digits = std::str::from_utf8(&self.s[int_start..int_end]).unwrap_or_default();
        let magnitude = BigUint::parse(digits, 10).ok_or_else(|| self.error("invalid number"))?;
        Ok(pynum::int_value(negative, &magnitude))
    }
}

/// JSON as Python's `json.dumps` writes it by default: `", "` and `": "` separators,
/// non-ASCII and control characters as `\uXXXX`, floats in Python's `repr`.
pub(super) fn write(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&pynum::float_repr(n.as_f64().unwrap_or_default()));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, v);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}
