//! CloudReactor reporting for handlers on `lambda_runtime` (feature `lambda`).
//!
//! [`run`] is the one-line form; [`CloudReactorLayer`] is the tower layer for handlers that
//! need their own `Runtime` setup:
//!
//! ```no_run
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use serde_json::{Value, json};
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     Ok(json!({"echo": event.payload}))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     proc_wrapper::lambda::handler::run(service_fn(handler)).await
//! }
//! ```
//!
//! Each invocation becomes a Task Execution with the Lambda metadata of the `Context`
//! (request id, ARN, trace id, and the log group and stream, which only the runtime knows).
//! A Task Execution UUID in the input (`cloudreactor_context.proc_wrapper_params.task_execution.uuid`)
//! is adopted. The handler's value is the `output_value` of a `SUCCEEDED` execution; an error
//! or a panic makes it `FAILED` with its type and message (the panic goes on to the runtime).
//!
//! * Without `cloudreactor-extension`, the wrapper reports by itself with **one** request when
//!   the handler returns (a creation that carries the final status), before the response is
//!   sent, waiting at most `PROC_WRAPPER_LAMBDA_MAX_ADDED_MS` (and not at all while the API
//!   server fails). A report that could not go waits in a backlog ([`crate::lambda::backlog`])
//!   and is sent during later invocations; what is still waiting when Lambda ends the
//!   environment is lost (only an extension hears SHUTDOWN).
//! * With the extension attached (`crate::handoff::extension_attached`), the extension owns
//!   the Task Execution; the wrapper hands it what only the function knows over the local UDP
//!   status channel ([`crate::handoff`]), so each invocation is reported once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Context, Diagnostic, IntoFunctionResponse, LambdaEvent};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::handoff::{HandOff, Phase, extension_attached};
use crate::lambda::backlog::{self, Backlog, Item};
use crate::lambda::{InvocationOutcome, InvocationStart, LambdaReporting};
use crate::managed::execution_uuid_from_input;
use crate::metadata::{LambdaInvocation, RuntimeMetadata};
use crate::process::FinalStatus;
use crate::status::StatusUpdater;
use crate::task::wire::{LambdaCause, LambdaDetails};
use crate::time::UtcTime;

struct Shared {
    env: HashMap<String, String>,
    max_added: Duration,
    extension: bool,
    updater: Mutex<StatusUpdater>,
    reporting: OnceCell<Option<(LambdaReporting, Backlog)>>,
    /// The bound of the backlog (`PROC_WRAPPER_EXTENSION_BACKLOG_MAX`).
    backlog_max: usize,
}

/// The tower layer that reports each invocation of the handler it wraps.
#[derive(Clone)]
pub struct CloudReactorLayer {
    shared: Arc<Shared>,
}

impl Default for CloudReactorLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CloudReactorLayer {
    /// Settings from the process environment (`PROC_WRAPPER_*`, secret locations resolved at
    /// the first invocation).
    pub fn new() -> Self {
        Self::with_env(std::env::vars())
    }

    /// Settings from `vars` instead of the process environment.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let env: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let lookup = |k: &str| env.get(k).cloned();
        let extension = extension_attached(&lookup);
        let (max_added, warning) = crate::lambda::max_added(&lookup);
        if let Some(w) = warning {
            warn!("{w}");
        }
        let updater = StatusUpdater::from_lookup(false, &lookup);
        let (backlog_max, warning) = backlog::max_from_env(&lookup);
        if let Some(w) = warning {
            warn!("{w}");
        }
        Self {
            shared: Arc::new(Shared {
                backlog_max,
                extension,
                updater: Mutex::new(updater),
                reporting: OnceCell::new(),
                max_added,
                env,
            }),
        }
    }
}

impl<S> Layer<S> for CloudReactorLayer {
    type Service = CloudReactor<S>;

    fn layer(&self, inner: S) -> CloudReactor<S> {
        CloudReactor {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A handler service wrapped by [`CloudReactorLayer`].
#[derive(Clone)]
pub struct CloudReactor<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Catches a panic of the wrapped future, so that it can be reported before it goes on.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the handler panicked".to_owned())
}

/// Time left until `deadline_ms` (epoch milliseconds), if known.
fn epoch_ms_remaining(deadline_ms: u64) -> Option<Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Some(Duration::from_millis(deadline_ms).saturating_sub(now))
}

/// How an invocation ended, as the API sees it.
struct Ending {
    output: Option<Value>,
    error_type: Option<String>,
    error_message: Option<String>,
}

fn invocation(ctx: &Context) -> LambdaInvocation {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    LambdaInvocation {
        request_id: ctx.request_id.clone(),
        function_arn: ctx.invoked_function_arn.clone(),
        trace_id: ctx.xray_trace_id.clone(),
        log_group: non_empty(&ctx.env_config.log_group),
        log_stream: non_empty(&ctx.env_config.log_stream),
        cognito_identity: ctx
            .identity
            .as_ref()
            .map(|i| json!({"id": i.identity_id, "pool_id": i.identity_pool_id})),
        client_context: ctx.client_context.as_ref().map(|c| {
            json!({"client": {
                "installation_id": c.client.installation_id,
                "app_title": c.client.app_title,
                "app_version_name": c.client.app_version_name,
                "app_version_code": c.client.app_version_code,
                "app_package_name": c.client.app_package_name,
            }})
        }),
        extra_details: Map::new(),
    }
}

impl Shared {
    fn hand_off(&self, h: &HandOff) {
        let mut updater = self
            .updater
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        updater.send_line(&h.to_line());
    }

    fn start(&self, ctx: &Context, uuid: Option<&String>) {
        if self.extension {
            let inv = invocation(ctx);
            self.hand_off(&HandOff {
                request_id: Some(ctx.request_id.clone()),
                phase: Some(Phase::Start),
                task_execution_uuid: uuid.cloned(),
                log_group: inv.log_group,
                log_stream: inv.log_stream,
                ..HandOff::default()
            });
        }
    }

    async fn end(
        &self,
        ctx: &Context,
        started_at: SystemTime,
        input: Option<Value>,
        uuid: Option<String>,
        ending: Ending,
    ) {
        let mut fields = Map::new();
        if let Some(v) = ending.output.clone() {
            fields.insert("output_value".into(), v);
        }
        if self.extension {
            self.hand_off(&HandOff {
                request_id: Some(ctx.request_id.clone()),
                phase: Some(Phase::End),
                error_type: ending.error_type,
                error_message: ending.error_message,
                fields,
                ..HandOff::default()
            });
            return;
        }
        let reporting = self
            .reporting
            .get_or_init(|| async {
                let function = Some(ctx.env_config.function_name.clone()).filter(|f| !f.is_empty());
                let reporting = LambdaReporting::prepare(self.env.clone(), function).await?;
                let backlog = Backlog::start(reporting.client.clone(), self.backlog_max);
                Some((reporting, backlog))
            })
            .await;
        let Some((reporting, backlog)) = reporting else {
            return;
        };
        // What earlier invocations left in the backlog goes now (the environment was frozen
        // since), whatever happens to this one.
        backlog.kick();
        let env = |k: &str| reporting.env.get(k).cloned();
        let metadata = RuntimeMetadata::lambda(&env, &invocation(ctx));
        let start = InvocationStart {
            metadata,
            started_at: UtcTime::from_system(started_at),
            uuid: uuid.clone(),
            input_value: input.filter(|_| reporting.config.api.send_input_value),
        };
        let sampled_out = !reporting.sampled_in(uuid.is_some());
        let duration = started_at.elapsed().unwrap_or(Duration::ZERO);
        let failed = ending.error_type.is_some();
        let outcome = InvocationOutcome {
            status: if failed {
                FinalStatus::Failed
            } else {
                FinalStatus::Succeeded
            },
            // An error or a panic of the handler (which the wrapper sees as an error type).
            cause: failed.then_some(LambdaCause::HandlerError),
            details: LambdaDetails {
                duration_ms: Some(duration.as_secs_f64() * 1000.0),
                error_type: ending.error_type,
                error_message: ending.error_message,
                ..LambdaDetails::default()
            },
            finished_at: UtcTime::now(),
        };
        // Bounded by the cap and by the invocation's deadline.
        let to_deadline = epoch_ms_remaining(ctx.deadline);
        let limit = to_deadline.map_or(self.max_added, |d| d.min(self.max_added));
        let mut fields = fields;
        if let Some(mb) = crate::process::resources::own_peak_mb() {
            fields.entry("max_memory_mb").or_insert(json!(mb));
        }
        let Some(body) = reporting.finished_body(&start, None, &outcome, fields, sampled_out)
        else {
            return;
        };
        // One request carries the end; while the API server fails, it waits in the backlog
        // for a later invocation and this one does not wait for it.
        let (delivered, sent) = tokio::sync::oneshot::channel();
        let key = ctx.request_id.clone();
        backlog.push(
            &key,
            Item::Start {
                body,
                known_uuid: uuid,
                is_final: true,
            },
            Some(delivered),
        );
        backlog.end(&key);
        let limit = if backlog.healthy() {
            limit
        } else {
            Duration::ZERO
        };
        if tokio::time::timeout(limit, sent).await.is_err() {
            info!(
                request_id = ctx.request_id,
                "the report of the invocation waits in the backlog (at most {} ms are added, {})",
                self.max_added.as_millis(),
                crate::lambda::MAX_ADDED_VAR
            );
        }
    }
}

impl<S, A, R> Service<LambdaEvent<A>> for CloudReactor<S>
where
    S: Service<LambdaEvent<A>, Response = R>,
    S::Future: Send + 'static,
    S::Error: fmt::Display + Send + 'static,
    A: Serialize,
    R: Serialize + Send + 'static,
{
    type Response = R;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<R, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<A>) -> Self::Future {
        let ctx = event.context.clone();
        let input = serde_json::to_value(&event.payload).ok();
        let uuid = input.as_ref().and_then(execution_uuid_from_input);
        let shared = self.shared.clone();
        let started_at = SystemTime::now();
        shared.start(&ctx, uuid.as_ref());
        let future = CatchUnwind(Box::pin(self.inner.call(event)));
        Box::pin(async move {
            let outcome = future.await;
            let ending = match &outcome {
                Ok(Ok(value)) => Ending {
                    output: serde_json::to_value(value).ok(),
                    error_type: None,
                    error_message: None,
                },
                Ok(Err(e)) => Ending {
                    output: None,
                    error_type: Some(short_type_name::<S::Error>()),
                    error_message: Some(e.to_string()),
                },
                Err(panic) => Ending {
                    output: None,
                    error_type: Some("Panic".to_owned()),
                    error_message: Some(panic_message(panic.as_ref())),
                },
            };
            shared.end(&ctx, started_at, input, uuid, ending).await;
            match outcome {
                Ok(result) => result,
                Err(panic) => resume_unwind(panic),
            }
        })
    }
}

/// A type's name without module paths (`Box<dyn Error + Send + Sync>` for
/// `lambda_runtime::Error`).
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        out.push_str(token.rsplit("::").next().unwrap_or(token));
        token.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Runs `handler` on `lambda_runtime`, reporting each invocation to CloudReactor (settings
/// from the process environment).
pub async fn run<S, A, R, B, St, D, E>(handler: S) -> Result<(), lambda_runtime::Error>
where
    S: Service<LambdaEvent<A>, Response = R>,
    S::Future: Send + 'static,
    S::Error: Into<Diagnostic> + fmt::Debug + fmt::Display + Send + 'static,
    A: for<'de> serde::Deserialize<'de> + Serialize,
    R: IntoFunctionResponse<B, St> + Serialize + Send + 'static,
    B: Serialize,
    St: futures_util::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    lambda_runtime::run(CloudReactorLayer::new().layer(handler)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_without_paths() {
        assert_eq!(
            short_type_name::<lambda_runtime::Error>(),
            "Box<dyn Error + Send + Sync>"
        );
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(short_type_name::<String>(), "String");
    }
}
