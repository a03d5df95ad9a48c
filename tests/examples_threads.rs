//! The examples with `--threads 2`: two loops serve the clients between
//! them, each client whole, and the log shows both loops at work (an id
//! of loop 1 prints as `#1:KEY.GEN`).

mod common;
#[path = "http_static_util/mod.rs"]
mod http_static_util;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// `echo_select` with its log kept (printed only if the test fails).
struct Logged {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Logged {
    fn start(args: &[&str]) -> Logged {
        let path = example_path("echo_select");
        assert!(
            path.exists(),
            "{} is not built: run `cargo test`",
            path.display()
        );
        let mut child = Command::new(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn echo_select");
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, kept) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("echo_select's first line");
        std::thread::spawn(move || for _ in stdout.lines() {});
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("echo_select did not start: {first:?}"));
        Logged { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- echo_select log ---\n{}", self.log());
        }
    }
}

/// Connections the log says each of two loops took.
fn per_loop(log: &str, marker: &str) -> [usize; 2] {
    let lines = log.lines().filter(|l| l.contains(marker));
    let on_one = lines.clone().filter(|l| l.contains(" #1:")).count();
    [lines.count() - on_one, on_one]
}

#[test]
fn echo_select_with_two_threads_answers_200_clients_on_both_loops() {
    let server = Logged::start(&["--addr", "127.0.0.1:0", "--threads", "2"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                assert_eq!(read_n(&mut c, 8), b"hello...");
                let msg = format!("client {i:03}");
                c.write_all(msg.as_bytes()).unwrap();
                assert_eq!(
                    read_n(&mut c, 9 + msg.len()),
                    format!("response:{msg}").as_bytes()
                );
                c // kept open until all are served: the loops hold 200 at once
            })
        })
        .collect();
    let open: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(wait_for(IO_TIMEOUT, || per_loop(
        &server.log(),
        "connected from"
    )
    .iter()
    .sum::<usize>()
        == 200));
    let split = per_loop(&server.log(), "connected from");
    eprintln!("echo_select --threads 2: 200 clients served as {split:?} per loop");
    assert_eq!(
        split,
        [100, 100],
        "least-loaded splits 200 held clients evenly"
    );
    drop(open);
}

#[test]
fn http_static_with_two_threads_serves_every_request_on_both_loops() {
    use http_static_util::{PAGE, Web, curl, read_reply, site};
    let dir = site();
    let web = Web::start(dir.path(), &["--threads", "2"]);
    let addr = web.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = connect(addr);
                for _ in 0..3 {
                    c.write_all(b"GET /HelloWorld.html HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let reply = read_reply(&mut c);
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.body, PAGE);
                }
                c
            })
        })
        .collect();
    let open: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let r = curl(&["-s", &web.url("/sub/data.json")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
    let split = per_loop(&web.log(), "connected from");
    eprintln!("http_static --threads 2: 101 connections as {split:?} per loop");
    assert!(split[0] >= 40 && split[1] >= 40, "{split:?}");
    drop(open);
}
