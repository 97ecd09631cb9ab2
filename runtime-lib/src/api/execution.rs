//! One Task Execution on the API server: the client that creates and updates it over
//! [`ApiClient`], reads what the server answers (a 409 on an update means "stop"), and tells
//! Rollbar about trouble. It keeps no timing and no pending fields: that is the reporter's.

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::client::{ApiClient, ApiError, Conflict, RequestKind};
use super::rollbar::{self, Rollbar};
use crate::config::Config;
use crate::task::request::{self, IntoApiRequest};

/// How Task Execution creation ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreationFailure {
    /// The server kept reporting a conflict: do not start (exit 75).
    Conflict,
    /// Any other failure.
    Failed(ApiError),
}

/// What the creation answer tells beyond the execution's UUID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Created {
    /// The Task's UUID.
    pub task_uuid: Option<String>,
    /// The Task's name.
    pub task_name: Option<String>,
    /// The execution's input value (for a run that CloudReactor started with one).
    pub input_value: Option<Value>,
}

/// What an update came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The server took it.
    Done,
    /// It could not be delivered (logged); its fields wait for the next update.
    Failed,
    /// The server answered 409: it wants the execution stopped; what it said about why.
    Stop(Box<Conflict>),
}

/// The Task Execution being reported and the requests that concern it.
pub struct ExecutionClient {
    api: ApiClient,
    uuid: Option<String>,
    rollbar: Option<Rollbar>,
}

impl ExecutionClient {
    /// A client for the execution `uuid`, when CloudReactor created it already, else for the
    /// one [`ExecutionClient::create`] creates.
    pub fn new(api: ApiClient, uuid: Option<String>, config: &Config) -> Self {
        Self {
            api,
            uuid,
            rollbar: Rollbar::new(config),
        }
    }

    /// The execution's UUID, once known.
    pub fn uuid(&self) -> Option<&str> {
        self.uuid.as_deref()
    }

    /// True once retries ran out (requests are then suspended; the final update is not
    /// sent).
    pub(crate) fn exhausted(&self) -> bool {
        self.api.exhausted()
    }

    /// Creates the execution with `body` (a POST), or attaches to the known one (a PATCH).
    pub async fn create(
        &mut self,
        body: Map<String, Value>,
        config: &Config,
    ) -> Result<Created, CreationFailure> {
        let request = request::create_or_attach(self.uuid.as_deref(), body);
        match self.api.send_request(request).await {
            Ok(response) => {
                if self.uuid.is_none() {
                    self.uuid = text(&response, "uuid");
                }
                let Some(uuid) = self.uuid.as_deref() else {
                    return Err(CreationFailure::Failed(ApiError::InvalidResponse(
                        "no uuid in the creation response".into(),
                    )));
                };
                info!(task_execution_uuid = uuid, "created Task Execution {uuid}");
                if let Some(url) = text(&response, "dashboard_url") {
                    info!("the Task Execution on the CloudReactor dashboard: {url}");
                }
                let task = response.get("task").cloned().unwrap_or(Value::Null);
                Ok(Created {
                    task_uuid: text(&task, "uuid"),
                    task_name: text(&task, "name"),
                    input_value: response
                        .get("input_value")
                        .filter(|v| !v.is_null())
                        .cloned(),
                })
            }
            Err(e @ ApiError::Conflict(_)) => {
                self.report(
                    config,
                    "Failed to get permission to start Task due to conflict",
                    &e,
                )
                .await;
                Err(CreationFailure::Conflict)
            }
            Err(e) => {
                self.report(config, "API Server not responding properly", &e)
                    .await;
                Err(CreationFailure::Failed(e))
            }
        }
    }

    /// Sends `body` as an update (`kind` [`RequestKind::Update`]) or as the final update
    /// ([`RequestKind::Final`]) of the execution; [`Sent::Failed`] without one.
    pub async fn update(
        &mut self,
        body: Map<String, Value>,
        kind: RequestKind,
        config: &Config,
    ) -> Sent {
        let Some(uuid) = self.uuid.clone() else {
            return Sent::Failed;
        };
        let request = match kind {
            RequestKind::Final => request::Final { uuid, body }.into_request(),
            _ => request::Update { uuid, body }.into_request(),
        };
        match self.api.send_request(request).await {
            Ok(_) => Sent::Done,
            Err(ApiError::Conflict(conflict)) => {
                match conflict.describe() {
                    Some(why) if conflict.status.is_some() => {
                        warn!("the API server stopped the Task Execution ({why}); stopping");
                    }
                    Some(why) => {
                        warn!("the API server answered 409 to an update ({why}); stopping");
                    }
                    None => {
                        warn!("got response code 409 after the Task Execution started; stopping");
                    }
                }
                Sent::Stop(conflict)
            }
            Err(ApiError::Suspended) => Sent::Failed,
            Err(e) => {
                warn!("could not update the Task Execution: {e}");
                self.report(config, "API Server not responding properly", &e)
                    .await;
                Sent::Failed
            }
        }
    }

    /// Creates an execution that carries its final status (the end of a run whose start was
    /// not reported).
    pub(crate) async fn create_finished(
        &mut self,
        body: Map<String, Value>,
    ) -> Result<(), ApiError> {
        let response = self.api.send_request(request::Create(body)).await?;
        if let Some(url) = text(&response, "dashboard_url") {
            info!("the Task Execution on the CloudReactor dashboard: {url}");
        }
        Ok(())
    }

    /// Reports an API failure to Rollbar, when configured.
    async fn report(&mut self, config: &Config, what: &str, error: &ApiError) {
        let Some(rollbar) = &mut self.rollbar else {
            return;
        };
        let level = match error {
            ApiError::Exhausted(Some(429 | 502 | 503 | 504)) => rollbar::Level::Warning,
            _ => rollbar::Level::Error,
        };
        let data = json!({
            "error": {"reason": error.to_string()},
            "was_conflict": matches!(error, ApiError::Conflict(_)),
            "api_server_retries_exhausted": matches!(error, ApiError::Exhausted(_)),
        });
        let payload = Rollbar::payload(config, self.uuid.as_deref(), what, level, data);
        rollbar.send(&payload).await;
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}
