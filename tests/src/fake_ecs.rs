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
    _server: crate::server::Server,
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
        let server = crate::server::Server::start(move || {
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
            Router::new()
                .route("/v4/task", get(json(task)))
                .route("/v4", get(json(current)))
                .route(
                    "/latest/api/token",
                    axum::routing::put(|| async { "imds-token" }),
                )
                .route("/latest/meta-data/{*path}", get(imds))
        });
        Self {
            base: format!("http://{}", server.addr),
            uri: format!("http://{}/v4", server.addr),
            _server: server,
        }
    }
}
