//! One request type per endpoint of the Task Execution API (below), each owning its method,
//! its path and the deadline it is retried under, so that no caller spells a path or picks a
//! method (the model is `lambda-runtime`'s `IntoRequest`).
//!
//! | request | method and path | retried under |
//! |---|---|---|
//! | [`Create`] | `POST /api/v1/task_executions/` | the creation timeouts |
//! | [`Attach`] | `PATCH /api/v1/task_executions/{uuid}/` | the creation timeouts |
//! | [`Update`] | `PATCH /api/v1/task_executions/{uuid}/?content=false` | `api_error_timeout` |
//! | [`Final`] | `PATCH /api/v1/task_executions/{uuid}/?content=false` | `api_final_update_timeout` |

use reqwest::Method;
use serde_json::{Map, Value};

use crate::api::RequestKind;

/// A request to the Task Execution API, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// `POST` or `PATCH`.
    pub method: Method,
    /// The path below the base URL.
    pub path: String,
    /// Which deadline the request is retried under.
    pub kind: RequestKind,
    /// The JSON body.
    pub body: Value,
}

/// Something that becomes one [`ApiRequest`].
pub trait IntoApiRequest {
    /// The request.
    fn into_request(self) -> ApiRequest;
}

impl IntoApiRequest for ApiRequest {
    fn into_request(self) -> ApiRequest {
        self
    }
}

/// Percent-encodes an execution UUID for a path (6.0.2 quotes it too): a UUID that came from
/// an event cannot point the request elsewhere.
fn quote(uuid: &str) -> String {
    crate::aws::sigv4::uri_encode(uuid, false)
}

fn execution_path(uuid: &str) -> String {
    format!("/api/v1/task_executions/{}/", quote(uuid))
}

/// Creates a Task Execution (with its Task).
#[derive(Debug, Clone, PartialEq)]
pub struct Create(pub Map<String, Value>);

impl IntoApiRequest for Create {
    fn into_request(self) -> ApiRequest {
        ApiRequest {
            method: Method::POST,
            path: "/api/v1/task_executions/".to_owned(),
            kind: RequestKind::Creation,
            body: Value::Object(self.0),
        }
    }
}

/// "Creates" an execution that CloudReactor already created (its UUID is known): the
/// creation body without the Task, answered with the execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    /// The execution.
    pub uuid: String,
    /// The creation body.
    pub body: Map<String, Value>,
}

impl IntoApiRequest for Attach {
    fn into_request(self) -> ApiRequest {
        ApiRequest {
            method: Method::PATCH,
            path: execution_path(&self.uuid),
            kind: RequestKind::Creation,
            body: Value::Object(self.body),
        }
    }
}

/// Creates the execution, or attaches to it when its UUID is known.
pub fn create_or_attach(uuid: Option<&str>, body: Map<String, Value>) -> ApiRequest {
    match uuid {
        Some(uuid) => Attach {
            uuid: uuid.to_owned(),
            body,
        }
        .into_request(),
        None => Create(body).into_request(),
    }
}

/// An update while the execution runs (heartbeat, status, attempt), or a partial update of
/// fields only (the late Lambda report): the answer has no content.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The execution.
    pub uuid: String,
    /// The fields.
    pub body: Map<String, Value>,
}

impl IntoApiRequest for Update {
    fn into_request(self) -> ApiRequest {
        ApiRequest {
            method: Method::PATCH,
            path: format!("{}?content=false", execution_path(&self.uuid)),
            kind: RequestKind::Update,
            body: Value::Object(self.body),
        }
    }
}

/// The final update of an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Final {
    /// The execution.
    pub uuid: String,
    /// The final status and its fields.
    pub body: Map<String, Value>,
}

impl IntoApiRequest for Final {
    fn into_request(self) -> ApiRequest {
        ApiRequest {
            method: Method::PATCH,
            path: format!("{}?content=false", execution_path(&self.uuid)),
            kind: RequestKind::Final,
            body: Value::Object(self.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_owns_its_method_and_path() {
        let r = Create(Map::new()).into_request();
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::POST, "/api/v1/task_executions/")
        );
        assert_eq!(r.kind, RequestKind::Creation);
        let r = create_or_attach(Some("u-1"), Map::new());
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::PATCH, "/api/v1/task_executions/u-1/")
        );
        assert_eq!(r.kind, RequestKind::Creation);
        let r = Update {
            uuid: "u-1".into(),
            body: Map::new(),
        }
        .into_request();
        assert_eq!(r.path, "/api/v1/task_executions/u-1/?content=false");
        assert_eq!(r.kind, RequestKind::Update);
        let r = Final {
            uuid: "u-1".into(),
            body: Map::new(),
        }
        .into_request();
        assert_eq!(r.kind, RequestKind::Final);
        // A UUID from an event cannot leave its path.
        let r = create_or_attach(Some("../tasks/x?y"), Map::new());
        assert_eq!(r.path, "/api/v1/task_executions/..%2Ftasks%2Fx%3Fy/");
    }
}
