//! Idle sockets against every server of the notes' upload, remote command,
//! chat and file transfer examples: one address holding thousands of idle
//! connections (or downloads it never reads) must not lock newcomers out.
//! Each server caps connections per address (`--max-per-ip`) and closes
//! the idle (or the stalled download) after its timeout.

mod common;
mod peers;

use common::*;
use peers::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Idle connections the flood holds: 10,000 (the figure), fewer if
/// this process cannot have that many descriptors (printed).
fn flood_size() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    (lim.rlim_cur as usize).saturating_sub(1000).min(10_000)
}

/// One flood at a time: four of them at once would pass the descriptor limit.
static FLOODS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Opens `n` connections from 127.0.0.1 that send nothing.
fn hold_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let t = Instant::now();
    let idle: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    eprintln!(
        "{} idle connections opened in {:?}",
        idle.len(),
        t.elapsed()
    );
    assert_eq!(idle.len(), n, "the flood could not connect");
    idle
}

/// A newcomer from 127.0.0.2, which must be served at once, then newcomers
/// from the flooding address until one is served within `limit`: how long
/// each took.
fn other_then_same(
    addr: SocketAddr,
    limit: Duration,
    served: impl Fn(TcpStream) -> bool,
) -> (Duration, Duration) {
    let t = Instant::now();
    assert!(served(connect_from("127.0.0.2", addr)), "another address");
    let other = t.elapsed();
    let t = Instant::now();
    while !served(connect(addr)) {
        assert!(t.elapsed() < limit, "not served within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (other, t.elapsed())
}

/// The flood, then a newcomer from 127.0.0.2 (served at once) and one from
/// the flooding address (served once the idle ones were closed).
fn newcomers_are_served(name: &str, args: &[&str], served: impl Fn(TcpStream) -> bool) {
    let _one = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let server = ExampleServer::start(name, &[&["--addr", "127.0.0.1:0"], args].concat());
    let idle = hold_idle(server.addr, flood_size());
    let (other, same) = other_then_same(server.addr, Duration::from_secs(5), served);
    eprintln!(
        "{name}: beside {} idle: another address served in {other:?}, the same in {same:?} (idle timeout 2 s)",
        idle.len()
    );
    assert!(other < Duration::from_secs(1), "{name}: {other:?}");
}

/// Reads one line, or `None` if the server closed or said nothing in time.
fn first_line(s: TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .ok()
        .filter(|n| *n > 0)
        .map(|_| line)
}

#[test]
fn upload_serves_newcomers_beside_ten_thousand_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let args = ["--root", root, "--idle-timeout-ms", "2000"];
    newcomers_are_served("upload", &args, |s| {
        first_line(s).as_deref() == Some("欢迎使用... \n")
    });
}

#[test]
fn remote_cmd_serves_newcomers_beside_ten_thousand_idle_connections() {
    newcomers_are_served("remote_cmd", &["--idle-timeout-ms", "2000"], |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut frame = [0u8; 7];
        s.write_all(b"echo hi\n").is_ok()
            && s.read_exact(&mut frame).is_ok()
            && frame == *b"\0\0\0\x03hi\n"
    });
}

#[test]
fn chat_serves_newcomers_beside_ten_thousand_idle_members() {
    // Served: a member that is in the room sees the next one join.
    newcomers_are_served("chat", &["--idle-timeout-s", "2"], |s| {
        let witness = connect_from("127.0.0.3", s.peer_addr().unwrap());
        let joined = format!("* {} joined\n", witness.local_addr().unwrap());
        first_line(s).is_some_and(|l| l == joined)
    });
}

#[test]
fn file_transfer_drops_downloads_nobody_reads_and_serves_newcomers() {
    let _one = FLOODS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 4 << 20]).unwrap(); // 5.6 MB as JSON
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--file",
        file.to_str().unwrap(),
        "--stall-timeout-ms",
        "1000",
    ];
    let server = ExampleServer::start("file_transfer", &args);
    let pid = server.child.id();
    let rss0 = proc_status(pid, "VmRSS");
    // 1,000 clients that never read, with small receive buffers.
    let stuck: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_recv_buffer_size(4096).unwrap();
            s.connect(&server.addr.into()).unwrap();
            s.into()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let rss = proc_status(pid, "VmRSS");
    let whole = |s: TcpStream| {
        let mut doc = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&s).read_to_end(&mut doc).is_ok() && doc.len() > 5_000_000
    };
    let (other, same) = other_then_same(server.addr, Duration::from_secs(4), whole);
    eprintln!(
        "1,000 non-readers: server RSS {} -> {} KiB; another address served in {other:?}, \
         the same in {same:?} (stall timeout 1 s)",
        rss0, rss
    );
    assert!(rss < rss0 + (16 << 10), "{rss0} -> {rss} KiB");
    drop(stuck);
}
