//! What the upload tests share: the server on a temporary root, the
//! example client, a raw JSON session.
#![allow(dead_code)]

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(30);

pub fn start(root: &Path, extra: &[&str]) -> ExampleServer {
    let mut args = vec!["--addr", "127.0.0.1:0", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    ExampleServer::start("upload", &args)
}

pub fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ioplex-upload-")
        .tempdir()
        .unwrap()
}

/// Bytes of every value, `n` long.
pub fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// Runs upload_client; returns (exit code, stdout, stderr).
pub fn client(addr: &str, args: &[&str]) -> (i32, String, String) {
    client_env(addr, args, &[])
}

/// The example client with extra environment variables.
pub fn client_env(addr: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(example_path("upload_client"));
    cmd.args(["--addr", addr]).args(args).stderr(Stdio::piped());
    cmd.env_remove("UPLOAD_PASSWORD").envs(env.iter().copied());
    let out = run_bounded(cmd, b"", LIMIT);
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// A raw session: JSON commands out, reply lines in.
pub struct Raw {
    pub sock: TcpStream,
    pub lines: BufReader<TcpStream>,
}

impl Raw {
    pub fn open(addr: SocketAddr) -> Raw {
        Raw::on(connect(addr))
    }
    /// A session on a socket already connected (say, from another address).
    pub fn on(sock: TcpStream) -> Raw {
        let lines = BufReader::new(sock.try_clone().unwrap());
        let mut raw = Raw { sock, lines };
        assert_eq!(raw.line(), "欢迎使用... ");
        raw
    }
    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).expect("a reply line");
        l.trim_end_matches('\n').to_string()
    }
    /// Ends the session and waits until the server has closed its side, so
    /// the connection no longer counts toward its address's cap.
    pub fn finish(self) {
        self.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = (&self.sock).read_to_end(&mut rest);
    }
    pub fn ask(&mut self, cmd: &str) -> String {
        self.sock.write_all(cmd.as_bytes()).unwrap();
        self.line()
    }
    pub fn login(&mut self, user: &str, register: bool) {
        let creds = format!("\"username\": \"{user}\", \"password\": \"pw-{user}\"");
        if register {
            let r = self.ask(&format!("{{\"cmd\": \"register\", {creds}}}"));
            assert_eq!(r, "注册成功");
        }
        assert_eq!(
            self.ask(&format!("{{\"cmd\": \"check_user\", {creds}}}")),
            "登陆成功"
        );
    }
}

pub fn put(name: &str, size: i64) -> String {
    serde_json::json!({"cmd": "put", "filename": name, "filesize": size}).to_string()
}
