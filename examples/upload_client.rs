//! The notes' FTP upload client (`003_8786073bdc871acb.txt`, `MyFtpClient`)
//! for `upload`: (register,) log in, `put` a file with resume and a
//! progress bar (`indicatif`, on stderr, hidden when it is not a terminal).
//!
//! Fixed from the notes:
//! - **`input()` prompts** → flags, so it can be scripted and tested; the
//!   password is best given as `UPLOAD_PASSWORD` (a flag shows in `ps`).
//! - **Replies read with one `recv`** could glue together; here each reply is
//!   one line.
//! - **A resume offset is trusted blindly** (`f.seek(int(reply))`); here an
//!   offset beyond the local file is a clear error, and nothing is sent.
//! - **Resume by size alone**: here the `put` names the file's BLAKE2b hash,
//!   so the server resumes only a partial file of this very file, and checks
//!   the whole file against it before it answers `ok SIZE`.
//! - **Silent end**: here the server's `ok SIZE` confirms the upload.
//! - `--stop-after N` stops sending after N bytes of the file (exit code 3),
//!   to show resuming: run again without it and the upload continues.
//!
//! Try it:
//! ```text
//! cargo run --example upload -- --root /tmp/uploads &
//! UPLOAD_PASSWORD=s3cret cargo run --example upload_client -- --user alice --register Cargo.lock
//! UPLOAD_PASSWORD=s3cret cargo run --example upload_client -- --user alice --stop-after 1000 Cargo.lock
//! UPLOAD_PASSWORD=s3cret cargo run --example upload_client -- --user alice Cargo.lock  # resumes
//! ```

#[path = "upload/hash.rs"]
mod hash;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// The notes' FTP-style upload client: (register,) log in, upload one file, resuming.
#[derive(Parser)]
struct Args {
    /// The upload server.
    #[arg(long, default_value = "127.0.0.1:9090")]
    addr: String,
    /// User name: 1 to 32 of A-Z a-z 0-9 _ -.
    #[arg(long)]
    user: String,
    /// The password; better from the environment: a flag is visible to every user in `ps`.
    #[arg(long, env = "UPLOAD_PASSWORD", hide_env_values = true)]
    password: String,
    /// Register the user first.
    #[arg(long)]
    register: bool,
    /// Stop sending after this many bytes of the file (to try resuming).
    #[arg(long)]
    stop_after: Option<u64>,
    /// The file to upload.
    file: PathBuf,
}

struct Session {
    sock: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Session {
    fn reply(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) => Err("server closed the connection".into()),
            // `error: ` is the server's; ours is added once, in `main`.
            Ok(_) => Ok(line
                .trim_end_matches('\n')
                .trim_start_matches("error: ")
                .into()),
            Err(e) => Err(format!("receive: {e}")),
        }
    }

    fn ask(&mut self, cmd: serde_json::Value) -> Result<String, String> {
        self.sock
            .write_all(cmd.to_string().as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        self.reply()
    }
}

fn run(args: &Args) -> Result<String, String> {
    let sock = TcpStream::connect(&args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let lines = BufReader::new(sock.try_clone().map_err(|e| e.to_string())?);
    let mut s = Session { sock, lines };
    eprintln!("{}", s.reply()?); // the welcome
    let (user, password) = (&args.user, &args.password);
    if args.register {
        let r =
            s.ask(serde_json::json!({"cmd": "register", "username": user, "password": password}))?;
        if r != "注册成功" {
            return Err(format!("register: {r}"));
        }
    }
    let r =
        s.ask(serde_json::json!({"cmd": "check_user", "username": user, "password": password}))?;
    if r != "登陆成功" {
        return Err(format!("login: {r}"));
    }
    let mut file = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let name = args.file.file_name().unwrap_or_default().to_string_lossy();
    let hash = hash::blake2b(&mut file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let head =
        serde_json::json!({"cmd": "put", "filename": name, "filesize": size, "blake2b": hash});
    let offset = match s.ask(head)?.as_str() {
        "Start" => 0,
        r => r.parse::<u64>().map_err(|_| format!("put: {r}"))?,
    };
    if offset > size {
        return Err(format!(
            "put: server holds {offset} bytes, beyond the local file's {size}"
        ));
    }
    if offset > 0 {
        eprintln!("resuming at {offset} of {size} bytes");
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let bar = ProgressBar::new(size).with_position(offset);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec}").unwrap(),
    );
    let stop = args.stop_after.unwrap_or(u64::MAX);
    let (mut sent, mut buf) = (offset, vec![0u8; 64 << 10]);
    while sent < size {
        let want = (size - sent)
            .min(buf.len() as u64)
            .min(stop.saturating_sub(sent));
        if want == 0 {
            bar.abandon();
            return Err(format!("stopped after {sent} bytes (--stop-after)"));
        }
        let n = file
            .read(&mut buf[..want as usize])
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the local file shrank while sending".into());
        }
        s.sock
            .write_all(&buf[..n])
            .map_err(|e| format!("send: {e}"))?;
        sent += n as u64;
        bar.set_position(sent);
    }
    bar.finish();
    match s.reply()? {
        r if r == format!("ok {size}") => Ok(format!("uploaded {name}: {size} bytes")),
        r => Err(format!("put: {r}")),
    }
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(msg) => println!("{msg}"),
        Err(e) => {
            eprintln!("error: {e}");
            let stopped = e.ends_with("(--stop-after)");
            std::process::exit(if stopped { 3 } else { 1 });
        }
    }
}
