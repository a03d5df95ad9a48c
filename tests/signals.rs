//! Signals on example servers (`stop_on_signals`): SIGTERM stops `resp`
//! gracefully with every queued reply delivered, exit 0 within
//! `shutdown_timeout`; a second SIGINT stops it at once; SIGHUP reaches
//! `Handler::on_signal` (`file_transfer` reads its file again).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `Config::shutdown_timeout` of the examples (the default).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The size of the value every `GET` answers with.
const VALUE: usize = 256 << 10;
const GETS: usize = 64;

fn signal(server: &ExampleServer, sig: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, sig) }, 0);
}

/// Stores a 256 KiB value at `k`, then sends 64 `GET k` in one write
/// (16 MiB of replies, far more than the sockets hold): the server is left
/// with replies queued and commands kept behind them.
fn queue_replies(c: &mut TcpStream) -> Vec<u8> {
    let value: Vec<u8> = (0..VALUE).map(|i| b'a' + (i % 26) as u8).collect();
    let set = [
        format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${VALUE}\r\n").as_bytes(),
        &value,
        b"\r\n",
    ]
    .concat();
    c.write_all(&set).unwrap();
    assert_eq!(read_n(c, 5), b"+OK\r\n");
    c.write_all(&b"GET k\r\n".repeat(GETS)).unwrap();
    [format!("${VALUE}\r\n").as_bytes(), &value, b"\r\n"].concat()
}

#[test]
fn sigterm_delivers_every_queued_reply_then_the_server_exits_0_within_shutdown_timeout() {
    let mut server = ExampleServer::start("resp", &["--addr", "127.0.0.1:0"]);
    let mut c = connect(server.addr);
    let reply = queue_replies(&mut c);
    std::thread::sleep(Duration::from_millis(300)); // the server answers what the sockets take
    let t = Instant::now();
    signal(&server, libc::SIGTERM);
    for i in 0..GETS {
        let got = read_n(&mut c, reply.len());
        assert!(got == reply, "reply {i} differs");
    }
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{} bytes after the replies", rest.len());
    drop(c); // else the server lingers (`Config::linger`) for this FIN
    let status = server
        .exited_within(SHUTDOWN_TIMEOUT)
        .expect("no exit within shutdown_timeout");
    eprintln!(
        "{GETS} replies of {VALUE} B read, EOF, exit {status}: {:?} after SIGTERM",
        t.elapsed()
    );
    assert!(status.success(), "{status}");
    assert!(
        server
            .stderr
            .text()
            .contains("SIGTERM: stopping gracefully")
    );
}

#[test]
fn a_second_sigint_stops_at_once_with_replies_still_queued() {
    let mut server = ExampleServer::start("resp", &["--addr", "127.0.0.1:0"]);
    let mut c = connect(server.addr);
    queue_replies(&mut c); // and never read
    std::thread::sleep(Duration::from_millis(300));
    signal(&server, libc::SIGINT);
    // The first waits for the replies to be read: the server stays.
    assert!(server.exited_within(Duration::from_millis(500)).is_none());
    let t = Instant::now();
    signal(&server, libc::SIGINT);
    let status = server
        .exited_within(Duration::from_secs(2))
        .expect("no exit after the second SIGINT");
    eprintln!("second SIGINT: exit {status} {:?} after it", t.elapsed());
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(status.success(), "{status}");
    assert!(
        server
            .stderr
            .text()
            .contains("second SIGINT: stopping at once")
    );
}

#[test]
fn sighup_reaches_on_signal_file_transfer_serves_the_file_as_it_is_now() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.txt");
    std::fs::write(&file, "first version").unwrap();
    let args = ["--addr", "127.0.0.1:0", "--file", file.to_str().unwrap()];
    let mut server = ExampleServer::start("file_transfer", &args);
    let fetch = |server: &ExampleServer| {
        let doc = read_to_eof(&mut connect(server.addr));
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        doc["filedata"].as_str().unwrap().to_owned()
    };
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(fetch(&server), b64("first version"));
    std::fs::write(&file, "second version").unwrap();
    assert_eq!(
        fetch(&server),
        b64("first version"),
        "read again before SIGHUP"
    );
    signal(&server, libc::SIGHUP);
    let reread = || server.stderr.text().matches("serving ").count() == 2;
    assert!(wait_for(IO_TIMEOUT, reread), "{}", server.output());
    assert_eq!(fetch(&server), b64("second version"));
    // A file that cannot be read: the old document stays.
    std::fs::remove_file(&file).unwrap();
    signal(&server, libc::SIGHUP);
    let kept = || server.stderr.text().contains("kept the old document");
    assert!(wait_for(IO_TIMEOUT, kept), "{}", server.output());
    assert_eq!(fetch(&server), b64("second version"));
    let status = server
        .terminate(SHUTDOWN_TIMEOUT)
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}");
}

/// A second SIGINT reaches the loop on every backend, one-shot epoll
/// (where the signalfd is disarmed after each event) and io_uring (where
/// it is polled once per signal) included: `echo_select` with replies
/// queued for a client that never reads waits at the first SIGINT and
/// exits at the second.
#[test]
fn a_second_sigint_stops_echo_select_at_once_on_every_backend() {
    let backends: [&[&str]; 7] = [
        &["--backend", "mio"],
        &["--backend", "epoll", "--trigger", "level"],
        &["--backend", "epoll", "--trigger", "edge"],
        &["--backend", "epoll", "--trigger", "oneshot"],
        &["--backend", "poll"],
        &["--backend", "select"],
        &["--backend", "uring"],
    ];
    for backend in backends {
        let args = [&["--addr", "127.0.0.1:0"][..], backend].concat();
        let mut server = ExampleServer::start("echo_select", &args);
        let mut c = connect(server.addr);
        c.set_nonblocking(true).unwrap();
        let chunk = [b'x'; 64 << 10];
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            if c.write(&chunk).is_err() {
                std::thread::sleep(Duration::from_millis(5)); // full: the server pauses reading
            }
        }
        signal(&server, libc::SIGINT);
        let waits = server.exited_within(Duration::from_millis(300));
        assert!(waits.is_none(), "{backend:?}: exited at the first SIGINT");
        signal(&server, libc::SIGINT);
        let status = server
            .exited_within(Duration::from_secs(1))
            .unwrap_or_else(|| panic!("{backend:?}: running 1 s after the second SIGINT"));
        assert!(status.success(), "{backend:?}: {status}");
        let log = server.stderr.text();
        assert!(
            log.contains("second SIGINT: stopping at once"),
            "{backend:?}: {log}"
        );
    }
}
