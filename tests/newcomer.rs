//! What a newcomer meets first: every example's `--help`, a busy port, a
//! bad flag, a server that is not there; the line client when the server
//! goes away; and a server whose one address holds many idle connections.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// How an example is pointed at an address it cannot use: `{}` is the address.
enum Kind {
    /// A TCP server: its listen fails on a port already listened on.
    Tcp(&'static [&'static str]),
    /// A UDP server: its bind fails on a port already bound.
    Udp(&'static [&'static str]),
    /// A client: its connect is refused by a port nobody listens on.
    Client(&'static [&'static str]),
    /// Nothing to connect to at start (`udp_ping_client` just times out).
    Neither,
}

/// Every example outside the ones with suites of their own (chat, upload,
/// remote_cmd, file_transfer, http_static and their clients).
const EXAMPLES: &[(&str, Kind)] = &[
    ("echo_select", Kind::Tcp(&["--addr", "{}"])),
    ("cs_echo", Kind::Tcp(&["--addr", "{}"])),
    ("echo_server", Kind::Tcp(&["--addr", "{}"])),
    ("lines", Kind::Tcp(&["--addr", "{}"])),
    ("handshake", Kind::Tcp(&["--addr", "{}"])),
    ("framed", Kind::Tcp(&["--addr", "{}"])),
    ("socketserver", Kind::Tcp(&["--addr", "{}"])),
    ("time_server", Kind::Tcp(&["--addr", "{}"])),
    ("timeout_server", Kind::Tcp(&["--addr", "{}"])),
    ("level_vs_edge", Kind::Tcp(&["--addr", "{}"])),
    ("echo_selectors", Kind::Tcp(&["--addr", "{}"])),
    (
        "idle_scaling",
        Kind::Tcp(&["--serve", "mio", "--addr", "{}"]),
    ),
    ("udp_echo", Kind::Udp(&["--addr", "{}"])),
    ("udp_ping", Kind::Udp(&["--addr", "{}"])),
    ("client", Kind::Client(&["{}"])),
    ("echo_client", Kind::Client(&["--addr", "{}"])),
    ("handshake_client", Kind::Client(&["--addr", "{}", "hi"])),
    ("udp_ping_client", Kind::Neither),
];

fn run(name: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args);
    run_bounded(cmd, b"", LIMIT)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Option and argument lines of a help text that carry no help.
fn undocumented(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut bare = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if !(2..=6).contains(&indent) || !t.starts_with(['-', '[', '<']) {
            continue;
        }
        let inline = t.split_once("  ").map_or("", |(_, h)| h.trim());
        // `--help` puts long help on the next, deeper line.
        let next = lines.get(i + 1).copied().unwrap_or("");
        let below = next.len() - next.trim_start().len() > indent && !next.trim().is_empty();
        let said = |h: &str| !h.is_empty() && !h.starts_with('[');
        if !(said(inline) || (below && said(next.trim()))) {
            bare.push(line.to_string());
        }
    }
    bare
}

#[test]
fn every_example_has_help_with_a_description_and_help_on_every_flag() {
    for (name, _) in EXAMPLES {
        let out = run(name, &["--help"]);
        let help = text(&out.stdout);
        assert!(out.status.success(), "{name} --help: {}", text(&out.stderr));
        let first = help.lines().next().unwrap_or("");
        assert!(
            !first.is_empty() && !first.starts_with("Usage"),
            "{name}: no description line:\n{help}"
        );
        assert!(help.contains("Options:"), "{name}:\n{help}");
        assert_eq!(undocumented(&help), Vec::<String>::new(), "{name}:\n{help}");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error_with_status_2() {
    for (name, _) in EXAMPLES {
        let out = run(name, &["--no-such-flag"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(
            err.lines().next(),
            Some("error: unexpected argument '--no-such-flag' found"),
            "{name}"
        );
    }
}

/// A port nobody listens on (bound, then let go).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_busy_port_or_an_absent_server_is_one_line_naming_it_and_status_1() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (busy_tcp, busy_udp) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
    let nobody = free_port();
    for (name, kind) in EXAMPLES {
        let (args, addr, want) = match kind {
            Kind::Tcp(a) => (a, busy_tcp, "cannot listen on {}: address already in use"),
            Kind::Udp(a) => (a, busy_udp, "cannot bind UDP {}: address already in use"),
            Kind::Client(a) => (a, nobody, "cannot connect to {}: connection refused"),
            Kind::Neither => continue,
        };
        let addr = addr.to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{}" { addr.as_str() } else { a })
            .collect();
        let out = run(name, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(
            err,
            format!("error: {}\n", want.replace("{}", &addr)),
            "{name}"
        );
        assert_eq!(text(&out.stdout), "", "{name} printed on stdout");
    }
    // The threads model of socketserver binds by itself: the same line.
    let addr = busy_tcp.to_string();
    let out = run("socketserver", &["--threads", "--addr", &addr]);
    let want = format!("error: cannot listen on {addr}: address already in use\n");
    assert_eq!((out.status.code(), text(&out.stderr)), (Some(1), want));
}

#[test]
fn echo_select_names_the_valid_backends_for_an_unknown_one() {
    let out = run("echo_select", &["--backend", "kqueue"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some(r#"error: unknown backend "kqueue"; valid backends: mio, epoll, poll, select, uring"#)
    );
    let out = run("echo_select", &["--backend", "epoll", "--trigger", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some(r#"error: unknown trigger "fast"; valid triggers: level, edge, oneshot"#)
    );
}

#[test]
fn client_help_prints_help_instead_of_connecting_to_it() {
    let out = run("client", &["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Usage: client [ADDR]"));
    assert_eq!(text(&out.stderr), "", "it tried something");
}

/// Starts `client ADDR` with stdin left open (nobody types); returns its
/// output once it exits by itself within `limit`.
fn client_with_open_stdin(addr: SocketAddr, limit: Duration) -> (Output, Duration) {
    let mut child = Command::new(example_path("client"))
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take(); // held open until the end
    let started = Instant::now();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx.recv_timeout(limit).unwrap_or_else(|_| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the client did not notice the close within {limit:?}");
    });
    drop(stdin);
    (out.unwrap(), started.elapsed())
}

#[test]
fn client_says_the_server_closed_at_once_and_exits_0() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"bye\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Dropped: FIN while the user has typed nothing.
    });
    let (out, took) = client_with_open_stdin(addr, Duration::from_secs(10));
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "bye\n");
    assert!(
        text(&out.stderr).ends_with("connection closed by server\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn client_at_end_of_input_sends_fin_and_prints_the_rest_of_the_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap(); // until the client's FIN
        s.write_all(&got.to_ascii_uppercase()).unwrap();
    });
    let mut cmd = Command::new(example_path("client"));
    cmd.arg(addr.to_string());
    let out = run_bounded(cmd, b"one\ntwo\n", LIMIT);
    server.join().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "ONE\nTWO\n");
    assert!(
        !text(&out.stderr).contains("closed by server"),
        "{}",
        text(&out.stderr)
    );
}

/// Reads what the server says first: its greeting, or the busy line and EOF.
fn first_words(c: &mut TcpStream) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// A client from a given loopback address.
fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    s.connect_timeout(&to.into(), IO_TIMEOUT).unwrap();
    s.into()
}

#[test]
fn a_newcomer_is_served_within_the_idle_timeout_while_one_address_holds_many_idle_connections() {
    const CAP: usize = 8;
    const IDLE_MS: u64 = 1000;
    // A connection closed for idleness drains for `Config::linger` (2 s)
    // before its descriptor, and so its place under the cap, is free.
    const LINGER_MS: u64 = 2000;
    let server = ExampleServer::start(
        "echo_select",
        &[
            "--addr",
            "127.0.0.1:0",
            "--idle-timeout",
            "1",
            "--max-per-ip",
            "8",
        ],
    );
    // 300 idle connections from 127.0.0.1, none of which ever sends a byte.
    let t0 = Instant::now();
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(server.addr)).collect();
    let answers: Vec<Vec<u8>> = idle.iter_mut().map(first_words).collect();
    let greeted = answers
        .iter()
        .filter(|a| a.as_slice() == b"hello...")
        .count();
    let busy = b"error: too many connections; try again later\n";
    let turned = answers.iter().filter(|a| a.as_slice() == busy).count();
    assert_eq!((greeted, turned), (CAP, 300 - CAP), "{answers:?}");
    // Another address is served at once, the cap notwithstanding.
    let mut other = connect_from([127, 0, 0, 2], server.addr);
    assert_eq!(first_words(&mut other), b"hello...");
    // From 127.0.0.1 too, once the idle ones are closed: within the idle
    // timeout (plus the linger of the closed ones), not never.
    let served = loop {
        let mut c = connect(server.addr);
        let said = first_words(&mut c);
        if said == b"hello..." {
            break t0.elapsed();
        }
        assert_eq!(said, busy);
        assert!(t0.elapsed() < Duration::from_secs(10), "never served");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "newcomer from 127.0.0.1 served after {served:?} (idle {IDLE_MS} + linger {LINGER_MS} ms)"
    );
    assert!(
        served >= Duration::from_millis(IDLE_MS)
            && served <= Duration::from_millis(IDLE_MS + LINGER_MS + 1500),
        "served after {served:?}"
    );
    // The idle ones were closed by the server (EOF), not left hanging.
    for c in idle.iter_mut().take(CAP) {
        assert_eq!(first_words(c), b"", "an idle connection was kept");
    }
}
