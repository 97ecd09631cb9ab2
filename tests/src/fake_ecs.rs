//! A fake ECS task metadata endpoint (v4) serving the fixtures of `tests/fixtures/ecs`:
//! `GET /task` answers the task document, `GET /` the current container's. The same server
//! also answers as an EC2 instance metadata service (IMDSv2): `PUT /latest/api/token` and
//! `GET /latest/meta-data/<path>` (with the token) for a few paths.

use axum::Router;
use axum::routing::get;

/// A running fake endpoint, stopped when dropped.
pub struct FakeEcs {
    /// The value for `ECS_CONTAINER_METADATA_URI_V4`.
    pub uri: String,
    /// The value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub base: String,
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
                let imds = |axum::extract::Path(path): axum::extract::Path<String>,
                            headers: axum::http::HeaderMap| async move {
                    if headers
                        .get("x-aws-ec2-metadata-token")
                        .and_then(|v| v.to_str().ok())
                        != Some("imds-token")
                    {
                        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    let value = match path.as_str() {
                        "instance-id" => "i-0123456789abcdef0",
                        "instance-type" => "t3.micro",
                        "ami-id" => "ami-0abcdef1234567890",
                        "placement/availability-zone" => "us-east-2a",
                        "local-ipv4" => "10.1.2.3",
                        "local-hostname" => "ip-10-1-2-3.us-east-2.compute.internal",
                        "mac" => "0e:49:61:0f:c3:11",
                        _ => return (axum::http::StatusCode::NOT_FOUND, String::new()),
                    };
                    (axum::http::StatusCode::OK, value.to_owned())
                };
                let app = Router::new()
                    .route("/v4/task", get(json(task)))
                    .route("/v4", get(json(current)))
                    .route(
                        "/latest/api/token",
                        axum::routing::put(|| async { "imds-token" }),
                    )
                    .route("/latest/meta-data/{*path}", get(imds));
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
            base: format!("http://{addr}"),
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
