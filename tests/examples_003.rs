//! Note 003's programs (examples/handshake.rs, handshake_client.rs,
//! framed.rs, remote_cmd/, udp_echo.rs, socketserver.rs) driven by the
//! notes' client logic in Python and by the example clients.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Runs an example binary to its end, bounded in time; returns (success, stdout).
fn run_example(name: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args).stderr(Stdio::null());
    let out = run_bounded(cmd, stdin, LIMIT);
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

/// The notes' handshake client, with `input()` replaced by argv.
const HANDSHAKE_CLIENT: &str = r#"
import socket, sys
ip_port = ('127.0.0.1', int(sys.argv[1]))
s = socket.socket()
s.settimeout(10)
s.connect(ip_port)
for send_data in sys.argv[2:]:
    s.send(bytes(send_data, encoding='utf-8'))
    ready_tag = s.recv(1024)
    ready_tag = str(ready_tag, encoding='utf-8')
    if ready_tag.startswith('Ready'):
        data_size = int(ready_tag.split('|')[-1])
        start_tag = 'Start'
        s.send(bytes(start_tag, encoding='utf-8'))
        recv_msg = b''
        recv_size = 0
        while recv_size < data_size:
            recv_data = s.recv(1024)
            recv_msg += recv_data
            recv_size += len(recv_data)
        print(str(recv_msg, encoding='utf-8'), end='')
s.close()
"#;

#[test]
fn handshake_serves_the_notes_client_a_reply_longer_than_its_recv() {
    let server = ExampleServer::start("handshake", &["--addr", "127.0.0.1:0", "--repeat", "300"]);
    let port = server.addr.port().to_string();
    let out = python(HANDSHAKE_CLIENT, &[&port, "hello", "你好"], LIMIT);
    assert_eq!(out, "hello\n".repeat(300) + &"你好\n".repeat(300));
}

#[test]
fn handshake_waits_for_start_split_at_every_byte() {
    let server = ExampleServer::start("handshake", &["--addr", "127.0.0.1:0", "--repeat", "2"]);
    let script = r#"
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(10)
s.connect(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rb')
for i in range(6):
    s.sendall(b'req%d' % i)
    print(f.readline())
    s.sendall(b'Start'[:i])
    time.sleep(0.05)
    s.sendall(b'Start'[i:])
    print(f.read(10))
"#;
    let out = python(script, &[&server.addr.port().to_string()], LIMIT);
    let want: String = (0..6)
        .map(|i| format!("b'Ready|10\\n'\nb'req{i}\\nreq{i}\\n'\n"))
        .collect();
    assert_eq!(out, want);
}

#[test]
fn handshake_answers_anything_but_start_with_an_error_and_a_close() {
    let server = ExampleServer::start("handshake", &["--addr", "127.0.0.1:0"]);
    let mut s = connect(server.addr);
    s.write_all(b"hi").unwrap();
    assert_eq!(read_n(&mut s, 9), b"Ready|300");
    s.write_all(b"Stop!").unwrap();
    assert_eq!(read_to_eof(&mut s), b"\nerror: expected Start\n");
}

#[test]
fn handshake_client_prints_each_whole_reply() {
    let server = ExampleServer::start("handshake", &["--addr", "127.0.0.1:0", "--repeat", "2"]);
    let addr = server.addr.to_string();
    let (ok, out) = run_example("handshake_client", &["--addr", &addr, "a", "bc"], b"");
    assert!(ok);
    assert_eq!(out, "a\na\nbc\nbc\n");
    let (ok, out) = run_example("handshake_client", &["--addr", &addr], b"x\n\nexit\ny\n");
    assert!(ok);
    assert_eq!(out, "x\nx\n");
}

#[test]
fn framed_answers_glued_and_split_requests_in_order() {
    let server = ExampleServer::start("framed", &["--addr", "127.0.0.1:0", "--repeat", "2"]);
    let script = r#"
import socket, struct, sys, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(10)
s.connect(('127.0.0.1', int(sys.argv[1])))
frame = lambda b: struct.pack('>I', len(b)) + b
s.sendall(frame(b'one') + frame(b'') + frame('你好'.encode()))
for b in frame(b'split'):
    s.sendall(bytes([b]))
    time.sleep(0.005)
f = s.makefile('rb')
for _ in range(4):
    n, = struct.unpack('>I', f.read(4))
    print(f.read(n))
"#;
    let out = python(script, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(
        out,
        "b'one\\none\\n'\nb'\\n\\n'\nb'\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd\\n\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd\\n'\nb'split\\nsplit\\n'\n"
    );
    let (ok, out) = run_example(
        "framed",
        &["--addr", &server.addr.to_string(), "--client", "x", "yz"],
        b"",
    );
    assert!(ok);
    assert_eq!(out, "x\nx\nyz\nyz\n");
}

#[test]
fn framed_refuses_an_oversized_length_from_the_header_alone() {
    let server = ExampleServer::start("framed", &["--addr", "127.0.0.1:0", "--max-frame", "1000"]);
    let mut s = connect(server.addr);
    s.write_all(&1001u32.to_be_bytes()).unwrap(); // no body is ever sent
    assert_eq!(
        read_to_eof(&mut s),
        b"error: frame of 1001 bytes, over the maximum of 1000\n"
    );
}

/// Sends command lines, prints each length-prefixed reply.
const REMOTE_CLIENT: &str = r#"
import socket, struct, sys
s = socket.socket()
s.settimeout(10)
s.connect(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rb')
for cmd in sys.argv[2:]:
    s.sendall(cmd.encode() + b'\n')
    n, = struct.unpack('>I', f.read(4))
    print(repr(f.read(n)))
"#;

#[test]
fn remote_cmd_runs_allowed_programs_without_a_shell() {
    let server = ExampleServer::start("remote_cmd", &["--addr", "127.0.0.1:0"]);
    let port = server.addr.port().to_string();
    let out = python(
        REMOTE_CLIENT,
        &[
            &port,
            "echo hello; touch /tmp/pwned $(id) `id`",
            "sh -c id",
            "rm -rf /",
            "",
        ],
        LIMIT,
    );
    let refused = |p: &str| {
        format!(
            "b'error: `{p}` is not allowed; allowed: date, echo, hostname, sleep, uname, uptime, whoami\\n'\n"
        )
    };
    assert_eq!(
        out,
        "b'hello; touch /tmp/pwned $(id) `id`\\n'\n".to_string()
            + &refused("sh")
            + &refused("rm")
            + "b'error: empty request\\n'\n"
    );
    let out = python(REMOTE_CLIENT, &[&port, "uname"], LIMIT);
    assert_eq!(out, "b'Linux\\n'\n");
    // Allowed programs with arguments that would change the machine.
    let out = python(
        REMOTE_CLIENT,
        &[
            &port,
            "hostname pwned",
            "date -s 2000-01-01",
            "date 0101000000",
            "date -u +X",
        ],
        LIMIT,
    );
    let no_args = |p: &str| format!("b'error: `{p}` takes no such arguments here\\n'\n");
    assert_eq!(
        out,
        no_args("hostname") + &no_args("date") + &no_args("date") + "b'X\\n'\n"
    );
}

/// Reads one length-prefixed frame.
fn read_frame(s: &mut std::net::TcpStream) -> Vec<u8> {
    let len = u32::from_be_bytes(read_n(s, 4).try_into().unwrap());
    read_n(s, len as usize)
}

#[test]
fn remote_cmd_answers_other_clients_while_a_slow_command_runs() {
    let server = ExampleServer::start(
        "remote_cmd",
        &["--addr", "127.0.0.1:0", "--timeout-ms", "10000"],
    );
    let mut gone = connect(server.addr);
    gone.write_all(b"sleep 1\necho never read\n").unwrap();
    drop(gone); // leaves while its command runs: the output is dropped
    let mut slow = connect(server.addr);
    slow.write_all(b"sleep 3\necho after\n").unwrap();
    std::thread::sleep(Duration::from_millis(200)); // time for the server to start it
    let mut fast = connect(server.addr);
    fast.write_all(b"echo fast\n").unwrap();
    assert_eq!(read_frame(&mut fast), b"fast\n");
    // Had the loop run `sleep 3` itself, its answer would be here by now.
    slow.set_nonblocking(true).unwrap();
    let peek = slow.peek(&mut [0; 1]).map_err(|e| e.kind());
    assert_eq!(
        peek,
        Err(std::io::ErrorKind::WouldBlock),
        "slow answered before fast"
    );
    slow.set_nonblocking(false).unwrap();
    assert_eq!(read_frame(&mut slow), b"", "sleep prints nothing");
    assert_eq!(
        read_frame(&mut slow),
        b"after\n",
        "pipelined lines are answered in order"
    );
    fast.write_all(b"echo still here\n").unwrap();
    assert_eq!(read_frame(&mut fast), b"still here\n");
}

#[test]
fn remote_cmd_refuses_to_listen_beyond_loopback() {
    let (ok, out) = run_example("remote_cmd", &["--addr", "0.0.0.0:0"], b"");
    assert!(!ok, "it must exit with an error");
    assert_eq!(out, "", "it must not listen");
}

#[test]
fn udp_echo_answers_ok_to_every_datagram() {
    let server = ExampleServer::start("udp_echo", &["--addr", "127.0.0.1:0"]);
    // The notes' UDP client, with input() replaced by argv.
    let script = r#"
import socket, sys
ip_port = ('127.0.0.1', int(sys.argv[1]))
sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
sk.settimeout(10)
for inp in sys.argv[2:]:
    sk.sendto(bytes(inp, encoding='utf-8'), ip_port)
    data = sk.recvfrom(1024)
    print(data[0], data[1] == ip_port)
sk.close()
"#;
    let port = server.addr.port().to_string();
    let out = python(script, &[&port, "hi", "", "你好"], LIMIT);
    assert_eq!(out, "b'ok' True\n".repeat(3));
}

/// The notes' socketserver client, with input() replaced by argv.
const SOCKETSERVER_CLIENT: &str = r#"
import socket, sys
ip_port = ('127.0.0.1', int(sys.argv[1]))
s = socket.socket()
s.settimeout(10)
s.connect(ip_port)
welcome_msg = s.recv(1024)
print(welcome_msg.decode())
for send_data in sys.argv[2:]:
    s.send(bytes(send_data, encoding='utf-8'))
    recv_data = s.recv(1024)
    print(recv_data.decode())
s.close()
"#;

#[test]
fn socketserver_greets_and_echoes_on_the_reactor_and_on_threads() {
    for mode in [
        &["--addr", "127.0.0.1:0"][..],
        &["--addr", "127.0.0.1:0", "--threads"],
    ] {
        let server = ExampleServer::start("socketserver", mode);
        let port = server.addr.port().to_string();
        let out = python(SOCKETSERVER_CLIENT, &[&port, "hello", "你好"], LIMIT);
        assert_eq!(out, "欢迎致电... \nhello\n你好\n", "{mode:?}");
    }
}

#[test]
fn socketserver_client_that_leaves_costs_no_cpu_in_either_model() {
    for mode in [
        &["--addr", "127.0.0.1:0"][..],
        &["--addr", "127.0.0.1:0", "--threads"],
    ] {
        let server = ExampleServer::start("socketserver", mode);
        let port = server.addr.port().to_string();
        python(SOCKETSERVER_CLIENT, &[&port, "bye"], LIMIT);
        let before = server.cpu_time();
        std::thread::sleep(Duration::from_millis(500));
        let spent = server.cpu_time() - before;
        // The notes' handle() loops on b'' forever: 500 ms of CPU here.
        assert!(spent < Duration::from_millis(100), "{mode:?}: {spent:?}");
    }
}
