//! A loopback HTTP server on its own thread and runtime, for the fakes: started on a free
//! port, stopped (gracefully) and joined when dropped. Handlers can take
//! `ConnectInfo<`[`Conn`]`>` to break the connection a request came on instead of answering.

use std::os::fd::{AsRawFd, RawFd};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;

/// The connection a request came on (axum `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct Conn(RawFd);

impl Conn {
    /// Shuts the connection down in both directions at once: the client sees it end
    /// without an answer, as when a server or a proxy dies mid-request.
    pub fn shut_down(self) {
        // SAFETY: the descriptor is the socket of the connection whose request is being
        // handled; it stays open (owned by the server) until the handler has returned, and
        // shutdown(2) touches no memory. A failure (already closed) changes nothing.
        unsafe {
            libc::shutdown(self.0, libc::SHUT_RDWR);
        }
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(stream.io().as_raw_fd())
    }
}

/// A running server.
pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves the router that `make` builds (on the server's runtime) on a free port.
    pub fn start<F>(make: F) -> Self
    where
        F: FnOnce() -> axum::Router + Send + 'static,
    {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("UNWRAP: loopback can be bound");
        listener
            .set_nonblocking(true)
            .expect("UNWRAP: a socket can be non-blocking");
        let addr = listener.local_addr().expect("UNWRAP: bound");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("UNWRAP: a runtime can be built");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("UNWRAP: the listener is usable");
                let app = make().into_make_service_with_connect_info::<Conn>();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
