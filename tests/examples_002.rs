//! Note 002's programs (examples/cs_echo.rs, chat.rs, lines.rs) driven by
//! the notes' client logic in Python and by plain sockets where the notes
//! have no client (a member that never reads).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn cs_echo_greets_then_echoes_with_prefix() {
    let server = ExampleServer::start("cs_echo", &["--addr", "127.0.0.1:0"]);
    // The notes' test: telnet, here as a Python client.
    let script = r#"
import socket, sys
s = socket.socket()
s.settimeout(10)
s.connect(('127.0.0.1', int(sys.argv[1])))
print(s.recv(1024).decode())
for msg in ['hello server!\r\n', '你好']:
    s.sendall(msg.encode())
    print(repr(s.recv(1024).decode()))
"#;
    let out = python(script, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(
        out,
        "Hello, client!\n'Echo: hello server!\\r\\n'\n'Echo: 你好'\n"
    );
}

/// Three members: joins, relays to all but the sender, `\r\n` and split
/// lines, and leaves, all checked byte for byte.
const CHAT_ROOM: &str = r#"
import socket, sys, time
port = int(sys.argv[1])
def member():
    s = socket.socket()
    s.settimeout(10)
    s.connect(('127.0.0.1', port))
    return s, s.makefile('rb'), '%s:%d' % s.getsockname()
def expect(f, want):
    got = f.readline()
    assert got == want.encode(), (got, want)
a, fa, na = member()
time.sleep(0.1)
b, fb, nb = member()
expect(fa, '* %s joined\n' % nb)
c, fc, nc = member()
expect(fa, '* %s joined\n' % nc)
expect(fb, '* %s joined\n' % nc)
a.sendall('hello 你好\n'.encode())
expect(fb, '[%s] hello 你好\n' % na)
expect(fc, '[%s] hello 你好\n' % na)
b.sendall(b'one\r\ntw')
time.sleep(0.1)
b.sendall(b'o\n')
for f in (fa, fc):
    expect(f, '[%s] one\n' % nb)
    expect(f, '[%s] two\n' % nb)
c.close()
fc.close()
expect(fa, '* %s left\n' % nc)
expect(fb, '* %s left\n' % nc)
# The sender never got its own messages: the next thing a sees is b's line.
b.sendall(b'last\n')
expect(fa, '[%s] last\n' % nb)
print('ok')
"#;

#[test]
fn chat_relays_every_line_to_all_others_with_join_and_leave_notices() {
    let server = ExampleServer::start("chat", &["--addr", "127.0.0.1:0"]);
    let out = python(CHAT_ROOM, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(out, "ok\n");
}

/// The same room on two loops: the three members are spread over both
/// (least-loaded: a and c on one, b on the other), and every line, join
/// and leave still reaches exactly the others.
#[test]
fn chat_with_two_threads_relays_between_members_of_both_loops() {
    let server = ExampleServer::start("chat", &["--addr", "127.0.0.1:0", "--threads", "2"]);
    let out = python(CHAT_ROOM, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(out, "ok\n");
    let joined = || server.stderr.text().matches("new connection from").count() == 3;
    assert!(wait_for(IO_TIMEOUT, joined), "{}", server.output());
    let log = server.stderr.text();
    let joins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("new connection from"))
        .collect();
    let on_one = joins.iter().filter(|l| l.contains(" #1:")).count();
    assert_eq!((joins.len(), on_one), (3, 1), "{log}");
}

#[test]
fn chat_over_long_line_closes_only_its_sender() {
    let server = ExampleServer::start("chat", &["--addr", "127.0.0.1:0", "--max-line", "100"]);
    let mut good = connect(server.addr);
    let mut bad = connect(server.addr);
    let mut lines = BufReader::new(good.try_clone().unwrap());
    let mut notice = String::new();
    lines.read_line(&mut notice).unwrap(); // bad joined
    bad.write_all(&[b'x'; 200]).unwrap();
    assert_eq!(
        read_to_eof(&mut bad),
        b"* error: line longer than 100 bytes\n"
    );
    let mut left = String::new();
    lines.read_line(&mut left).unwrap();
    assert!(left.ends_with(" left\n"), "{left:?}");
    good.write_all(b"still here\n").unwrap();
    let mut third = connect(server.addr);
    third.write_all(b"hi\n").unwrap();
    let mut joined = String::new();
    lines.read_line(&mut joined).unwrap();
    let mut hi = String::new();
    lines.read_line(&mut hi).unwrap();
    assert!(hi.ends_with("] hi\n"), "{hi:?}");
}

#[test]
fn chat_slow_reader_gets_a_bounded_backlog_and_a_drop_notice_while_the_room_goes_on() {
    const LINE: usize = 1000;
    const LINES: usize = 8_000; // 8 MB: more than the kernel buffers on loopback (~3 MB)
    const BATCH: usize = 32;
    let server = ExampleServer::start(
        "chat",
        &[
            "--addr",
            "127.0.0.1:0",
            "--backlog",
            "16384",
            "--rate",
            "1000000",
        ],
    );
    let slow = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&server.addr.into()).unwrap();
        std::net::TcpStream::from(s)
    };
    std::thread::sleep(Duration::from_millis(100));
    let reader = connect(server.addr);
    std::thread::sleep(Duration::from_millis(100));
    let mut flooder = connect(server.addr);
    // The reader acknowledges each batch, so the flood never outruns it.
    let (tx, rx) = mpsc::channel();
    let read_thread = std::thread::spawn(move || {
        let mut lines = BufReader::new(reader);
        let mut line = Vec::new();
        lines.read_until(b'\n', &mut line).unwrap(); // the flooder joined
        let mut got = 0;
        loop {
            line.clear();
            lines.read_until(b'\n', &mut line).unwrap();
            if line.ends_with(b"] end\n") {
                break;
            }
            assert_eq!(
                line.len() - line.iter().position(|&b| b == b' ').unwrap(),
                LINE + 1
            );
            got += 1;
            if got % BATCH == 0 {
                tx.send(got).unwrap();
            }
        }
        (got, lines) // keep the reader in the room
    });
    let msg = [vec![b'm'; LINE - 1], b"\n".to_vec()].concat();
    for batch in 0..LINES / BATCH {
        for i in 0..BATCH {
            let mut numbered = msg.clone();
            let tag = format!("{:08}", batch * BATCH + i);
            numbered[..8].copy_from_slice(tag.as_bytes());
            flooder.write_all(&numbered).unwrap();
        }
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), (batch + 1) * BATCH);
    }
    flooder.write_all(b"end\n").unwrap();
    let (got, _reader) = read_thread.join().unwrap();
    assert_eq!(got, LINES, "the reader missed lines");
    // Now the slow member reads what it was given, then one more message.
    let mut slow = slow;
    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut held = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = slow.read(&mut buf) {
        if n == 0 {
            break;
        }
        held.extend_from_slice(&buf[..n]);
    }
    flooder.write_all(b"final\n").unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut tail = BufReader::new(slow);
    let mut dropped = String::new();
    tail.read_line(&mut dropped).unwrap();
    let mut last = String::new();
    tail.read_line(&mut last).unwrap();
    let text = String::from_utf8(held).unwrap();
    let notice = "* you read too slowly: dropping messages\n";
    assert_eq!(text.matches(notice).count(), 1);
    assert!(
        text.ends_with(notice),
        "the notice comes after the last kept message"
    );
    let kept = text.lines().filter(|l| l.ends_with('m')).count();
    let n: usize = dropped
        .strip_prefix("* ")
        .and_then(|d| d.strip_suffix(" messages dropped\n"))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{dropped:?}"));
    // The slow member kept the first messages, in order, then the notice.
    let nums: Vec<usize> = text
        .lines()
        .filter(|l| l.ends_with('m'))
        .map(|l| l[l.find(' ').unwrap() + 1..][..8].parse().unwrap())
        .collect();
    assert_eq!(nums, (0..kept).collect::<Vec<_>>());
    assert_eq!(
        kept + n,
        LINES + 1, // and `end`
        "every message was either kept or counted as dropped"
    );
    assert!(n > 0);
    assert!(last.ends_with("] final\n"), "{last:?}");
    eprintln!(
        "slow reader: {kept} kept ({} bytes), {n} dropped",
        text.len()
    );
}

/// The notes' makefile client, plus a partial line and a `\r\n` line.
const MAKEFILE_CLIENT: &str = r#"
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.settimeout(10)
sock.connect(('127.0.0.1', int(sys.argv[1])))
file_obj = sock.makefile(mode='rw')
file_obj.write('This is the message. It will be repeated.\n')
file_obj.flush()
response = file_obj.readline()
print('Received:', response, end='')
sock.sendall(b'par')
time.sleep(0.2)
sock.sendall(b'tial\r\nsecond\nthi')
time.sleep(0.1)
sock.sendall(b'rd\r\n')
for _ in range(3):
    print(repr(file_obj.readline()))
file_obj.close()
sock.close()
"#;

#[test]
fn lines_repeats_whole_lines_from_the_notes_makefile_client() {
    let server = ExampleServer::start("lines", &["--addr", "127.0.0.1:0"]);
    let out = python(MAKEFILE_CLIENT, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(
        out,
        "Received: This is the message. It will be repeated.\n'partial\\n'\n'second\\n'\n'third\\n'\n"
    );
}

#[test]
fn lines_over_long_line_is_an_error_for_that_client_only() {
    let server = ExampleServer::start("lines", &["--addr", "127.0.0.1:0", "--max-line", "64"]);
    let mut other = connect(server.addr);
    other.write_all(b"half a li").unwrap();
    let mut bad = connect(server.addr);
    bad.write_all(&[b'a'; 65]).unwrap();
    assert_eq!(read_to_eof(&mut bad), b"error: line longer than 64 bytes\n");
    let mut exact = connect(server.addr);
    exact.write_all(&[b'b'; 64]).unwrap();
    exact.write_all(b"\r\n").unwrap();
    assert_eq!(
        read_n(&mut exact, 65),
        [vec![b'b'; 64], b"\n".to_vec()].concat()
    );
    other.write_all(b"ne\n").unwrap();
    assert_eq!(read_n(&mut other, 12), b"half a line\n");
}
