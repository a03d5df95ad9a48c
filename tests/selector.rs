//! `Selector` behaves as Python's `selectors.DefaultSelector` does.

use ioplex::{Backend, Interest, Selector, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn registering_twice_is_an_error_like_pythons_key_error() {
    let (_a, b) = pair();
    let mut sel = Selector::new().unwrap();
    let key = sel.register(&b, Interest::READABLE, 1).unwrap();
    assert_eq!((key.events, key.data), (Interest::READABLE, 1));
    let err = sel.register(&b, Interest::READABLE, 2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(sel.len(), 1);
}

#[test]
fn empty_events_are_invalid_like_pythons_value_error() {
    let (_a, b) = pair();
    let mut sel: Selector<()> = Selector::new().unwrap();
    let err = sel.register(&b, Interest::NONE, ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn unregister_modify_and_get_key_of_an_unknown_fd_are_not_found() {
    let (_a, b) = pair();
    let mut sel: Selector<()> = Selector::new().unwrap();
    assert_eq!(sel.unregister(&b).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        sel.modify(&b, Interest::READABLE, ()).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(sel.get_key(&b).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn unregister_returns_the_key_and_forgets_it() {
    let (_a, b) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&b, Interest::READABLE, "read").unwrap();
    assert_eq!(sel.get_key(&b).unwrap().data, "read");
    let key = sel.unregister(&b).unwrap();
    assert_eq!(key.data, "read");
    assert!(sel.is_empty());
    assert_eq!(sel.get_key(&b).unwrap_err().kind(), ErrorKind::NotFound);
    // Registering again after unregister works, as in Python.
    sel.register(&b, Interest::READABLE, "again").unwrap();
}

#[test]
fn modify_changes_events_and_data() {
    let (_a, b) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&b, Interest::READABLE, 'r').unwrap();
    let key = sel.modify(&b, Interest::WRITABLE, 'w').unwrap();
    assert_eq!((key.events, key.data), (Interest::WRITABLE, 'w'));
    // The socket is writable at once, and only WRITABLE is reported.
    let ready = sel.select(WAIT).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].1, Interest::WRITABLE);
    assert_eq!(ready[0].0.data, 'w');
}

#[test]
fn select_reports_only_the_events_asked_for() {
    let (mut a, b) = pair();
    a.write_all(b"x").unwrap();
    let mut sel = Selector::new().unwrap();
    sel.register(&b, Interest::READABLE, ()).unwrap();
    let ready = sel.select(WAIT).unwrap();
    // Writable too, but not asked for: the mask is READABLE alone.
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].1, Interest::READABLE);
}

#[test]
fn select_times_out_with_nothing_ready() {
    let (_a, b) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&b, Interest::READABLE, ()).unwrap();
    let t = std::time::Instant::now();
    let ready = sel.select(Some(Duration::from_millis(50))).unwrap();
    assert!(ready.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn level_triggered_default_reports_unread_data_again() {
    let (mut a, mut b) = pair();
    a.write_all(b"hello world").unwrap();
    let mut sel = Selector::new().unwrap();
    sel.register(&b, Interest::READABLE, ()).unwrap();
    assert_eq!(sel.select(WAIT).unwrap().len(), 1);
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).unwrap(); // read only part
    // Python's DefaultSelector (epoll, level) reports it again.
    assert_eq!(sel.select(WAIT).unwrap().len(), 1);
}

#[test]
fn edge_triggered_backend_does_not_report_unread_data_again() {
    let (mut a, mut b) = pair();
    a.write_all(b"hello world").unwrap();
    let mut sel = Selector::with_backend(Backend::Epoll(Trigger::Edge)).unwrap();
    sel.register(&b, Interest::READABLE, ()).unwrap();
    assert_eq!(sel.select(WAIT).unwrap().len(), 1);
    let mut buf = [0u8; 5];
    b.read_exact(&mut buf).unwrap();
    // The rest sits unread, and no new edge comes: the lost wake-up.
    assert!(
        sel.select(Some(Duration::from_millis(50)))
            .unwrap()
            .is_empty()
    );
}

mod common;

#[test]
fn selectors_callback_example_echoes_as_is_for_several_clients() {
    let server = common::ExampleServer::start("echo_selectors", &["--addr", "127.0.0.1:0"]);
    // The notes' style of client, three at once, one sending more than
    // the server's 1000-byte recv.
    let script = r#"
import socket, sys
port = int(sys.argv[1])
cs = [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(3)]
for i, c in enumerate(cs):
    c.sendall(('hello %d' % i).encode())
for i, c in enumerate(cs):
    print(c.recv(1024))
big = bytes(range(256)) * 20
cs[0].sendall(big)
got = b''
while len(got) < len(big):
    got += cs[0].recv(65536)
print(got == big)
for c in cs:
    c.close()
"#;
    let out = common::python(
        script,
        &[&server.addr.port().to_string()],
        Duration::from_secs(20),
    );
    assert_eq!(out, "b'hello 0'\nb'hello 1'\nb'hello 2'\nTrue\n");
}
