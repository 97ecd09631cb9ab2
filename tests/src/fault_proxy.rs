//! A TCP proxy in front of a server the tests do not control (moto_server) or do not want to
//! script request by request (the fake API): it forwards connections, and its link can be
//! cut and restored while a wrapper runs.
//!
//! Changing the [`Mode`] ends every open connection (with a reset), so a client that pools
//! connections sees the change on its next request, as when the real server goes away. The
//! proxy runs on its own thread and runtime and stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards each connection to the upstream server.
    Forward,
    /// Accepts each connection and resets it at once (a server that went away).
    Reset,
    /// Accepts each connection, reads whatever comes and never answers (a hung server).
    Stall,
}

/// A running proxy, stopped when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`, or a URL `http://host:port[/...]`) on a free
    /// loopback port, in `mode`.
    pub fn start(upstream: &str, mode: Mode) -> Self {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("upstream {upstream} is not an IP address and port"));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("UNWRAP: loopback can be bound");
        listener
            .set_nonblocking(true)
            .expect("UNWRAP: a socket can be non-blocking");
        let addr = listener.local_addr().expect("UNWRAP: bound");
        let (mode_tx, mode_rx) = watch::channel(mode);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("UNWRAP: a runtime can be built");
            rt.block_on(async move {
                let listener =
                    TcpListener::from_std(listener).expect("UNWRAP: the listener is usable");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            counter.fetch_add(1, Ordering::SeqCst);
                            tokio::spawn(serve(client, upstream, mode_rx.clone()));
                        }
                    }
                }
            });
            // Dropping the runtime ends every connection still open.
        });
        Self {
            url: format!("http://{addr}"),
            mode: mode_tx,
            accepted,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Switches to `mode`, ending every open connection.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Closes `stream` with a reset rather than an orderly end.
fn reset(stream: TcpStream) {
    // Deprecated because a lingering close blocks the thread; a zero linger never does.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Serves one connection in the current mode, until it ends or the mode changes.
async fn serve(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Reset => reset(client),
        Mode::Stall => {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    _ = mode.changed() => break,
                    n = client.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) { break },
                }
            }
            reset(client);
        }
        Mode::Forward => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                reset(client);
                return;
            };
            let cut = tokio::select! {
                _ = mode.changed() => true,
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
            };
            if cut {
                reset(server);
                reset(client);
            }
        }
    }
}
