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

/// A UDP port free on loopback (for the status listener of a test).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("UNWRAP: a free port")
        .port()
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

/// The local addresses (hex, as the kernel writes them) of the UDP sockets bound to `port`,
/// from `/proc/net/udp` and `/proc/net/udp6`: who listens there, without binding the port.
pub fn udp_addresses(port: u16) -> Vec<String> {
    let port = format!("{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(1))
                .filter_map(|local| local.rsplit_once(':'))
                .filter(|(_, p)| *p == port)
                .map(|(addr, _)| addr.to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}
