//! Clients from other loopback addresses (127.0.0.2, …): per-address limits
//! are only seen when a newcomer comes from somewhere else than the flood.
//! Also the server's own threads and memory, read from /proc.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A client socket bound to `from` (a loopback address) before it connects,
/// with the tests' timeouts.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A field of /proc/PID/status as a number (`Threads`, `VmRSS` in KiB).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
