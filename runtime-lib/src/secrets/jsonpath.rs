//! A small JSONPath evaluator for `|JP:` transforms and `CONFIG:` locations.
//!
//! It covers the subset of JSONPath (RFC 9535, and Python's `jsonpath-ng`) that is useful
//! for picking values out of secrets and configuration:
//!
//! | syntax | selects |
//! |---|---|
//! | `$` | the root (may be left out: `a.b` is `$.a.b`) |
//! | `.name` | the member `name` of an object (letters, digits, `_`, `-`) |
//! | `.'a b'`, `."a b"` | a member whose name needs quoting |
//! | `.*`, `[*]` | every member of an object or element of an array |
//! | `['a b']`, `["x"]` | a member, by quoted name (`\` escapes as in JSON) |
//! | `[0]`, `[-1]` | an array element; negative indices count from the end |
//! | `[start:end:step]` | a slice, with Python semantics (any part may be left out) |
//! | `[0,2]`, `['a','b']` | a union of the selectors above, in the order written |
//! | `..name`, `..*`, `..[0]` | the same selectors applied to a node and all its descendants |
//!
//! Filter (`[?(...)]`) and script (`[(...)]`) expressions are not supported and are
//! reported as errors, as is any malformed expression.
//!
//! Matches are returned in document order, as RFC 9535 and `jsonpath-ng` define it: each
//! segment is applied to its input nodes one at a time, and for each node a union yields
//! its selectors' matches in the order written; object members come in the order of the
//! map, and `..` visits a node before its descendants (pre-order). Parsing never recurses,
//! and evaluation walks the document with an explicit stack.

use serde_json::Value;

/// Why a JSONPath expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at position {position})")]
pub struct JsonPathError {
    /// Zero-based character offset in the expression where the problem was found.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Evaluates the JSONPath `expr` against `value`, returning the matching nodes in document
/// order (an empty list when nothing matches).
///
/// ```
/// use proc_wrapper::secrets::jsonpath::query;
/// use serde_json::json;
///
/// let doc = json!({"db": {"hosts": ["a", "b", "c"]}});
/// assert_eq!(query(&doc, "$.db.hosts[-1]").unwrap(), vec![&json!("c")]);
/// assert_eq!(query(&doc, "$..hosts[0:2]").unwrap(), vec![&json!("a"), &json!("b")]);
/// assert!(query(&doc, "$.db.hosts[?(@ == 'a')]").is_err());
/// ```
///
/// # Errors
///
/// [`JsonPathError`] when the expression is empty, malformed or uses an unsupported
/// feature (filters, script expressions).
pub fn query<'a>(value: &'a Value, expr: &str) -> Result<Vec<&'a Value>, JsonPathError> {
    let segments = Parser::new(expr).parse()?;
    let mut nodes = vec![value];
    // Repeated `..` multiplies the nodes visited; a budget keeps a careless expression over a
    // deep document from hanging the wrapper.
    let mut budget = MAX_NODES_VISITED;
    for segment in &segments {
        let mut next = Vec::new();
        for node in nodes {
            if segment.descendant {
                // Pre-order walk: a node's own matches come before its descendants'.
                let mut stack = vec![node];
                while let Some(n) = stack.pop() {
                    budget = budget.checked_sub(1).ok_or_else(|| JsonPathError {
                        position: 0,
                        message: format!(
                            "the expression visits more than {MAX_NODES_VISITED} nodes of the \
                             document"
                        ),
                    })?;
                    select(n, &segment.selectors, &mut next);
                    match n {
                        Value::Array(items) => stack.extend(items.iter().rev()),
                        Value::Object(map) => stack.extend(map.values().rev()),
                        _ => {}
                    }
                }
            } else {
                select(node, &segment.selectors, &mut next);
            }
        }
        nodes = next;
    }
    Ok(nodes)
}

/// Most nodes a query may visit with `..` before it is abandoned with an error.
pub(crate) const MAX_NODES_VISITED: usize = 1_000_000;

/// One selector inside a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// An object member.
    Name(String),
    /// Every member or element.
    Wildcard,
    /// An array element; negative counts from the end.
    Index(i64),
    /// An array slice.
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: Option<i64>,
    },
}

/// A child (`.x`, `[...]`) or descendant (`..x`, `..[...]`) segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    descendant: bool,
    selectors: Vec<Selector>,
}

impl Segment {
    fn child(selector: Selector) -> Self {
        Segment {
            descendant: false,
            selectors: vec![selector],
        }
    }
}

/// Applies the selectors of one segment to `node`, appending the matches to `out`.
fn select<'a>(node: &'a Value, selectors: &[Selector], out: &mut Vec<&'a Value>) {
    for selector in selectors {
        match (selector, node) {
            (Selector::Name(name), Value::Object(map)) => out.extend(map.get(name)),
            (Selector::Wildcard, Value::Object(map)) => out.extend(map.values()),
            (Selector::Wildcard, Value::Array(items)) => out.extend(items.iter()),
            (Selector::Index(i), Value::Array(items)) => {
                let len = items.len() as i128;
                let i = i128::from(*i);
                let i = if i < 0 { len + i } else { i };
                out.extend(usize::try_from(i).ok().and_then(|i| items.get(i)));
            }
            (Selector::Slice { start, end, step }, Value::Array(items)) => {
                slice(items, *start, *end, *step, out);
            }
            _ => {}
        }
    }
}

/// Python (and RFC 9535) slice semantics; a zero step selects nothing (the parser rejects
/// it anyway).
fn slice<'a>(
    items: &'a [Value],
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    out: &mut Vec<&'a Value>,
) {
    let len = items.len() as i128;
    let normalize = |i: i64| {
        let i = i128::from(i);
        if i < 0 { len + i } else { i }
    };
    let step = i128::from(step.unwrap_or(1));
    let mut push = |i: i128| out.extend(usize::try_from(i).ok().and_then(|i| items.get(i)));
    if step > 0 {
        let lower = start.map_or(0, normalize).max(0).min(len);
        let upper = end.map_or(len, normalize).max(0).min(len);
        let mut i = lower;
        while i < upper {
            push(i);
            i += step;
        }
    } else if step < 0 {
        let upper = start.map_or(len - 1, normalize).max(-1).min(len - 1);
        let lower = end.map_or(-1, normalize).max(-1).min(len - 1);
        let mut i = upper;
        while lower < i {
            push(i);
            i += step;
        }
    }
}

/// Letters, digits, `_`, `-`, and any other non-ASCII, non-blank character.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || (!c.is_ascii() && !c.is_whitespace())
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// A single-pass, non-recursive parser over the characters of the expression.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(expr: &str) -> Self {
        Parser {
            chars: expr.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_blank(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> JsonPathError {
        JsonPathError {
            position,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> JsonPathError {
        self.error_at(self.pos, message)
    }

    fn unexpected(&self, expected: &str) -> JsonPathError {
        match self.peek() {
            Some(c) => self.error(format!("unexpected '{c}', expected {expected}")),
            None => self.error(format!("unexpected end of expression, expected {expected}")),
        }
    }

    fn parse(mut self) -> Result<Vec<Segment>, JsonPathError> {
        let mut segments = Vec::new();
        self.skip_blank();
        match self.peek() {
            None => return Err(self.error("empty expression")),
            Some('$') => self.pos += 1,
            Some('@') => {
                return Err(self.error(
                    "'@' (the current node) is only used in filters, which are not supported",
                ));
            }
            // Relative to the root: `a.b`, `*`, `'a b'.c`.
            Some(c) if is_name_char(c) || c == '*' || c == '\'' || c == '"' => {
                segments.push(Segment::child(self.dot_selector()?));
            }
            // `.a`, `..a` and `[...]` are handled below, as after `$`.
            Some('.' | '[') => {}
            Some(_) => return Err(self.unexpected("'$', a name, '.' or '['")),
        }
        loop {
            self.skip_blank();
            match self.peek() {
                None => break,
                Some('.') => {
                    self.pos += 1;
                    if self.eat('.') {
                        let selectors = if self.peek() == Some('[') {
                            self.bracket()?
                        } else {
                            vec![self.dot_selector()?]
                        };
                        segments.push(Segment {
                            descendant: true,
                            selectors,
                        });
                    } else {
                        segments.push(Segment::child(self.dot_selector()?));
                    }
                }
                Some('[') => {
                    let selectors = self.bracket()?;
                    segments.push(Segment {
                        descendant: false,
                        selectors,
                    });
                }
                Some(_) => return Err(self.unexpected("'.', '[' or the end of the expression")),
            }
        }
        Ok(segments)
    }

    /// What follows `.` or `..` (other than `[`): a name, a quoted name or `*`.
    fn dot_selector(&mut self) -> Result<Selector, JsonPathError> {
        match self.peek() {
            Some('*') => {
                self.pos += 1;
                Ok(Selector::Wildcard)
            }
            Some('\'' | '"') => Ok(Selector::Name(self.string()?)),
            Some(c) if is_name_char(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                let name = self.chars.get(start..self.pos).unwrap_or_default();
                Ok(Selector::Name(name.iter().collect()))
            }
            _ => Err(self.unexpected("a name or '*'")),
        }
    }

    /// `[selector, selector, ...]`.
    fn bracket(&mut self) -> Result<Vec<Selector>, JsonPathError> {
        let open = self.pos;
        if !self.eat('[') {
            return Err(self.unexpected("'['"));
        }
        let mut selectors = Vec::new();
        loop {
            self.skip_blank();
            let selector = match self.peek() {
                None => return Err(self.error_at(open, "unclosed '['")),
                Some('?') => {
                    return Err(self.error("filter expressions ('[?...]') are not supported"));
                }
                Some('(') => {
                    return Err(self.error("script expressions ('[(...)]') are not supported"));
                }
                Some('*') => {
                    self.pos += 1;
                    Selector::Wildcard
                }
                Some('\'' | '"') => Selector::Name(self.string()?),
                Some(c) if c == '-' || c == ':' || c.is_ascii_digit() => self.index_or_slice()?,
                Some(']') if selectors.is_empty() => return Err(self.error("empty brackets")),
                Some(_) => return Err(self.unexpected("a quoted name, an index, a slice or '*'")),
            };
            selectors.push(selector);
            self.skip_blank();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok(selectors);
                }
                None => return Err(self.error_at(open, "unclosed '['")),
                Some(_) => return Err(self.unexpected("',' or ']'")),
            }
        }
    }

    /// `index`, or a slice `[start]:[end][:[step]]`.
    fn index_or_slice(&mut self) -> Result<Selector, JsonPathError> {
        let start = self.opt_int()?;
        self.skip_blank();
        if !self.eat(':') {
            return match start {
                Some(i) => Ok(Selector::Index(i)),
                None => Err(self.unexpected("an index or ':'")),
            };
        }
        self.skip_blank();
        let end = self.opt_int()?;
        self.skip_blank();
        let step = if self.eat(':') {
            self.skip_blank();
            let at = self.pos;
            let step = self.opt_int()?;
            if step == Some(0) {
                return Err(self.error_at(at, "the step of a slice cannot be 0"));
            }
            step
        } else {
            None
        };
        Ok(Selector::Slice { start, end, step })
    }

    /// An optional integer: `-`? digits.
    fn opt_int(&mut self) -> Result<Option<i64>, JsonPathError> {
        let start = self.pos;
        let negative = self.eat('-');
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == digits_start {
            return if negative {
                Err(self.unexpected("digits after '-'"))
            } else {
                Ok(None)
            };
        }
        let text: String = self
            .chars
            .get(start..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| self.error_at(start, format!("integer {text} is out of range")))
    }

    /// A single- or double-quoted string, with JSON escapes (and `\'`).
    fn string(&mut self) -> Result<String, JsonPathError> {
        let open = self.pos;
        let Some(quote) = self.bump() else {
            return Err(self.unexpected("a quote"));
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => {
                    let at = self.pos.saturating_sub(1);
                    let c = match self.bump() {
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some(c @ ('/' | '\\' | '\'' | '"')) => c,
                        Some('u') => self.unicode_escape(at)?,
                        Some(c) => return Err(self.error_at(at, format!("invalid escape '\\{c}'"))),
                        None => return Err(self.error_at(open, "unterminated string")),
                    };
                    out.push(c);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// The rest of `\uXXXX` (after the `u`), with a following low surrogate when needed.
    fn unicode_escape(&mut self, at: usize) -> Result<char, JsonPathError> {
        let high = self.hex4(at)?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !(self.eat('\\') && self.eat('u')) {
                return Err(self.error_at(at, "a high surrogate must be followed by '\\u'"));
            }
            let low = self.hex4(at)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error_at(at, "invalid low surrogate"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error_at(at, "invalid unicode escape"))
    }

    fn hex4(&mut self, at: usize) -> Result<u32, JsonPathError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self.bump().and_then(|c| c.to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error_at(at, "'\\u' needs four hex digits"));
            };
            code = code * 16 + digit;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `jsonpath` fuzz target: repeated `..*` over a deep document grew the
    /// matches combinatorially (seconds, then gigabytes).
    #[test]
    fn repeated_descendants_over_a_deep_document_stop_at_the_budget() {
        let mut doc = json!([]);
        for _ in 0..40 {
            doc = json!([doc]);
        }
        let err = query(&doc, &format!("${}", "..*".repeat(10))).unwrap_err();
        assert!(err.message.contains("visits more than"), "{err}");
        // Shallow uses are unaffected.
        assert_eq!(query(&doc, "$..*").unwrap().len(), 40);
    }
    use serde_json::json;

    fn q(doc: &Value, expr: &str) -> Vec<Value> {
        match query(doc, expr) {
            Ok(found) => found.into_iter().cloned().collect(),
            Err(e) => panic!("{expr}: {e}"),
        }
    }

    fn err(doc: &Value, expr: &str) -> JsonPathError {
        match query(doc, expr) {
            Ok(found) => panic!("{expr} should fail, found {found:?}"),
            Err(e) => e,
        }
    }

    fn doc() -> Value {
        json!({
            "store": {
                "book": [
                    {"title": "A", "price": 8, "isbn": "1"},
                    {"title": "B", "price": 12},
                    {"title": "C", "price": 9, "isbn": "3"},
                    {"title": "D", "price": 22}
                ],
                "bicycle": {"color": "red", "price": 19}
            },
            "a b": 1,
            "it's": 2,
            "dash-name": 3,
            "under_score9": 4,
            "0": "zero",
            "nums": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        })
    }

    #[test]
    fn spec_examples() {
        assert_eq!(q(&json!({"a": "bug"}), "$.a"), vec![json!("bug")]);
        assert_eq!(
            q(&json!({"password": "foobar"}), "$.password"),
            vec![json!("foobar")]
        );
        assert_eq!(q(&json!({"d": [1]}), "$.d"), vec![json!([1])]);
        assert_eq!(q(&json!({"d": [1]}), "$.d[*]"), vec![json!(1)]);
        assert_eq!(q(&json!({"a": {"d": "bc"}}), "$.a.d"), vec![json!("bc")]);
    }

    #[test]
    fn root() {
        let d = doc();
        assert_eq!(q(&d, "$"), vec![d.clone()]);
        assert_eq!(q(&json!(5), "$"), vec![json!(5)]);
        assert_eq!(q(&d, "  $  "), vec![d.clone()]);
    }

    #[test]
    fn dot_children() {
        let d = doc();
        assert_eq!(q(&d, "$.store.bicycle.color"), vec![json!("red")]);
        assert_eq!(q(&d, "$.dash-name"), vec![json!(3)]);
        assert_eq!(q(&d, "$.under_score9"), vec![json!(4)]);
        assert_eq!(q(&d, "$.0"), vec![json!("zero")]);
        assert_eq!(q(&d, "$.'a b'"), vec![json!(1)]);
        assert_eq!(q(&d, "$.\"a b\""), vec![json!(1)]);
        assert!(q(&d, "$.missing").is_empty());
        assert!(q(&d, "$.store.book.title").is_empty());
        assert!(q(&d, "$.nums.0").is_empty());
        assert!(q(&json!("text"), "$.a").is_empty());
        assert_eq!(
            q(&json!({"é": {"ü": 1}}), "$.é.ü"),
            vec![json!(1)],
            "non-ASCII names"
        );
    }

    #[test]
    fn without_root() {
        let d = doc();
        assert_eq!(q(&d, "store.bicycle.color"), vec![json!("red")]);
        assert_eq!(q(&d, "store.book[1].title"), vec![json!("B")]);
        assert_eq!(q(&d, ".store.bicycle.price"), vec![json!(19)]);
        assert_eq!(q(&d, "['a b']"), vec![json!(1)]);
        assert_eq!(q(&d, "'a b'"), vec![json!(1)]);
        assert_eq!(q(&json!([5, 6]), "[-1]"), vec![json!(6)]);
        assert_eq!(q(&json!({"x": 1, "y": 2}), "*"), vec![json!(1), json!(2)]);
        assert_eq!(q(&d, "..color"), vec![json!("red")]);
    }

    #[test]
    fn wildcards() {
        let d = doc();
        assert_eq!(
            q(&d, "$.store.bicycle.*"),
            vec![json!("red"), json!(19)],
            "object members in map order"
        );
        assert_eq!(q(&d, "$.store.bicycle[*]"), vec![json!("red"), json!(19)]);
        assert_eq!(
            q(&d, "$.store.book[*].title"),
            vec![json!("A"), json!("B"), json!("C"), json!("D")]
        );
        assert_eq!(
            q(&d, "$.store.book.*.price"),
            vec![json!(8), json!(12), json!(9), json!(22)]
        );
        assert!(q(&json!("x"), "$.*").is_empty());
        assert!(q(&json!([]), "$[*]").is_empty());
    }

    #[test]
    fn quoted_names() {
        let d = doc();
        assert_eq!(q(&d, "$['a b']"), vec![json!(1)]);
        assert_eq!(q(&d, "$[\"a b\"]"), vec![json!(1)]);
        assert_eq!(q(&d, r"$['it\'s']"), vec![json!(2)]);
        assert_eq!(q(&d, r#"$["it's"]"#), vec![json!(2)]);
        assert_eq!(q(&d, "$['store']['bicycle']['color']"), vec![json!("red")]);
        assert_eq!(q(&d, "$[ 'a b' ]"), vec![json!(1)]);
        let odd = json!({"a.b": 1, "[x]": 2, "q\"t": 3, "\u{e9}": 4, "😀": 5, "t\tb\\": 6});
        assert_eq!(q(&odd, "$['a.b']"), vec![json!(1)]);
        assert_eq!(q(&odd, "$['[x]']"), vec![json!(2)]);
        assert_eq!(q(&odd, r#"$["q\"t"]"#), vec![json!(3)]);
        assert_eq!(q(&odd, r"$['\u00e9']"), vec![json!(4)]);
        assert_eq!(q(&odd, r"$['\ud83d\ude00']"), vec![json!(5)]);
        assert_eq!(q(&odd, r"$['t\tb\\']"), vec![json!(6)]);
        assert!(
            q(&json!([1]), "$['0']").is_empty(),
            "names do not index arrays"
        );
    }

    #[test]
    fn indices() {
        let d = doc();
        assert_eq!(q(&d, "$.nums[0]"), vec![json!(0)]);
        assert_eq!(q(&d, "$.nums[9]"), vec![json!(9)]);
        assert_eq!(q(&d, "$.nums[-1]"), vec![json!(9)]);
        assert_eq!(q(&d, "$.nums[-10]"), vec![json!(0)]);
        assert!(q(&d, "$.nums[10]").is_empty());
        assert!(q(&d, "$.nums[-11]").is_empty());
        assert!(q(&d, "$.nums[9223372036854775807]").is_empty());
        assert!(q(&d, "$.nums[-9223372036854775808]").is_empty());
        assert_eq!(q(&d, "$.store.book[-2].title"), vec![json!("C")]);
        assert!(
            q(&d, "$.store[0]").is_empty(),
            "indices do not apply to objects"
        );
        assert!(q(&json!([]), "$[0]").is_empty());
        assert!(q(&json!([]), "$[-1]").is_empty());
    }

    #[test]
    fn slices() {
        let d = doc();
        let nums = |v: &[i64]| v.iter().map(|n| json!(n)).collect::<Vec<_>>();
        assert_eq!(q(&d, "$.nums[2:5]"), nums(&[2, 3, 4]));
        assert_eq!(q(&d, "$.nums[:3]"), nums(&[0, 1, 2]));
        assert_eq!(q(&d, "$.nums[7:]"), nums(&[7, 8, 9]));
        assert_eq!(q(&d, "$.nums[:]"), nums(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        assert_eq!(q(&d, "$.nums[::]"), nums(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        assert_eq!(q(&d, "$.nums[::3]"), nums(&[0, 3, 6, 9]));
        assert_eq!(q(&d, "$.nums[1:8:2]"), nums(&[1, 3, 5, 7]));
        assert_eq!(q(&d, "$.nums[-3:]"), nums(&[7, 8, 9]));
        assert_eq!(q(&d, "$.nums[:-7]"), nums(&[0, 1, 2]));
        assert_eq!(q(&d, "$.nums[-4:-2]"), nums(&[6, 7]));
        assert_eq!(q(&d, "$.nums[::-1]"), nums(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]));
        assert_eq!(q(&d, "$.nums[::-4]"), nums(&[9, 5, 1]));
        assert_eq!(q(&d, "$.nums[5:1:-2]"), nums(&[5, 3]));
        assert_eq!(q(&d, "$.nums[-1:-4:-1]"), nums(&[9, 8, 7]));
        assert_eq!(q(&d, "$.nums[2::-1]"), nums(&[2, 1, 0]));
        assert_eq!(q(&d, "$.nums[:7:-1]"), nums(&[9, 8]));
        assert_eq!(q(&d, "$.nums[ 1 : 3 ]"), nums(&[1, 2]));
        assert!(q(&d, "$.nums[5:2]").is_empty());
        assert!(q(&d, "$.nums[2:5:-1]").is_empty());
        assert!(q(&d, "$.nums[20:30]").is_empty());
        assert_eq!(q(&d, "$.nums[-100:2]"), nums(&[0, 1]));
        assert_eq!(q(&d, "$.nums[8:100]"), nums(&[8, 9]));
        assert_eq!(q(&d, "$.nums[100:7:-1]"), nums(&[9, 8]));
        assert_eq!(
            q(
                &d,
                "$.nums[-9223372036854775808:9223372036854775807:9223372036854775807]"
            ),
            nums(&[0])
        );
        assert_eq!(
            q(
                &d,
                "$.nums[9223372036854775807:-9223372036854775808:-9223372036854775808]"
            ),
            nums(&[9])
        );
        assert!(q(&json!([]), "$[::-1]").is_empty());
        assert!(q(&json!({"a": 1}), "$[0:1]").is_empty());
    }

    #[test]
    fn unions() {
        let d = doc();
        assert_eq!(q(&d, "$.nums[0,2]"), vec![json!(0), json!(2)]);
        assert_eq!(q(&d, "$.nums[2,0]"), vec![json!(2), json!(0)]);
        assert_eq!(q(&d, "$.nums[1,1]"), vec![json!(1), json!(1)]);
        assert_eq!(q(&d, "$.nums[-1, 0:2]"), vec![json!(9), json!(0), json!(1)]);
        assert_eq!(q(&d, "$.nums[0,100]"), vec![json!(0)]);
        assert_eq!(
            q(&d, "$.store.bicycle['price','color']"),
            vec![json!(19), json!("red")]
        );
        assert_eq!(
            q(&d, r#"$.store.bicycle["color", 'nothing', "price"]"#),
            vec![json!("red"), json!(19)]
        );
        assert_eq!(
            q(&d, "$.store.book[0,-1].title"),
            vec![json!("A"), json!("D")]
        );
    }

    #[test]
    fn unions_over_several_nodes_go_node_by_node() {
        let d = json!({"x": [1, 2, 3], "y": [4, 5, 6]});
        assert_eq!(
            q(&d, "$.*[2,0]"),
            vec![json!(3), json!(1), json!(6), json!(4)]
        );
        assert_eq!(q(&d, "$[*][-1:]"), vec![json!(3), json!(6)]);
    }

    #[test]
    fn recursive_descent() {
        let d = doc();
        assert_eq!(
            q(&d, "$..price"),
            vec![json!(8), json!(12), json!(9), json!(22), json!(19)]
        );
        assert_eq!(q(&d, "$..isbn"), vec![json!("1"), json!("3")]);
        assert_eq!(q(&d, "$.store..color"), vec![json!("red")]);
        assert_eq!(q(&d, "$..book[0].title"), vec![json!("A")]);
        assert_eq!(q(&d, "$..book[-1:].title"), vec![json!("D")]);
        assert_eq!(q(&d, "$..['a b']"), vec![json!(1)]);
        // A node's own matches come before those of its descendants.
        let nested = json!({"a": {"a": {"a": 1}}, "b": [{"a": 2}]});
        assert_eq!(
            q(&nested, "$..a"),
            vec![json!({"a": {"a": 1}}), json!({"a": 1}), json!(1), json!(2)]
        );
        let small = json!({"x": {"y": 1}, "z": [2, [3]]});
        assert_eq!(
            q(&small, "$..*"),
            vec![
                json!({"y": 1}),
                json!([2, [3]]),
                json!(1),
                json!(2),
                json!([3]),
                json!(3)
            ]
        );
        assert_eq!(q(&small, "$..[0]"), vec![json!(2), json!(3)]);
        assert_eq!(q(&small, "$..[*]"), q(&small, "$..*"));
        assert!(q(&json!(1), "$..*").is_empty());
        assert_eq!(q(&json!([[1]]), "$..[0]"), vec![json!([1]), json!(1)]);
    }

    #[test]
    fn deep_documents_do_not_overflow() {
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(query(&v, "$..*").map(|found| found.len()), Ok(100_000));
        assert_eq!(query(&v, "$..[0]").map(|found| found.len()), Ok(100_000));
        // Dropping a `Value` recurses: take the nesting apart from the outside in.
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn whitespace_between_segments() {
        let d = doc();
        assert_eq!(q(&d, "$ .store .bicycle [ 'color' ]"), vec![json!("red")]);
        assert_eq!(q(&d, "$.nums[ 0 , 1 ]"), vec![json!(0), json!(1)]);
    }

    #[test]
    fn filters_are_not_supported() {
        let d = doc();
        let e = err(&d, "$.store.book[?(@.price < 10)]");
        assert!(e.message.contains("filter"), "{e}");
        assert_eq!(e.position, 13);
        assert!(err(&d, "$..book[?@.isbn]").message.contains("filter"));
        assert!(err(&d, "$.nums[0, ?(@ > 1)]").message.contains("filter"));
        assert!(err(&d, "$.nums[(@.length-1)]").message.contains("script"));
        assert!(err(&d, "@.a").message.contains("filter"));
    }

    #[test]
    fn malformed_expressions() {
        let d = doc();
        for expr in [
            "",
            "   ",
            "$.",
            "$..",
            "$...a",
            "$a",
            "$$",
            "$.a.",
            "$.a b",
            "$.a]",
            "$[",
            "$[0",
            "$[0,",
            "$[0,]",
            "$[,0]",
            "$[]",
            "$[ ]",
            "$['a'",
            "$['a]",
            "$[\"a']",
            "$['a' 'b']",
            "$[a]",
            "$[0 1]",
            "$[-]",
            "$[--1]",
            "$[1.5]",
            "$[0:1:2:3]",
            "$[::0]",
            "$[1:2:0]",
            "$[99999999999999999999]",
            "$[-99999999999999999999]",
            "$['\\x']",
            "$['\\u12']",
            "$['\\ud83d']",
            "$['\\ud83dx']",
            "$['\\ud83d\\u0041']",
            "$['\\udc00']",
            "$['a\\",
            "$.[0]",
            "$.a[0]]",
            "$.a)",
            "#",
            "[0]x",
            "a..",
            "$.*a",
            "$.a@",
        ] {
            let e = err(&d, expr);
            assert!(!e.message.is_empty(), "{expr}");
            assert!(e.position <= expr.chars().count(), "{expr}: {e}");
        }
        assert_eq!(err(&d, "").message, "empty expression");
        assert_eq!(err(&d, "$[::0]").message, "the step of a slice cannot be 0");
        let e = err(&d, "$.a[0");
        assert_eq!((e.position, e.message.as_str()), (3, "unclosed '['"));
        assert_eq!(e.to_string(), "unclosed '[' (at position 3)");
        let e = err(&d, "$.a]");
        assert_eq!(e.position, 3);
        assert!(e.message.contains("']'"), "{e}");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let d = doc();
        let alphabet: Vec<char> = "$.[]*'\"\\:,-?()@ 0129abu é".chars().collect();
        // Every string of up to 4 characters from the alphabet, plus a pseudo-random sample
        // of longer ones.
        let mut exprs: Vec<String> = vec![String::new()];
        let mut frontier = exprs.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in &alphabet {
                    let mut t = s.clone();
                    t.push(*c);
                    next.push(t);
                }
            }
            exprs.extend(next.iter().cloned());
            frontier = next;
        }
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 5 + seed % 20;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = usize::try_from(seed % alphabet.len() as u64).unwrap_or(0);
                s.extend(alphabet.get(i));
            }
            exprs.push(s);
        }
        for expr in &exprs {
            if let Err(e) = query(&d, expr) {
                assert!(e.position <= expr.chars().count(), "{expr:?}: {e}");
            }
        }
    }

    #[test]
    fn long_expressions_do_not_recurse() {
        let d = json!({"a": 1});
        let deep = "[".repeat(100_000);
        assert!(query(&d, &deep).is_err());
        let long = format!("${}", ".b".repeat(100_000));
        assert!(q(&d, &long).is_empty());
        let many = format!("$[{}0]", "0,".repeat(100_000));
        assert!(q(&d, &many).is_empty());
    }
}
