//! Soak: a minute of mixed clients (clean, abrupt, reset, idle) against the
//! select echo example; its RSS and descriptor count come back to where
//! they were. `IOPLEX_SOAK_SECS` shortens or lengthens the run (default 60).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One client of kind `k`; returns whether it was served as expected.
fn one_client(addr: SocketAddr, k: u64) -> bool {
    let Ok(mut c) = TcpStream::connect(addr) else {
        return false;
    };
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut greet = [0u8; 8];
    match k % 4 {
        // Clean: a few round trips, then close.
        0 => {
            if c.read_exact(&mut greet).is_err() {
                return false;
            }
            for i in 0..5 {
                let msg = format!("soak {i}");
                c.write_all(msg.as_bytes()).unwrap();
                let mut r = vec![0u8; 9 + msg.len()];
                if c.read_exact(&mut r).is_err() || &r[9..] != msg.as_bytes() {
                    return false;
                }
            }
            true
        }
        // Abrupt: send and vanish without reading.
        1 => c.write_all(&[b'a'; 5000]).is_ok(),
        // Reset: SO_LINGER 0 with data in flight.
        2 => {
            let _ = c.write_all(&[b'r'; 20000]);
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .is_ok()
        }
        // Idle a moment, then leave.
        _ => {
            std::thread::sleep(Duration::from_millis(50));
            c.read_exact(&mut greet).is_ok()
        }
    }
}

fn run_clients(addr: SocketAddr, secs: f64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut k = w;
                while !stop.load(Relaxed) {
                    assert!(one_client(addr, k), "client kind {} was not served", k % 4);
                    count.fetch_add(1, Relaxed);
                    k += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    count.load(Relaxed)
}

/// Waits until the server's fd count is stable at `expect`, or returns what it is.
fn settled_fds(pid: u32, expect: Option<usize>) -> usize {
    let mut last = fds_of(pid);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let now = fds_of(pid);
        if Some(now) == expect || (expect.is_none() && now == last) {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn a_minute_of_mixed_clients_leaves_rss_and_fds_where_they_were() {
    let secs: f64 = std::env::var("IOPLEX_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    // Quiet: tens of thousands of connect lines would drown the test log.
    let mut cmd = std::process::Command::new(example_path("echo_select"));
    cmd.args(["--addr", "127.0.0.1:0"]).env("RUST_LOG", "warn");
    let server = ExampleServer::start_command("echo_select", cmd);
    let pid = server.child.id();
    // Warm-up: the allocator and the slab reach their working size.
    run_clients(server.addr, (secs / 10.0).clamp(1.0, 5.0));
    let fds0 = settled_fds(pid, None);
    let rss0 = rss_kib(pid);
    let served = run_clients(server.addr, secs);
    let fds1 = settled_fds(pid, Some(fds0));
    let rss1 = rss_kib(pid);
    eprintln!(
        "soak: {served} clients in {secs} s; fds {fds0} -> {fds1}; RSS {rss0} KiB -> {rss1} KiB"
    );
    assert_eq!(fds1, fds0, "descriptors leaked");
    // The allocator may keep a little; a leak of even 1 KiB per client would show as megabytes.
    assert!(
        rss1 <= rss0 + 1024,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
}
