//! A loopback HTTP server on its own thread and runtime, for the fakes: started on a free
//! port, stopped (gracefully) and joined when dropped.

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
                let _ = axum::serve(listener, make())
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
