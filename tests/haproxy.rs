//! Behind the real HAProxy (`apt-get install haproxy`; `.ci/run` installs
//! it, and without it this test fails, saying so): the configuration of
//! `docs/deploy.md`, read from that file (only its addresses and paths
//! changed), in front of three `resp --proxy-protocol` backends.
//!
//! Under a steady load of 50 clients connecting from 127.0.0.77, each
//! sending `ECHO <unique>` and checking every byte of the reply (a request
//! whose connection closed before its reply is sent once more on a new
//! connection, as clients of idempotent requests do; anything else is a
//! failure), each backend in turn gets SIGTERM, exits 0, is started again
//! on its port, and HAProxy reports it UP before the next: three rounds,
//! 0 failed and 0 wrong replies. The backends' logs name 127.0.0.77 (the
//! PROXY header's client), and a backend HAProxy only checks logs nothing
//! at info level. Then one backend is SIGKILLed under the same load:
//! HAProxy marks it DOWN within its check interval, the load goes on, and
//! the requests that failed are counted.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const CLIENT_IP: [u8; 4] = [127, 0, 0, 77];
/// A request with no reply for this long is a failure (not a retry).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The doc's `inter 250ms fall 2`.
const INTER: Duration = Duration::from_millis(250);
const FALL: u32 = 2;

/// The `haproxy` block of docs/deploy.md.
fn doc_config() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md"))
        .expect("docs/deploy.md");
    let start = doc
        .find("```haproxy\n")
        .expect("a ```haproxy block in docs/deploy.md")
        + 11;
    let len = doc[start..].find("```").expect("the block's end");
    doc[start..start + len].to_owned()
}

/// `text` with `from` replaced by `to`; `from` must be there, so an edit of
/// the doc that this test no longer matches fails here.
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "docs/deploy.md's haproxy.cfg no longer has {from:?}"
    );
    text.replace(from, to)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A backend: `resp --proxy-protocol` on a fixed port, its log kept.
struct Backend {
    port: u16,
    level: &'static str,
    proc: Option<Quiet>,
    /// The logs of its earlier runs.
    logs: String,
}

impl Backend {
    fn new(level: &'static str) -> Backend {
        let mut b = Backend {
            port: free_port(),
            level,
            proc: None,
            logs: String::new(),
        };
        b.start();
        b
    }

    fn start(&mut self) {
        let mut cmd = Command::new(example_path("resp"));
        cmd.args([
            "--addr",
            &format!("127.0.0.1:{}", self.port),
            "--proxy-protocol",
        ])
        .env("RUST_LOG", self.level);
        let p = Quiet::spawn("resp", cmd);
        let line = p.stdout.line("listening on", IO_TIMEOUT);
        assert_eq!(
            line,
            Some(format!("listening on 127.0.0.1:{}", self.port)),
            "{}",
            p.output()
        );
        self.proc = Some(p);
    }

    fn signal(&self, sig: i32) {
        let pid = self.proc.as_ref().unwrap().child.id() as i32;
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Waits for the exit; its status.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut p = self.proc.take().unwrap();
        let status = p
            .exited_within(limit)
            .unwrap_or_else(|| panic!("no exit within {limit:?}\n{}", p.output()));
        self.logs += &p.stderr.text();
        status
    }

    fn log(&self) -> String {
        let now = self
            .proc
            .as_ref()
            .map(|p| p.stderr.text())
            .unwrap_or_default();
        format!("{}{now}", self.logs)
    }

    /// Health checks it has served in its current run (they come from
    /// HAProxy's own address; clients, from the address their header names).
    fn checks(&self) -> usize {
        let log = self
            .proc
            .as_ref()
            .map(|p| p.stderr.text())
            .unwrap_or_default();
        log.matches("connected from 127.0.0.1:").count()
    }
}

/// HAProxy's `show stat`: the status of `backend`/`server`.
fn status(admin: &Path, backend: &str, server: &str) -> String {
    let mut s = UnixStream::connect(admin).expect("HAProxy's stats socket");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"show stat\n").unwrap();
    let mut csv = String::new();
    s.read_to_string(&mut csv).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = head
        .iter()
        .position(|c| *c == "status")
        .expect("a status column");
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&backend) && f.get(1) == Some(&server))
        .and_then(|f| f.get(col).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no {backend}/{server} in show stat:\n{csv}"))
}

/// What the clients counted.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    /// Closed before the reply, then answered on a new connection.
    retried: AtomicU64,
    /// Closed twice, timed out, or could not connect.
    failed: AtomicU64,
    /// Replies that were not the bytes sent.
    wrong: AtomicU64,
}

impl Counts {
    fn get(&self) -> [u64; 4] {
        [&self.ok, &self.retried, &self.failed, &self.wrong].map(|c| c.load(Relaxed))
    }
}

enum Attempt {
    Answered(bool),
    Closed,
    Failed(String),
}

/// One request on `conn` (made anew, from 127.0.0.77, if there is none).
fn attempt(conn: &mut Option<TcpStream>, front: SocketAddr, payload: &[u8]) -> Attempt {
    if conn.is_none() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((CLIENT_IP, 0)).into()).unwrap();
        if let Err(e) = s.connect_timeout(&front.into(), IO_TIMEOUT) {
            return Attempt::Failed(format!("connect to HAProxy: {e}"));
        }
        let c: TcpStream = s.into();
        c.set_nodelay(true).unwrap();
        c.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        *conn = Some(c);
    }
    let c = conn.as_mut().unwrap();
    let n = payload.len();
    let request = [
        format!("*2\r\n$4\r\nECHO\r\n${n}\r\n").as_bytes(),
        payload,
        b"\r\n",
    ]
    .concat();
    let want = [format!("${n}\r\n").as_bytes(), payload, b"\r\n"].concat();
    let mut got = vec![0; want.len()];
    let r = c.write_all(&request).and_then(|_| c.read_exact(&mut got));
    match r {
        Ok(()) => Attempt::Answered(got == want),
        Err(e) => {
            *conn = None;
            match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    Attempt::Failed(format!("no reply in {REPLY_TIMEOUT:?}"))
                }
                _ => Attempt::Closed, // EOF, reset, broken pipe
            }
        }
    }
}

/// A client: requests one after another until `stop`, a short pause between.
fn client(
    i: usize,
    front: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    started: Arc<Barrier>,
) {
    let mut conn = None;
    started.wait();
    let mut seq = 0u64;
    while !stop.load(Relaxed) {
        seq += 1;
        let payload = format!(
            "client {i:02} request {seq:08} {}",
            "x".repeat((seq % 97) as usize)
        );
        let mut outcome = attempt(&mut conn, front, payload.as_bytes());
        if matches!(outcome, Attempt::Closed) {
            outcome = match attempt(&mut conn, front, payload.as_bytes()) {
                Attempt::Answered(right) => {
                    counts.retried.fetch_add(1, Relaxed);
                    Attempt::Answered(right)
                }
                Attempt::Closed => Attempt::Failed("closed again on the retry".into()),
                failed => failed,
            };
        }
        match outcome {
            Attempt::Answered(true) => _ = counts.ok.fetch_add(1, Relaxed),
            Attempt::Answered(false) => _ = counts.wrong.fetch_add(1, Relaxed),
            Attempt::Failed(why) => {
                eprintln!("client {i}: request {seq} failed: {why}");
                counts.failed.fetch_add(1, Relaxed);
            }
            Attempt::Closed => unreachable!(),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn haproxy_found() -> PathBuf {
    let found = Command::new("haproxy").arg("-v").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "haproxy is required by this test (Debian: apt-get install haproxy; .ci/run installs it) and was not found"
    );
    PathBuf::from("haproxy")
}

#[test]
fn rolling_restarts_of_three_backends_behind_haproxy_lose_no_request_and_a_killed_one_goes_down() {
    let haproxy = haproxy_found();
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.sock");
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut backends: Vec<Backend> = (0..3).map(|_| Backend::new("debug")).collect();
    // A backend HAProxy only checks, at the default log level.
    let quiet = Backend::new("info");
    let mut cfg = doc_config();
    cfg = swap(cfg, "/run/haproxy/resp.sock", admin.to_str().unwrap());
    cfg = swap(cfg, "bind 127.0.0.1:6379", &format!("bind {front}"));
    for (i, b) in backends.iter().enumerate() {
        cfg = swap(
            cfg,
            &format!("127.0.0.1:{}", 6381 + i),
            &format!("127.0.0.1:{}", b.port),
        );
    }
    cfg += &format!(
        "\nbackend checked_only\n    option tcp-check\n    tcp-check send PING\\r\\n\n    \
         tcp-check expect string +PONG\n    server quiet 127.0.0.1:{} send-proxy-v2 check inter 250ms\n",
        quiet.port
    );
    let cfg_path = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let mut check = Command::new(&haproxy);
    check.arg("-c").arg("-f").arg(&cfg_path);
    let checked = run_bounded(check, b"", Duration::from_secs(10));
    assert!(
        checked.status.success(),
        "haproxy -c: {}\n{cfg}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let mut cmd = Command::new(&haproxy);
    cmd.arg("-db").arg("-f").arg(&cfg_path);
    let haproxy = Quiet::spawn("haproxy", cmd);
    let names = ["resp1", "resp2", "resp3"];
    let all_up = || names.iter().all(|n| status(&admin, "resp", n) == "UP");
    assert!(
        wait_for(IO_TIMEOUT, || admin.exists() && all_up()),
        "{}",
        haproxy.output()
    );

    let (stop, counts) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Counts::default()),
    );
    let started = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, counts, started) = (stop.clone(), counts.clone(), started.clone());
            std::thread::spawn(move || client(i, front, stop, counts, started))
        })
        .collect();
    started.wait();
    assert!(
        wait_for(IO_TIMEOUT, || counts.get()[0] >= 1000),
        "no load: {:?}",
        counts.get()
    );
    let t0 = Instant::now();
    let mut rounds = Vec::new();
    for round in 1..=3 {
        let before = counts.get();
        for (i, b) in backends.iter_mut().enumerate() {
            let t = Instant::now();
            b.signal(libc::SIGTERM);
            let status = b.wait(Duration::from_secs(5)); // shutdown_timeout
            assert!(
                status.success(),
                "round {round}: resp{} exited {status}",
                i + 1
            );
            let stopped = t.elapsed();
            b.start();
            let up = || b.checks() >= 2 && status_of(&admin, i) == "UP";
            assert!(
                wait_for(IO_TIMEOUT, up),
                "round {round}: resp{} not UP again\n{}",
                i + 1,
                haproxy.output()
            );
            eprintln!(
                "round {round}: resp{} stopped in {stopped:?}, UP again {:?} after SIGTERM",
                i + 1,
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(200)); // load on all three
        }
        let after = counts.get();
        let d: Vec<u64> = (0..4).map(|k| after[k] - before[k]).collect();
        eprintln!(
            "round {round}: {} requests answered ({} of them after a close, on a new connection), {} failed, {} wrong",
            d[0], d[1], d[2], d[3]
        );
        rounds.push(d);
    }
    let restarts_took = t0.elapsed();
    let [ok, _, failed, wrong] = counts.get();
    assert_eq!(
        (failed, wrong),
        (0, 0),
        "rolling restarts: {ok} answered, {failed} failed, {wrong} wrong"
    );

    // SIGKILL one backend under the same load.
    let before = counts.get();
    let t = Instant::now();
    backends[1].signal(libc::SIGKILL);
    assert!(
        wait_for(IO_TIMEOUT, || status_of(&admin, 1).starts_with("DOWN")),
        "{}",
        haproxy.output()
    );
    let down = t.elapsed();
    let at_down = counts.get();
    std::thread::sleep(Duration::from_secs(1));
    let after = counts.get();
    stop.store(true, Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let killed_failed = after[2] - before[2];
    eprintln!(
        "SIGKILL resp2: DOWN after {down:?} (inter {INTER:?}, fall {FALL}); {} requests answered after it in 1 s; \
         {} answered after a close, {killed_failed} failed, {} wrong since the kill",
        after[0] - at_down[0],
        after[1] - before[1],
        after[3] - before[3]
    );
    eprintln!(
        "rolling restarts: 3 rounds in {restarts_took:?}: {rounds:?} ([answered, retried, failed, wrong])"
    );
    assert!(
        down <= INTER * (FALL + 1) + Duration::from_millis(250),
        "DOWN only after {down:?}"
    );
    assert!(
        after[0] - at_down[0] > 1000,
        "the load did not go on: {:?} → {:?}",
        at_down,
        after
    );
    assert_eq!(after[3] - before[3], 0, "wrong replies after the kill");

    // The backends named the client the PROXY header carried.
    for (i, b) in backends.iter().enumerate() {
        let log = b.log();
        assert!(
            log.contains("connected from 127.0.0.77:"),
            "resp{}'s log names no 127.0.0.77:\n{log}",
            i + 1
        );
        assert!(
            !log.contains(" WARN ") && !log.contains(" ERROR "),
            "resp{}:\n{log}",
            i + 1
        );
    }
    // HAProxy ends its checks with a reset (seen at debug level)...
    assert!(
        backends[0].log().contains("read failed: Connection reset"),
        "{}",
        backends[0].log()
    );
    // ...and a backend checked all along logs nothing of them at info.
    assert_eq!(status(&admin, "checked_only", "quiet"), "UP");
    let checked = quiet.proc.as_ref().unwrap();
    assert!(
        checked.stderr.text().is_empty(),
        "a checked backend logged:\n{}",
        checked.output()
    );
    drop(haproxy);
}

fn status_of(admin: &Path, i: usize) -> String {
    status(admin, "resp", &format!("resp{}", i + 1))
}
