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

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::config::LogConfig;

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
    merge: bool,
    /// Capture standard output.
    pub stdout: bool,
    /// Capture standard error.
    pub stderr: bool,
    tails: Arc<Mutex<Tails>>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// Truncates a line to `max_len` characters (`max_len - 3` plus `...`), keeping its line
/// ending.
pub(crate) fn truncate_line(line: &str, max_len: usize) -> String {
    let (body, ending) = match line.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (line, ""),
    };
    if body.chars().count() <= max_len {
        return line.to_owned();
    }
    let mut s: String = body.chars().take(max_len.saturating_sub(3)).collect();
    s.push_str("...");
    s.push_str(ending);
    s
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
            merge: log.merge_stdout_and_stderr,
            stdout: !log.ignore_stdout,
            stderr: !log.ignore_stderr,
            tails: Arc::default(),
            readers: Arc::default(),
        })
    }

    /// One tail for both streams (`merge_stdout_and_stderr_logs`).
    pub fn merged(&self) -> bool {
        self.merge
    }

    /// Adds a line (with its line ending) to the tail of `stream`.
    pub fn push(&self, stream: Stream, line: &str) {
        let line = truncate_line(line, self.max_len);
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
                let mut data = &buf[..n];
                while let Some(i) = data.iter().position(|b| *b == b'\n') {
                    partial.extend_from_slice(&data[..=i]);
                    capture.push(stream, &String::from_utf8_lossy(&partial));
                    partial.clear();
                    data = &data[i + 1..];
                }
                partial.extend_from_slice(data);
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
    /// `..._on_timeout` for any status but `SUCCEEDED` and `FAILED`); empty tails are left out.
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
                if let Some(t) = tail {
                    extra.insert(key.into(), serde_json::Value::String(t));
                }
            }
        }
        extra
    }

    /// The last `n` lines of standard output (or of both streams when merged), and of
    /// standard error when kept apart; `None` when empty.
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

    #[test]
    fn tails_keep_the_last_lines() {
        let log = LogConfig {
            level: crate::config::LogLevel::Info,
            log_secrets: false,
            log_input_value: false,
            log_result_value: false,
            include_timestamps: true,
            num_log_lines_sent_on_failure: 2,
            num_log_lines_sent_on_timeout: 0,
            num_log_lines_sent_on_success: 0,
            max_log_line_length: 1000,
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
