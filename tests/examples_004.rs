//! Note 004's programs (examples/time_server.rs, file_transfer.rs and its
//! client, udp_ping.rs and its client) driven by the notes' client logic in
//! Python and by the example clients. The web server has its own file
//! (tests/http_static.rs).

mod common;

use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// Runs an example binary to its end, bounded in time; returns (success, stdout, stderr).
fn run_example(name: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args).stderr(Stdio::piped());
    let out = run_bounded(cmd, b"", LIMIT);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// The notes' client.py, with the port from argv; also checks the format
/// and that the time is within 5 s of Python's own `datetime.now()`.
const TIME_CLIENT: &str = r#"
import sys
from socket import socket, SOCK_STREAM, AF_INET
from datetime import datetime
client = socket(family=AF_INET, type=SOCK_STREAM)
client.settimeout(10)
client.connect(('127.0.0.1', int(sys.argv[1])))
text = client.recv(1024).decode('utf-8')
rest = client.recv(1024)
client.close()
sent = datetime.strptime(text, '%Y-%m-%d %H:%M:%S.%f')
assert len(text) == 26, text
assert abs((datetime.now() - sent).total_seconds()) < 5, text
assert rest == b'', rest
print(text)
"#;

#[test]
fn time_server_sends_the_local_time_then_closes() {
    let server = ExampleServer::start("time_server", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    for _ in 0..3 {
        let out = python(TIME_CLIENT, &[&port], LIMIT);
        assert_eq!(out.len(), 27, "{out:?}"); // 2023-04-19 17:04:30.293444\n
    }
}

/// The notes' file transfer client, saving into argv[2] instead of /Users/Hao/.
const TRANSFER_CLIENT: &str = r#"
import sys
from socket import socket
from json import loads
from base64 import b64decode
client = socket()
client.settimeout(10)
client.connect(('127.0.0.1', int(sys.argv[1])))
in_data = bytes()
data = client.recv(1024)
while data:
    in_data += data
    data = client.recv(1024)
my_dict = loads(in_data.decode('utf-8'))
filename = my_dict['filename']
filedata = my_dict['filedata'].encode('utf-8')
with open(sys.argv[2] + '/' + filename, 'wb') as f:
    f.write(b64decode(filedata))
print('图片已保存.')
"#;

#[test]
fn file_transfer_reaches_the_notes_client_and_ours_byte_for_byte() {
    let dir = tempfile::Builder::new()
        .prefix("ioplex-ft-")
        .tempdir()
        .unwrap();
    let src = dir.path().join("guido.jpg");
    // 700 KB of every byte value: bigger than what the server queues at once.
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let server = ExampleServer::start(
        "file_transfer",
        &["--addr", "127.0.0.1:0", "--file", src.to_str().unwrap()],
    );
    let port = server.addr.port().to_string();
    for who in ["py", "rs"] {
        let out_dir = dir.path().join(who);
        std::fs::create_dir(&out_dir).unwrap();
        let out = out_dir.to_str().unwrap();
        if who == "py" {
            assert_eq!(
                python(TRANSFER_CLIENT, &[&port, out], LIMIT),
                "图片已保存.\n"
            );
        } else {
            let addr = server.addr.to_string();
            let (ok, stdout, stderr) =
                run_example("file_transfer_client", &["--addr", &addr, "--out", out]);
            assert!(ok, "{stderr}");
            assert!(stdout.contains("(700000 bytes)"), "{stdout}");
        }
        assert!(
            std::fs::read(out_dir.join("guido.jpg")).unwrap() == data,
            "{who}"
        );
    }
}

#[test]
fn file_transfer_client_reports_a_malformed_header_or_body_and_writes_nothing() {
    let cases: [(&[u8], &str); 6] = [
        (
            b"{\"filename\": \"a.jpg\", \"filedata\": \"QUJD",
            "malformed JSON header",
        ),
        (b"not json at all", "malformed JSON header"),
        (b"{\"filedata\": \"QUJD\"}", "no string field \"filename\""),
        (
            b"{\"filename\": 7, \"filedata\": \"QUJD\"}",
            "no string field \"filename\"",
        ),
        (
            b"{\"filename\": \"a.jpg\", \"filedata\": \"QU*D\"}",
            "malformed body",
        ),
        (
            b"{\"filename\": \"../a.jpg\", \"filedata\": \"QUJD\"}",
            "refused file name",
        ),
    ];
    let dir = tempfile::Builder::new()
        .prefix("ioplex-ftbad-")
        .tempdir()
        .unwrap();
    for (doc, want) in cases {
        // A server that sends `doc`, then EOF.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(doc).unwrap();
        });
        let out = dir.path().to_str().unwrap();
        let (ok, _, stderr) = run_example("file_transfer_client", &["--addr", &addr, "--out", out]);
        server.join().unwrap();
        assert!(!ok, "accepted {}", String::from_utf8_lossy(doc));
        assert!(
            stderr.starts_with("error: ") && stderr.contains(want),
            "{stderr}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    assert!(!dir.path().parent().unwrap().join("a.jpg").exists());
}

/// The notes' UDPPinger.py with the port from argv.
const PING_CLIENT: &str = r#"
import sys, time
from socket import *
serverName = '127.0.0.1'
serverPort = int(sys.argv[1])
clientSocket = socket(AF_INET, SOCK_DGRAM)
clientSocket.settimeout(1)
for i in range(0, 9):
    sendTime = time.time()
    message = ('Ping %d %s' % (i+1, sendTime)).encode()
    try:
        clientSocket.sendto(message, (serverName, serverPort))
        modifiedMessage, serverAddress = clientSocket.recvfrom(1024)
        assert modifiedMessage == message.upper(), modifiedMessage
        rtt = time.time() - sendTime
        print('Sequence %d: Reply from %s    RTT = %.3fs' % (i+1, serverName, rtt))
    except timeout as e:
        print('Sequence %d: Request timed out.' % (i+1))
clientSocket.close()
"#;

/// The lines we expect, with every RTT figure (`0.123 ms` from our client,
/// the notes' `0.000s` from theirs) replaced by `R`.
fn masked(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| match l.split_once("RTT = ") {
            Some((a, b))
                if b.strip_suffix(" ms")
                    .or_else(|| b.strip_suffix('s'))
                    .is_some_and(|x| x.parse::<f64>().is_ok()) =>
            {
                format!("{a}RTT = R")
            }
            _ => l.to_string(),
        })
        .collect()
}

fn expected_pings() -> Vec<String> {
    (1..=9)
        .map(|i| match i % 3 {
            1 => format!("Sequence {i}: Request timed out."),
            _ => format!("Sequence {i}: Reply from 127.0.0.1    RTT = R"),
        })
        .collect()
}

#[test]
fn udp_ping_drops_every_third_and_the_notes_client_sees_it() {
    let server = ExampleServer::start("udp_ping", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    let out = python(PING_CLIENT, &[&port], LIMIT);
    assert_eq!(masked(&out), expected_pings(), "{out}");
}

#[test]
fn udp_ping_client_prints_replies_timeouts_and_a_summary_and_the_server_stops_after_count() {
    let mut server = ExampleServer::start("udp_ping", &["--addr", "127.0.0.1:0", "--count", "9"]);
    let addr = server.addr.to_string();
    let started = Instant::now();
    let (ok, out, err) = run_example("udp_ping_client", &["--addr", &addr]);
    assert!(ok, "{err}");
    let replies = out.lines().filter(|l| l.contains("Reply from"));
    assert!(
        replies.clone().count() == 6 && replies.clone().all(|l| l.ends_with(" ms")),
        "{out}"
    );
    let lines = masked(&out);
    assert_eq!(lines[..9], expected_pings()[..], "{out}");
    assert_eq!(lines[9], "--- 127.0.0.1 ping statistics ---");
    assert_eq!(
        lines[10],
        "9 packets transmitted, 6 received, 33% packet loss"
    );
    let rtt = lines[11]
        .strip_prefix("rtt min/avg/max = ")
        .expect("rtt line");
    let ms: Vec<f64> = rtt
        .trim_end_matches(" ms")
        .split('/')
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        ms.len() == 3 && ms[0] <= ms[1] && ms[1] <= ms[2] && ms[2] < 1000.0,
        "{rtt}"
    );
    assert_eq!(lines.len(), 12);
    // Three timeouts of 1 s each.
    assert!(started.elapsed() >= Duration::from_millis(2900));
    // After the 9th message the server stops by itself.
    let exited = wait_for(Duration::from_secs(5), || {
        server.child.try_wait().unwrap().is_some()
    });
    assert!(exited, "udp_ping did not stop after --count 9");
    assert!(server.child.wait().unwrap().success());
}
