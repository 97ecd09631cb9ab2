//! Dotenv read as 6.0.2 reads it: python-dotenv's `dotenv_values` (its parser, ported
//! rule for rule, and its `${VAR}` interpolation).
//!
//! * `export ` before a key is dropped; a key is unquoted (`[^=#\s]+`) or single-quoted.
//! * A key without `=` has no value (`null`; 6.0.2 puts an empty variable in the
//!   environment for it).
//! * Single-quoted values decode only `\\` and `\'`; double-quoted ones also `\"`, `\a`,
//!   `\b`, `\f`, `\n`, `\r`, `\t`, `\v`; both may span lines. Unquoted values end at a `#`
//!   preceded by whitespace and lose trailing whitespace; `KEY= # x` is empty, `KEY=#x` is
//!   `#x`.
//! * A line that does not parse (`A="x" junk`, an unterminated quote) is skipped, as
//!   python-dotenv skips it with a warning; the lines after it are read.
//! * `${NAME}` and `${NAME:-default}` are replaced, in every value (quoted or not), from the
//!   wrapper's own environment overridden by the keys above in the same text; the default
//!   only when `NAME` is in neither. `$NAME` stays as written.
//! * A later duplicate key wins.

use serde_json::{Map, Value};

use super::py_space;

/// Whitespace but not a line break (`[^\S\r\n]`).
fn hspace(c: char) -> bool {
    py_space(c) && c != '\r' && c != '\n'
}

struct Fail;

struct Reader<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn skip(&mut self, f: impl Fn(char) -> bool) -> usize {
        let n: usize = self
            .rest()
            .chars()
            .take_while(|c| f(*c))
            .map(char::len_utf8)
            .sum();
        self.i += n;
        n
    }

    /// `_single_quoted_value` / `_double_quoted_value`: the text between the quotes,
    /// where a backslash takes the next character (any, line breaks too) with it.
    fn quoted(&mut self, q: char) -> Result<&'a str, Fail> {
        let s: &'a str = self.s;
        let body = &s[self.i + 1..];
        let mut chars = body.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == '\\' {
                if chars.next().is_none() {
                    return Err(Fail);
                }
            } else if c == q {
                let start = self.i + 1;
                self.i = start + at + 1;
                return Ok(&s[start..start + at]);
            }
        }
        Err(Fail)
    }

    /// `_end_of_line` after `_comment`.
    fn line_end(&mut self) -> Result<(), Fail> {
        let save = self.i;
        self.skip(hspace);
        if self.peek() == Some('#') {
            self.skip(|c| c != '\r' && c != '\n');
        } else {
            self.i = save;
        }
        self.skip(hspace);
        let r = self.rest();
        if r.starts_with("\r\n") {
            self.i += 2;
        } else if r.starts_with(['\n', '\r']) {
            self.i += 1;
        } else if !r.is_empty() {
            return Err(Fail);
        }
        Ok(())
    }

    /// `parse_binding`: `None` at the end of the text; `Some(None)` for a line without a
    /// key (a comment) or one that does not parse.
    fn binding(&mut self) -> Option<Option<(String, Option<String>)>> {
        let mark = self.i;
        self.skip(py_space);
        if self.rest().is_empty() {
            return None;
        }
        match self.binding_inner() {
            Ok(b) => Some(b),
            Err(Fail) => {
                // As python-dotenv warns (the line number only: the text may be secret).
                let before = &self.s[..mark];
                let crlf = before.matches("\r\n").count();
                let line = before.matches(['\n', '\r']).count() - crlf + 1;
                tracing::warn!(
                    "dotenv: could not parse the statement starting at line {line}; skipped"
                );
                // `_rest_of_line`: to the line break, and one `\r` or `\n`.
                self.skip(|c| c != '\r' && c != '\n');
                if self.rest().starts_with(['\r', '\n']) {
                    self.i += 1;
                }
                Some(None)
            }
        }
    }

    fn binding_inner(&mut self) -> Result<Option<(String, Option<String>)>, Fail> {
        if let Some(after) = self.rest().strip_prefix("export") {
            let ws: usize = after
                .chars()
                .take_while(|c| hspace(*c))
                .map(char::len_utf8)
                .sum();
            if ws > 0 {
                self.i += "export".len() + ws;
            }
        }
        let key = match self.peek() {
            Some('#') => None,
            Some('\'') => {
                let body = &self.rest()[1..];
                match body.find('\'') {
                    Some(end) if end > 0 => {
                        let key = body[..end].to_owned();
                        self.i += end + 2;
                        Some(key)
                    }
                    _ => return Err(Fail),
                }
            }
            _ => {
                let n: usize = self
                    .rest()
                    .chars()
                    .take_while(|c| *c != '=' && *c != '#' && !py_space(*c))
                    .map(char::len_utf8)
                    .sum();
                if n == 0 {
                    return Err(Fail);
                }
                let key = self.rest()[..n].to_owned();
                self.i += n;
                Some(key)
            }
        };
        self.skip(hspace);
        let value = if self.peek() == Some('=') {
            self.i += 1;
            let ws = self.skip(hspace);
            if ws > 0 && self.peek() == Some('#') {
                Some(String::new())
            } else {
                Some(self.value()?)
            }
        } else {
            None
        };
        self.line_end()?;
        Ok(key.map(|k| (k, value)))
    }

    /// `parse_value`.
    fn value(&mut self) -> Result<String, Fail> {
        match self.peek() {
            Some('\'') => Ok(decode(self.quoted('\'')?, &['\\', '\''])),
            Some('"') => Ok(decode(
                self.quoted('"')?,
                &['\\', '\'', '"', 'a', 'b', 'f', 'n', 'r', 't', 'v'],
            )),
            None | Some('\n' | '\r') => Ok(String::new()),
            Some(_) => {
                let n = self.rest().find(['\r', '\n']).unwrap_or(self.rest().len());
                let part = &self.rest()[..n];
                self.i += n;
                Ok(strip_inline_comment(part)
                    .trim_end_matches(py_space)
                    .to_owned())
            }
        }
    }
}

/// `re.sub(r"\s+#.*", "", part)`: cut at the whitespace before the first `#` that follows
/// whitespace.
fn strip_inline_comment(part: &str) -> &str {
    let mut prev_space_start: Option<usize> = None;
    for (i, c) in part.char_indices() {
        if c == '#'
            && let Some(start) = prev_space_start
        {
            return &part[..start];
        }
        if py_space(c) {
            prev_space_start.get_or_insert(i);
        } else {
            prev_space_start = None;
        }
    }
    part
}

/// `decode_escapes`: a backslash and one of `escapes` becomes that character (as Python's
/// `unicode-escape` codec reads the pair); other backslashes stay.
fn decode(text: &str, escapes: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && escapes.contains(&n)
        {
            chars.next();
            out.push(match n {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                other => other,
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// `${NAME}` / `${NAME:-default}` in `value`, from `lookup`.
fn interpolate(value: &str, lookup: impl Fn(&str) -> Option<Option<String>>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        // `(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}`
        let name_len = after.find(['}', ':']).unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let (default, consumed) = if let Some(d) = tail.strip_prefix(":-") {
            match d.find('}') {
                Some(end) => (Some(&d[..end]), name_len + 2 + end + 1),
                None => (None, usize::MAX),
            }
        } else if tail.starts_with('}') {
            (None, name_len + 1)
        } else {
            (None, usize::MAX)
        };
        if consumed == usize::MAX {
            // Not a variable here; the search goes on after this `$`.
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 1..];
            continue;
        }
        out.push_str(&rest[..start]);
        let resolved = match lookup(name) {
            Some(v) => v.unwrap_or_default(),
            None => default.unwrap_or_default().to_owned(),
        };
        out.push_str(&resolved);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Reads `text` as `dotenv_values(stream=...)` does, interpolating from the process
/// environment.
pub(super) fn parse(text: &str) -> Map<String, Value> {
    parse_with(text, |name| std::env::var(name).ok())
}

/// [`parse`] with `environ` as the process environment.
pub(super) fn parse_with(
    text: &str,
    environ: impl Fn(&str) -> Option<String>,
) -> Map<String, Value> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader { s: text, i: 0 };
    let mut map = Map::new();
    while let Some(binding) = reader.binding() {
        let Some((key, value)) = binding else {
            continue;
        };
        let value = match value {
            None => Value::Null,
            Some(v) if v.contains("${") => {
                Value::String(interpolate(&v, |name| match map.get(name) {
                    Some(Value::String(s)) => Some(Some(s.clone())),
                    Some(_) => Some(None),
                    None => environ(name).map(Some),
                }))
            }
            Some(v) => Value::String(v),
        };
        map.insert(key, value);
    }
    map
}
