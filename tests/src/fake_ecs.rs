//! A fake ECS task metadata endpoint (v4) serving the fixtures of `tests/fixtures/ecs`:
//! `GET /task` answers the task document, `GET /` the current container's.

use axum::Router;
use axum::routing::get;

/// A running fake endpoint, stopped when dropped.
pub struct FakeEcs {
    /// The value for `ECS_CONTAINER_METADATA_URI_V4`.
    pub uri: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The text of a fixture of `tests/fixtures/ecs`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/ecs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

impl FakeEcs {
    /// Serves the task fixture and `container` (a file name in the fixture folder) as the
    /// current container.
    pub fn start(container: &str) -> Self {
        Self::start_with_task(fixture("task.json"), container)
    }

    /// Like [`FakeEcs::start`], with the given task document.
    pub fn start_with_task(task: String, container: &str) -> Self {
        let current = fixture(container);
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
                let json = |body: String| {
                    move || async move { ([("Content-Type", "application/json")], body) }
                };
                let app = Router::new()
                    .route("/v4/task", get(json(task)))
                    .route("/v4", get(json(current)));
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("UNWRAP: the listener is usable");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Self {
            uri: format!("http://{addr}/v4"),
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for FakeEcs {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
