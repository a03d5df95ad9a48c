//! http_static against hostile clients (issue 17, items 1-8 and 14): each
//! test failed before its fix. `cargo test --test http_static_hostile --
//! --nocapture` prints the figures quoted in docs/hardening.md.

mod common;
mod http_static_util;

use common::*;
use http_static_util::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `len` bytes of a simple PRNG.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

const GET_PAGE: &[u8] = b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\n\r\n";

/// A keep-alive GET of the page on `s`, answered within `s`'s timeout.
fn get_page(s: &mut TcpStream) -> Reply {
    s.write_all(GET_PAGE).unwrap();
    read_reply(s)
}

#[test]
fn a_fifo_in_the_root_is_403_and_holds_up_nobody() {
    let dir = site();
    let fifo = std::ffi::CString::new(dir.path().join("root/pipe").as_os_str().as_bytes());
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.unwrap().as_ptr(), 0o644) }, 0);
    let web = Web::start(dir.path(), &[]);
    let mut s = connect(web.addr);
    s.write_all(b"GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Before: the open waited for a writer on the loop thread; this timed out.
    let started = Instant::now();
    let other = curl(&["--max-time", "3", &web.url("/HelloWorld.html")]);
    assert_eq!((other.status, &other.body[..]), (200, PAGE));
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let r = read_reply(&mut s);
    assert_eq!(r.status, 403, "{}", r.head);
    eprintln!(
        "FIFO: 403, another client served in {:?}",
        started.elapsed()
    );
    // The connection is kept after the 403.
    let r = get_page(&mut s);
    assert_eq!(r.status, 200);
}

#[test]
fn input_waiting_behind_a_response_stays_in_the_kernel() {
    let dir = site();
    let big = noise(32 << 20);
    std::fs::write(dir.path().join("root/big.bin"), &big).unwrap();
    let web = Web::start(dir.path(), &[]);
    let before = web.rss_kib();
    let mut s = connect(web.addr);
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Then pipelined requests, as fast as the server takes them, without
    // reading a byte: 256 MiB, or until the writes block for 1 s.
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let flood = GET_PAGE.repeat((1 << 20) / GET_PAGE.len());
    let (mut sent, started) = (0usize, Instant::now());
    while sent < 256 << 20 && started.elapsed() < Duration::from_secs(10) {
        match w.write(&flood) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let after = web.rss_kib();
    eprintln!(
        "flood behind a 32 MiB body: {} MiB taken in {:?}, RSS {before} -> {after} KiB",
        sent >> 20,
        started.elapsed()
    );
    assert!(sent < 32 << 20, "the server took {} MiB", sent >> 20);
    assert!(after < before + (32 << 10), "RSS {before} -> {after} KiB");
    // Everything is still answered, in order.
    let r = read_reply(&mut s);
    assert!(r.status == 200 && r.body == big, "the body differs");
    let r = read_reply(&mut s);
    assert_eq!((r.status, &r.body[..]), (200, PAGE));
}

#[test]
fn pipelined_requests_cost_linear_time_and_others_are_served_meanwhile() {
    let dir = site();
    std::fs::write(dir.path().join("root/big.bin"), noise(4 << 20)).unwrap();
    let web = Web::start_with(dir.path(), &[], |c| {
        c.env("RUST_LOG", "warn");
    });
    // The size of one answer to GET_PAGE (the Date field has a fixed width).
    let mut probe = connect(web.addr);
    let one = get_page(&mut probe);
    let one = one.head.len() + 4 + one.body.len();
    let big_head = {
        probe
            .write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_head(&mut probe).len()
    };
    let n = (4 << 20) / GET_PAGE.len(); // 4 MiB of pipelined requests
    let mut a = connect(web.addr);
    let mut all = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    all.extend(GET_PAGE.repeat(n));
    all.extend(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (mut w, sent) = (a.try_clone().unwrap(), Arc::new(AtomicBool::new(false)));
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || sent.store(w.write_all(&all).is_ok(), Ordering::Release))
    };
    let started = Instant::now();
    let reader = std::thread::spawn(move || {
        // Nothing is read until all is sent (or the server stops taking it):
        // the requests queue up behind the big body.
        wait_for(Duration::from_secs(1), || sent.load(Ordering::Acquire));
        let (mut total, mut buf) = (0, vec![0; 1 << 16]);
        while let Ok(k @ 1..) = a.read(&mut buf) {
            total += k;
        }
        (total, buf, started.elapsed())
    });
    // Another client, meanwhile: its worst wait.
    let mut worst = Duration::ZERO;
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        let r = get_page(&mut probe);
        assert_eq!(r.status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reader.is_finished(),
        "the pipelined requests were not answered in 60 s"
    );
    let (total, _, took) = reader.join().unwrap();
    writer.join().unwrap();
    let last = raw_len_404(&web);
    assert_eq!(
        total,
        big_head + (4 << 20) + n * one + last,
        "bytes answered"
    );
    eprintln!(
        "{n} pipelined requests behind 4 MiB: answered in {took:?}; another client's worst wait {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(1),
        "another client waited {worst:?}"
    );
}

/// The length of the closing 404 that ends a pipelined run.
fn raw_len_404(web: &Web) -> usize {
    let r = raw(
        web.addr,
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    r.head.len() + 4 + r.body.len()
}

#[test]
fn a_head_over_8_kib_is_431_however_it_arrives() {
    let dir = site();
    let web = Web::start(dir.path(), &[]);
    for size in [8 * 1024 + 100, 60_000, 73_500] {
        let mut req = b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        req.resize(size - 4, b'a');
        req.extend(b"\r\n\r\n");
        for (how, pieces) in [
            ("one write", 1),
            ("two writes", 2),
            ("1 KiB writes", size / 1024 + 1),
        ] {
            let mut s = connect(web.addr);
            for piece in req.chunks(req.len().div_ceil(pieces)) {
                if s.write_all(piece).is_err() {
                    break; // answered and closed before the end: fine
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let r = split(&read_to_eof(&mut s), String::new());
            assert_eq!(r.status, 431, "{size} bytes in {how}");
        }
    }
}

#[test]
fn a_header_name_that_is_not_a_token_is_400_and_no_body_is_read_as_a_request() {
    let dir = site();
    let web = Web::start(dir.path(), &[]);
    let smuggled = b"GET /sub/data.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for bad in [
        &b"Content-Length\x0b"[..],
        b"Content-Length\x01",
        b"Content-Length\xc2\xa0",
    ] {
        let mut req = b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\n".to_vec();
        req.extend([bad, format!(": {}\r\n\r\n", smuggled.len()).as_bytes()].concat());
        req.extend(smuggled);
        let mut s = connect(web.addr);
        s.write_all(&req).unwrap();
        let all = String::from_utf8_lossy(&read_to_eof(&mut s)).into_owned();
        let name = String::from_utf8_lossy(bad);
        assert_eq!(all.matches("HTTP/1.1 ").count(), 1, "{name:?}: {all}");
        assert!(all.starts_with("HTTP/1.1 400"), "{name:?}: {all}");
        assert!(
            all.contains("Connection: close") && !all.contains("{\"a\":1}"),
            "{all}"
        );
    }
}

#[test]
fn out_of_descriptors_is_503_with_retry_after_and_logs_emfile() {
    let dir = site();
    let web = Web::start_with(dir.path(), &[], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; runs in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 32,
                    rlim_max: 32,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
    });
    let mut a = connect(web.addr);
    assert_eq!(get_page(&mut a).status, 200);
    // Hold every descriptor the server has left (the rest wait in the backlog).
    let hogs: Vec<TcpStream> = (0..40).map(|_| connect(web.addr)).collect();
    assert!(wait_for(Duration::from_secs(5), || web
        .log()
        .contains("pausing accepts")));
    let r = get_page(&mut a);
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(header(&r.head, "Retry-After"), Some("1"));
    assert!(
        web.says("out of file descriptors (EMFILE): answering 503"),
        "{}",
        web.log()
    );
    drop(hogs);
    let served = wait_for(Duration::from_secs(5), || {
        let mut s = connect(web.addr);
        get_page(&mut s).status == 200
    });
    assert!(served, "not served again once descriptors were free");
}

#[test]
fn a_steady_slow_reader_is_not_cut_off_but_a_stalled_one_is() {
    let dir = site();
    std::fs::write(dir.path().join("root/big.bin"), noise(64 << 20)).unwrap();
    let web = Web::start(dir.path(), &["--stall-timeout", "3"]);
    let req = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut stalled = connect(web.addr);
    stalled.write_all(req).unwrap();
    let mut slow = connect(web.addr);
    slow.write_all(req).unwrap();
    // 8 KiB every 50 ms (160 KiB/s) for 8 s: far less than the kernel holds.
    let (started, mut got, mut buf) = (Instant::now(), 0, vec![0u8; 8 << 10]);
    while started.elapsed() < Duration::from_secs(8) {
        match slow.read(&mut buf) {
            Ok(n @ 1..) => got += n,
            r => panic!(
                "the slow reader was cut off after {:?}, {got} bytes: {r:?}",
                started.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = web.log();
    let cut = log.matches("took nothing for the stall timeout").count();
    eprintln!("slow reader: {got} bytes in 8 s, still served; stalled clients cut off: {cut}");
    assert_eq!(cut, 1, "only the stalled client is cut off: {log}");
}

#[test]
fn at_max_connections_curl_gets_an_http_503() {
    let dir = site();
    let web = Web::start(dir.path(), &["--max-connections", "2"]);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(web.addr)).collect();
    for s in &mut held {
        assert_eq!(get_page(s).status, 200);
    }
    let r = curl(&["-v", &web.url("/HelloWorld.html")]);
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(header(&r.head, "Connection"), Some("close"));
    assert_eq!(header(&r.head, "Retry-After"), Some("1"));
    assert!(!r.stderr.contains("HTTP/0.9"), "{}", r.stderr);
}

/// A connection to `server` from the local address `from`.
fn connect_from(from: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&from.parse::<SocketAddr>().unwrap().into())?;
    sock.connect_timeout(&server.into(), IO_TIMEOUT)?;
    Ok(sock.into())
}

#[test]
fn many_idle_connections_from_one_address_lock_out_nobody_past_the_idle_timeout() {
    let dir = site();
    let args = ["--idle-timeout", "2", "--max-per-ip", "64"];
    let web = Web::start_with(dir.path(), &args, |c| {
        c.env("RUST_LOG", "warn");
    });
    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..10_000)
        .filter_map(|_| connect_from("127.0.0.1:0", web.addr).ok())
        .collect();
    let opened = started.elapsed();
    assert!(
        idle.len() > 1000,
        "only {} connections opened (fd limit?)",
        idle.len()
    );
    // Another address is served at once.
    let t = Instant::now();
    let r = curl(&["--interface", "127.0.0.2", &web.url("/HelloWorld.html")]);
    assert_eq!((r.status, &r.body[..]), (200, PAGE));
    let other = t.elapsed();
    // The same address: a 503 while its idle sockets hold the cap, then
    // served once the idle timeout has closed them.
    let t = Instant::now();
    let mut refused = 0;
    loop {
        let r = curl(&["--interface", "127.0.0.1", &web.url("/HelloWorld.html")]);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.head);
        refused += 1;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still refused after {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let same = t.elapsed();
    eprintln!(
        "{} idle connections from 127.0.0.1 (opened in {opened:?}): 127.0.0.2 served in {other:?}, \
         127.0.0.1 served after {same:?} ({refused} × 503)",
        idle.len()
    );
    assert!(other < Duration::from_secs(1));
    assert!(
        same < Duration::from_secs(3),
        "idle timeout 2 s: served after {same:?}"
    );
    drop(idle);
}
