//! A small client of the Lambda Extensions API (`2020-01-01`) and the Telemetry API
//! subscription (`2022-07-01`).
//!
//! `/next` is a long poll that may last hours while the environment is frozen, so the client
//! has no request timeout.

use reqwest::Client;
use serde_json::{Value, json};

/// Why a call to the Extensions API failed.
#[derive(Debug)]
pub enum RuntimeApiError {
    /// `AWS_LAMBDA_RUNTIME_API` is not set: not running inside Lambda.
    NotInLambda,
    /// No answer.
    Http(String),
    /// An answer other than 200.
    Status(u16, String),
    /// An answer that could not be understood.
    Invalid(String),
}

impl std::fmt::Display for RuntimeApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInLambda => write!(
                f,
                "AWS_LAMBDA_RUNTIME_API is not set; the extension only runs inside AWS Lambda"
            ),
            Self::Http(e) => write!(f, "could not reach the Lambda Extensions API: {e}"),
            Self::Status(code, body) => {
                write!(f, "the Lambda Extensions API answered {code}: {body}")
            }
            Self::Invalid(e) => write!(f, "unexpected answer from the Lambda Extensions API: {e}"),
        }
    }
}

impl std::error::Error for RuntimeApiError {}

/// What registration returned.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// `Lambda-Extension-Identifier`, sent with every later call.
    pub extension_id: String,
    /// The function's name.
    pub function_name: Option<String>,
    /// The function's version.
    pub function_version: Option<String>,
    /// The function's handler.
    pub handler: Option<String>,
    /// The AWS account id (requested with the `accountId` feature).
    pub account_id: Option<String>,
}

/// An event from `/next`.
#[derive(Debug, Clone, PartialEq)]
pub enum NextEvent {
    /// An invocation started.
    Invoke(Invoke),
    /// The environment shuts down.
    Shutdown {
        /// `spindown`, `timeout`, `failure` or anything else, in lower case.
        reason: String,
        /// Epoch milliseconds by which the extension must have exited (0 if unknown).
        deadline_ms: u64,
    },
}

/// An INVOKE event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invoke {
    /// The request id.
    pub request_id: String,
    /// Epoch milliseconds of the function's timeout (0 if unknown).
    pub deadline_ms: u64,
    /// The ARN the function was invoked with.
    pub invoked_function_arn: String,
    /// The X-Ray trace header, if any.
    pub trace_id: Option<String>,
}

/// Parses the body of a `/next` answer. Unknown event types are an error; the reason of a
/// SHUTDOWN is lower-cased and may be anything.
pub fn parse_next(body: &[u8]) -> Result<NextEvent, RuntimeApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| RuntimeApiError::Invalid(e.to_string()))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let deadline_ms = v.get("deadlineMs").and_then(Value::as_u64).unwrap_or(0);
    match text("eventType").as_deref() {
        Some("INVOKE") => Ok(NextEvent::Invoke(Invoke {
            request_id: text("requestId")
                .ok_or_else(|| RuntimeApiError::Invalid("INVOKE without requestId".into()))?,
            deadline_ms,
            invoked_function_arn: text("invokedFunctionArn").unwrap_or_default(),
            trace_id: v
                .get("tracing")
                .and_then(|t| t.get("value"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })),
        Some("SHUTDOWN") => Ok(NextEvent::Shutdown {
            reason: text("shutdownReason")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            deadline_ms,
        }),
        other => Err(RuntimeApiError::Invalid(format!(
            "unknown event type {other:?}"
        ))),
    }
}

/// The answer to a telemetry subscription that was not an HTTP error: a refusal when its
/// body names an `errorType`, as the Runtime Interface Emulator's stub answers (202,
/// `{"errorType": "Telemetry.NotSupported", ...}`) and then delivers no platform record.
pub fn refused_subscription(status: u16, body: &str) -> Result<(), RuntimeApiError> {
    let refused = serde_json::from_str::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("errorType").is_some());
    if refused {
        Err(RuntimeApiError::Status(status, body.trim().to_owned()))
    } else {
        Ok(())
    }
}

/// The base URL from `AWS_LAMBDA_RUNTIME_API`: `host:port` (as in Lambda) or a URL (as
/// `cargo lambda watch` sets it).
pub fn base_url(runtime_api: &str) -> String {
    let trimmed = runtime_api.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

/// The Extensions API client.
#[derive(Clone)]
pub struct RuntimeApi {
    http: Client,
    base: String,
    id: String,
}

fn http_error(e: &reqwest::Error) -> RuntimeApiError {
    RuntimeApiError::Http(e.to_string())
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, RuntimeApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(RuntimeApiError::Status(status.as_u16(), body))
}

impl RuntimeApi {
    /// A client of the API at `AWS_LAMBDA_RUNTIME_API`.
    pub fn new(runtime_api: Option<&str>) -> Result<Self, RuntimeApiError> {
        let runtime_api = runtime_api
            .filter(|s| !s.trim().is_empty())
            .ok_or(RuntimeApiError::NotInLambda)?;
        let http = Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| http_error(&e))?;
        Ok(Self {
            http,
            base: base_url(runtime_api),
            id: String::new(),
        })
    }

    /// Registers for INVOKE and SHUTDOWN under `name` (the file name in `/opt/extensions`).
    pub async fn register(&mut self, name: &str) -> Result<Registration, RuntimeApiError> {
        let response = self
            .http
            .post(format!("{}/2020-01-01/extension/register", self.base))
            .header("Lambda-Extension-Name", name)
            .header("Lambda-Extension-Accept-Feature", "accountId")
            .json(&json!({"events": ["INVOKE", "SHUTDOWN"]}))
            .send()
            .await
            .map_err(|e| http_error(&e))?;
        let response = check(response).await?;
        let id = response
            .headers()
            .get("Lambda-Extension-Identifier")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                RuntimeApiError::Invalid("no Lambda-Extension-Identifier header".into())
            })?;
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        self.id.clone_from(&id);
        Ok(Registration {
            extension_id: id,
            function_name: text("functionName"),
            function_version: text("functionVersion"),
            handler: text("handler"),
            account_id: text("accountId"),
        })
    }

    /// Subscribes to the platform telemetry, delivered to `port` on `sandbox.localdomain`
    /// every 25 ms.
    pub async fn subscribe_telemetry(&self, port: u16) -> Result<(), RuntimeApiError> {
        let body = json!({
            "schemaVersion": "2022-12-13",
            "types": ["platform"],
            "buffering": {"maxItems": 1000, "maxBytes": 262_144, "timeoutMs": 25},
            "destination": {
                "protocol": "HTTP",
                "URI": format!("http://sandbox.localdomain:{port}/"),
            },
        });
        let response = self
            .http
            .put(format!("{}/2022-07-01/telemetry", self.base))
            .header("Lambda-Extension-Identifier", &self.id)
            .json(&body)
            .send()
            .await
            .map_err(|e| http_error(&e))?;
        let response = check(response).await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        refused_subscription(status, &text)
    }

    /// Waits for the next event (no timeout).
    pub async fn next(&self) -> Result<NextEvent, RuntimeApiError> {
        let response = self
            .http
            .get(format!("{}/2020-01-01/extension/event/next", self.base))
            .header("Lambda-Extension-Identifier", &self.id)
            .send()
            .await
            .map_err(|e| http_error(&e))?;
        let response = check(response).await?;
        let body = response.bytes().await.map_err(|e| http_error(&e))?;
        parse_next(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_the_runtime_api_variable() {
        assert_eq!(base_url("169.254.100.1:9001"), "http://169.254.100.1:9001");
        assert_eq!(
            base_url("http://127.0.0.1:9000/.rt/"),
            "http://127.0.0.1:9000/.rt"
        );
        assert!(matches!(
            RuntimeApi::new(None),
            Err(RuntimeApiError::NotInLambda)
        ));
        assert!(matches!(
            RuntimeApi::new(Some(" ")),
            Err(RuntimeApiError::NotInLambda)
        ));
    }

    #[test]
    fn invoke_and_shutdown_events() {
        let invoke = br#"{"eventType":"INVOKE","deadlineMs":1676051,"requestId":"3da1f2dc",
            "invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest",
            "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5f35ae12;Sampled=1"}}"#;
        assert_eq!(
            parse_next(invoke).unwrap(),
            NextEvent::Invoke(Invoke {
                request_id: "3da1f2dc".into(),
                deadline_ms: 1_676_051,
                invoked_function_arn:
                    "arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest".into(),
                trace_id: Some("Root=1-5f35ae12;Sampled=1".into()),
            })
        );
        // cargo lambda sends deadline 0 and an empty trace.
        let bare = br#"{"eventType":"INVOKE","deadlineMs":0,"requestId":"r","invokedFunctionArn":"f","tracing":{"type":"X-Amzn-Trace-Id","value":""}}"#;
        let NextEvent::Invoke(i) = parse_next(bare).unwrap() else {
            panic!("not an invoke")
        };
        assert_eq!((i.deadline_ms, i.trace_id), (0, None));
        for (reason, expected) in [
            ("SPINDOWN", "spindown"),
            ("timeout", "timeout"),
            ("Failure", "failure"),
            ("recompiling function", "recompiling function"),
        ] {
            let body = format!(
                r#"{{"eventType":"SHUTDOWN","shutdownReason":"{reason}","deadlineMs":42}}"#
            );
            assert_eq!(
                parse_next(body.as_bytes()).unwrap(),
                NextEvent::Shutdown {
                    reason: expected.into(),
                    deadline_ms: 42
                }
            );
        }
        assert!(parse_next(br#"{"eventType":"RESTORE"}"#).is_err());
        assert!(parse_next(b"not json").is_err());
    }

    #[test]
    fn the_emulators_stub_answer_is_a_refused_subscription() {
        // Lambda's answer, and cargo lambda's.
        assert!(refused_subscription(200, "OK").is_ok());
        assert!(refused_subscription(200, "").is_ok());
        assert!(refused_subscription(200, r#"{"ok":true}"#).is_ok());
        // The Runtime Interface Emulator's.
        let stub = r#"{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}"#;
        let Err(e) = refused_subscription(202, stub) else {
            panic!("the stub's answer is not a subscription")
        };
        assert!(e.to_string().contains("Telemetry.NotSupported"), "{e}");
    }
}
