//! The proxy's own process. The extension binds the proxy's socket and hands it to a child
//! process (`cloudreactor-extension --runtime-api-proxy UPSTREAM`, the socket as file
//! descriptor 3), which forwards the runtime's calls and tells the extension what it saw
//! over a socket pair (descriptor 4, [`encode`] frames).
//!
//! Why a process: the runtime's calls must never depend on the health of the reporting side.
//! If the proxy's process dies (killed, out of memory, a bug), the extension, which still
//! holds the listening socket, starts another on the same socket at once; a call the runtime
//! makes meanwhile waits in the socket's backlog instead of being refused, so a handler that
//! is running when the proxy dies posts its answer to the new one and the function goes on.
//! A call in flight at that moment (the runtime's `/next` long poll, between invocations) is
//! cut, as it would be if Lambda's endpoint closed it. The invocation it belonged to is then
//! reported from telemetry alone. The child ends with the extension (`PR_SET_PDEATHSIG`).
//!
//! When the child cannot be started, or dies within a second of starting three times in a
//! row, the proxy runs on a thread of the extension's own process instead.
//!
//! What the child tells is read on the extension's own async runtime, where it is used, not
//! on the supervising thread: with musl's allocator (the static layer binary), memory that
//! one thread allocates and another frees, at every invocation, made the extension's RSS
//! grow by about 150 bytes per invocation without bound, while the heap in use stayed flat.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{debug, warn};

use super::{MAX_TAP_BYTES, Seen, Sink, serve_blocking};

/// The first argument that makes `cloudreactor-extension` the proxy's process (internal:
/// the extension starts it, with the descriptors below).
pub const ARG: &str = "--runtime-api-proxy";

/// The child's listening socket.
const LISTENER_FD: RawFd = 3;
/// The child's end of the socket pair to the extension.
const TELL_FD: RawFd = 4;

/// A child that lived less than this died "quickly".
const QUICK: Duration = Duration::from_secs(1);
/// After this many quick deaths in a row the proxy runs in the extension's process.
const QUICK_DEATHS: u32 = 3;

/// The largest frame [`read_frame`] accepts: an event or error of [`MAX_TAP_BYTES`], its
/// request id and error type.
const MAX_FRAME: usize = MAX_TAP_BYTES + 64 * 1024;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one frame telling `seen` to `out`: its length (u32, little-endian), a tag byte,
/// then each field (strings and bytes as a u32 length and the bytes; an absent optional
/// string as length `u32::MAX`).
pub fn encode(seen: &Seen, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match seen {
        Seen::Polled => out.push(0),
        Seen::Event {
            request_id,
            body,
            complete,
        } => {
            out.push(1);
            put_bytes(out, request_id.as_bytes());
            put_bytes(out, body);
            out.push(u8::from(*complete));
        }
        Seen::Posted { request_id } => {
            out.push(2);
            put_bytes(out, request_id.as_bytes());
        }
        Seen::Response { request_id } => {
            out.push(3);
            put_bytes(out, request_id.as_bytes());
        }
        Seen::Error {
            request_id,
            error_type,
            body,
        } => {
            out.push(4);
            put_bytes(out, request_id.as_bytes());
            match error_type {
                Some(t) => put_bytes(out, t.as_bytes()),
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            put_bytes(out, body);
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reads fields off a frame's payload.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn len(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n as usize)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn optional_text(&mut self) -> Option<Option<String>> {
        let n = self.len()?;
        if n == u32::MAX {
            return Some(None);
        }
        String::from_utf8(self.take(n as usize)?.to_vec())
            .ok()
            .map(Some)
    }
}

/// The [`Seen`] of one frame's payload (without its length), or `None` if it is not one.
pub fn decode(payload: &[u8]) -> Option<Seen> {
    let mut f = Fields(payload);
    let seen = match f.byte()? {
        0 => Seen::Polled,
        1 => Seen::Event {
            request_id: f.text()?,
            body: Bytes::copy_from_slice(f.bytes()?),
            complete: f.byte()? != 0,
        },
        2 => Seen::Posted {
            request_id: f.text()?,
        },
        3 => Seen::Response {
            request_id: f.text()?,
        },
        4 => Seen::Error {
            request_id: f.text()?,
            error_type: f.optional_text()?,
            body: Bytes::copy_from_slice(f.bytes()?),
        },
        _ => return None,
    };
    f.0.is_empty().then_some(seen)
}

/// The next frame's [`Seen`]; `Ok(None)` at the end of the stream, an error for a broken
/// or oversized frame.
pub async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Seen>> {
    let mut len = [0; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await?;
    decode(&payload)
        .map(Some)
        .ok_or_else(|| std::io::Error::other("a frame that tells nothing known"))
}

/// Reads what the proxy's process `pid` tells, until it closes its end; kills it if what it
/// tells cannot be read (its supervisor then starts another).
async fn read_tells(tells: UnixStream, pid: u32, sink: Sink) {
    let stream = match tells
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(tells))
    {
        Ok(stream) => stream,
        Err(e) => {
            warn!("cannot read what the Runtime API proxy's process tells: {e}");
            return;
        }
    };
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, stream);
    loop {
        match read_frame(&mut reader).await {
            Ok(Some(seen)) => sink(seen),
            Ok(None) => return,
            Err(e) => {
                warn!("the Runtime API proxy's process told something unreadable: {e}");
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return;
            }
        }
    }
}

/// Starts the proxy on `127.0.0.1:port` (0: a free port) in front of `upstream` (Lambda's
/// `AWS_LAMBDA_RUNTIME_API`) in a process of its own, `program` (this binary) run with
/// [`ARG`], and keeps one running; returns the port once it listens. What the proxy sees
/// goes to `sink`, called on the current Tokio runtime (which this must be called from).
pub fn start(program: PathBuf, port: u16, upstream: String, sink: Sink) -> std::io::Result<u16> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let port = listener.local_addr()?.port();
    // Spawned children get `PR_SET_PDEATHSIG` tied to this thread, which never ends before
    // the process does.
    std::thread::Builder::new()
        .name("runtime-api-proxy".into())
        .spawn(move || supervise(&program, listener, upstream, sink, &runtime))?;
    Ok(port)
}

fn supervise(
    program: &Path,
    listener: std::net::TcpListener,
    upstream: String,
    sink: Sink,
    runtime: &tokio::runtime::Handle,
) {
    let mut quick_deaths = 0;
    loop {
        let started = Instant::now();
        let (mut child, tells) = match spawn_child(program, &listener, &upstream) {
            Ok(spawned) => spawned,
            Err(e) => {
                warn!(
                    "cannot start the Runtime API proxy's process ({}): {e}; the proxy runs \
                     in the extension's process",
                    program.display()
                );
                break;
            }
        };
        debug!("the Runtime API proxy runs in process {}", child.id());
        // Read where the extension's main loop runs: what the proxy tells reaches it
        // without another thread in between.
        runtime.spawn(read_tells(tells, child.id(), sink.clone()));
        let status = child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        if started.elapsed() < QUICK {
            quick_deaths += 1;
        } else {
            quick_deaths = 0;
        }
        if quick_deaths >= QUICK_DEATHS {
            warn!(
                "the Runtime API proxy's process ended ({status}) within {QUICK:?} of starting \
                 {QUICK_DEATHS} times in a row; the proxy runs in the extension's process"
            );
            break;
        }
        warn!(
            "the Runtime API proxy's process ended ({status}); starting another on the same \
             socket (a call the runtime had in flight through it was cut; its invocation is \
             reported from telemetry)"
        );
    }
    serve_here(listener, upstream, sink);
}

/// Serves the proxy on this thread, for good.
fn serve_here(listener: std::net::TcpListener, upstream: String, sink: Sink) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            warn!("the Runtime API proxy cannot start: {e}");
            return;
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("the Runtime API proxy cannot listen: {e}");
        return;
    }
    serve_blocking(&runtime, listener, upstream, sink);
}

fn spawn_child(
    program: &Path,
    listener: &std::net::TcpListener,
    upstream: &str,
) -> std::io::Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let listener_fd = listener.as_raw_fd();
    let tell_fd = theirs.as_raw_fd();
    let parent = std::process::id();
    let mut command = Command::new(program);
    command.arg(ARG).arg(upstream).stdin(Stdio::null());
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (fcntl, dup2, prctl, getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // Through copies above both targets, so that neither source is overwritten
            // before it is copied (3 or 4 may be either of them).
            let listener_copy = libc::fcntl(listener_fd, libc::F_DUPFD_CLOEXEC, 10);
            let tell_copy = libc::fcntl(tell_fd, libc::F_DUPFD_CLOEXEC, 10);
            if listener_copy < 0
                || tell_copy < 0
                || libc::dup2(listener_copy, LISTENER_FD) < 0
                || libc::dup2(tell_copy, TELL_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The proxy ends with the extension, which Lambda restarts with the runtime.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the extension ended"));
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    Ok((child, ours))
}

/// The value of integer socket option `option` of `fd`, if it is an open socket.
fn socket_option(fd: RawFd, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `value`, which has that size.
    let done = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    (done == 0).then_some(value)
}

/// Whether the descriptors are what the extension passes: a listening socket and a Unix
/// stream socket.
fn passed_by_the_extension() -> bool {
    socket_option(LISTENER_FD, libc::SO_ACCEPTCONN) == Some(1)
        && socket_option(TELL_FD, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && socket_option(TELL_FD, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}

/// Frames not yet written to the extension, in order.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// How much of the first frame is written.
    written: usize,
    /// The extension is gone: nothing more is written.
    closed: bool,
}

/// Where the proxy's process tells what it saw. A frame goes to the socket at once, on the
/// proxy's thread, when nothing waits before it and the socket takes it whole (the usual
/// case: frames are small, the extension reads at once); otherwise it waits in the queue
/// for the writer thread, so that forwarding never waits for the extension to read.
struct Outbox {
    /// The socket to the extension, non-blocking.
    tells: UnixStream,
    queue: Mutex<Queue>,
    /// Signalled when a frame is queued.
    waiting: Condvar,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tell(&self, seen: &Seen) {
        let mut frame = Vec::new();
        encode(seen, &mut frame);
        let mut queue = self.lock();
        if queue.closed {
            return;
        }
        if queue.frames.is_empty() {
            let written = match (&self.tells).write(&frame) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(_) => {
                    // The extension is gone (and this process goes with it).
                    queue.closed = true;
                    return;
                }
            };
            if written == frame.len() {
                return;
            }
            queue.written = written;
        }
        queue.frames.push_back(frame);
        self.waiting.notify_one();
    }

    /// The writer thread: writes what was queued, in order, as the socket takes it.
    fn drain(&self) {
        loop {
            let mut queue = self.lock();
            while queue.frames.is_empty() {
                queue = self
                    .waiting
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            let written = queue.written;
            let result = match queue.frames.front() {
                Some(frame) => (&self.tells).write(&frame[written..]),
                None => continue,
            };
            match result {
                Ok(n) => {
                    queue.written += n;
                    if queue
                        .frames
                        .front()
                        .is_some_and(|f| queue.written == f.len())
                    {
                        queue.frames.pop_front();
                        queue.written = 0;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drop(queue);
                    self.wait_writable();
                }
                Err(_) => {
                    queue.closed = true;
                    queue.frames.clear();
                    return;
                }
            }
        }
    }

    /// Blocks until the socket can take more (or is broken).
    fn wait_writable(&self) {
        let mut poll = libc::pollfd {
            fd: self.tells.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd, which lives across the call.
        unsafe {
            libc::poll(&raw mut poll, 1, -1);
        }
    }
}

/// The proxy's process (`cloudreactor-extension --runtime-api-proxy UPSTREAM`): serves on
/// descriptor 3 and tells descriptor 4 what it saw, until it is killed (with the
/// extension). Returns an exit code only when it cannot start.
pub fn run(upstream: &str) -> i32 {
    if !passed_by_the_extension() {
        eprintln!(
            "cloudreactor-extension: {ARG} is started by the extension itself, with its \
             listening socket as descriptor {LISTENER_FD} and a socket to the extension as \
             descriptor {TELL_FD}"
        );
        return proc_wrapper::exit_codes::CONFIGURATION_ERROR;
    }
    // SAFETY: both descriptors are open sockets of the kinds the extension passes (checked
    // above) that nothing else in this process owns.
    let (listener, tells) = unsafe {
        (
            std::net::TcpListener::from_raw_fd(LISTENER_FD),
            UnixStream::from_raw_fd(TELL_FD),
        )
    };
    if let Err(e) = tells.set_nonblocking(true) {
        eprintln!("cloudreactor-extension: {ARG}: cannot start: {e}");
        return 1;
    }
    let outbox = Arc::new(Outbox {
        tells,
        queue: Mutex::new(Queue::default()),
        waiting: Condvar::new(),
    });
    let writer = {
        let outbox = outbox.clone();
        std::thread::Builder::new()
            .name("runtime-api-proxy-tells".into())
            .spawn(move || outbox.drain())
    };
    if let Err(e) = writer {
        eprintln!("cloudreactor-extension: {ARG}: cannot start: {e}");
        return 1;
    }
    let sink: Sink = Arc::new(move |seen| outbox.tell(&seen));
    serve_here(listener, upstream.to_owned(), sink);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(seen: Seen) {
        let mut frame = Vec::new();
        encode(&seen, &mut frame);
        encode(&Seen::Polled, &mut frame);
        let mut reader = &frame[..];
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(seen));
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(Seen::Polled));
        assert_eq!(read_frame(&mut reader).await.unwrap(), None);
    }

    /// The next frame of `bytes`.
    async fn read(bytes: &[u8]) -> std::io::Result<Option<Seen>> {
        read_frame(&mut &bytes[..]).await
    }

    #[tokio::test]
    async fn every_kind_of_seen_survives_its_frame() {
        round_trip(Seen::Polled).await;
        round_trip(Seen::Event {
            request_id: "req-1".into(),
            body: Bytes::from_static(b"{\"a\": 1}"),
            complete: true,
        })
        .await;
        round_trip(Seen::Event {
            request_id: "req-2".into(),
            body: Bytes::from(vec![7; MAX_TAP_BYTES]),
            complete: false,
        })
        .await;
        round_trip(Seen::Posted {
            request_id: "req-3".into(),
        })
        .await;
        round_trip(Seen::Response {
            request_id: "req-4".into(),
        })
        .await;
        round_trip(Seen::Error {
            request_id: "req-5".into(),
            error_type: Some("ValueError".into()),
            body: Bytes::from_static(b"{\"errorType\":\"ValueError\"}"),
        })
        .await;
        round_trip(Seen::Error {
            request_id: "req-6".into(),
            error_type: None,
            body: Bytes::new(),
        })
        .await;
        round_trip(Seen::Error {
            request_id: "req-7".into(),
            error_type: Some(String::new()),
            body: Bytes::new(),
        })
        .await;
    }

    #[tokio::test]
    async fn what_the_socket_cannot_take_at_once_waits_and_what_follows_keeps_its_order() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let outbox = Arc::new(Outbox {
            tells: theirs,
            queue: Mutex::new(Queue::default()),
            waiting: Condvar::new(),
        });
        let writer = outbox.clone();
        std::thread::spawn(move || writer.drain());
        // Larger than the socket's buffer, and nobody reads yet.
        let big = Seen::Event {
            request_id: "req-1".into(),
            body: Bytes::from(vec![1; MAX_TAP_BYTES]),
            complete: false,
        };
        outbox.tell(&big);
        assert!(
            !outbox.lock().frames.is_empty(),
            "the rest of the event waits"
        );
        let posted = Seen::Posted {
            request_id: "req-1".into(),
        };
        let response = Seen::Response {
            request_id: "req-1".into(),
        };
        outbox.tell(&posted);
        outbox.tell(&response);
        ours.set_nonblocking(true).unwrap();
        let stream = tokio::net::UnixStream::from_std(ours).unwrap();
        let mut reader = tokio::io::BufReader::new(stream);
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(big));
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(posted));
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(response));
        // Once the queue is empty, a frame goes at once.
        assert!(
            until_empty(&outbox).await,
            "the writer thread wrote everything"
        );
        outbox.tell(&Seen::Polled);
        assert!(outbox.lock().frames.is_empty());
        assert_eq!(read_frame(&mut reader).await.unwrap(), Some(Seen::Polled));
    }

    async fn until_empty(outbox: &Outbox) -> bool {
        for _ in 0..2000 {
            if outbox.lock().frames.is_empty() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_broken_frame_is_an_error_not_a_guess() {
        let mut frame = Vec::new();
        encode(
            &Seen::Response {
                request_id: "req-1".into(),
            },
            &mut frame,
        );
        // Cut short: the stream ended inside a frame.
        assert!(read(&frame[..frame.len() - 1]).await.is_err());
        // An unknown tag.
        assert!(read(&[1, 0, 0, 0, 9]).await.is_err());
        // Bytes left over after the fields.
        let mut long = frame.clone();
        long[0] += 1;
        long.push(0);
        assert!(read(&long).await.is_err());
        // A length no frame has.
        assert!(read(&u32::MAX.to_le_bytes()).await.is_err());
        // Not UTF-8 where a request id goes.
        assert!(read(&[6, 0, 0, 0, 3, 1, 0, 0, 0, 0xff]).await.is_err());
        // An empty stream is the end, not an error.
        assert_eq!(read(&[]).await.unwrap(), None);
    }
}
