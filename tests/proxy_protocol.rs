//! The PROXY protocol (`Config::proxy_protocol`) from a raw socket, as a
//! balancer sends it, on every backend: v1 and v2 headers name the client
//! to `on_connect` and `Ctx::peer_addr`; `LOCAL` (HAProxy's health
//! checks) and `UNKNOWN` give the connection's own address; a header split
//! anywhere is completed; the bytes after it reach `on_data`; a malformed,
//! oversized or late header closes the connection, counted, while the
//! handler never hears of it; a connection that ends before any header
//! (a health check) is quiet at info level.

mod common;

use common::*;
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer, Reactor};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Greets each connection with who it is (`on_connect`'s peer, then
/// `Ctx::peer_addr`), then echoes; counts `on_connect` calls.
#[derive(Clone, Default)]
struct Who {
    connects: Arc<AtomicUsize>,
}

impl Handler for Who {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        self.connects.fetch_add(1, SeqCst);
        let addr = ctx.peer_addr(ctx.id()).map(|a| a.to_string());
        let line = format!("{peer} {}\n", addr.unwrap_or_default());
        ctx.send(line.as_bytes());
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

fn proxied(backend: Backend) -> Config {
    Config {
        proxy_protocol: true,
        proxy_timeout: Duration::from_millis(300),
        ..config_on(backend)
    }
}

const SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header: `command` 0 LOCAL / 1 PROXY, `family` 0x11 TCP4, 0x21
/// TCP6, 0x00 unspecified, then addresses and TLVs.
fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.extend([0x20 | command, family]);
    h.extend((body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// A v2 `PROXY` header naming `src` (to 10.0.0.1:443 or [::1]:443).
fn v2_from(src: SocketAddr) -> Vec<u8> {
    match src {
        SocketAddr::V4(a) => {
            let mut b = a.ip().octets().to_vec();
            b.extend([10, 0, 0, 1]);
            b.extend(a.port().to_be_bytes());
            b.extend(443u16.to_be_bytes());
            v2(1, 0x11, &b)
        }
        SocketAddr::V6(a) => {
            let mut b = a.ip().octets().to_vec();
            b.extend(std::net::Ipv6Addr::LOCALHOST.octets());
            b.extend(a.port().to_be_bytes());
            b.extend(443u16.to_be_bytes());
            v2(1, 0x21, &b)
        }
    }
}

/// A v1 header naming `src`.
fn v1_from(src: SocketAddr) -> Vec<u8> {
    match src {
        SocketAddr::V4(a) => format!("PROXY TCP4 {} 10.0.0.1 {} 443\r\n", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("PROXY TCP6 {} ::1 {} 443\r\n", a.ip(), a.port()),
    }
    .into_bytes()
}

fn client4() -> SocketAddr {
    "127.0.0.77:40001".parse().unwrap()
}

fn client6() -> SocketAddr {
    "[2001:db8::77]:40002".parse().unwrap()
}

/// The server's first line to a connection: "PEER PEER_ADDR".
fn who(c: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        match c.read(&mut b) {
            Ok(1) => line.push(b[0]),
            other => panic!("no greeting line (so far {line:?}): {other:?}"),
        }
    }
    String::from_utf8(line).unwrap().trim_end().to_owned()
}

/// Whether the server closed `c` (EOF or RST) within `limit`, having sent nothing.
fn closed_silently(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("the server sent {:?}", &buf[..n]),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn v1_and_v2_headers_name_the_client_to_on_connect_and_peer_addr_on_every_backend() {
    for backend in backends() {
        let server = Server::start(Who::default(), proxied(backend));
        for (what, header, client) in [
            ("v1 TCP4", v1_from(client4()), Some(client4())),
            ("v1 TCP6", v1_from(client6()), Some(client6())),
            ("v2 TCP4", v2_from(client4()), Some(client4())),
            ("v2 TCP6", v2_from(client6()), Some(client6())),
            ("v2 LOCAL", v2(0, 0x00, &[]), None),
            (
                "v2 LOCAL with addresses",
                {
                    let mut h = v2_from(client4());
                    h[12] = 0x20; // LOCAL: the addresses are to be ignored
                    h
                },
                None,
            ),
            ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), None),
        ] {
            let mut c = server.connect();
            // The connection's own address, as the server sees it.
            let own = c.local_addr().unwrap();
            let want = client.unwrap_or(own);
            // The header and the first bytes in one write.
            c.write_all(&[&header[..], b"PING\r\n"].concat()).unwrap();
            assert_eq!(who(&mut c), format!("{want} {want}"), "{backend}: {what}");
            assert_eq!(read_n(&mut c, 6), b"PING\r\n", "{backend}: {what}");
        }
        let m = server.metrics.snapshot();
        assert_eq!((m.proxy_headers, m.proxy_errors), (7, 0), "{backend}");
        server.stop();
    }
}

#[test]
fn a_header_split_at_any_byte_is_completed_and_what_follows_it_reaches_on_data() {
    for backend in [Backend::Mio, Backend::Poll, Backend::Uring] {
        let server = Server::start(Who::default(), proxied(backend));
        for (header, want) in [
            (v1_from(client4()), client4()),
            (v2_from(client6()), client6()),
        ] {
            let wire = [&header[..], b"after"].concat();
            let greeting = format!("{want} {want}");
            for cut in 1..header.len() + 3 {
                let mut c = server.connect();
                c.set_nodelay(true).unwrap();
                c.write_all(&wire[..cut]).unwrap();
                std::thread::sleep(Duration::from_millis(3)); // read apart
                c.write_all(&wire[cut..]).unwrap();
                assert_eq!(who(&mut c), greeting, "{backend}: cut {cut}");
                assert_eq!(read_n(&mut c, 5), b"after", "{backend}: cut {cut}");
            }
            // One byte per write.
            let mut c = server.connect();
            c.set_nodelay(true).unwrap();
            for b in &wire {
                c.write_all(&[*b]).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(who(&mut c), greeting, "{backend}: byte by byte");
            assert_eq!(read_n(&mut c, 5), b"after", "{backend}: byte by byte");
        }
        assert_eq!(server.metrics.snapshot().proxy_errors, 0, "{backend}");
        server.stop();
    }
}

#[test]
fn malformed_oversized_and_late_headers_are_closed_and_counted_and_the_handler_never_hears() {
    let mut big = v2_from(client4());
    big.extend(vec![0u8; 2000]); // TLVs past the 1 KiB accepted
    let n = big.len() - 16;
    big[14..16].copy_from_slice(&(n as u16).to_be_bytes());
    let mut no_end = b"PROXY TCP4 127.0.0.77 10.0.0.1 4242 443".to_vec();
    no_end.resize(200, b' ');
    let refused: [(&str, Vec<u8>); 6] = [
        (
            "no header at all",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad v1 protocol",
            b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        ),
        (
            "bad v1 address",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n".to_vec(),
        ),
        ("bad v2 version", [SIGNATURE, &[0x99, 0x11, 0, 0]].concat()),
        ("v2 over 1 KiB", big),
        ("v1 with no end in 107 bytes", no_end),
    ];
    for backend in backends() {
        let handler = Who::default();
        let connects = handler.connects.clone();
        let server = Server::start(handler, proxied(backend));
        for (what, bytes) in &refused {
            let mut c = server.connect();
            c.write_all(bytes).unwrap();
            assert!(closed_silently(&mut c, IO_TIMEOUT), "{backend}: {what}");
        }
        // Never completed: closed once proxy_timeout (300 ms) has passed.
        let mut c = server.connect();
        c.write_all(b"PROXY TCP4 127.0.0.77").unwrap();
        let t = Instant::now();
        assert!(closed_silently(&mut c, IO_TIMEOUT), "{backend}: late");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250),
            "{backend}: closed after {took:?}"
        );
        let mut silent = server.connect();
        assert!(
            closed_silently(&mut silent, IO_TIMEOUT),
            "{backend}: silent"
        );
        assert!(wait_for(IO_TIMEOUT, || server
            .metrics
            .snapshot()
            .proxy_errors
            == 8));
        let m = server.metrics.snapshot();
        assert_eq!((m.proxy_errors, m.proxy_headers), (8, 0), "{backend}");
        assert_eq!(
            connects.load(SeqCst),
            0,
            "{backend}: the handler heard of one"
        );
        // A good one still gets in.
        let mut c = server.connect();
        c.write_all(&v1_from(client4())).unwrap();
        assert_eq!(who(&mut c), format!("{0} {0}", client4()), "{backend}");
        assert_eq!(connects.load(SeqCst), 1, "{backend}");
        drop(c); // else the stop waits `linger` for its FIN
        server.stop();
    }
}

#[test]
fn the_per_address_cap_counts_the_client_the_header_names_not_the_balancer() {
    let config = Config {
        max_connections_per_ip: Some(1),
        busy_message: b"busy\n".to_vec(),
        ..proxied(Backend::Mio)
    };
    let server = Server::start(Who::default(), config);
    let a: SocketAddr = "127.0.0.77:1000".parse().unwrap();
    let b: SocketAddr = "127.0.0.78:1000".parse().unwrap();
    let mut first = server.connect();
    first.write_all(&v2_from(a)).unwrap();
    assert_eq!(who(&mut first), format!("{a} {a}"));
    // The same client through the same balancer: over its cap.
    let mut second = server.connect();
    second.write_all(&v2_from(a)).unwrap();
    assert_eq!(read_to_eof(&mut second), b"busy\n");
    // Another client through the same balancer: in.
    let mut third = server.connect();
    third.write_all(&v1_from(b)).unwrap();
    assert_eq!(who(&mut third), format!("{b} {b}"));
    // The first one leaves: its client may come back.
    drop((first, second));
    assert!(wait_for(IO_TIMEOUT, || server.metrics.snapshot().closed == 2));
    let mut again = server.connect();
    again.write_all(&v2_from(a)).unwrap();
    assert_eq!(who(&mut again), format!("{a} {a}"));
    assert_eq!(server.metrics.snapshot().rejected_per_ip, 1);
    drop((third, again));
    server.stop();
}

/// Log records of the threads named `quiet-*` (the loop of the test below):
/// other tests of this binary log on threads of their own.
struct Kept(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Kept {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let current = std::thread::current();
        if current.name().is_some_and(|n| n.starts_with("quiet-")) {
            let line = format!("{} {}", r.target(), r.args());
            self.0.lock().unwrap().push((r.level(), line));
        }
    }
    fn flush(&self) {}
}

static KEPT: Kept = Kept(Mutex::new(Vec::new()));

/// Closes `c` with RST (`SO_LINGER` 0), as HAProxy ends its health checks.
fn reset(c: TcpStream) {
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
}

#[test]
fn health_checks_that_end_before_or_after_their_header_with_rst_or_fin_log_nothing_at_info() {
    log::set_logger(&KEPT).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let mut reactor = Reactor::new(proxied(Backend::Mio)).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let (handle, metrics) = (reactor.handle(), reactor.metrics());
    let join = std::thread::Builder::new()
        .name("quiet-loop".into())
        .spawn(move || reactor.run(&mut Who::default()).unwrap())
        .unwrap();
    let local = v2(0, 0x00, &[]);
    // Connected, then RST before any byte: a layer-4 check.
    reset(connect(addr));
    // FIN before any byte.
    drop(connect(addr));
    // LOCAL, a check's request, its answer read, then RST: HAProxy's tcp-check.
    let mut c = connect(addr);
    c.write_all(&[&local[..], b"PING\r\n"].concat()).unwrap();
    who(&mut c);
    assert_eq!(read_n(&mut c, 6), b"PING\r\n");
    reset(c);
    // LOCAL and a request, then RST before the answer is read.
    let mut c = connect(addr);
    c.write_all(&[&local[..], b"PING\r\n"].concat()).unwrap();
    reset(c);
    // LOCAL, then FIN.
    let mut c = connect(addr);
    c.write_all(&local).unwrap();
    drop(c);
    assert!(wait_for(IO_TIMEOUT, || metrics.snapshot().closed == 5));
    let kept = KEPT.0.lock().unwrap().clone();
    handle.stop();
    join.join().unwrap();
    let loud: Vec<_> = kept
        .iter()
        .filter(|(l, _)| *l <= log::Level::Info)
        .collect();
    assert!(loud.is_empty(), "logged at info or above: {loud:#?}");
    // The loop did log them, at debug: the capture works.
    let debug = kept.iter().filter(|(_, l)| l.contains("accepted")).count();
    assert_eq!(debug, 5, "{kept:#?}");
    assert_eq!(metrics.snapshot().proxy_errors, 0);
}
