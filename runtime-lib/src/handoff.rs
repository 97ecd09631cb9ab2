//! The hand-off between code inside a Lambda function and `cloudreactor-extension`.
//!
//! When the extension is attached it owns each invocation's Task Execution. Code in the function
//! (the Lambda handler wrapper of feature `lambda`, or any program using the UDP protocol of
//! [`crate::status`]) tells it what only the function knows with status update messages tagged
//! with the request id ([`REQUEST_ID`]):
//!
//! * at the start of the handler, `{"lambda_request_id": "…", "lambda_hand_off": "start"}`, with
//!   the Task Execution UUID found in the input, the log group and the log stream when known. An
//!   extension that sees a start message creates the Task Execution at once (with a PATCH of the
//!   known UUID), and waits for the end message before it sends the final update;
//! * progress, as in wrapped mode: counts, `last_status_message`, extra properties;
//! * at the end, `{"lambda_request_id": "…", "lambda_hand_off": "end"}` with `output_value`, or
//!   with `error_type` and `error_message`.
//!
//! Messages without a request id belong to the invocation in progress.

use crate::config::table as T;
use serde_json::{Map, Value, json};

/// Key of the request id that a message belongs to.
pub const REQUEST_ID: &str = "lambda_request_id";
/// Key of the phase of a hand-off message: `start` or `end`.
pub(crate) const PHASE: &str = "lambda_hand_off";
/// Key of the Task Execution UUID found in the input.
pub const TASK_EXECUTION_UUID: &str = "task_execution_uuid";
/// Key of the log group of the function (only the runtime knows it).
pub(crate) const LOG_GROUP: &str = "log_group";
/// Key of the log stream of the function (only the runtime knows it).
pub(crate) const LOG_STREAM: &str = "log_stream";
/// Key of the error type of a failed invocation.
pub(crate) const ERROR_TYPE: &str = "error_type";
/// Key of the error message of a failed invocation.
pub(crate) const ERROR_MESSAGE: &str = "error_message";

/// Where the extension is installed by its layer.
pub(crate) const EXTENSION_PATH: &str = "/opt/extensions/cloudreactor-extension";

/// True when `cloudreactor-extension` runs next to this function: `PROC_WRAPPER_LAMBDA_EXTENSION`
/// (`TRUE`/`FALSE`) when set, else whether [`EXTENSION_PATH`] exists.
pub(crate) fn extension_attached(env: &dyn Fn(&str) -> Option<String>) -> bool {
    match env(T::LAMBDA_EXTENSION.var()) {
        Some(v) => v.trim().eq_ignore_ascii_case("true"),
        None => std::path::Path::new(EXTENSION_PATH).exists(),
    }
}

/// The phase of a hand-off message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The handler started.
    Start,
    /// The handler returned.
    End,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
        }
    }
}

/// One message of the hand-off, split into what the extension uses itself and the status
/// fields it passes on to the API server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandOff {
    /// The invocation the message belongs to; `None` means the current one.
    pub request_id: Option<String>,
    /// `Some` for start and end messages.
    pub phase: Option<Phase>,
    /// The Task Execution UUID from the input.
    pub task_execution_uuid: Option<String>,
    /// The log group.
    pub log_group: Option<String>,
    /// The log stream.
    pub log_stream: Option<String>,
    /// The error type of a failed invocation.
    pub error_type: Option<String>,
    /// The error message of a failed invocation.
    pub error_message: Option<String>,
    /// Everything else: status fields (`success_count`, `output_value`, ...).
    pub fields: Map<String, Value>,
}

impl HandOff {
    /// Splits a received status message.
    pub fn parse(mut message: Map<String, Value>) -> Self {
        let mut text = |key: &str| match message.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let request_id = text(REQUEST_ID);
        let phase = match text(PHASE).as_deref() {
            Some("start") => Some(Phase::Start),
            Some("end") => Some(Phase::End),
            _ => None,
        };
        let task_execution_uuid = text(TASK_EXECUTION_UUID);
        let log_group = text(LOG_GROUP);
        let log_stream = text(LOG_STREAM);
        let error_type = text(ERROR_TYPE);
        let error_message = text(ERROR_MESSAGE);
        Self {
            request_id,
            phase,
            task_execution_uuid,
            log_group,
            log_stream,
            error_type,
            error_message,
            fields: message,
        }
    }

    /// The message to send, one line of JSON.
    pub fn to_line(&self) -> String {
        let mut m = self.fields.clone();
        for (key, value) in [
            (REQUEST_ID, self.request_id.as_deref()),
            (PHASE, self.phase.map(Phase::as_str)),
            (TASK_EXECUTION_UUID, self.task_execution_uuid.as_deref()),
            (LOG_GROUP, self.log_group.as_deref()),
            (LOG_STREAM, self.log_stream.as_deref()),
            (ERROR_TYPE, self.error_type.as_deref()),
            (ERROR_MESSAGE, self.error_message.as_deref()),
        ] {
            if let Some(v) = value {
                m.insert(key.to_owned(), json!(v));
            }
        }
        let mut line = Value::Object(m).to_string();
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip() {
        let mut fields = Map::new();
        fields.insert("output_value".into(), json!({"a": 1}));
        let h = HandOff {
            request_id: Some("req-1".into()),
            phase: Some(Phase::End),
            error_type: Some("Oops".into()),
            fields,
            ..HandOff::default()
        };
        let line = h.to_line();
        assert!(line.ends_with('\n'));
        let parsed: Map<String, Value> = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(HandOff::parse(parsed), h);
    }

    #[test]
    fn plain_status_messages_have_no_phase() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"success_count": 3, "lambda_hand_off": "later"}"#).unwrap();
        let h = HandOff::parse(m);
        assert_eq!(h.phase, None);
        assert_eq!(h.request_id, None);
        assert_eq!(h.fields["success_count"], 3);
    }
}
