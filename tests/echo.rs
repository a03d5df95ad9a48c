//! The foundation's behaviour suite, on every backend in `common::backends()`:
//! the notes' select echo server (examples/echo_select.rs) driven by real clients.

mod common;

#[allow(dead_code)]
#[path = "../examples/echo_select.rs"]
mod echo_select;

use common::*;
use echo_select::SelectEcho;
use ioplex::Config;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// A small deterministic PRNG (xorshift), so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Payload bytes never contain `r`, so `response:` prefixes split unambiguously.
const ALPHABET: &[u8] = b"abcdefghijklmnopq0123456789ABCDEFGHIJKLMNOPQ";

fn payload(rng: &mut Rng, len: usize, tag: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect();
    let t = format!("{tag:06}");
    for (d, s) in v.iter_mut().zip(t.bytes()) {
        *d = s;
    }
    v
}

/// Splits a reply stream into its payloads, checking each is a
/// `response:` + at most 1024 bytes, as the notes' `recv(1024)` would give.
fn payloads(stream: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(stream).expect("ascii replies");
    assert!(
        text.starts_with("response:") || text.is_empty(),
        "reply starts with {:?}",
        &text[..text.len().min(20)]
    );
    let mut out = Vec::new();
    for chunk in text.split("response:").skip(1) {
        assert!(
            chunk.len() <= 1024,
            "a reply chunk of {} bytes",
            chunk.len()
        );
        out.extend_from_slice(chunk.as_bytes());
    }
    out
}

const GREETING: &[u8] = b"hello...";

#[test]
fn greeting_and_responses_are_byte_for_byte_what_the_notes_client_sees() {
    for backend in backends() {
        let server = Server::start(SelectEcho, echo_select::config(backend));
        // The notes' client: connect, recv the greeting, then send / recv(1024).
        let script = r#"
import socket, sys
s = socket.socket()
s.settimeout(10)
s.connect(('127.0.0.1', int(sys.argv[1])))
print(repr(s.recv(1024)))
for msg in ['hi', 'abc', '你好']:
    s.sendall(bytes(msg, encoding='utf-8'))
    print(repr(s.recv(1024)))
s.close()
"#;
        let out = python(
            script,
            &[&server.addr.port().to_string()],
            Duration::from_secs(20),
        );
        assert_eq!(
            out,
            "b'hello...'\nb'response:hi'\nb'response:abc'\nb'response:\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd'\n",
            "on {backend}"
        );
        server.stop();
    }
}

#[test]
fn two_hundred_clients_each_get_all_their_own_replies_in_order() {
    for backend in backends() {
        let server = Server::start(SelectEcho, echo_select::config(backend));
        let addr = server.addr;
        std::thread::scope(|s| {
            for client in 0..200u32 {
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1));
                    let mut c = connect(addr);
                    assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
                    let mut sent = Vec::new();
                    let mut got = Vec::new();
                    for _ in 0..100 {
                        let len = 6 + rng.below(1019) as usize;
                        let msg = payload(&mut rng, len, client);
                        c.write_all(&msg).unwrap();
                        sent.extend_from_slice(&msg);
                        // Replies for one message: at least its bytes plus one prefix.
                        let mut reply = read_n(&mut c, msg.len() + 9);
                        while payloads(&reply).len() < msg.len() {
                            reply.extend(read_n(&mut c, 9));
                        }
                        got.extend(payloads(&reply));
                    }
                    assert_eq!(got, sent, "client {client} on {backend}");
                });
            }
        });
        let m = server.metrics.snapshot();
        assert_eq!(m.accepted, 200);
        server.stop();
    }
}

#[test]
fn slow_reader_of_8_mib_gets_it_all_while_others_are_answered() {
    const TOTAL: usize = 8 << 20;
    for backend in backends() {
        let server = Server::start(SelectEcho, echo_select::config(backend));
        let mut big = server.connect();
        assert_eq!(read_n(&mut big, GREETING.len()), GREETING);
        let mut rng = Rng(7);
        let data = payload(&mut rng, TOTAL, 1);
        let mut writer = big.try_clone().unwrap();
        let to_send = data.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&to_send).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        // Another client is answered while the big one is being served.
        let mut other = server.connect();
        assert_eq!(read_n(&mut other, GREETING.len()), GREETING);
        let mut received = Vec::with_capacity(TOTAL + TOTAL / 100);
        let mut buf = vec![0u8; 64 << 10];
        let mut round = 0u32;
        loop {
            let n = big.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            round += 1;
            if round % 16 == 0 {
                other.write_all(b"ping").unwrap();
                assert_eq!(read_n(&mut other, 13), b"response:ping", "on {backend}");
                std::thread::sleep(Duration::from_millis(1)); // read slowly
            }
        }
        sender.join().unwrap();
        assert!(
            payloads(&received) == data,
            "8 MiB echo corrupted on {backend}"
        );
        let m = server.metrics.snapshot();
        assert_eq!(
            m.output_limit, 0,
            "the slow reader was cut off on {backend}"
        );
        server.stop();
    }
}

#[test]
fn clients_that_vanish_mid_stream_leave_the_others_and_no_fd_behind() {
    for backend in backends() {
        let server = Server::start(SelectEcho, echo_select::config(backend));
        let port = server.addr.port();
        assert_eq!(fds_on_port(port), 1, "the listener");
        let mut steady = server.connect();
        assert_eq!(read_n(&mut steady, GREETING.len()), GREETING);
        for i in 0..50 {
            let mut c = server.connect();
            // Half leave with unread replies queued (their close sends RST),
            // half after a clean exchange.
            c.write_all(&vec![b'x'; 200_000]).unwrap();
            if i % 2 == 0 {
                let _ = read_n(&mut c, GREETING.len());
            }
            drop(c);
            steady.write_all(b"still here").unwrap();
            assert_eq!(
                read_n(&mut steady, 19),
                b"response:still here",
                "on {backend}"
            );
        }
        drop(steady);
        let m = &server.metrics;
        assert!(
            wait_for(Duration::from_secs(10), || {
                let s = m.snapshot();
                s.closed == s.accepted
            }),
            "connections not closed on {backend}: {:?}",
            m.snapshot()
        );
        assert_eq!(fds_on_port(port), 1, "fd leak on {backend}");
        server.stop();
    }
}

#[test]
fn shutdown_flushes_queued_output_returns_and_closes_every_fd() {
    const TOTAL: usize = 4 << 20;
    for backend in backends() {
        let config = Config {
            output_high_water: 16 << 20,
            max_output: 32 << 20,
            ..echo_select::config(backend)
        };
        let server = Server::start(SelectEcho, config);
        let port = server.addr.port();
        let mut c = server.connect();
        assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
        let data = payload(&mut Rng(3), TOTAL, 2);
        let mut w = c.try_clone().unwrap();
        let d = data.clone();
        let sender = std::thread::spawn(move || w.write_all(&d).unwrap());
        // Not reading yet: the replies pile up in the kernel and the loop.
        let m = server.metrics.clone();
        assert!(wait_for(Duration::from_secs(10), || m.snapshot().bytes_in
            == TOTAL as u64));
        sender.join().unwrap();
        let metrics = server.metrics.clone();
        let stopper = std::thread::spawn(move || server.stop());
        let got = read_to_eof(&mut c);
        stopper.join().expect("run returned");
        assert!(
            payloads(&got) == data,
            "queued output lost at shutdown on {backend}"
        );
        assert_eq!(metrics.snapshot().closed, 1);
        drop(c);
        assert_eq!(fds_on_port(port), 0, "fd leak after shutdown on {backend}");
    }
}

#[test]
fn idle_timeout_closes_the_idle_connection_and_not_the_active_one() {
    for backend in backends() {
        let config = Config {
            idle_timeout: Some(Duration::from_millis(300)),
            ..echo_select::config(backend)
        };
        let server = Server::start(SelectEcho, config);
        let mut idle = server.connect();
        let mut active = server.connect();
        assert_eq!(read_n(&mut idle, GREETING.len()), GREETING);
        assert_eq!(read_n(&mut active, GREETING.len()), GREETING);
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            active.write_all(b"tick").unwrap();
            assert_eq!(read_n(&mut active, 13), b"response:tick", "on {backend}");
        }
        // 1 s passed: the idle one got EOF, the active one is still served.
        let mut buf = [0u8; 1];
        assert_eq!(
            idle.read(&mut buf).unwrap(),
            0,
            "idle connection still open on {backend}"
        );
        assert_eq!(server.metrics.snapshot().idle_timeouts, 1, "on {backend}");
        server.stop();
    }
}

fn round_trips(c: &mut TcpStream, n: usize) {
    for i in 0..n {
        let msg = format!("m{i:05}");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(
            read_n(c, 9 + msg.len()),
            format!("response:{msg}").as_bytes()
        );
    }
}

#[test]
fn steady_state_echo_makes_no_epoll_ctl_and_one_read_one_write_per_message() {
    let server = Server::start(SelectEcho, Config::default());
    let mut c = server.connect();
    assert_eq!(read_n(&mut c, GREETING.len()), GREETING);
    round_trips(&mut c, 10); // warm
    let before = server.metrics.snapshot();
    const N: usize = 2000;
    round_trips(&mut c, N);
    let d = server.metrics.snapshot().since(&before);
    // Registered READABLE|WRITABLE once at accept: no epoll_ctl after that.
    assert_eq!(
        d.registrations + d.reregistrations + d.deregistrations,
        0,
        "{d:?}"
    );
    // A short read counts as drained: no extra read to see WouldBlock.
    assert!(d.reads <= N as u64, "{} reads for {N} messages", d.reads);
    // Written directly, `response:` and the chunk in one sendmsg.
    assert!(d.writes <= N as u64, "{} writes for {N} messages", d.writes);
    assert!(
        d.wakeups <= N as u64 + 5,
        "{} wake-ups for {N} messages",
        d.wakeups
    );
    server.stop();
}

#[test]
fn wakes_at_least_once_a_second_like_the_notes_select_timeout() {
    let server = Server::start(SelectEcho, echo_select::config(ioplex::Backend::Mio));
    let before = server.metrics.snapshot().wakeups;
    std::thread::sleep(Duration::from_millis(2500));
    let woke = server.metrics.snapshot().wakeups - before;
    assert!(
        (2..=4).contains(&woke),
        "{woke} wake-ups in 2.5 s of silence"
    );
    server.stop();
}
