//! Waiting on `lambda-simulator` by polling its state. Its own `wait_for_*` helpers check the
//! state, then wait for a notification, and a notification sent between the two is lost (the
//! wait then lasts until its timeout); polling every millisecond has no such gap.

use std::time::{Duration, Instant};

use lambda_simulator::{InvocationStatus, Simulator};

/// Waits until invocation `id` is over (its response or error posted, or timed out); returns
/// its status, or `None` after `limit`.
pub async fn invocation_done(
    sim: &Simulator,
    id: &str,
    limit: Duration,
) -> Option<InvocationStatus> {
    let start = Instant::now();
    loop {
        if let Some(state) = sim.get_invocation_state(id).await
            && matches!(
                state.status,
                InvocationStatus::Success | InvocationStatus::Error | InvocationStatus::Timeout
            )
        {
            return Some(state.status);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until every extension has called `/next` after invocation `id`; false after
/// `limit`.
pub async fn extensions_ready(sim: &Simulator, id: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while !sim.are_extensions_ready(id).await {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held (the
/// async form of [`crate::wait_until`], for tests running on a tokio runtime).
pub async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
