//! Keeping resolved secret values out of the log tails sent to the API server (README
//! "Differences", D42).
//!
//! The resolver lists the values it produced from every provider but `PLAIN` that have at
//! least [`MIN_SECRET_CHARS`] characters: those of the variables and properties to resolve
//! ([`super::Resolved::secrets`]) and those of the env and config locations
//! ([`super::TopLevel::secrets`]). A [`Redactor`] holds them and replaces each occurrence
//! in a text with [`REDACTED`]. This module only hides values; when to do it (not with
//! `--log-secrets`) is the caller's choice, and the log capture
//! ([`crate::process::capture::LogCapture`]) is its one caller.
//!
//! Matching is textual and exact: a value the child prints transformed (encoded, escaped,
//! in pieces) is not found. Besides each value, each line of a value on several lines that
//! has at least [`MIN_SECRET_CHARS`] characters is searched for, since a tail of the last
//! lines may begin inside such a value; its shorter lines are not.
//!
//! A [`Redactor`] is a handle: clones share their values, and
//! [`crate::settings::Pipeline`] adds the values of each load (a re-load before a retry
//! with `config_ttl`) to the one handle it gives every [`crate::settings::Settings`], so a
//! capture made with the first settings also hides the values fetched again later, and
//! still hides the earlier ones (lines of an earlier attempt may hold them).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use super::format::env_text;

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

/// The fewest characters (not bytes) of a value that is redacted: shorter values (`TRUE`,
/// a port number) would hide ordinary words of the log rather than protect anything.
pub const MIN_SECRET_CHARS: usize = 6;

/// Whether `text` is long enough to be redacted.
fn long_enough(text: &str) -> bool {
    text.chars().nth(MIN_SECRET_CHARS - 1).is_some()
}

/// Adds the texts of a resolved `value` to `out`: its text as a variable (the JSON text of
/// an object or a list, as the child gets it), and every string and number inside it (a PIN
/// may be a JSON number); only those of at least [`MIN_SECRET_CHARS`] characters.
pub(crate) fn collect_secret_texts(value: &Value, out: &mut BTreeSet<String>) {
    fn leaves(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::String(s) if long_enough(s) => {
                out.insert(s.clone());
            }
            Value::Number(n) => {
                let text = n.to_string();
                if long_enough(&text) {
                    out.insert(text);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
            Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
            _ => {}
        }
    }
    let text = env_text(value);
    if long_enough(&text) {
        out.insert(text);
    }
    leaves(value, out);
}

#[derive(Default)]
struct Patterns {
    /// The secret values.
    values: BTreeSet<String>,
    /// What is searched for: the values, and each line (of [`MIN_SECRET_CHARS`] or more) of
    /// a value on several lines, so that a tail that begins or ends inside such a value does
    /// not show the part it holds.
    patterns: Vec<String>,
}

impl Patterns {
    fn rebuild(&mut self) {
        let mut all: BTreeSet<&str> = BTreeSet::new();
        for v in &self.values {
            all.insert(v);
            if v.contains('\n') {
                for line in v.split('\n') {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if long_enough(line) {
                        all.insert(line);
                    }
                }
            }
        }
        let mut patterns: Vec<String> = all.into_iter().map(str::to_owned).collect();
        // Longest first: only for a stable order, since overlapping matches are merged.
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.patterns = patterns;
    }
}

/// The secret values to hide, and [`Redactor::redact`], which hides them. Clones share
/// the values (see the module's documentation). `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Patterns>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor of `values`; those under [`MIN_SECRET_CHARS`] characters are left out.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let r = Self::default();
        r.add(values);
        r
    }

    /// Adds `values` (to every clone); those under [`MIN_SECRET_CHARS`] characters are left
    /// out.
    pub fn add<I, S>(&self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut p = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let before = p.values.len();
        p.values.extend(
            values
                .into_iter()
                .map(Into::into)
                .filter(|v| long_enough(v)),
        );
        if p.values.len() != before {
            p.rebuild();
        }
    }

    /// How many values it hides.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .len()
    }

    /// True when it hides nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `value` is one of the values it hides.
    pub fn contains(&self, value: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .contains(value)
    }

    /// `text` with every occurrence of a secret value replaced by [`REDACTED`]. Occurrences
    /// that overlap or touch (one value inside another, two values that share characters,
    /// a value repeated) become one [`REDACTED`], so no part of a value is left; `text`
    /// is borrowed back when it holds none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let p = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for pattern in &p.patterns {
            let mut from = 0;
            while let Some(i) = text[from..].find(pattern.as_str()) {
                let start = from + i;
                spans.push((start, start + pattern.len()));
                // The next occurrence may overlap this one (`aaaaaa` in `aaaaaaa`).
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                spans.next();
            }
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_replaced_wherever_they_are() {
        let r = Redactor::new(["hunter22", "s3cr3t-value"]);
        assert_eq!(
            r.redact("pw=hunter22; token s3cr3t-value, again hunter22\n"),
            "pw=[REDACTED]; token [REDACTED], again [REDACTED]\n"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_redacted_counting_characters() {
        // Five characters are left alone, even when they take ten bytes; six are hidden.
        let r = Redactor::new(["12345", "ééééé", "éééééé"]);
        assert_eq!(r.len(), 1);
        assert!(r.contains("éééééé"));
        assert_eq!(r.redact("12345 ééééé éééééé"), "12345 ééééé [REDACTED]");
    }

    #[test]
    fn a_value_inside_another_is_hidden_whole() {
        let r = Redactor::new(["abcdef", "xxabcdefyy"]);
        assert_eq!(
            r.redact("1 xxabcdefyy 2 abcdef"),
            "1 [REDACTED] 2 [REDACTED]"
        );
        // Overlapping values, and a value repeating itself, leave nothing behind.
        let r = Redactor::new(["abcdef123", "123xyz789", "aaaaaa"]);
        assert_eq!(r.redact("-abcdef123xyz789-"), "-[REDACTED]-");
        assert_eq!(r.redact("aaaaaaaa!"), "[REDACTED]!");
    }

    #[test]
    fn values_at_either_end_of_the_text_and_the_whole_text_are_hidden() {
        let r = Redactor::new(["secret1", "ünïcödé"]);
        assert_eq!(r.redact("secret1"), "[REDACTED]");
        assert_eq!(r.redact("secret1 x secret1"), "[REDACTED] x [REDACTED]");
        assert_eq!(r.redact("secret1secret1"), "[REDACTED]");
        assert_eq!(r.redact("é ünïcödé"), "é [REDACTED]");
        // Part of a value is not a value.
        assert_eq!(r.redact("secret ünïcöd"), "secret ünïcöd");
        assert_eq!(r.redact(""), "");
    }

    #[test]
    fn lines_of_a_value_on_several_lines_are_hidden_too() {
        let key = "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\nshort\n-----END KEY-----";
        let r = Redactor::new([key]);
        assert_eq!(r.redact(&format!("key: {key}\n")), "key: [REDACTED]\n");
        // A tail that starts inside the value shows none of its long lines.
        assert_eq!(
            r.redact("MIIEvQIBADANBgkq\nshort\n-----END KEY-----\n"),
            "[REDACTED]\nshort\n[REDACTED]\n"
        );
    }

    #[test]
    fn clones_share_the_values_added_later() {
        let r = Redactor::default();
        let clone = r.clone();
        assert!(clone.is_empty());
        r.add(["first-secret"]);
        r.add(["second-secret"]);
        assert_eq!(
            clone.redact("first-secret second-secret"),
            "[REDACTED] [REDACTED]"
        );
        assert_eq!(format!("{clone:?}"), "Redactor { values: 2 }");
    }

    #[test]
    fn resolved_values_give_their_text_and_every_string_inside() {
        let mut out = BTreeSet::new();
        collect_secret_texts(
            &json!({"user": "admin", "password": "hunter22", "port": 123456, "n": [{"k": "nested-v"}]}),
            &mut out,
        );
        let got: Vec<&str> = out.iter().map(String::as_str).collect();
        // In the set's order: by bytes, so the JSON text (`{`) comes last.
        assert_eq!(
            got,
            [
                "123456",
                "hunter22",
                "nested-v",
                r#"{"user": "admin", "password": "hunter22", "port": 123456, "n": [{"k": "nested-v"}]}"#,
            ]
        );
        let mut out = BTreeSet::new();
        collect_secret_texts(&json!(12345678), &mut out);
        collect_secret_texts(&json!(true), &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), ["12345678"]);
    }
}
