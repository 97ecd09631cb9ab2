//! YAML read as 6.0.2 reads it: PyYAML's `safe_load`, the YAML 1.1 schema of its
//! `SafeLoader` (checked by `parity_tests.rs`). Its composer (one document, anchors and
//! aliases), its implicit resolvers for plain scalars (`yes`/`on`/`off` are booleans, `0777` is
//! octal, `1_000` is 1000, `12:30` is 750, `1e3` is a string as floats need a dot) and its
//! constructors (explicit `!!` tags, merge keys `<<`, `!!omap`, `!!pairs`, `!!set`,
//! `!!binary`, timestamps), over libyaml's events.
//!
//! Where PyYAML builds a Python object that JSON has no place for, the value is the text
//! 6.0.2 puts into an environment variable for it (Python's `str()`): an integer beyond
//! 64 bits is its digits, `.inf`/`.nan` are `inf`/`nan`, a date `2001-12-14`, a datetime
//! `2001-12-14 21:59:43.100000-05:00`, binary data `b'...'`. A set becomes the list of its
//! members. Mapping keys become the text `json.dumps` writes for them (`1`, `true`, `null`,
//! `1.5`), equal keys (`1`, `1.0`, `true`) being one key as in a Python dict, the first
//! spelling kept and the last value.
//!
//! Errors give a position and PyYAML's kind of problem, never the text: it may be secret.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{Map, Value};

use super::libyaml::{Event, Mark, Parser, Props, SyntaxError};
use super::pynum::{self, BigUint};
use crate::secrets::SecretError;

/// Nesting deeper than this is refused (PyYAML's composer recurses and Python stops it
/// with a `RecursionError` at a few hundred levels).
const MAX_DEPTH: usize = 256;
/// Values built from aliases and merges, beyond which a document is refused: aliases let a
/// short text expand exponentially ("billion laughs").
const MAX_EXPANDED: usize = 1_000_000;

const TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// Reads `text` as PyYAML's `safe_load` does. An empty stream is `null`.
pub(super) fn parse(text: &str) -> Result<Value, SecretError> {
    if let Some(offset) = super::libyaml::stray_tab(text) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        return Err(SecretError::Parse(format!(
            "invalid YAML: found a tab character that cannot start any token (PyYAML allows \
             tabs only in quoted and block scalars and in comments) at line {line} column \
             {column}"
        )));
    }
    let mut composer = Composer {
        parser: Parser::new(text).map_err(syntax)?,
        anchors: HashMap::new(),
        peeked: None,
    };
    let node = composer.single_document()?;
    match node {
        None => Ok(Value::Null),
        Some(node) => Constructor { expanded: 0 }.value(&node, 0),
    }
}

fn syntax(e: SyntaxError) -> SecretError {
    let mut message = format!("invalid YAML: {}", e.problem);
    if let Some(at) = e.at {
        message.push_str(&format!(" at line {} column {}", at.line, at.column));
    }
    if let Some((context, at)) = e.context {
        message.push_str(&format!(
            ", {context} at line {} column {}",
            at.line, at.column
        ));
    }
    SecretError::Parse(message)
}

fn error_at(at: Mark, what: &str) -> SecretError {
    SecretError::Parse(format!(
        "invalid YAML at line {} column {}: {what}",
        at.line, at.column
    ))
}

/// A value that does not fit its tag (PyYAML raises a constructor error, or Python's
/// `ValueError`/`KeyError` naming the value): only the tag and position are told.
fn bad_value(at: Mark, tag: &str) -> SecretError {
    error_at(
        at,
        &format!(
            "a value that is not a valid {} (not shown, as it may be secret)",
            short_tag(tag)
        ),
    )
}

fn short_tag(tag: &str) -> String {
    match tag.strip_prefix(TAG_PREFIX) {
        Some(t) => format!("!!{t}"),
        None => "value for its tag".to_owned(),
    }
}

/// A mapping's key and value nodes.
type Pair = (Rc<Node>, Rc<Node>);

#[derive(Debug)]
enum Body {
    Scalar(String),
    Seq(Vec<Rc<Node>>),
    Map(Vec<Pair>),
}

#[derive(Debug)]
struct Node {
    tag: String,
    body: Body,
    at: Mark,
}

struct Composer<'a> {
    parser: Parser<'a>,
    /// `None` while the anchored node is being composed (an alias to it then would make a
    /// recursive structure, which JSON cannot hold).
    anchors: HashMap<String, Option<Rc<Node>>>,
    peeked: Option<(Event, Mark)>,
}

impl Composer<'_> {
    fn next(&mut self) -> Result<(Event, Mark), SecretError> {
        match self.peeked.take() {
            Some(e) => Ok(e),
            None => self.parser.next_event().map_err(syntax),
        }
    }

    fn peek(&mut self) -> Result<&Event, SecretError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.parser.next_event().map_err(syntax)?);
        }
        match &self.peeked {
            Some((e, _)) => Ok(e),
            None => Err(SecretError::Parse("invalid YAML: no event".into())),
        }
    }

    /// PyYAML's `get_single_node`.
    fn single_document(&mut self) -> Result<Option<Rc<Node>>, SecretError> {
        if let (Event::StreamStart, _) = self.next()? {
        } else {
            return Err(SecretError::Parse("invalid YAML: no stream start".into()));
        }
        if matches!(self.peek()?, Event::StreamEnd) {
            return Ok(None);
        }
        let (_, _) = self.next()?; // DocumentStart
        let node = self.node(0)?;
        let (_, _) = self.next()?; // DocumentEnd
        let (event, at) = self.next()?;
        if !matches!(event, Event::StreamEnd) {
            return Err(error_at(
                at,
                "expected a single document in the stream, but found another document",
            ));
        }
        Ok(Some(node))
    }

    fn register(&mut self, anchor: &Option<String>, at: Mark) -> Result<(), SecretError> {
        if let Some(a) = anchor {
            if self.anchors.contains_key(a) {
                return Err(error_at(at, "found a duplicate anchor"));
            }
            self.anchors.insert(a.clone(), None);
        }
        Ok(())
    }

    fn done(&mut self, anchor: Option<String>, node: Node) -> Rc<Node> {
        let node = Rc::new(node);
        if let Some(a) = anchor {
            self.anchors.insert(a, Some(node.clone()));
        }
        node
    }

    /// PyYAML's `compose_node`, with the resolver's choice of tag.
    fn node(&mut self, depth: usize) -> Result<Rc<Node>, SecretError> {
        let (event, at) = self.next()?;
        if depth > MAX_DEPTH {
            return Err(error_at(at, "the document is nested too deeply"));
        }
        match event {
            Event::Alias(name) => match self.anchors.get(&name) {
                Some(Some(node)) => Ok(node.clone()),
                Some(None) => Err(error_at(
                    at,
                    "found a recursive alias (a node that contains itself)",
                )),
                None => Err(error_at(at, "found an undefined alias")),
            },
            Event::Scalar {
                props,
                value,
                plain,
            } => {
                self.register(&props.anchor, at)?;
                // PyYAML resolves a scalar without a tag, or with the non-specific `!`
                // (then whatever its style), through the implicit resolvers when plain.
                let tag = match props.tag.as_deref() {
                    None if plain => resolve_plain(&value).to_owned(),
                    None => format!("{TAG_PREFIX}str"),
                    Some("!") => resolve_plain(&value).to_owned(),
                    Some(t) => t.to_owned(),
                };
                let node = Node {
                    tag,
                    body: Body::Scalar(value),
                    at,
                };
                Ok(self.done(props.anchor, node))
            }
            Event::SequenceStart(props) => {
                self.register(&props.anchor, at)?;
                let mut items = Vec::new();
                while !matches!(self.peek()?, Event::SequenceEnd) {
                    items.push(self.node(depth + 1)?);
                }
                self.next()?;
                let node = Node {
                    tag: collection_tag(&props, "seq"),
                    body: Body::Seq(items),
                    at,
                };
                Ok(self.done(props.anchor, node))
            }
            Event::MappingStart(props) => {
                self.register(&props.anchor, at)?;
                let mut pairs = Vec::new();
                while !matches!(self.peek()?, Event::MappingEnd) {
                    let key = self.node(depth + 1)?;
                    let value = self.node(depth + 1)?;
                    pairs.push((key, value));
                }
                self.next()?;
                let node = Node {
                    tag: collection_tag(&props, "map"),
                    body: Body::Map(pairs),
                    at,
                };
                Ok(self.done(props.anchor, node))
            }
            _ => Err(error_at(at, "unexpected event")),
        }
    }
}

fn collection_tag(props: &Props, default: &str) -> String {
    match props.tag.as_deref() {
        None | Some("!") => format!("{TAG_PREFIX}{default}"),
        Some(t) => t.to_owned(),
    }
}

// ---- The implicit resolvers of PyYAML's `Resolver` (YAML 1.1), for plain scalars. ----

/// The tag PyYAML's resolver gives a plain scalar: its resolvers are tried in the order
/// they were added (bool, float, int, merge, null, timestamp, value); none → `str`.
fn resolve_plain(v: &str) -> &'static str {
    if is_bool(v) {
        "tag:yaml.org,2002:bool"
    } else if is_float(v) {
        "tag:yaml.org,2002:float"
    } else if is_int(v) {
        "tag:yaml.org,2002:int"
    } else if v == "<<" {
        "tag:yaml.org,2002:merge"
    } else if matches!(v, "" | "~" | "null" | "Null" | "NULL") {
        "tag:yaml.org,2002:null"
    } else if is_timestamp(v) {
        "tag:yaml.org,2002:timestamp"
    } else if v == "=" {
        "tag:yaml.org,2002:value"
    } else {
        "tag:yaml.org,2002:str"
    }
}

fn is_bool(v: &str) -> bool {
    matches!(
        v,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// A cursor over ASCII bytes, for the resolvers' regular expressions.
struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan {
            s: s.as_bytes(),
            i: 0,
        }
    }
    fn end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_if(&mut self, f: impl Fn(u8) -> bool) -> bool {
        match self.peek() {
            Some(c) if f(c) => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }
    /// Eats `[...]*`; how many.
    fn eat_all(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.eat_if(&f) {}
        self.i - start
    }
    fn sign(&mut self) {
        let _ = self.eat(b'+') || self.eat(b'-');
    }
    fn rest(&self) -> &'a [u8] {
        &self.s[self.i.min(self.s.len())..]
    }
}

fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}
fn digit_(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

/// `(?::[0-5]?[0-9])+` then the end or (for floats) a dot: each group is one digit, or two
/// with the first from 0 to 5.
fn sexagesimal_groups(s: &mut Scan<'_>) -> bool {
    let mut groups = 0;
    while s.eat(b':') {
        let start = s.i;
        let n = s.eat_all(digit);
        let ok = n == 1 || (n == 2 && s.s[start] <= b'5');
        if !ok {
            return false;
        }
        groups += 1;
    }
    groups > 0
}

/// `(?:[eE][-+][0-9]+)?$`
fn exponent_then_end(s: &mut Scan<'_>) -> bool {
    if s.end() {
        return true;
    }
    s.eat_if(|c| c == b'e' || c == b'E')
        && s.eat_if(|c| c == b'-' || c == b'+')
        && s.eat_all(digit) > 0
        && s.end()
}

fn is_float(v: &str) -> bool {
    // [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    let a = || {
        let mut s = Scan::new(v);
        s.sign();
        s.eat_if(digit)
            && {
                s.eat_all(digit_);
                s.eat(b'.')
            }
            && {
                s.eat_all(digit_);
                exponent_then_end(&mut s)
            }
    };
    // \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    let b = || {
        let mut s = Scan::new(v);
        s.eat(b'.') && s.eat_if(digit) && {
            s.eat_all(digit_);
            exponent_then_end(&mut s)
        }
    };
    // [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    let c = || {
        let mut s = Scan::new(v);
        s.sign();
        s.eat_if(digit)
            && {
                s.eat_all(digit_);
                sexagesimal_groups(&mut s)
            }
            && s.eat(b'.')
            && {
                s.eat_all(digit_);
                s.end()
            }
    };
    // [-+]?\.(?:inf|Inf|INF) and \.(?:nan|NaN|NAN)
    let d = || {
        let u = v.strip_prefix(['+', '-']).unwrap_or(v);
        matches!(u, ".inf" | ".Inf" | ".INF")
    };
    let e = || matches!(v, ".nan" | ".NaN" | ".NAN");
    a() || b() || c() || d() || e()
}

fn is_int(v: &str) -> bool {
    let unsigned = || {
        let mut s = Scan::new(v);
        s.sign();
        s
    };
    // [-+]?0b[0-1_]+
    let bin = || {
        let mut s = unsigned();
        s.eat(b'0') && s.eat(b'b') && s.eat_all(|c| matches!(c, b'0' | b'1' | b'_')) > 0 && s.end()
    };
    // [-+]?0[0-7_]+
    let oct = || {
        let mut s = unsigned();
        s.eat(b'0') && s.eat_all(|c| matches!(c, b'0'..=b'7' | b'_')) > 0 && s.end()
    };
    // [-+]?(?:0|[1-9][0-9_]*)
    let dec = || {
        let mut s = unsigned();
        if s.eat(b'0') {
            return s.end();
        }
        s.eat_if(|c| matches!(c, b'1'..=b'9')) && {
            s.eat_all(digit_);
            s.end()
        }
    };
    // [-+]?0x[0-9a-fA-F_]+
    let hex = || {
        let mut s = unsigned();
        s.eat(b'0')
            && s.eat(b'x')
            && s.eat_all(|c| c.is_ascii_hexdigit() || c == b'_') > 0
            && s.end()
    };
    // [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    let sexa = || {
        let mut s = unsigned();
        s.eat_if(|c| matches!(c, b'1'..=b'9'))
            && {
                s.eat_all(digit_);
                sexagesimal_groups(&mut s)
            }
            && s.end()
    };
    bin() || oct() || dec() || hex() || sexa()
}

/// The resolver's timestamp: `YYYY-MM-DD`, or a date with one- or two-digit month and day
/// followed by a time (what the constructor's expression reads, with the time present).
fn is_timestamp(v: &str) -> bool {
    let b = v.as_bytes();
    let date_only = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    date_only || matches!(timestamp_parts(v), Some(t) if t.time.is_some())
}

// ---- Timestamps ----

struct Time {
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
    /// `Some(None)` for `Z`, `Some(Some((negative, hours, minutes)))` for an offset.
    tz: Option<Option<(bool, u32, u32)>>,
}

struct Timestamp {
    year: u32,
    month: u32,
    day: u32,
    time: Option<Time>,
}

fn digits_value(d: &[u8]) -> u32 {
    d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0'))
}

/// Eats one or two digits (`[0-9][0-9]?`).
fn one_or_two(s: &mut Scan<'_>) -> Option<u32> {
    let start = s.i;
    if !s.eat_if(digit) {
        return None;
    }
    s.eat_if(digit);
    Some(digits_value(&s.s[start..s.i]))
}

fn exactly(s: &mut Scan<'_>, n: usize) -> Option<u32> {
    let start = s.i;
    for _ in 0..n {
        if !s.eat_if(digit) {
            return None;
        }
    }
    Some(digits_value(&s.s[start..s.i]))
}

/// The constructor's `timestamp_regexp` (groups only, no range checks).
fn timestamp_parts(v: &str) -> Option<Timestamp> {
    let mut s = Scan::new(v);
    let year = exactly(&mut s, 4)?;
    s.eat(b'-').then_some(())?;
    let month = one_or_two(&mut s)?;
    s.eat(b'-').then_some(())?;
    let day = one_or_two(&mut s)?;
    if s.end() {
        return Some(Timestamp {
            year,
            month,
            day,
            time: None,
        });
    }
    if !(s.eat_if(|c| c == b'T' || c == b't') || s.eat_all(|c| c == b' ' || c == b'\t') > 0) {
        return None;
    }
    let hour = one_or_two(&mut s)?;
    s.eat(b':').then_some(())?;
    let minute = exactly(&mut s, 2)?;
    s.eat(b':').then_some(())?;
    let second = exactly(&mut s, 2)?;
    let mut micro = 0;
    if s.eat(b'.') {
        let start = s.i;
        s.eat_all(digit);
        let frac = &s.s[start..s.i];
        let mut six: Vec<u8> = frac.iter().take(6).copied().collect();
        if !six.is_empty() {
            six.resize(6, b'0');
            micro = digits_value(&six);
        }
    }
    let mut tz = None;
    if !s.end() {
        s.eat_all(|c| c == b' ' || c == b'\t');
        if s.eat(b'Z') {
            tz = Some(None);
        } else {
            let negative = match s.peek() {
                Some(b'-') => true,
                Some(b'+') => false,
                _ => return None,
            };
            s.i += 1;
            let h = one_or_two(&mut s)?;
            let m = if s.eat(b':') { exactly(&mut s, 2)? } else { 0 };
            tz = Some(Some((negative, h, m)));
        }
        if !s.rest().is_empty() {
            return None;
        }
    }
    Some(Timestamp {
        year,
        month,
        day,
        time: Some(Time {
            hour,
            minute,
            second,
            micro,
            tz,
        }),
    })
}

/// Python's `str()` of the `date` or `datetime` PyYAML builds; `None` where Python's
/// `datetime` refuses the fields (day 30 of February, hour 24, an offset of a day or more).
fn timestamp_text(v: &str) -> Option<String> {
    let t = timestamp_parts(v)?;
    let leap = t.year % 4 == 0 && (t.year % 100 != 0 || t.year % 400 == 0);
    let days = match t.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if t.year == 0 || t.day == 0 || t.day > days {
        return None;
    }
    let date = format!("{:04}-{:02}-{:02}", t.year, t.month, t.day);
    let Some(time) = t.time else {
        return Some(date);
    };
    if time.hour > 23 || time.minute > 59 || time.second > 59 {
        return None;
    }
    let mut text = format!(
        "{date} {:02}:{:02}:{:02}",
        time.hour, time.minute, time.second
    );
    if time.micro != 0 {
        text.push_str(&format!(".{:06}", time.micro));
    }
    match time.tz {
        None => {}
        Some(None) => text.push_str("+00:00"),
        Some(Some((negative, h, m))) => {
            let total = h * 60 + m;
            if total >= 24 * 60 {
                return None;
            }
            let sign = if negative && total > 0 { '-' } else { '+' };
            text.push_str(&format!("{sign}{:02}:{:02}", total / 60, total % 60));
        }
    }
    Some(text)
}

// ---- The constructors of PyYAML's `SafeConstructor`. ----

/// A key's identity in a Python dict: `1`, `1.0` and `true` are one key; a NaN is unequal
/// to everything, itself included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    None,
    Number(String),
    Float(String),
    Str(String),
    Other(String),
    Unique(usize),
}

struct Constructor {
    expanded: usize,
}

impl Constructor {
    fn count(&mut self, at: Mark) -> Result<(), SecretError> {
        self.expanded += 1;
        if self.expanded > MAX_EXPANDED {
            return Err(error_at(
                at,
                "the document expands to too many values (aliases and merges)",
            ));
        }
        Ok(())
    }

    fn value(&mut self, node: &Node, depth: usize) -> Result<Value, SecretError> {
        self.count(node.at)?;
        if depth > MAX_DEPTH {
            return Err(error_at(node.at, "the document is nested too deeply"));
        }
        let tag = node.tag.strip_prefix(TAG_PREFIX);
        match (&node.body, tag) {
            (Body::Scalar(v), _) => scalar(&node.tag, v, node.at),
            (Body::Seq(items), Some("seq")) => items
                .iter()
                .map(|n| self.value(n, depth + 1))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            (Body::Seq(items), Some("omap" | "pairs")) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Body::Map(pairs) = &item.body else {
                        return Err(error_at(
                            item.at,
                            "expected a mapping of length 1 in an ordered map or pairs",
                        ));
                    };
                    let [(k, v)] = pairs.as_slice() else {
                        return Err(error_at(
                            item.at,
                            "expected a single mapping item in an ordered map or pairs",
                        ));
                    };
                    let k = self.value(k, depth + 1)?;
                    let v = self.value(v, depth + 1)?;
                    out.push(Value::Array(vec![k, v]));
                }
                Ok(Value::Array(out))
            }
            (Body::Map(_), Some("map")) => self.mapping(node, depth).map(Value::Object),
            (Body::Map(_), Some("set")) => {
                let pairs = self.flattened(node, depth)?;
                let mut seen = HashSet::new();
                let mut members = Vec::new();
                for (k, _) in pairs {
                    let (id, _) = self.key(&k, depth + 1)?;
                    if seen.insert(id) {
                        members.push(self.value(&k, depth + 1)?);
                    }
                }
                Ok(Value::Array(members))
            }
            (Body::Seq(_), Some("map" | "set")) => Err(error_at(
                node.at,
                "expected a mapping node, but found a sequence",
            )),
            (Body::Map(_), Some("seq" | "omap" | "pairs")) => Err(error_at(
                node.at,
                "expected a sequence node, but found a mapping",
            )),
            (
                Body::Seq(_) | Body::Map(_),
                Some("str" | "int" | "float" | "bool" | "null" | "binary" | "timestamp"),
            ) => Err(error_at(
                node.at,
                &format!(
                    "expected a scalar node for {}, but found a collection",
                    short_tag(&node.tag)
                ),
            )),
            _ => Err(error_at(
                node.at,
                "could not determine a constructor for the tag (PyYAML's safe_load knows \
                 only the YAML 1.1 types)",
            )),
        }
    }

    /// PyYAML's `flatten_mapping` (6.0.4): the pairs of the mappings merged in with `<<`,
    /// in order, then the node's own pairs (which win over them). A merged pair is dropped
    /// when one with the same key *object* came before: PyYAML compares `id()` of the key
    /// scalar's Python string, which is shared for the same node (an alias used twice) and
    /// for one-character and empty strings (CPython caches those), and not otherwise. So in
    /// `<<: [*a, *b]` a one-character key takes its value from `a`, a longer one from `b`.
    fn flattened(&mut self, node: &Node, depth: usize) -> Result<Vec<Pair>, SecretError> {
        let Body::Map(pairs) = &node.body else {
            return Ok(Vec::new());
        };
        if depth > MAX_DEPTH {
            return Err(error_at(node.at, "the document is nested too deeply"));
        }
        // Each visit counts: merges of merges through aliases would otherwise take
        // exponential time.
        self.count(node.at)?;
        let mut merge = Vec::new();
        let mut seen = HashSet::new();
        let mut own = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if k.tag != "tag:yaml.org,2002:merge" {
                own.push((k.clone(), v.clone()));
                continue;
            }
            let sources: Vec<&Node> = match &v.body {
                Body::Map(_) => vec![v],
                Body::Seq(items) => {
                    for item in items {
                        if !matches!(item.body, Body::Map(_)) {
                            return Err(error_at(
                                item.at,
                                "expected a mapping for merging, but found another node",
                            ));
                        }
                    }
                    items.iter().map(|i| &**i).collect()
                }
                Body::Scalar(_) => {
                    return Err(error_at(
                        v.at,
                        "expected a mapping or list of mappings for merging, but found a scalar",
                    ));
                }
            };
            for source in sources {
                for pair in self.flattened(source, depth + 1)? {
                    if seen.insert(merge_identity(&pair.0)) {
                        merge.push(pair);
                    }
                }
            }
        }
        self.expanded += merge.len();
        self.count(node.at)?;
        merge.extend(own);
        Ok(merge)
    }

    fn mapping(&mut self, node: &Node, depth: usize) -> Result<Map<String, Value>, SecretError> {
        let pairs = self.flattened(node, depth)?;
        let mut index: HashMap<KeyId, usize> = HashMap::new();
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let (id, text) = self.key(&k, depth + 1)?;
            let value = self.value(&v, depth + 1)?;
            match index.get(&id) {
                Some(&i) => entries[i].1 = value,
                None => {
                    index.insert(id, entries.len());
                    entries.push((text, value));
                }
            }
        }
        let mut map = Map::new();
        for (k, v) in entries {
            map.insert(k, v);
        }
        Ok(map)
    }

    /// A key's identity and the text `json.dumps` writes for it. Collections cannot be keys
    /// (Python: "found unhashable key").
    fn key(&mut self, node: &Node, depth: usize) -> Result<(KeyId, String), SecretError> {
        let Body::Scalar(v) = &node.body else {
            return Err(error_at(node.at, "found an unhashable key (a collection)"));
        };
        // A `=` key (the `value` tag) is the string "=" (`flatten_mapping` retags it).
        let tag = if node.tag == "tag:yaml.org,2002:value" {
            "tag:yaml.org,2002:str"
        } else {
            node.tag.as_str()
        };
        if tag == "tag:yaml.org,2002:float" {
            let f = float(v).ok_or_else(|| bad_value(node.at, tag))?;
            self.count(node.at)?;
            return Ok(float_key(f, self.expanded));
        }
        let value = self.value_of_key(tag, v, node.at, depth)?;
        Ok(match (tag.strip_prefix(TAG_PREFIX), value) {
            (_, Value::Null) => (KeyId::None, "null".into()),
            (_, Value::Bool(b)) => (
                KeyId::Number(if b { "1" } else { "0" }.into()),
                b.to_string(),
            ),
            (_, Value::Number(n)) => (KeyId::Number(n.to_string()), n.to_string()),
            (Some("int"), Value::String(s)) => (KeyId::Number(s.clone()), s),
            (Some("str"), Value::String(s)) => (KeyId::Str(s.clone()), s),
            (_, Value::String(s)) => (KeyId::Other(format!("{tag} {s}")), s),
            (_, _) => return Err(error_at(node.at, "found an unhashable key")),
        })
    }

    fn value_of_key(
        &mut self,
        tag: &str,
        v: &str,
        at: Mark,
        depth: usize,
    ) -> Result<Value, SecretError> {
        if depth > MAX_DEPTH {
            return Err(error_at(at, "the document is nested too deeply"));
        }
        self.count(at)?;
        scalar(tag, v, at)
    }
}

/// What PyYAML 6.0.4's merge compares keys by (see `flattened`).
#[derive(Debug, PartialEq, Eq, Hash)]
enum MergeIdentity {
    SharedText(String),
    Node(*const Node),
}

fn merge_identity(key: &Rc<Node>) -> MergeIdentity {
    match &key.body {
        Body::Scalar(v) if v.chars().count() <= 1 && v.chars().all(|c| (c as u32) < 256) => {
            MergeIdentity::SharedText(v.clone())
        }
        _ => MergeIdentity::Node(Rc::as_ptr(key)),
    }
}

/// A float key: equal to an int key when integral (`1.0` is `1`), written by `json.dumps`
/// as `float.__repr__` (`NaN`, `Infinity`, `-Infinity` for the others).
fn float_key(f: f64, unique: usize) -> (KeyId, String) {
    let text = if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        pynum::float_repr(f)
    };
    let id = if f.is_nan() {
        KeyId::Unique(unique)
    } else if f == 0.0 {
        KeyId::Number("0".into())
    } else if f.is_finite() && f.fract() == 0.0 {
        KeyId::Number(format!("{f:.0}"))
    } else {
        KeyId::Float(text.clone())
    };
    (id, text)
}

/// A scalar under its (resolved or explicit) tag.
fn scalar(tag: &str, v: &str, at: Mark) -> Result<Value, SecretError> {
    let bad = || bad_value(at, tag);
    Ok(match tag.strip_prefix(TAG_PREFIX) {
        Some("str") => Value::String(v.to_owned()),
        Some("null") => Value::Null,
        Some("bool") => match v.to_lowercase().as_str() {
            "yes" | "true" | "on" => Value::Bool(true),
            "no" | "false" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        Some("int") => int(v).ok_or_else(bad)?,
        Some("float") => pynum::float_value(float(v).ok_or_else(bad)?),
        Some("timestamp") => Value::String(timestamp_text(v).ok_or_else(bad)?),
        Some("binary") => Value::String(bytes_repr(&binary(v).ok_or_else(bad)?)),
        Some("seq" | "map" | "omap" | "pairs" | "set") => {
            return Err(error_at(
                at,
                &format!(
                    "expected a collection for {}, but found a scalar",
                    short_tag(tag)
                ),
            ));
        }
        _ => {
            return Err(error_at(
                at,
                "could not determine a constructor for the tag (PyYAML's safe_load knows only \
                 the YAML 1.1 types; a plain `<<` or `=` is not a value)",
            ));
        }
    })
}

/// PyYAML's `construct_yaml_int`: `_` dropped, then a sign, then `0`, `0b…`, `0x…`,
/// `0…` (octal), base 60 (`1:30`) or decimal, each through Python's `int()`.
fn int(v: &str) -> Option<Value> {
    let v = v.replace('_', "");
    let negative = v.starts_with('-');
    let v = v.strip_prefix(['-', '+']).unwrap_or(&v);
    // Python indexes `value[0]`: nothing after the sign is an error.
    let first = v.chars().next()?;
    let (inner_negative, magnitude) = if v == "0" {
        (false, BigUint::default())
    } else if let Some(d) = v.strip_prefix("0b") {
        python_int_radix(d, 2)?
    } else if let Some(d) = v.strip_prefix("0x") {
        python_int_radix(d, 16)?
    } else if first == '0' {
        python_int_radix(v, 8)?
    } else if v.contains(':') {
        // Σ part × 60^i, each part through `int()` (unsigned parts only here; PyYAML would
        // also take signed ones under an explicit `!!int`).
        let mut n = BigUint::default();
        for part in v.split(':') {
            let (part_negative, p) = python_int_radix(part, 10)?;
            if part_negative {
                return None;
            }
            n.mul_add(60, 0);
            n.add(&p);
        }
        (false, n)
    } else {
        python_int_radix(v, 10)?
    };
    Some(pynum::int_value(negative != inner_negative, &magnitude))
}

/// Python's `int(text, radix)`: whitespace and a sign allowed, and the radix's own prefix
/// (`0b`, `0o`, `0x`; none for 10). The sign and the magnitude.
fn python_int_radix(text: &str, radix: u32) -> Option<(bool, BigUint)> {
    let t = text.trim_matches(super::py_space);
    let (negative, t) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let prefixes: &[&str] = match radix {
        2 => &["0b", "0B"],
        8 => &["0o", "0O"],
        16 => &["0x", "0X"],
        _ => &[],
    };
    let digits = prefixes.iter().find_map(|p| t.strip_prefix(p)).unwrap_or(t);
    Some((negative, BigUint::parse(digits, radix)?))
}

/// PyYAML's `construct_yaml_float`.
fn float(v: &str) -> Option<f64> {
    let v = v.replace('_', "").to_lowercase();
    let negative = v.starts_with('-');
    let v = v.strip_prefix(['-', '+']).unwrap_or(&v);
    let sign = if negative { -1.0 } else { 1.0 };
    if v == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if v == ".nan" {
        return Some(f64::NAN);
    }
    if v.contains(':') {
        let parts: Vec<f64> = v
            .split(':')
            .map(pynum::python_float)
            .collect::<Option<_>>()?;
        let mut value = 0.0;
        let mut base = 1.0;
        for d in parts.into_iter().rev() {
            value += d * base;
            base *= 60.0;
        }
        return Some(sign * value);
    }
    pynum::python_float(v).map(|f| sign * f)
}

/// `base64.decodebytes` of the scalar (which must be ASCII): characters outside the alphabet
/// are skipped and the padding must be right, as binascii has it.
fn binary(v: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if !v.is_ascii() {
        return None;
    }
    let clean: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(clean).ok()
}

/// Python's `repr(bytes)`: `b'...'` (or `b"..."` when only `'` appears), with `\t`, `\n`,
/// `\r`, `\\` and `\xNN` for the other bytes outside printable ASCII.
fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = format!("b{quote}");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if char::from(c) == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(char::from(c)),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote);
    s
}

/// Whether PyYAML reads `s`, written plain, as the string `s` (for the writer).
pub(super) fn resolves_to_str(s: &str) -> bool {
    resolve_plain(s) == "tag:yaml.org,2002:str"
}
