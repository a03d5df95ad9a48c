//! Unix domain socket listeners (`listen_unix`): served and echoed over
//! `UnixStream`, the peer is a `Peer::Unix` (with the client's path when
//! it bound one), the socket file is gone once the server stops, and a
//! stale file from a killed run is replaced (anything else there is not).

mod common;

use common::*;
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What `on_connect` heard, and what `Ctx::peer` said then.
type Seen = (Peer, Option<Peer>);

/// Records each peer, then echoes.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<Seen>>>);

impl Handler for Peers {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        let seen = ctx.peer(ctx.id());
        self.0.lock().unwrap().push((peer, seen));
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

fn echo(mut s: &UnixStream, msg: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(msg).unwrap();
    let mut buf = vec![0; msg.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn ping(mut s: &UnixStream) -> [u8; 7] {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0; 7];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// A client bound to `path` before it connects to `to`.
fn bound_client(path: &Path, to: &Path) -> UnixStream {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    s.bind(&SockAddr::unix(path).unwrap()).unwrap();
    s.connect(&SockAddr::unix(to).unwrap()).unwrap();
    UnixStream::from(std::os::fd::OwnedFd::from(s))
}

#[test]
fn a_unix_listener_echoes_names_its_peers_and_its_file_is_gone_after_the_stop() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echo.sock");
        let peers = Peers::default();
        let mut reactor = Reactor::new(config_on(backend)).unwrap();
        reactor.listen_unix(&path).unwrap();
        let handle = reactor.handle();
        let mut handler = peers.clone();
        let join = std::thread::spawn(move || reactor.run(&mut handler));
        let anonymous = UnixStream::connect(&path).unwrap();
        assert_eq!(echo(&anonymous, b"hello"), b"hello", "{backend}");
        let client_path = dir.path().join("client.sock");
        let named = bound_client(&client_path, &path);
        assert_eq!(
            echo(&named, "你好".as_bytes()),
            "你好".as_bytes(),
            "{backend}"
        );
        let seen = peers.0.lock().unwrap().clone();
        let named_peer = Peer::Unix(Some(client_path.clone()));
        assert_eq!(
            seen,
            [
                (Peer::Unix(None), Some(Peer::Unix(None))),
                (named_peer.clone(), Some(named_peer)),
            ],
            "{backend}"
        );
        drop((anonymous, named));
        handle.stop();
        join.join().unwrap().unwrap();
        assert!(!path.exists(), "{backend}: the socket file is left behind");
    }
}

#[test]
fn a_stale_socket_file_is_replaced_and_anything_else_at_the_path_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // What a killed run leaves: a socket file nobody listens on.
    drop(UnixListener::bind(&path).unwrap());
    assert_eq!(
        UnixStream::connect(&path).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let mut reactor = Reactor::new(Config::default()).unwrap();
    reactor
        .listen_unix(&path)
        .expect("a stale socket file is replaced");
    drop(reactor);
    // A regular file is not a stale socket: refused, left as it was.
    std::fs::write(&path, "keep me").unwrap();
    let mut reactor = Reactor::new(Config::default()).unwrap();
    let err = reactor.listen_unix(&path).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{msg}");
    assert!(
        msg.starts_with(&format!("cannot listen on unix:{}: ", path.display())),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[test]
fn example_servers_serve_unix_sockets_and_a_killed_runs_file_does_not_stop_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resp.sock");
    let unix = path.to_str().unwrap();
    let start = |name: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(example_path(name));
        cmd.args(["--unix", unix]).args(extra);
        let server = Quiet::spawn(name, cmd);
        let want = format!("listening on unix:{unix}");
        assert_eq!(
            server.stdout.line("", IO_TIMEOUT).as_deref(),
            Some(&*want),
            "{}",
            server.output()
        );
        server
    };
    let mut resp = start("resp", &[]);
    let c = UnixStream::connect(&path).unwrap();
    assert_eq!(&ping(&c), b"+PONG\r\n");
    drop(c);
    resp.child.kill().unwrap(); // SIGKILL: the socket file stays
    resp.child.wait().unwrap();
    assert!(path.exists());
    let mut resp = start("resp", &[]);
    let c = UnixStream::connect(&path).unwrap();
    assert_eq!(&ping(&c), b"+PONG\r\n");
    drop(c);
    // SIGTERM: a graceful stop, and the file goes with the server.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(resp.child.id() as i32, libc::SIGTERM) };
    assert!(resp.child.wait().unwrap().success());
    assert!(!path.exists());
    // One loop per core over one Unix socket: echo_select.
    let _echo_select = start("echo_select", &["--threads", "2"]);
    for _ in 0..4 {
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut hello = [0u8; 8];
        c.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello...");
        c.write_all(b"hi").unwrap();
        let mut reply = [0u8; 11];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"response:hi");
    }
}
