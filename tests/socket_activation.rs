//! Socket activation and `sd_notify`, as systemd does them, on an example
//! server (`resp`): listeners handed over at fd 3, 4, … with `LISTEN_FDS`
//! and `LISTEN_PID` are served instead of `--addr` (a TCP and a Unix one),
//! and with `NOTIFY_SOCKET` the server says `READY=1` once serving and
//! `STOPPING=1` when SIGTERM begins its stop.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// `resp` started as systemd starts a socket-activated service: `fds`
/// become 3, 4, … (close-on-exec cleared) and `LISTEN_FDS`/`LISTEN_PID`
/// name them, the pid being the one that `exec`s the server.
fn activated(fds: &[RawFd], args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS={} exec \"$0\" \"$@\"",
            fds.len()
        ))
        .arg(example_path("resp"))
        .args(args);
    let fds = fds.to_vec();
    // SAFETY: between fork and exec only async-signal-safe calls (dup,
    // dup2, fcntl) on descriptors this process holds.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way of 3, 4, …, then into place.
            let high: Vec<RawFd> = fds
                .iter()
                .map(|&fd| libc::fcntl(fd, libc::F_DUPFD, 100))
                .collect();
            for (i, fd) in high.into_iter().enumerate() {
                let target = 3 + i as RawFd;
                if fd < 0 || libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::fcntl(target, libc::F_SETFD, 0); // keep it across exec
            }
            Ok(())
        });
    }
    cmd
}

fn ping(mut s: impl Read + Write) -> Vec<u8> {
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    buf.to_vec()
}

#[test]
fn a_server_serves_the_tcp_and_unix_listeners_it_inherits_through_listen_fds_and_not_addr() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resp.sock");
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let unix = UnixListener::bind(&path).unwrap();
    // Were `--addr` used, this would fail: the port is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let cmd = activated(&[tcp.as_raw_fd(), unix.as_raw_fd()], &["--addr", &addr]);
    let server = Quiet::spawn("resp", cmd);
    let tcp_addr = tcp.local_addr().unwrap();
    let want_tcp = format!("listening on {tcp_addr}");
    let want_unix = format!("listening on unix:{}", path.display());
    assert_eq!(
        server.stdout.line("listening on", IO_TIMEOUT).as_deref(),
        Some(&*want_tcp)
    );
    assert!(
        server.stdout.line(&want_unix, IO_TIMEOUT).is_some(),
        "{}",
        server.output()
    );
    drop((tcp, unix)); // the server holds its own copies
    let t = TcpStream::connect(tcp_addr).unwrap();
    t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(ping(&t), b"+PONG\r\n");
    let u = UnixStream::connect(&path).unwrap();
    u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(ping(&u), b"+PONG\r\n");
    assert!(!server.text().contains("error"), "{}", server.output());
}

#[test]
fn with_notify_socket_the_server_says_ready_once_serving_and_stopping_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut cmd = Command::new(example_path("resp"));
    cmd.args(["--addr", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &notify);
    let mut server = ExampleServer::start_command("resp", cmd);
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
    assert_eq!(&buf[..n], b"READY=1");
    // It is serving by then.
    let c = connect(server.addr);
    assert_eq!(ping(&c), b"+PONG\r\n");
    drop(c);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let n = sock.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}");
    eprintln!("STOPPING=1, then exit, {:?} after SIGTERM", t.elapsed());
    // Nothing else was said.
    sock.set_nonblocking(true).unwrap();
    assert!(sock.recv(&mut buf).is_err());
}

#[test]
fn without_notify_socket_nothing_is_sent_and_nothing_is_logged_about_it() {
    let mut server = ExampleServer::start("resp", &["--addr", "127.0.0.1:0"]);
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!server.text().contains("sd_notify"), "{}", server.output());
}
