//! The typed core of a Task Execution, under the five front ends (wrapped mode, `--exec`,
//! embedded mode, the Lambda handler wrapper and the extension).
//!
//! * [`wire`]: the JSON bodies the API takes, as `serde` types.
//! * [`body`]: the body builder, from the settings and the runtime metadata.
//! * [`request`]: one request type per endpoint, owning its method and path.
//! * [`sampling`]: whether an execution is reported at all.
//!
//! This module decides *what* is sent; [`crate::api`] sends it (retries, deadlines, 409s) and
//! keeps the state of an execution while it runs.

pub mod body;
pub mod request;
pub mod sampling;
pub mod wire;

pub use body::Mode;
pub use request::{ApiRequest, Attach, Create, Final, IntoApiRequest, Update};
pub use sampling::Sampling;
pub use wire::ExecutionStatus;
