//! Status updates over UDP, the protocol of 6.0.2 (README "Reporting to CloudReactor").
//!
//! * [`StatusListener`]: the wrapper and extension side: a task that owns the socket and its
//!   [`MessageBuffer`], and hands each message on, in order, to whoever holds the listener.
//! * [`MessageBuffer`]: bytes from datagrams are accumulated and split into
//!   newline-terminated JSON objects; a message may span datagrams and a datagram may hold
//!   several. Oversize messages and invalid JSON are dropped (with a debug log).
//! * [`StatusUpdater`]: the client side, for Rust programs run by the wrapper or the Lambda
//!   extension: sends counts and messages to `127.0.0.1:<port>`.
//!
//! # Theory of operation
//!
//! [`StatusListener::bind`] spawns the listener's task, which reads datagrams and sends the
//! messages into a bounded channel. When the holder does not read for a while (it is waiting
//! for the API server), the channel fills, the task waits, and the kernel's socket buffer
//! takes the rest, dropping what does not fit, as a socket read by nobody would. The holder
//! reads with [`StatusListener::recv`] (cancel-safe). [`StatusListener::finish`] cancels the
//! task, which first reads what is already waiting in the socket; the holder gets every
//! message that was received, and the counts. Dropping the listener cancels the task.

use crate::config::table as T;
use std::net::UdpSocket;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Messages that may wait between the listener's task and its holder.
const CHANNEL: usize = 1024;

/// Datagrams read at most when a listener finishes (a flood must not keep it going).
const FINAL_DRAIN: usize = 10_000;

/// How many messages a listener took and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages accepted (complete JSON objects within the size limit).
    pub accepted: u64,
    /// Messages dropped (too long, not UTF-8, not a JSON object).
    pub dropped: u64,
}

/// A UDP status update listener on `127.0.0.1`: a task of its own, handing on each message.
pub struct StatusListener {
    port: u16,
    messages: mpsc::Receiver<Map<String, Value>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<Counts>>,
}

impl Drop for StatusListener {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl StatusListener {
    /// Listens on `127.0.0.1:port` (0: a free port), dropping messages longer than
    /// `max_bytes`.
    pub async fn bind(port: u16, max_bytes: usize) -> std::io::Result<Self> {
        let socket = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await?;
        let port = socket.local_addr()?.port();
        let (tx, messages) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(listen(socket, max_bytes, tx, cancel.clone()));
        Ok(Self {
            port,
            messages,
            cancel,
            task: Some(task),
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next message, once one arrives; `None` once the listener has finished.
    /// Cancel-safe: a message is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Map<String, Value>> {
        self.messages.recv().await
    }

    /// Stops listening. What is already waiting in the socket is read first; returns every
    /// message not yet received, and the counts.
    pub async fn finish(&mut self) -> (Vec<Map<String, Value>>, Counts) {
        self.cancel.cancel();
        let mut rest = Vec::new();
        while let Some(m) = self.messages.recv().await {
            rest.push(m);
        }
        let counts = match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Counts::default(),
        };
        (rest, counts)
    }
}

/// The listener's task: reads datagrams until cancelled, then what is left in the socket.
async fn listen(
    socket: tokio::net::UdpSocket,
    max_bytes: usize,
    tx: mpsc::Sender<Map<String, Value>>,
    cancel: CancellationToken,
) -> Counts {
    let mut buffer = MessageBuffer::new(max_bytes);
    let mut data = vec![0u8; 65536];
    let mut received = Vec::new();
    let counts = |b: &MessageBuffer| Counts {
        accepted: b.accepted,
        dropped: b.dropped,
    };
    loop {
        // Cancellation is checked first: once asked to finish, only what already waits is read.
        let n = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = socket.recv(&mut data) => match r {
                Ok(n) => n,
                Err(e) => {
                    // An error that repeats at once must not make this loop spin.
                    debug!("status update listener: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        buffer.push(&data[..n], |m| received.push(m));
        for m in received.drain(..) {
            if tx.send(m).await.is_err() {
                return counts(&buffer);
            }
        }
    }
    for _ in 0..FINAL_DRAIN {
        let Ok(n) = socket.try_recv(&mut data) else {
            break;
        };
        buffer.push(&data[..n], |m| received.push(m));
        for m in received.drain(..) {
            if tx.send(m).await.is_err() {
                return counts(&buffer);
            }
        }
    }
    counts(&buffer)
}

/// Splits received bytes into status messages.
#[derive(Debug)]
pub struct MessageBuffer {
    buf: Vec<u8>,
    max_bytes: usize,
    /// Bytes are being skipped until the next newline (the message was too long).
    skipping: bool,
    /// Messages accepted so far.
    pub accepted: u64,
    /// Messages dropped so far (too long, not UTF-8, not a JSON object).
    pub dropped: u64,
}

impl MessageBuffer {
    /// A buffer that drops messages longer than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_bytes,
            skipping: false,
            accepted: 0,
            dropped: 0,
        }
    }

    /// Adds a datagram's bytes; calls `on_message` for each complete message.
    pub fn push(&mut self, mut data: &[u8], mut on_message: impl FnMut(Map<String, Value>)) {
        while !data.is_empty() {
            let newline = data.iter().position(|b| *b == b'\n');
            let (part, rest, complete) = match newline {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            data = rest;
            if !self.skipping {
                if self.buf.len() + part.len() > self.max_bytes {
                    debug!(
                        "dropping a status update message longer than {} bytes",
                        self.max_bytes
                    );
                    self.dropped += 1;
                    self.buf.clear();
                    self.skipping = true;
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            if complete {
                if self.skipping {
                    self.skipping = false;
                } else {
                    self.finish(&mut on_message);
                }
            }
        }
    }

    fn finish(&mut self, on_message: &mut impl FnMut(Map<String, Value>)) {
        let bytes = std::mem::take(&mut self.buf);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => {
                self.accepted += 1;
                on_message(map);
            }
            _ => {
                debug!("dropping a status update message that is not a JSON object");
                self.dropped += 1;
            }
        }
    }
}

/// Sends status updates to the wrapper or extension listening on `127.0.0.1:<port>`, like the
/// Python `StatusUpdater`.
///
/// Enabled only when `PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER` is `TRUE` (which the wrapper
/// sets for its child when its listener is on); otherwise every call does nothing.
#[derive(Debug)]
pub struct StatusUpdater {
    socket: Option<UdpSocket>,
    port: u16,
    incremental: bool,
    success_count: i64,
    error_count: i64,
    skipped_count: i64,
    expected_count: i64,
}

/// One status update; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusUpdate {
    /// Items processed successfully.
    pub success_count: Option<i64>,
    /// Items that failed.
    pub error_count: Option<i64>,
    /// Items skipped.
    pub skipped_count: Option<i64>,
    /// Items expected in all.
    pub expected_count: Option<i64>,
    /// A message for people (sent only if not empty).
    pub last_status_message: Option<String>,
    /// Extra properties, sent as `other_runtime_metadata`.
    pub extra_props: Option<Map<String, Value>>,
}

impl StatusUpdater {
    /// Configured from the environment. With `incremental`, counts are added to running
    /// totals (zeros ignored) instead of replacing them.
    pub fn from_env(incremental: bool) -> Self {
        Self::from_lookup(incremental, &|k| std::env::var(k).ok())
    }

    /// Configured from a variable lookup.
    pub(crate) fn from_lookup(incremental: bool, lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        // On by choice, or because the Lambda extension listens.
        let enabled = match lookup(T::ENABLE_STATUS_UPDATE_LISTENER.var()) {
            Some(v) => v.trim().eq_ignore_ascii_case("true"),
            None => crate::handoff::extension_attached(lookup),
        };
        let port = lookup(T::STATUS_UPDATE_SOCKET_PORT.var())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(crate::config::DEFAULT_STATUS_UPDATE_PORT);
        Self {
            socket: if enabled { bind() } else { None },
            port,
            incremental,
            success_count: 0,
            error_count: 0,
            skipped_count: 0,
            expected_count: 0,
        }
    }

    /// True when updates are sent.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    fn count(total: &mut i64, incremental: bool, value: Option<i64>) -> Option<i64> {
        let v = value?;
        if incremental {
            if v == 0 {
                return None;
            }
            *total += v;
            Some(*total)
        } else {
            Some(v)
        }
    }

    /// Sends one message line as is (for the Lambda hand-off, [`crate::handoff`]); does
    /// nothing when disabled.
    pub(crate) fn send_line(&mut self, line: &str) {
        if let Some(socket) = &self.socket
            && socket
                .send_to(line.as_bytes(), ("127.0.0.1", self.port))
                .is_err()
        {
            debug!("could not send a status message");
        }
    }

    /// Sends an update (one datagram); does nothing when disabled or there is nothing to
    /// send. A send error resets the socket silently, as in the original.
    pub fn send_update(&mut self, update: StatusUpdate) {
        if self.socket.is_none() {
            return;
        }
        let mut m = Map::new();
        let inc = self.incremental;
        for (key, total, value) in [
            (
                "success_count",
                &mut self.success_count,
                update.success_count,
            ),
            ("error_count", &mut self.error_count, update.error_count),
            (
                "skipped_count",
                &mut self.skipped_count,
                update.skipped_count,
            ),
            (
                "expected_count",
                &mut self.expected_count,
                update.expected_count,
            ),
        ] {
            if let Some(v) = Self::count(total, inc, value) {
                m.insert(key.into(), v.into());
            }
        }
        if let Some(msg) = update.last_status_message.filter(|s| !s.is_empty()) {
            m.insert("last_status_message".into(), msg.into());
        }
        if let Some(extra) = update.extra_props {
            m.insert("other_runtime_metadata".into(), Value::Object(extra));
        }
        if m.is_empty() {
            return;
        }
        let mut line = Value::Object(m).to_string();
        line.push('\n');
        let sent = self
            .socket
            .as_ref()
            .map(|s| s.send_to(line.as_bytes(), ("127.0.0.1", self.port)));
        if matches!(sent, Some(Err(_))) {
            self.socket = bind();
        }
    }

    /// Closes the socket; later updates do nothing.
    pub fn shutdown(&mut self) {
        self.socket = None;
    }
}

fn bind() -> Option<UdpSocket> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(buf: &mut MessageBuffer, chunks: &[&[u8]]) -> Vec<Value> {
        let mut out = Vec::new();
        for c in chunks {
            buf.push(c, |m| out.push(Value::Object(m)));
        }
        out
    }

    #[test]
    fn several_messages_per_datagram_and_split_messages() {
        let mut b = MessageBuffer::new(65536);
        let got = collect(
            &mut b,
            &[b"{\"a\": 1}\n{\"b\"", b": 2}\n", b"{\"c\":3}\n{\"d\":4}\n"],
        );
        assert_eq!(
            got,
            [
                json!({"a": 1}),
                json!({"b": 2}),
                json!({"c": 3}),
                json!({"d": 4})
            ]
        );
        assert_eq!((b.accepted, b.dropped), (4, 0));
    }

    #[test]
    fn invalid_and_oversize_messages_are_dropped() {
        let mut b = MessageBuffer::new(16);
        let big = format!("{{\"x\": \"{}\"}}\n", "y".repeat(40));
        let got = collect(
            &mut b,
            &[
                b"not json\n",
                b"[1]\n",
                b"\xff\xfe\n",
                big.as_bytes(),
                b"{\"ok\":1}\n",
            ],
        );
        assert_eq!(got, [json!({"ok": 1})]);
        assert_eq!(b.dropped, 4);
        // An oversize message split across datagrams is skipped to its end.
        let got = collect(
            &mut b,
            &[b"{\"x\": \"aaaaaaaaaaaa", b"aaaaaaaa\"}\n{\"k\":2}\n"],
        );
        assert_eq!(got, [json!({"k": 2})]);
    }

    #[test]
    fn updater_sends_json_lines_and_counts_incrementally() {
        let receiver = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let port = receiver.local_addr().unwrap().port().to_string();
        let env = |k: &str| match k {
            "PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER" => Some("true".to_owned()),
            "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT" => Some(port.clone()),
            _ => None,
        };
        let mut u = StatusUpdater::from_lookup(true, &env);
        assert!(u.enabled());
        u.send_update(StatusUpdate {
            success_count: Some(2),
            last_status_message: Some("half".into()),
            ..StatusUpdate::default()
        });
        u.send_update(StatusUpdate {
            success_count: Some(3),
            error_count: Some(0),
            ..StatusUpdate::default()
        });
        let mut buf = [0u8; 1024];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"{\"success_count\":2,\"last_status_message\":\"half\"}\n"
        );
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"success_count\":5}\n");
        let disabled = StatusUpdater::from_lookup(false, &|_| Some("1".to_owned()));
        assert!(
            !disabled.enabled(),
            "only TRUE enables it, as in the original"
        );
    }
}
