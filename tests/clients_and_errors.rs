//! What a person meets first with the upload, remote command, chat and
//! file transfer examples: `--help` on every flag, one-line errors with
//! exit 1 (2 for usage), a chat client that notices the server leave, a
//! file transfer client that does not overwrite silently.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 7] = [
    "upload",
    "upload_client",
    "remote_cmd",
    "file_transfer",
    "file_transfer_client",
    "chat",
    "chat_client",
];

/// Runs an example to its end; returns (exit code, stdout, stderr).
fn run(name: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(example_path(name));
    cmd.args(args)
        .stderr(Stdio::piped())
        .env_remove("UPLOAD_PASSWORD");
    let out = run_bounded(cmd, b"", Duration::from_secs(20));
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

#[test]
fn every_example_has_help_with_a_description_and_help_on_every_flag() {
    for name in EXAMPLES {
        let (code, out, _) = run(name, &["--help"]);
        assert_eq!(code, 0, "{name} --help");
        let first = out.lines().next().unwrap_or("");
        assert!(
            !first.is_empty() && !first.starts_with("Usage"),
            "{name}: no description: {out}"
        );
        // Every flag or argument line names it, then says what it is: on
        // the same line, or (clap's long form) on the next, indented deeper.
        let lines: Vec<&str> = out.lines().collect();
        let item = |l: &str| l.starts_with("  ") && l.trim_start().starts_with(['-', '<']);
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| item(l)) {
            let inline = l
                .trim_start()
                .split_once("  ")
                .is_some_and(|(_, h)| !h.trim().is_empty());
            let below = lines
                .get(i + 1)
                .is_some_and(|n| !item(n) && n.starts_with("          "));
            assert!(inline || below, "{name}: no help for {l:?}");
        }
        let (code, _, err) = run(name, &["--no-such-flag"]);
        assert_eq!(code, 2, "{name}: a usage error: {err}");
    }
}

#[test]
fn servers_on_a_busy_port_exit_1_with_one_line_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, b"x").unwrap();
    let (root, file) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
    for (name, extra) in [
        ("chat", vec![]),
        ("remote_cmd", vec![]),
        ("upload", vec!["--root", root]),
        ("file_transfer", vec!["--file", file]),
    ] {
        let (code, out, err) = run(name, &[&["--addr", &addr][..], &extra].concat());
        assert_eq!((code, out.as_str()), (1, ""), "{name}: {err}");
        let want = format!("error: cannot listen on {addr}: ");
        assert!(
            err.starts_with(&want) && err.contains("in use") && err.lines().count() == 1,
            "{name}: {err:?}"
        );
    }
    let (code, _, err) = run(
        "file_transfer",
        &["--addr", "127.0.0.1:0", "--file", "/nonexistent"],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: cannot read /nonexistent: No such file or directory (os error 2)\n"
    );
}

#[test]
fn chat_client_says_the_server_closed_at_once_and_exits_0() {
    let mut server = ExampleServer::start("chat", &["--addr", "127.0.0.1:0"]);
    let mut client = Command::new(example_path("chat_client"))
        .args(["--addr", &server.addr.to_string()])
        .stdin(Stdio::piped()) // held open: the person at the keyboard types nothing
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(client.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("connected to "), "{line}");
    let t = Instant::now();
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let status = loop {
        if let Some(st) = client.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = client.kill();
            panic!("chat_client still running 5 s after the server left");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    line.clear();
    err.read_line(&mut line).unwrap();
    eprintln!("chat_client noticed the server leave in {:?}", t.elapsed());
    assert_eq!(
        (status.code(), line.as_str()),
        (Some(0), "connection closed by server\n")
    );
}

#[test]
fn file_transfer_client_does_not_overwrite_a_file_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("guido.jpg");
    std::fs::write(&src, b"new bytes").unwrap();
    let server = ExampleServer::start(
        "file_transfer",
        &["--addr", "127.0.0.1:0", "--file", src.to_str().unwrap()],
    );
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let kept = out_dir.join("guido.jpg");
    std::fs::write(&kept, b"old bytes").unwrap();
    let (addr, out) = (server.addr.to_string(), out_dir.to_str().unwrap());
    let (code, _, err) = run("file_transfer_client", &["--addr", &addr, "--out", out]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: {} exists: not overwritten (--force to)\n",
            kept.display()
        )
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"old bytes");
    let (code, stdout, err) = run(
        "file_transfer_client",
        &["--addr", &addr, "--out", out, "--force"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("saved "), "{stdout}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"new bytes");
}
