//! Shared by the http_static tests: the example as a child process whose
//! log is kept (and printed only when a test fails), a test site, curl,
//! and raw requests for what curl will not send.
#![allow(dead_code)]

use crate::common::{ExampleServer, connect, example_path, read_n, read_to_eof};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT";
pub const PAGE: &[u8] = b"<head>Hello world!</head>\n";

/// A root with a page, a JSON file, a symlink out, a directory symlink
/// out, and a secret file beside (not inside) the root.
pub fn site() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ioplex-http-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(dir.path().join("outside/secret.txt"), SECRET).unwrap();
    std::fs::write(root.join("HelloWorld.html"), PAGE).unwrap();
    std::fs::write(root.join("sub/data.json"), b"{\"a\":1}").unwrap();
    std::fs::write(root.join("%2e"), SECRET).unwrap(); // only a double decode reaches it
    std::os::unix::fs::symlink("../secret.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("outdir")).unwrap();
    std::os::unix::fs::symlink("HelloWorld.html", root.join("inside.html")).unwrap();
    dir
}

/// The http_static example serving `dir/root`; killed on drop, its log
/// printed then if the test is failing.
pub struct Web {
    pub addr: SocketAddr,
    server: ExampleServer,
}

impl Web {
    pub fn start(dir: &Path, extra: &[&str]) -> Web {
        Web::start_with(dir, extra, |_| {})
    }

    /// As [`Web::start`], with `setup` applied to the command first.
    pub fn start_with(dir: &Path, extra: &[&str], setup: impl FnOnce(&mut Command)) -> Web {
        let root = dir.join("root");
        let mut cmd = Command::new(example_path("http_static"));
        cmd.args(["--addr", "127.0.0.1:0", "--root", root.to_str().unwrap()]);
        cmd.args(extra);
        setup(&mut cmd);
        let server = ExampleServer::start_command("http_static", cmd);
        Web {
            addr: server.addr,
            server,
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.server.stderr.text()
    }

    /// Waits (up to 10 s) for the server to log `needle`.
    pub fn says(&self, needle: &str) -> bool {
        self.server.says(needle, crate::common::IO_TIMEOUT)
    }

    /// The server's resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()));
        let status = status.unwrap_or_default();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("");
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

/// Runs curl with `-i` (the head, then the body, on stdout).
pub fn curl(args: &[&str]) -> Reply {
    let (stdout, stderr) = curl_plain(&[&["-i"], args].concat());
    split(&stdout, stderr)
}

/// Runs curl (required: the test fails loudly without it), bounded in time;
/// its stdout and stderr.
pub fn curl_plain(args: &[&str]) -> (Vec<u8>, String) {
    let child = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is required for the web server tests and was not found");
    // Read the output while curl runs (a big body would fill the pipe).
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(20)) else {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("curl did not finish in 20 s");
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl failed: {stderr}");
    (out.stdout, stderr)
}

/// The head and body of one response, read whole.
pub fn split(raw: &[u8], stderr: String) -> Reply {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8(raw[..at].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let body = raw[at + 4..].to_vec();
    Reply {
        status,
        head,
        body,
        stderr,
    }
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Sends `req` on a fresh connection, reads until the server closes.
pub fn raw(addr: SocketAddr, req: &[u8]) -> Reply {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    split(&read_to_eof(&mut s), String::new())
}

/// Reads one response head (through the blank line) byte by byte.
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend_from_slice(&read_n(s, 1));
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one response (head and `Content-Length` body) from `s`.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let head = read_head(s);
    let len = header(&head, "Content-Length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    split(&[head.as_bytes(), &body].concat(), String::new())
}
