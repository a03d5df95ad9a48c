//! Note 003's FTP-style upload server (examples/upload) driven by the
//! example client, the notes' client logic in Python, and raw sockets for
//! hostile input: names, sizes, resume offsets, interrupted uploads.

mod common;
mod upload_support;

use common::*;
use std::io::Write;
use std::time::Duration;
use upload_support::*;

#[test]
fn register_login_and_put_store_the_file_byte_for_byte_with_a_slow_hash() {
    let dir = temp();
    let server = start(&dir.path().join("root"), &[]);
    let src = dir.path().join("blank.mp3");
    std::fs::write(&src, data(300_000)).unwrap();
    let addr = server.addr.to_string();
    let args = ["--user", "charlie", "--password", "n7u8", "--register"];
    let (code, out, err) = client(&addr, &[&args[..], &[src.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "uploaded blank.mp3: 300000 bytes\n");
    let stored = dir.path().join("root/charlie/files/blank.mp3");
    assert!(std::fs::read(stored).unwrap() == data(300_000));
    let info = std::fs::read_to_string(dir.path().join("root/charlie/user_info.json")).unwrap();
    assert!(info.contains("\"password\":\"$argon2id$"), "{info}");
    assert!(!info.contains("n7u8"));
    // The whole file again (the password from the environment, out of
    // `ps`): a complete file is sent again and replaces the one held.
    let (code, out, _) = client_env(
        &addr,
        &["--user", "charlie", src.to_str().unwrap()],
        &[("UPLOAD_PASSWORD", "n7u8")],
    );
    assert_eq!((code, &out[..]), (0, "uploaded blank.mp3: 300000 bytes\n"));
    // Wrong password, unknown user, user taken: the notes' answers.
    let (code, _, err) = client(
        &addr,
        &[
            "--user",
            "charlie",
            "--password",
            "x",
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, err.lines().last()),
        (1, Some("error: login: 密码错误"))
    );
    let (code, _, err) = client(
        &addr,
        &["--user", "nobody", "--password", "x", src.to_str().unwrap()],
    );
    assert_eq!(
        (code, err.lines().last()),
        (1, Some("error: login: 用户名不存在"))
    );
    let (code, _, err) = client(&addr, &[&args[..], &[src.to_str().unwrap()]].concat());
    assert_eq!(
        (code, err.lines().last()),
        (1, Some("error: register: user exists"))
    );
}

#[test]
fn an_interrupted_upload_keeps_its_partial_file_and_resumes_exactly() {
    let dir = temp();
    let server = start(&dir.path().join("root"), &[]);
    let src = dir.path().join("big.bin");
    std::fs::write(&src, data(1_000_000)).unwrap();
    let addr = server.addr.to_string();
    let creds = ["--user", "dora", "--password", "pw"];
    let file = src.to_str().unwrap();
    let (code, _, err) = client(
        &addr,
        &[&creds[..], &["--register", "--stop-after", "400000", file]].concat(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("stopped after 400000 bytes"), "{err}");
    let partial = dir.path().join("root/dora/partial/big.bin");
    let len = || std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(
        wait_for(Duration::from_secs(5), || len() == 400_000),
        "partial is {}",
        len()
    );
    let (code, out, err) = client(&addr, &[&creds[..], &[file]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming at 400000 of 1000000 bytes"), "{err}");
    assert_eq!(out, "uploaded big.bin: 1000000 bytes\n");
    let stored = dir.path().join("root/dora/files/big.bin");
    assert!(std::fs::read(&stored).unwrap() == data(1_000_000));
    assert!(!partial.exists(), "the partial file was moved into files/");
}

/// The notes' client logic: JSON commands, then `Start` or an offset, then
/// the file from that offset. Here the `put` header and the whole file go
/// in one `sendall` (the notes' sticky-packet case), replies read as lines.
const NOTES_CLIENT: &str = r#"
import json, socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
f = s.makefile('rb')
print(f.readline().decode().strip())
for cmd in ('register', 'check_user'):
    s.sendall(json.dumps({"cmd": cmd, "username": "eve", "password": "pw"}).encode())
    print(f.readline().decode().strip())
data = bytes(range(256)) * 40
head = {"cmd": "put", "filename": "notes.bin", "filesize": len(data), "file_owner": "eve"}
s.sendall(json.dumps(head).encode() + data + json.dumps({"cmd": "ls"}).encode())
print(f.readline().decode().strip())
print(f.readline().decode().strip())
print(f.readline().decode().strip())
"#;

#[test]
fn the_notes_client_logic_uploads_even_with_header_and_body_glued() {
    let dir = temp();
    let server = start(&dir.path().join("root"), &[]);
    let out = python(NOTES_CLIENT, &[&server.addr.port().to_string()], LIMIT);
    assert_eq!(
        out,
        "欢迎使用...\n注册成功\n登陆成功\nStart\nok 10240\nInvalid command...\n"
    );
    let stored = std::fs::read(dir.path().join("root/eve/files/notes.bin")).unwrap();
    assert!(
        stored
            == [0u8..=255]
                .into_iter()
                .flatten()
                .collect::<Vec<u8>>()
                .repeat(40)
    );
}

#[test]
fn bad_names_sizes_offsets_and_put_before_login_are_refused_before_writing() {
    let dir = temp();
    let root = dir.path().join("root");
    let server = start(&root, &["--max-size", "1000"]);
    let mut s = Raw::open(server.addr);
    assert_eq!(s.ask(&put("a.txt", 10)), "error: log in first");
    s.login("frank", true);
    for name in ["../x", "a/b", "/etc/passwd", "a\\b", "a\0b", "..", ".", ""] {
        let r = s.ask(&put(name, 10));
        assert!(r.starts_with("error: refused file name"), "{name:?}: {r}");
    }
    assert_eq!(
        s.ask(&put("huge.bin", 1001)),
        "error: file too large: 1001 bytes, limit 1000"
    );
    assert_eq!(
        s.ask(&put("neg.bin", -5)),
        "error: filesize must be a non-negative integer"
    );
    // A partial file larger than the size its record names: a clear
    // error, no append.
    let home = root.join("frank");
    std::fs::write(home.join("partial/part.bin"), data(500)).unwrap();
    let record = r#"{"blake2b":"aa","size":100}"#;
    std::fs::write(home.join("resume/part.bin"), record).unwrap();
    let head = r#"{"cmd": "put", "filename": "part.bin", "filesize": 100, "blake2b": "aa"}"#;
    let r = s.ask(head);
    assert_eq!(
        r,
        "error: resume offset 500 is beyond the declared size 100"
    );
    assert_eq!(
        std::fs::read(home.join("partial/part.bin")).unwrap(),
        data(500)
    );
    let files = home.join("files");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 0);
    assert!(!dir.path().join("x").exists() && !root.join("x").exists());
    // Still serving this client after all that.
    assert_eq!(s.ask(&put("ok.bin", 3)), "Start");
    s.sock.write_all(b"abc").unwrap();
    assert_eq!(s.line(), "ok 3");
}

#[test]
fn two_uploads_of_one_file_at_once_are_refused_and_malformed_commands_close() {
    let dir = temp();
    let server = start(&dir.path().join("root"), &[]);
    let mut a = Raw::open(server.addr);
    a.login("gina", true);
    assert_eq!(a.ask(&put("same.bin", 10)), "Start");
    a.sock.write_all(b"12345").unwrap();
    let mut b = Raw::open(server.addr);
    b.login("gina", false);
    let r = b.ask(&put("same.bin", 10));
    assert_eq!(r, "error: same.bin is being uploaded on another connection");
    a.sock.write_all(b"67890").unwrap();
    assert_eq!(a.line(), "ok 10");
    let r = b.ask("{\"cmd\": \"put\", \"filename\": }");
    assert!(r.starts_with("error: malformed command"), "{r}");
    assert_eq!(read_to_eof(&mut b.sock), b"");
}
