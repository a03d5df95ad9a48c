//! The example servers behind a balancer: each TCP server started with
//! `--proxy-protocol` closes a connection that does not begin with a PROXY
//! header (with a warning) and logs the client a header names; every
//! example server (UDP ones too) exits 0 on SIGTERM; `remote_cmd` and
//! `upload`, which answer from worker threads, answer a request under way
//! at SIGTERM before they close.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// Each TCP example server, with the arguments it needs and what a
/// client sends after the header (socketserver logs its client then).
fn tcp_servers(dir: &std::path::Path) -> Vec<(&'static str, Vec<String>, &'static [u8])> {
    let file = dir.join("doc.txt");
    std::fs::write(&file, "the document").unwrap();
    let (file, root) = (
        file.to_str().unwrap().to_owned(),
        dir.to_str().unwrap().to_owned(),
    );
    let none = Vec::new;
    vec![
        ("cs_echo", none(), b""),
        ("echo_server", none(), b""),
        ("echo_select", none(), b""),
        ("framed", none(), b""),
        ("handshake", none(), b""),
        ("lines", none(), b""),
        ("time_server", none(), b""),
        ("timeout_server", none(), b""),
        ("socketserver", none(), b"hi"),
        ("chat", none(), b""),
        ("remote_cmd", none(), b""),
        ("resp", none(), b""),
        ("file_transfer", vec!["--file".into(), file], b""),
        ("upload", vec!["--root".into(), root.clone()], b""),
        ("http_static", vec!["--root".into(), root], b""),
    ]
}

fn start(name: &str, extra: &[String], flags: &[&str]) -> ExampleServer {
    let mut cmd = Command::new(example_path(name));
    cmd.args(["--addr", "127.0.0.1:0"]).args(flags).args(extra);
    if name == "resp" {
        cmd.env("RUST_LOG", "debug"); // it logs its clients at debug level
    }
    ExampleServer::start_command(name, cmd)
}

/// SIGTERM; the exit status, which must come within `shutdown_timeout`.
fn sigterm(server: &mut ExampleServer, name: &str) -> std::process::ExitStatus {
    let status = server.terminate(Duration::from_secs(5));
    status.unwrap_or_else(|| panic!("{name}: no exit within 5 s of SIGTERM\n{}", server.output()))
}

#[test]
fn every_tcp_example_server_takes_proxy_protocol_and_names_the_headers_client() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra, after) in tcp_servers(dir.path()) {
        let mut server = start(name, &extra, &["--proxy-protocol"]);
        // No header: closed before the server says or hears anything.
        let mut c = connect(server.addr);
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{name}: without a header: {other:?} {:?}", &buf[..16]),
        }
        let warned = || server.stderr.text().contains("PROXY");
        assert!(
            wait_for(IO_TIMEOUT, warned),
            "{name}: no warning\n{}",
            server.output()
        );
        // A header: the client it names is who the server logs.
        let mut c = connect(server.addr);
        c.write_all(&[&b"PROXY TCP4 127.0.0.77 127.0.0.1 4242 80\r\n"[..], after].concat())
            .unwrap();
        let named = || server.stderr.text().contains("127.0.0.77:4242");
        assert!(
            wait_for(IO_TIMEOUT, named),
            "{name}: 127.0.0.77 not logged\n{}",
            server.output()
        );
        drop(c);
        let status = sigterm(&mut server, name);
        assert!(status.success(), "{name}: {status}\n{}", server.output());
        assert!(
            server
                .stderr
                .text()
                .contains("SIGTERM: stopping gracefully"),
            "{name}"
        );
    }
}

#[test]
fn every_example_server_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(&str, Vec<String>)> = tcp_servers(dir.path())
        .into_iter()
        .map(|(n, a, _)| (n, a))
        .collect();
    all.push(("udp_echo", Vec::new()));
    all.push(("udp_ping", Vec::new()));
    all.push(("idle_scaling", vec!["--serve".into(), "mio".into()]));
    for (name, extra) in all {
        let mut server = start(name, &extra, &[]);
        let t = Instant::now();
        let status = sigterm(&mut server, name);
        assert!(status.success(), "{name}: {status}\n{}", server.output());
        eprintln!("{name}: exit 0 {:?} after SIGTERM", t.elapsed());
    }
}

/// A `remote_cmd` reply frame: u32 big-endian length, then the bytes.
fn frame(c: &mut impl Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    c.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    c.read_exact(&mut body).unwrap();
    body
}

#[test]
fn remote_cmd_answers_the_commands_under_way_at_sigterm_then_closes() {
    let mut server = start("remote_cmd", &[], &[]);
    let mut c = connect(server.addr);
    c.write_all(b"sleep 1\necho done\n").unwrap();
    std::thread::sleep(Duration::from_millis(200)); // `sleep 1` runs
    let t = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(frame(&mut c), b"", "sleep's output");
    assert_eq!(frame(&mut c), b"done\n", "the line after it");
    assert!(read_to_eof(&mut c).is_empty());
    drop(c);
    let status = sigterm(&mut server, "remote_cmd");
    eprintln!(
        "remote_cmd: both answers, EOF and exit {:?} after SIGTERM",
        t.elapsed()
    );
    assert!(status.success(), "{status}");
}

#[test]
fn upload_answers_a_registration_under_way_at_sigterm_then_closes() {
    let dir = tempfile::tempdir().unwrap();
    let root = vec!["--root".to_owned(), dir.path().to_str().unwrap().to_owned()];
    let mut server = start("upload", &root, &[]);
    let mut c = connect(server.addr);
    let mut greeting = [0u8; "欢迎使用... \n".len()];
    c.read_exact(&mut greeting).unwrap();
    c.write_all(br#"{"cmd": "register", "username": "alice", "password": "s3cret"}"#)
        .unwrap();
    std::thread::sleep(Duration::from_millis(10)); // the hash is on a worker now
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    assert_eq!(
        String::from_utf8(read_to_eof(&mut c)).unwrap(),
        "注册成功\n"
    );
    drop(c);
    let status = sigterm(&mut server, "upload");
    assert!(status.success(), "{status}");
    assert!(dir.path().join("alice").is_dir(), "the user was stored");
}
