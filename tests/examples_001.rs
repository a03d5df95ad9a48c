//! Note 001's programs (examples/timeout_server.rs, echo_server.rs,
//! echo_client.rs) driven by the notes' own client logic and the example client.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Runs an example client with `stdin`, bounded in time; returns its stdout.
fn run_client(name: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args);
    let out = run_bounded(cmd, stdin, LIMIT);
    assert!(out.status.success(), "{name} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The notes' `client.py` in Python 3: connect, sleep, send, print the reply,
/// then what a second recv sees (the server closed: b'').
const TIMEOUT_CLIENT: &str = r#"
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.settimeout(10)
sock.connect(('127.0.0.1', int(sys.argv[1])))
time.sleep(float(sys.argv[3]))
sock.send(sys.argv[2].encode())
print(sock.recv(1024).decode())
print(sock.recv(1024))
sock.close()
"#;

#[test]
fn client_sending_1_is_welcomed_after_the_notes_two_second_pause() {
    let server = ExampleServer::start("timeout_server", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    let out = python(TIMEOUT_CLIENT, &[&port, "1", "2"], LIMIT);
    assert_eq!(out, "welcome to server!\nb''\n");
}

#[test]
fn anything_but_1_is_sent_away() {
    let server = ExampleServer::start("timeout_server", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    for msg in ["2", "11", "hello"] {
        let out = python(TIMEOUT_CLIENT, &[&port, msg, "0"], LIMIT);
        assert_eq!(out, "please go out!\nb''\n", "for {msg:?}");
    }
    // nc adds a newline: still `1`.
    let out = python(TIMEOUT_CLIENT, &[&port, "1\n", "0"], LIMIT);
    assert_eq!(out, "welcome to server!\nb''\n");
}

#[test]
fn silent_client_is_closed_by_the_idle_timer_while_others_are_served() {
    let server = ExampleServer::start(
        "timeout_server",
        &["--addr", "127.0.0.1:0", "--timeout-ms", "400"],
    );
    let port = server.addr.port().to_string();
    // The silent client waits for the server to close; meanwhile another
    // client is answered at once (the notes would make it wait 5 s).
    let script = r#"
import socket, sys, time
silent = socket.socket()
silent.settimeout(10)
silent.connect(('127.0.0.1', int(sys.argv[1])))
t0 = time.monotonic()
other = socket.socket()
other.settimeout(10)
other.connect(('127.0.0.1', int(sys.argv[1])))
other.send(b'1')
print(other.recv(1024).decode(), round(time.monotonic() - t0, 1) < 0.3)
print(silent.recv(1024))
print(0.3 < time.monotonic() - t0 < 3.0)
"#;
    let out = python(script, &[&port], LIMIT);
    assert_eq!(out, "welcome to server! True\nb''\nTrue\n");
}

/// The notes' echo client in Python 3 (bytes instead of str).
const ECHO_CLIENT: &str = r#"
import sys
from socket import *
serverHost = 'localhost'
serverPort = int(sys.argv[1])
message = [b'Hello network world']
if len(sys.argv) > 2:
    message = [m.encode() for m in sys.argv[2:]]
sockobj = socket(AF_INET, SOCK_STREAM)
sockobj.settimeout(10)
sockobj.connect(('127.0.0.1', serverPort))
for line in message:
    sockobj.send(line)
    data = sockobj.recv(1024)
    print('Client received:', repr(data))
sockobj.close()
"#;

#[test]
fn echo_server_answers_the_notes_client_with_echo_prefix() {
    let server = ExampleServer::start("echo_server", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    let out = python(ECHO_CLIENT, &[&port], LIMIT);
    assert_eq!(out, "Client received: b'Echo=>Hello network world'\n");
    let out = python(ECHO_CLIENT, &[&port, "one", "two", "你好"], LIMIT);
    assert_eq!(
        out,
        "Client received: b'Echo=>one'\nClient received: b'Echo=>two'\n\
         Client received: b'Echo=>\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd'\n"
    );
}

#[test]
fn echo_server_serves_a_second_client_while_the_first_stays_connected() {
    let server = ExampleServer::start("echo_server", &["--addr", "127.0.0.1:0"]);
    let _first = connect(server.addr); // the notes would serve nobody else now
    let port = server.addr.port().to_string();
    let out = python(ECHO_CLIENT, &[&port, "next"], LIMIT);
    assert_eq!(out, "Client received: b'Echo=>next'\n");
}

#[test]
fn echo_client_sends_stdin_lines_and_prints_each_reply() {
    let server = ExampleServer::start("echo_server", &["--addr", "127.0.0.1:0"]);
    let addr = server.addr.to_string();
    let out = run_client(
        "echo_client",
        &["--addr", &addr, "--stdin"],
        "hello\n\nworld 你好\n".as_bytes(),
    );
    assert_eq!(
        out,
        "Client received: Echo=>hello\nClient received: Echo=>world 你好\n"
    );
    let out = run_client("echo_client", &["--addr", &addr], b"");
    assert_eq!(out, "Client received: Echo=>Hello network world\n");
}
