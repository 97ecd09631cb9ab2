//! Log capture (README "Reporting to CloudReactor", "Log tails"): the child's standard output
//! and error are passed through to the wrapper's own, byte for byte and as they arrive, while
//! the last lines are kept for `debug_log_tail` / `error_log_tail`.
//!
//! With merged logs (the default) the child gets one pipe for both streams, as in 6.0.2, so
//! the tail keeps the order in which it wrote its lines; what it writes to either stream then
//! reaches the wrapper's standard output. With separate logs, each stream has its own pipe
//! and reaches the wrapper's stream of the same name.
//!
//! Each captured stream has a reader task; the tails are shared behind a mutex and persist
//! across attempts. [`LogCapture::finish`] waits (boundedly) for the readers to reach the end
//! of their pipes, since grandchildren may keep a pipe open after the child exits.
//!
//! What is sent is not always what was captured ([`LogCapture::final_tails`]): each tail is
//! the last lines (each truncated to `max_log_line_length`), with the resolved secret values
//! replaced by `[REDACTED]` (unless `log_secrets`; see [`crate::secrets::redact`]), then cut
//! to `max_log_tail_bytes` from the end, at a line start. Redaction works on whole lines, never
//! on the chunks read from a pipe, so a value split between two reads is still found; a line
//! that is truncated is redacted before, so that truncation cannot leave a part of a value.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::config::LogConfig;
use crate::secrets::Redactor;

/// Which tail a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and standard error when merged).
    Out,
    /// Standard error, when kept apart.
    Err,
}

#[derive(Debug, Default)]
struct Tails {
    out: VecDeque<String>,
    err: VecDeque<String>,
}

/// The capture settings and tails of a run.
#[derive(Debug, Clone)]
pub struct LogCapture {
    lines: usize,
    max_len: usize,
    /// The byte cap of each tail sent; `None`: no cap.
    max_tail_bytes: Option<usize>,
    merge: bool,
    /// Secret values may be sent (`log_secrets`): nothing is redacted.
    log_secrets: bool,
    /// The secret values hidden in the tails ([`LogCapture::with_redactor`]).
    redactor: Option<Redactor>,
    /// Capture standard output.
    pub stdout: bool,
    /// Capture standard error.
    pub stderr: bool,
    tails: Arc<Mutex<Tails>>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// The text and the line ending of `line`.
fn split_ending(line: &str) -> (&str, &str) {
    match line.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (line, ""),
    }
}

/// Whether [`truncate_line`] shortens `line`.
fn is_too_long(line: &str, max_len: usize) -> bool {
    split_ending(line).0.chars().nth(max_len).is_some()
}

/// Truncates a line to `max_len` characters (`max_len - 3` plus `...`), keeping its line
/// ending.
pub(crate) fn truncate_line(line: &str, max_len: usize) -> String {
    let (body, ending) = split_ending(line);
    if !is_too_long(line, max_len) {
        return line.to_owned();
    }
    let mut s: String = body.chars().take(max_len.saturating_sub(3)).collect();
    s.push_str("...");
    s.push_str(ending);
    s
}

/// The end of `text` that fits in `cap` bytes: whole lines, from the end; when even the last
/// line does not fit, its last `cap` bytes at most, from a character boundary.
pub(crate) fn cap_tail(text: &str, cap: usize) -> &str {
    let Some(min_start) = text.len().checked_sub(cap).filter(|m| *m > 0) else {
        return text;
    };
    // The first line that starts at `min_start` or later (a line starts after a newline).
    let line_start = text.as_bytes()[min_start - 1..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| min_start + i)
        .filter(|start| *start < text.len());
    let start = line_start.unwrap_or_else(|| {
        (min_start..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len())
    });
    &text[start..]
}

impl LogCapture {
    /// The capture `log` asks for, or `None` when no lines would ever be sent.
    pub fn from_config(log: &LogConfig) -> Option<Self> {
        let lines = log
            .num_log_lines_sent_on_failure
            .max(log.num_log_lines_sent_on_timeout)
            .max(log.num_log_lines_sent_on_success);
        if lines == 0 || (log.ignore_stdout && log.ignore_stderr) {
            return None;
        }
        Some(Self {
            lines,
            max_len: log.max_log_line_length,
            max_tail_bytes: log.max_log_tail_bytes,
            merge: log.merge_stdout_and_stderr,
            log_secrets: log.log_secrets,
            redactor: None,
            stdout: !log.ignore_stdout,
            stderr: !log.ignore_stderr,
            tails: Arc::default(),
            readers: Arc::default(),
        })
    }

    /// Hides the values of `redactor` (the secret values of the settings,
    /// [`crate::settings::Settings::redactor`]) in the tails sent, unless the log settings
    /// allow secrets (`log_secrets`). Call it before the capture reads anything; the values
    /// the redactor learns later (a re-load before a retry) are hidden too.
    #[must_use]
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = (!self.log_secrets).then_some(redactor);
        self
    }

    /// One tail for both streams (`merge_stdout_and_stderr_logs`).
    pub fn merged(&self) -> bool {
        self.merge
    }

    /// `text` with the secret values hidden (unchanged without a redactor).
    fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.redactor {
            Some(r) => r.redact(text),
            None => std::borrow::Cow::Borrowed(text),
        }
    }

    /// Adds a line (with its line ending) to the tail of `stream`.
    pub fn push(&self, stream: Stream, line: &str) {
        // Most lines are redacted when the tail is sent; one that is truncated now, before,
        // so that no part of a secret value survives the cut.
        let line = if is_too_long(line, self.max_len) {
            truncate_line(&self.redact(line), self.max_len)
        } else {
            line.to_owned()
        };
        let mut tails = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tail = match (stream, self.merge) {
            (Stream::Err, false) => &mut tails.err,
            _ => &mut tails.out,
        };
        if tail.len() == self.lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// Adds the lines that `chunk`, read from the pipe of `stream`, completes: `partial` holds
    /// the bytes after the last line ending read so far, which begin the next line. Lines
    /// are made whole before they reach the tail, so what spans two reads (a secret value
    /// too) is one line.
    fn push_chunk(&self, stream: Stream, partial: &mut Vec<u8>, chunk: &[u8]) {
        let mut data = chunk;
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            partial.extend_from_slice(&data[..=i]);
            self.push(stream, &String::from_utf8_lossy(partial));
            partial.clear();
            data = &data[i + 1..];
        }
        partial.extend_from_slice(data);
    }

    /// Starts a reader for a pipe from the child: everything read is written to the
    /// wrapper's stdout (`Out`) or stderr (`Err`) and split into lines for the tail.
    pub fn read(&self, fd: OwnedFd, stream: Stream) {
        let capture = self.clone();
        let handle = tokio::spawn(async move {
            let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
                return;
            };
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match stream {
                Stream::Out => Box::new(tokio::io::stdout()),
                Stream::Err => Box::new(tokio::io::stderr()),
            };
            let mut buf = vec![0u8; 16 * 1024];
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Pass-through errors (a closed stdout) must not stop the capture.
                let _ = out.write_all(&buf[..n]).await;
                let _ = out.flush().await;
                capture.push_chunk(stream, &mut partial, &buf[..n]);
            }
            if !partial.is_empty() {
                capture.push(stream, &String::from_utf8_lossy(&partial));
            }
        });
        self.readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
    }

    /// Waits up to `limit` for every reader to reach the end of its pipe.
    pub async fn finish(&self, limit: Duration) {
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let all = futures_util::future::join_all(handles);
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// The tails a final update of `status` carries: `debug_log_tail` and `error_log_tail`,
    /// with as many lines as `num_log_lines_sent_on_*` asks for that status (as in 6.0.2,
    /// `..._on_timeout` for any status but `SUCCEEDED` and `FAILED`), the secret values
    /// hidden (unless `log_secrets`) and cut to `max_log_tail_bytes`; empty tails are left
    /// out.
    pub fn final_tails(
        &self,
        log: &LogConfig,
        status: crate::process::FinalStatus,
    ) -> serde_json::Map<String, serde_json::Value> {
        use crate::process::FinalStatus;
        let lines = match status {
            FinalStatus::Succeeded => log.num_log_lines_sent_on_success,
            FinalStatus::Failed => log.num_log_lines_sent_on_failure,
            _ => log.num_log_lines_sent_on_timeout,
        };
        let mut extra = serde_json::Map::new();
        if lines > 0 {
            let (debug_tail, error_tail) = self.tails(lines);
            for (key, tail) in [
                ("debug_log_tail", debug_tail),
                ("error_log_tail", error_tail),
            ] {
                if let Some(t) = tail.map(|t| self.to_send(&t)).filter(|t| !t.is_empty()) {
                    extra.insert(key.into(), serde_json::Value::String(t));
                }
            }
        }
        extra
    }

    /// A tail as it is sent: redacted, then cut to the byte cap.
    fn to_send(&self, tail: &str) -> String {
        let redacted = match self.redact(tail) {
            // `[REDACTED]` may be longer than the value it replaces: the lines stay within
            // `max_log_line_length`.
            std::borrow::Cow::Owned(text) => std::borrow::Cow::Owned(
                text.split_inclusive('\n')
                    .map(|line| truncate_line(line, self.max_len))
                    .collect(),
            ),
            borrowed => borrowed,
        };
        match self.max_tail_bytes {
            Some(cap) => cap_tail(&redacted, cap).to_owned(),
            None => redacted.into_owned(),
        }
    }

    /// The last `n` lines of standard output (or of both streams when merged), and of
    /// standard error when kept apart, as captured; `None` when empty.
    pub(crate) fn tails(&self, n: usize) -> (Option<String>, Option<String>) {
        let tails = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let take = |q: &VecDeque<String>| {
            let s: String = q.iter().skip(q.len().saturating_sub(n)).cloned().collect();
            (!s.is_empty()).then_some(s)
        };
        (take(&tails.out), take(&tails.err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_line_endings() {
        assert_eq!(truncate_line("abcdefgh\n", 6), "abc...\n");
        assert_eq!(truncate_line("abcdef\n", 6), "abcdef\n");
        assert_eq!(truncate_line("abcdefgh", 6), "abc...");
    }

    /// Failure tails of up to 10 lines, merged, lines of at most 1000 characters, no byte
    /// cap: each test changes what it is about.
    fn log_config() -> LogConfig {
        LogConfig {
            level: crate::config::LogLevel::Info,
            format: crate::config::LogFormat::Text,
            log_secrets: false,
            log_input_value: false,
            log_result_value: false,
            include_timestamps: true,
            num_log_lines_sent_on_failure: 10,
            num_log_lines_sent_on_timeout: 0,
            num_log_lines_sent_on_success: 0,
            max_log_line_length: 1000,
            max_log_tail_bytes: None,
            merge_stdout_and_stderr: true,
            ignore_stdout: false,
            ignore_stderr: false,
        }
    }

    /// The failure's `debug_log_tail` after `lines`, with the secrets `secrets`.
    fn sent(log: &LogConfig, secrets: &[&str], lines: &[&str]) -> Option<String> {
        let c = LogCapture::from_config(log)
            .unwrap()
            .with_redactor(Redactor::new(secrets.iter().copied()));
        for l in lines {
            c.push(Stream::Out, l);
        }
        c.final_tails(log, crate::process::FinalStatus::Failed)
            .get("debug_log_tail")
            .map(|v| v.as_str().unwrap().to_owned())
    }

    #[test]
    fn secrets_are_redacted_in_the_tails_sent_unless_log_secrets() {
        let log = log_config();
        let lines = ["password: hunter22\n", "short 12345, token=s3cr3t-token!\n"];
        let secrets = ["hunter22", "s3cr3t-token", "12345"];
        assert_eq!(
            sent(&log, &secrets, &lines).unwrap(),
            "password: [REDACTED]\nshort 12345, token=[REDACTED]!\n"
        );
        let log_secrets = LogConfig {
            log_secrets: true,
            ..log_config()
        };
        assert_eq!(
            sent(&log_secrets, &secrets, &lines).unwrap(),
            lines.concat()
        );
        // Separate tails are both redacted.
        let apart = LogConfig {
            merge_stdout_and_stderr: false,
            ..log_config()
        };
        let c = LogCapture::from_config(&apart)
            .unwrap()
            .with_redactor(Redactor::new(["hunter22"]));
        c.push(Stream::Out, "out hunter22\n");
        c.push(Stream::Err, "err hunter22\n");
        let tails = c.final_tails(&apart, crate::process::FinalStatus::Failed);
        assert_eq!(tails["debug_log_tail"], "out [REDACTED]\n");
        assert_eq!(tails["error_log_tail"], "err [REDACTED]\n");
    }

    #[test]
    fn a_secret_split_between_two_reads_is_redacted() {
        let log = log_config();
        let c = LogCapture::from_config(&log)
            .unwrap()
            .with_redactor(Redactor::new(["split-secret"]));
        let mut partial = Vec::new();
        c.push_chunk(Stream::Out, &mut partial, b"first\nthe split-se");
        c.push_chunk(Stream::Out, &mut partial, b"cret here\nlast");
        c.push(Stream::Out, &String::from_utf8_lossy(&partial));
        let tails = c.final_tails(&log, crate::process::FinalStatus::Failed);
        assert_eq!(tails["debug_log_tail"], "first\nthe [REDACTED] here\nlast");
    }

    #[test]
    fn truncation_leaves_no_part_of_a_secret() {
        let log = LogConfig {
            max_log_line_length: 20,
            ..log_config()
        };
        // Cut at 17 characters, the line would end inside the value ("key=0123456789ab...").
        let tail = sent(
            &log,
            &["0123456789abcdef"],
            &["key=0123456789abcdef and more\n"],
        )
        .unwrap();
        assert_eq!(tail, "key=[REDACTED] an...\n");
        // A line that redaction lengthens stays within the line length.
        let tail = sent(&log, &["abcdef"], &["abcdef abcdef abcd\n"]).unwrap();
        assert_eq!(tail, "[REDACTED] [REDAC...\n");
        assert!(tail.trim_end().chars().count() <= 20, "{tail}");
    }

    #[test]
    fn values_the_redactor_learns_later_are_redacted_too() {
        let log = log_config();
        let redactor = Redactor::new(["first-secret"]);
        let c = LogCapture::from_config(&log)
            .unwrap()
            .with_redactor(redactor.clone());
        c.push(Stream::Out, "first-secret second-secret\n");
        // A re-load before a retry adds to the same handle.
        redactor.add(["second-secret"]);
        let tails = c.final_tails(&log, crate::process::FinalStatus::Failed);
        assert_eq!(tails["debug_log_tail"], "[REDACTED] [REDACTED]\n");
    }

    #[test]
    fn the_byte_cap_keeps_whole_lines_from_the_end() {
        let text = "one\ntwo\nthree\n";
        assert_eq!(cap_tail(text, 100), text);
        assert_eq!(cap_tail(text, text.len()), text);
        assert_eq!(cap_tail(text, text.len() - 1), "two\nthree\n");
        assert_eq!(cap_tail(text, 10), "two\nthree\n");
        assert_eq!(cap_tail(text, 9), "three\n");
        assert_eq!(cap_tail(text, 6), "three\n");
        // The last line alone is too long: its end, from a character boundary.
        assert_eq!(cap_tail(text, 5), "hree\n");
        assert_eq!(cap_tail("ab\nxéé\n", 4), "é\n");
        assert_eq!(cap_tail("ab\nxéé\n", 5), "éé\n");
        assert_eq!(cap_tail("no ending", 3), "ing");
        assert_eq!(cap_tail("é", 1), "");
    }

    #[test]
    fn the_byte_cap_applies_after_redaction() {
        // "aaaa\n" and "pw [REDACTED]\n" take 5 + 14 = 19 bytes.
        let lines = ["first\n", "aaaa\n", "pw 1234567\n"];
        let capped = |cap| LogConfig {
            max_log_tail_bytes: Some(cap),
            ..log_config()
        };
        assert_eq!(
            sent(&capped(19), &["1234567"], &lines).unwrap(),
            "aaaa\npw [REDACTED]\n"
        );
        // The redacted line is longer than the value: with 18 bytes only it fits, although
        // the last two lines as written (16 bytes) would.
        assert_eq!(
            sent(&capped(18), &["1234567"], &lines).unwrap(),
            "pw [REDACTED]\n"
        );
        assert_eq!(
            sent(&capped(18), &[], &lines).unwrap(),
            "aaaa\npw 1234567\n"
        );
        // A cap smaller than the last line keeps that line's end.
        assert_eq!(sent(&capped(4), &[], &lines).unwrap(), "567\n");
        // A tail that the cap empties is not sent; 0 bytes sends no tail.
        assert_eq!(sent(&capped(1), &[], &["é\n", "é"]), None);
        assert_eq!(sent(&capped(0), &[], &lines), None);
        // The cap is of bytes, not characters: 3 lines of "éé" take 5 bytes each.
        assert_eq!(
            sent(&capped(10), &[], &["éé\n", "éé\n", "éé\n"]).unwrap(),
            "éé\néé\n"
        );
    }

    #[test]
    fn the_byte_cap_and_redaction_apply_to_both_tails() {
        let log = LogConfig {
            merge_stdout_and_stderr: false,
            // "out 2 [REDACTED]\n": 17 bytes.
            max_log_tail_bytes: Some(17),
            ..log_config()
        };
        let c = LogCapture::from_config(&log)
            .unwrap()
            .with_redactor(Redactor::new(["hunter22"]));
        for l in ["out 1\n", "out 2 hunter22\n"] {
            c.push(Stream::Out, l);
        }
        for l in ["err 1 hunter22\n", "err 2\n"] {
            c.push(Stream::Err, l);
        }
        let tails = c.final_tails(&log, crate::process::FinalStatus::Failed);
        assert_eq!(tails["debug_log_tail"], "out 2 [REDACTED]\n");
        assert_eq!(tails["error_log_tail"], "err 2\n");
    }

    #[test]
    fn secrets_at_the_start_or_end_of_a_tail_are_redacted() {
        let log = log_config();
        let secrets = ["start-secret", "end-secret"];
        assert_eq!(
            sent(&log, &secrets, &["start-secret and\n", "then end-secret"]).unwrap(),
            "[REDACTED] and\nthen [REDACTED]"
        );
        // A tail of the last lines may begin inside a value on several lines: its long
        // lines are hidden one by one (the short line is not: see `crate::secrets::redact`).
        let log = LogConfig {
            num_log_lines_sent_on_failure: 3,
            ..log_config()
        };
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBg\nabc\n-----END KEY-----";
        let lines: Vec<String> = format!("x\n{key}\nafter\n")
            .split_inclusive('\n')
            .map(str::to_owned)
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(
            sent(&log, &[key], &lines).unwrap(),
            "abc\n[REDACTED]\nafter\n"
        );
    }

    #[test]
    fn the_longer_of_overlapping_values_wins_and_unicode_is_kept_whole() {
        let log = log_config();
        // "abcdef" inside "abcdefgh": the longer one is hidden, without a left-over "gh".
        assert_eq!(
            sent(&log, &["abcdef", "abcdefgh"], &["x abcdefgh y abcdef\n"]).unwrap(),
            "x [REDACTED] y [REDACTED]\n"
        );
        assert_eq!(
            sent(&log, &["pässwört", "wört-ünd"], &["ä pässwört-ünd ö\n"]).unwrap(),
            "ä [REDACTED] ö\n"
        );
    }

    #[test]
    fn no_lines_means_no_tails_whatever_the_secrets() {
        // No count asks for lines: nothing is captured.
        let none = LogConfig {
            num_log_lines_sent_on_failure: 0,
            ..log_config()
        };
        assert!(LogCapture::from_config(&none).is_none());
        // A count for another status: nothing is sent for this one.
        let log = LogConfig {
            num_log_lines_sent_on_failure: 0,
            num_log_lines_sent_on_success: 2,
            ..log_config()
        };
        let c = LogCapture::from_config(&log)
            .unwrap()
            .with_redactor(Redactor::new(["hunter22"]));
        c.push(Stream::Out, "hunter22\n");
        assert!(
            c.final_tails(&log, crate::process::FinalStatus::Failed)
                .is_empty()
        );
        // Nothing written: no tail.
        let c = LogCapture::from_config(&log_config()).unwrap();
        assert!(
            c.final_tails(&log_config(), crate::process::FinalStatus::Failed)
                .is_empty()
        );
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let log = LogConfig {
            level: crate::config::LogLevel::Info,
            format: crate::config::LogFormat::Text,
            log_secrets: false,
            log_input_value: false,
            log_result_value: false,
            include_timestamps: true,
            num_log_lines_sent_on_failure: 2,
            num_log_lines_sent_on_timeout: 0,
            num_log_lines_sent_on_success: 0,
            max_log_line_length: 1000,
            max_log_tail_bytes: None,
            merge_stdout_and_stderr: false,
            ignore_stdout: false,
            ignore_stderr: false,
        };
        let c = LogCapture::from_config(&log).unwrap();
        for l in ["one\n", "two\n", "three\n"] {
            c.push(Stream::Out, l);
        }
        c.push(Stream::Err, "bad\n");
        assert_eq!(
            c.tails(2),
            (Some("two\nthree\n".into()), Some("bad\n".into()))
        );
        assert_eq!(c.tails(1).0.as_deref(), Some("three\n"));
        let none = LogConfig {
            num_log_lines_sent_on_failure: 0,
            ..log
        };
        assert!(LogCapture::from_config(&none).is_none());
    }
}
