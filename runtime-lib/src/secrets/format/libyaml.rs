//! The YAML event stream, from libyaml (the `unsafe-libyaml-norway` port that serde_norway
//! already brings in), with what PyYAML's composer needs and serde cannot give: each
//! scalar's style (plain or quoted), its tag as written, and anchors. This module holds
//! the crate's only contact with that C-style API.

use std::ffi::{CStr, c_char};
use std::marker::PhantomData;
use std::mem::MaybeUninit;

#[allow(clippy::unsafe_removed_from_name)] // the crate's items, briefly named
use unsafe_libyaml_norway as sys;

/// A position in the text (1-based, for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) line: u64,
    pub(super) column: u64,
}

impl Mark {
    fn of(mark: sys::yaml_mark_t) -> Self {
        Mark {
            line: mark.line + 1,
            column: mark.column + 1,
        }
    }
}

/// The node properties of a collection or scalar.
#[derive(Debug, Clone, Default)]
pub(super) struct Props {
    pub(super) anchor: Option<String>,
    /// The tag as libyaml resolved its handle (`!!int` → `tag:yaml.org,2002:int`), or `!`.
    pub(super) tag: Option<String>,
}

/// One parsing event.
#[derive(Debug)]
pub(super) enum Event {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias(String),
    Scalar {
        props: Props,
        value: String,
        /// Plain (unquoted, not a block scalar).
        plain: bool,
    },
    SequenceStart(Props),
    SequenceEnd,
    MappingStart(Props),
    MappingEnd,
}

/// A syntax error: libyaml's own static explanation (which never quotes the text) and where.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub(super) problem: String,
    /// Where, when libyaml knows the line (not for a reader error: bad UTF-8 or a
    /// forbidden character, which it locates by byte offset in `problem`).
    pub(super) at: Option<Mark>,
    pub(super) context: Option<(String, Mark)>,
}

/// An event parser over a borrowed text.
pub(super) struct Parser<'a> {
    /// Boxed: libyaml keeps a pointer to the parser itself (its read handler's data), so it
    /// must not move once initialised.
    raw: Box<MaybeUninit<sys::yaml_parser_t>>,
    initialised: bool,
    _input: PhantomData<&'a [u8]>,
}

impl<'a> Parser<'a> {
    /// A parser of `text`, which it borrows for as long as it lives.
    pub(super) fn new(text: &'a str) -> Result<Self, SyntaxError> {
        let mut parser = Parser {
            raw: Box::new(MaybeUninit::uninit()),
            initialised: false,
            _input: PhantomData,
        };
        let raw = parser.raw.as_mut_ptr();
        // SAFETY: `raw` points to boxed, writable memory of the right type; libyaml
        // initialises it (zeroes it, then allocates its buffers) before anything reads it.
        let ok = unsafe { sys::yaml_parser_initialize(raw).ok };
        if !ok {
            return Err(SyntaxError {
                problem: "cannot allocate the YAML parser".into(),
                at: None,
                context: None,
            });
        }
        parser.initialised = true;
        // SAFETY: the parser is initialised; the input pointer and length describe `text`,
        // which outlives the parser (`'a`), and libyaml only reads it.
        unsafe {
            sys::yaml_parser_set_encoding(raw, sys::YAML_UTF8_ENCODING);
            sys::yaml_parser_set_input_string(raw, text.as_ptr(), text.len() as _);
        }
        Ok(parser)
    }

    /// The next event and where it starts.
    pub(super) fn next_event(&mut self) -> Result<(Event, Mark), SyntaxError> {
        let raw = self.raw.as_mut_ptr();
        let mut event = MaybeUninit::<sys::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised (`new` returned it) and not moved (boxed).
        // `yaml_parser_parse` fills `event` when it succeeds; it is read only then, and
        // deleted once, after its strings were copied out.
        unsafe {
            let previous = (&*raw).error;
            if previous != sys::YAML_NO_ERROR || !sys::yaml_parser_parse(raw, event.as_mut_ptr()).ok
            {
                return Err(syntax_error(raw));
            }
            let ev = event.as_mut_ptr();
            let converted = convert(&*ev);
            let mark = Mark::of((*ev).start_mark);
            sys::yaml_event_delete(ev);
            Ok((converted, mark))
        }
    }
}

impl Parser<'_> {
    /// The next token's span (byte offsets) and whether it is a plain scalar; `None` at
    /// the end of the stream or at a syntax error (which the event parser reports).
    fn next_token(&mut self) -> Option<(usize, usize, bool, bool)> {
        let raw = self.raw.as_mut_ptr();
        let mut token = MaybeUninit::<sys::yaml_token_t>::uninit();
        // SAFETY: as in `next_event`; the token is read only after a successful scan and
        // deleted once.
        unsafe {
            let previous = (&*raw).error;
            if previous != sys::YAML_NO_ERROR || !sys::yaml_parser_scan(raw, token.as_mut_ptr()).ok
            {
                return None;
            }
            let t = token.as_mut_ptr();
            let kind = (*t).type_;
            let plain = kind == sys::YAML_SCALAR_TOKEN
                && (*t).data.scalar.style == sys::YAML_PLAIN_SCALAR_STYLE;
            let end_of_stream = kind == sys::YAML_STREAM_END_TOKEN || kind == sys::YAML_NO_TOKEN;
            let span = ((*t).start_mark.index as usize, (*t).end_mark.index as usize);
            sys::yaml_token_delete(t);
            Some((span.0, span.1, plain, end_of_stream))
        }
    }
}

/// The byte offset of a tab that PyYAML's scanner refuses although libyaml takes it. PyYAML
/// skips only spaces between tokens and inside plain scalars, so a tab there ("found
/// character '\t' that cannot start any token", e.g. `key:\tvalue`, `[1,\t2]`, a tab
/// after a value) is an error; tabs in quoted and block scalars and in comments are fine.
pub(super) fn stray_tab(text: &str) -> Option<usize> {
    if !text.contains('\t') {
        return None;
    }
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let body = &text[bom..];
    let mut scanner = Parser::new(body).ok()?;
    let mut prev_end = 0;
    while let Some((start, end, plain, end_of_stream)) = scanner.next_token() {
        let (start, end) = (start.min(body.len()), end.min(body.len()));
        if start > prev_end {
            let mut comment = false;
            for (i, c) in body.get(prev_end..start)?.char_indices() {
                match c {
                    '#' => comment = true,
                    '\n' | '\r' => comment = false,
                    '\t' if !comment => return Some(bom + prev_end + i),
                    _ => {}
                }
            }
        }
        if plain
            && start < end
            && let Some(i) = body.get(start..end)?.find('\t')
        {
            return Some(bom + start + i);
        }
        prev_end = prev_end.max(end);
        if end_of_stream {
            break;
        }
    }
    None
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        if self.initialised {
            // SAFETY: initialised by `new` and deleted only here.
            unsafe { sys::yaml_parser_delete(self.raw.as_mut_ptr()) }
        }
    }
}

/// The text of a NUL-terminated string libyaml owns, if any.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that lives for the call.
unsafe fn c_text(p: *const u8) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: as the caller promises.
    let s = unsafe { CStr::from_ptr(p as *const c_char) };
    Some(s.to_string_lossy().into_owned())
}

/// # Safety
/// `ev` was filled by a successful `yaml_parser_parse` and not yet deleted.
unsafe fn convert(ev: &sys::yaml_event_t) -> Event {
    // SAFETY (for each union read): the variant read is the one `type_` names.
    unsafe {
        match ev.type_ {
            sys::YAML_STREAM_START_EVENT => Event::StreamStart,
            sys::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
            sys::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
            sys::YAML_ALIAS_EVENT => Event::Alias(c_text(ev.data.alias.anchor).unwrap_or_default()),
            sys::YAML_SCALAR_EVENT => {
                let s = ev.data.scalar;
                let value = if s.value.is_null() {
                    String::new()
                } else {
                    let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                    String::from_utf8_lossy(bytes).into_owned()
                };
                Event::Scalar {
                    props: Props {
                        anchor: c_text(s.anchor),
                        tag: c_text(s.tag),
                    },
                    value,
                    plain: s.style == sys::YAML_PLAIN_SCALAR_STYLE,
                }
            }
            sys::YAML_SEQUENCE_START_EVENT => Event::SequenceStart(Props {
                anchor: c_text(ev.data.sequence_start.anchor),
                tag: c_text(ev.data.sequence_start.tag),
            }),
            sys::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
            sys::YAML_MAPPING_START_EVENT => Event::MappingStart(Props {
                anchor: c_text(ev.data.mapping_start.anchor),
                tag: c_text(ev.data.mapping_start.tag),
            }),
            sys::YAML_MAPPING_END_EVENT => Event::MappingEnd,
            // YAML_STREAM_END_EVENT, and YAML_NO_EVENT once the stream has ended.
            _ => Event::StreamEnd,
        }
    }
}

/// # Safety
/// `raw` is an initialised parser.
unsafe fn syntax_error(raw: *const sys::yaml_parser_t) -> SyntaxError {
    // SAFETY: libyaml's problem and context are null or static strings.
    unsafe {
        let p = &*raw;
        let problem = c_text(p.problem as *const u8).unwrap_or_else(|| "syntax error".into());
        if p.error == sys::YAML_READER_ERROR {
            return SyntaxError {
                problem: format!("{problem} (at byte {})", p.problem_offset),
                at: None,
                context: None,
            };
        }
        SyntaxError {
            problem,
            at: Some(Mark::of(p.problem_mark)),
            context: c_text(p.context as *const u8).map(|c| (c, Mark::of(p.context_mark))),
        }
    }
}
