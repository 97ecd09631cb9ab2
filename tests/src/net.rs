//! Loopback ports for the tests: a free UDP port for a status listener, the URL of a port
//! nothing listens on, and who is bound to a UDP port (read from `/proc/net/udp*`, without
//! binding it). The servers themselves (fake API, fake AWS, proxies) live in their own
//! modules.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// A UDP port that was free on loopback a moment ago, for the status listener of one run.
/// A process never gets the same port twice, so runs at once (threads of one test binary) do
/// not share one even when the kernel hands a just-released port out again.
pub fn free_udp_port() -> u16 {
    static USED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("UNWRAP: loopback UDP can be bound");
        let mut used = USED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if used.insert(port) {
            return port;
        }
    }
}

/// `http://127.0.0.1:<port>` for a TCP port that was free a moment ago: connections to it
/// are refused (an API server that is down).
pub fn refused_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("UNWRAP: loopback TCP can be bound");
    let port = listener.local_addr().expect("UNWRAP: bound").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The local addresses (hex, as the kernel writes them) of the UDP sockets bound to `port`,
/// from this machine's `/proc/net/udp` and `/proc/net/udp6`.
pub fn udp_addresses(port: u16) -> Vec<String> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| udp_addresses_in(&text, port))
        .collect()
}

/// The local addresses bound to `port` in `proc_net_udp`, text in the form of
/// `/proc/net/udp` and `/proc/net/udp6` (as a child may print it): the address in memory
/// order, as hexadecimal.
pub fn udp_addresses_in(proc_net_udp: &str, port: u16) -> Vec<String> {
    let port = format!("{port:04X}");
    proc_net_udp
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|local| local.rsplit_once(':'))
        .filter(|(_, p)| *p == port)
        .map(|(addr, _)| addr.to_owned())
        .collect()
}
