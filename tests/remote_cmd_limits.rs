//! remote_cmd against clients that queue work: a bounded queue per
//! connection, and a fair line for the worker slots, so flooders cannot
//! hold everyone else off.

mod common;
mod peers;

use common::*;
use peers::connect_from;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads one length-prefixed frame.
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let len = u32::from_be_bytes(read_n(s, 4).try_into().unwrap());
    read_n(s, len as usize)
}

/// How long `echo hi` from a newcomer at 127.0.0.2 takes to be answered.
fn newcomer_answered(addr: std::net::SocketAddr) -> Duration {
    let t = Instant::now();
    let mut newcomer = connect_from("127.0.0.2", addr);
    newcomer.write_all(b"echo hi\n").unwrap();
    assert_eq!(read_frame(&mut newcomer), b"hi\n");
    t.elapsed()
}

#[test]
fn eight_connections_queueing_a_thousand_sleeps_each_are_closed_and_a_newcomer_is_answered() {
    let server = ExampleServer::start("remote_cmd", &["--addr", "127.0.0.1:0"]);
    let flood = "sleep 9\n".repeat(1000);
    let mut attackers: Vec<TcpStream> = (0..8).map(|_| connect(server.addr)).collect();
    for a in &mut attackers {
        a.write_all(flood.as_bytes()).unwrap();
    }
    for a in &mut attackers {
        let f = read_frame(a);
        assert_eq!(f, b"error: more than 8 commands sent ahead: closing\n");
        // Closed: the rest of its 1,000 lines never run.
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(a, &mut rest);
    }
    let waited = newcomer_answered(server.addr);
    eprintln!("newcomer answered {waited:?} after 8 x 1,000 `sleep 9`");
    // At worst a command each attacker got running before its close: one
    // `--timeout-ms` (2 s). Before the bound: "busy" for ~33 minutes.
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn a_newcomer_waits_one_turn_behind_eight_busy_connections_never_busy() {
    let server = ExampleServer::start(
        "remote_cmd",
        &["--addr", "127.0.0.1:0", "--timeout-ms", "1000"],
    );
    // Eight clients each keep eight `sleep 9` queued (as many as allowed):
    // every slot busy for 8 s, and always a next command waiting.
    let mut hogs: Vec<TcpStream> = (0..8).map(|_| connect(server.addr)).collect();
    for h in &mut hogs {
        h.write_all("sleep 9\n".repeat(8).as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200)); // all eight slots taken
    let waited = newcomer_answered(server.addr);
    eprintln!("newcomer behind 8 x 8 queued `sleep 9` (1 s each): answered in {waited:?}");
    // One turn: the running commands end at their 1 s timeout.
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
    // The hogs are still served, in order.
    let killed = b"error: `sleep` ran longer than 1s: killed\n";
    for h in &mut hogs {
        assert_eq!(read_frame(h), killed);
    }
}
