//! The benchmark's load generator (`benches/compare/load.rs`) counts only
//! correct echoes: a server that changes, drops or adds a byte is an error.

#[allow(dead_code)]
#[path = "../benches/compare/load.rs"]
mod load;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// An echo server on its own thread that passes each byte through `f`
/// (with the byte's offset in the connection's stream).
fn server(f: fn(u64, u8) -> Option<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut off = 0u64;
                loop {
                    let n = match sock.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let out: Vec<u8> = buf[..n]
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &b)| f(off + i as u64, b))
                        .collect();
                    off += n as u64;
                    if sock.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn spec() -> load::Spec {
    load::Spec {
        conns: 2,
        inflight: 4,
        size: 64,
        churn: false,
        idle: 3,
    }
}

fn run(addr: SocketAddr) -> Result<load::Outcome, load::LoadError> {
    let ms = Duration::from_millis;
    load::run(addr, spec(), ms(50), ms(150), &mut |_| {})
}

#[test]
fn a_correct_echo_is_counted() {
    let out = run(server(|_, b| Some(b))).expect("a correct echo is not an error");
    assert!(out.msgs > 0);
    assert_eq!(out.bytes, out.msgs * 64);
    assert_eq!(out.hist.len(), out.msgs);
}

#[test]
fn a_wrong_byte_is_an_error_not_a_message() {
    let err = run(server(|off, b| Some(if off == 300 { b ^ 1 } else { b }))).err();
    match err {
        Some(load::LoadError::WrongEcho { offset: 300, .. }) => {}
        other => panic!(
            "expected a wrong echo at byte 300, got {:?}",
            other.map(|e| e.to_string())
        ),
    }
}

#[test]
fn a_dropped_byte_is_an_error() {
    // Dropping a byte shifts the rest of the stream: the next byte is wrong.
    let err = run(server(|off, b| (off != 200).then_some(b))).err();
    assert!(
        matches!(err, Some(load::LoadError::WrongEcho { offset: 200, .. })),
        "got {:?}",
        err.map(|e| e.to_string())
    );
}

#[test]
fn an_extra_byte_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    // Echo, plus the first byte once more: more than was sent.
                    let _ = sock.write_all(&buf[..n]);
                    let _ = sock.write_all(&buf[..1]);
                }
            });
        }
    });
    let err = run(addr).err();
    assert!(
        matches!(
            err,
            Some(load::LoadError::WrongEcho { .. } | load::LoadError::TooMuch { .. })
        ),
        "got {:?}",
        err.map(|e| e.to_string())
    );
}
