//! The notes' FTP upload server (`003_8786073bdc871acb.txt`, "FTP服务端和客户端"),
//! on the reactor: the notes' JSON commands `register`, `check_user`, `put`;
//! `put` answers `Start` or the offset held, the client sends the rest, then `ok SIZE`.
//!
//! Fixed from the notes:
//! - **md5 passwords** (fixed salt) → Argon2id, hashed on a worker thread that
//!   hands the answer to its connection with `Handle::notify_conn`.
//! - **`file_owner` from the client** chose the directory; `filename` was joined
//!   as is. Here: `ROOT/USER/files/` of the logged-in user; `/` `\` `..` NUL refused.
//! - **Limits**: a size over `--max-size` is refused before writing; a partial
//!   file larger than the declared size is an error, not a silent append.
//! - **Sticky packets** (a command glued to file bytes): commands are parsed as
//!   a JSON stream, the body is exactly `filesize - offset` bytes, replies end in `\n`.
//! - **Blocking**: a thread per client; here one loop, writes of ≤ 64 KiB. A
//!   dropped upload keeps its partial file; one upload per file at a time.
//!
//! Try it:
//! ```text
//! cargo run --example upload -- --root /tmp/uploads          # 127.0.0.1:9090
//! cargo run --example upload_client -- --user alice --password s3cret --register Cargo.toml
//! ```

mod files;
mod store;

use clap::Parser;
use ioplex::{Action, CloseReason, Config, Ctx, Handler, Reactor};
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

const MAX_COMMAND: usize = 64 << 10;

#[derive(Parser)]
struct Args {
    /// Address to listen on (the notes' settings file is not shown).
    #[arg(long, default_value = "127.0.0.1:9090")]
    addr: String,
    /// Directory holding users and their files.
    #[arg(long, default_value = "uploads")]
    root: PathBuf,
    /// Largest file a client may declare, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_size: u64,
}

struct Upload {
    files: files::Files,
    auth: store::Auth,
}

#[derive(Default)]
struct Conn {
    buf: Vec<u8>,
    user: Option<String>,
    hashing: bool, // waiting for a password check (its worker will notify)
    body: Option<(File, u64, u64, files::Key)>, // file, bytes due, size, key
}

fn reply(ctx: &mut Ctx<'_>, line: &str) {
    ctx.send_parts(&[line.as_bytes(), b"\n"]);
}

impl Upload {
    /// Handles input: file bytes while a body is due, else commands.
    fn feed(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, mut data: &[u8]) {
        if let Some((file, left, _, key)) = &mut c.body {
            let n = data.len().min(*left as usize);
            if let Err(e) = file.write_all(&data[..n]) {
                log::warn!("{}: write {}: {e}", ctx.id(), key.1);
                reply(ctx, &format!("error: write failed: {e}"));
                return ctx.close(ctx.id());
            }
            (*left, data) = (*left - n as u64, &data[n..]);
            self.complete(ctx, c);
        }
        c.buf.extend_from_slice(data);
        while c.body.is_none() && !c.hashing {
            let mut stream = serde_json::Deserializer::from_slice(&c.buf).into_iter();
            match stream.next() {
                None => return c.buf.clear(), // only whitespace
                Some(Ok(cmd)) => {
                    c.buf.drain(..stream.byte_offset());
                    self.command(ctx, c, cmd);
                }
                Some(Err(e)) if e.is_eof() && c.buf.len() <= MAX_COMMAND => return,
                Some(Err(e)) => {
                    reply(ctx, &format!("error: malformed command: {e}"));
                    return ctx.close(ctx.id());
                }
            }
        }
        if c.body.is_some() && !c.buf.is_empty() {
            let rest = std::mem::take(&mut c.buf); // file bytes glued to `put`
            self.feed(ctx, c, &rest);
        } else if c.buf.len() > MAX_COMMAND {
            reply(ctx, "error: too much input while busy");
            ctx.close(ctx.id());
        }
    }

    /// Answers `ok SIZE` once the whole file is held.
    fn complete(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn) {
        if let Some((_, 0, size, key)) = &c.body {
            log::info!("{}: {}/{} complete, {size} bytes", ctx.id(), key.0, key.1);
            reply(ctx, &format!("ok {size}"));
            self.files.done(key);
            c.body = None;
        }
    }

    fn command(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, cmd: serde_json::Value) {
        let s = |k: &str| cmd[k].as_str().unwrap_or("").to_string();
        match cmd["cmd"].as_str() {
            Some(op @ ("register" | "check_user")) => {
                let (user, pw, login) = (s("username"), s("password"), op == "check_user");
                if self.auth.start(ctx.id(), &self.files.root, login, user, pw) {
                    c.hashing = true;
                } else {
                    reply(ctx, &format!("error: server busy, {op} again later"));
                }
            }
            Some("put") => match self.put(c, &s("filename"), cmd["filesize"].as_u64()) {
                Ok(0) => reply(ctx, "Start"),
                Ok(have) => reply(ctx, &have.to_string()),
                Err(e) => reply(ctx, &format!("error: {e}")),
            },
            _ => reply(ctx, "Invalid command..."),
        }
        self.complete(ctx, c); // a file that was already whole
    }

    /// Checks a `put` and opens its file; returns the bytes already held.
    fn put(&mut self, c: &mut Conn, name: &str, size: Option<u64>) -> Result<u64, String> {
        let user = c.user.as_deref().ok_or("log in first")?;
        let size = size.ok_or("filesize must be a non-negative integer")?;
        let (file, have, key) = self.files.put(user, name, size)?;
        c.body = Some((file, size - have, size, key));
        Ok(have)
    }
}

impl Handler for Upload {
    type Conn = Conn;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Conn {
        log::info!("{}: {peer} connected", ctx.id());
        reply(ctx, "欢迎使用... ");
        Conn::default()
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, data: &[u8]) -> Action {
        self.feed(ctx, c, data);
        Action::Continue
    }

    /// A worker finished this connection's password check.
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, c: &mut Conn, _: u64) -> Action {
        let Some((line, user)) = self.auth.take(ctx.id()) else {
            return Action::Continue;
        };
        c.hashing = false;
        c.user = user.or(c.user.take());
        reply(ctx, &line);
        self.feed(ctx, c, &[]); // commands that arrived meanwhile
        Action::Continue
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, c: Conn, reason: CloseReason) {
        let id = ctx.id();
        if let Some((_, left, size, key)) = c.body {
            let (name, kept) = (&key.1, size - left);
            log::warn!("{id}: {name} interrupted, {kept} of {size} bytes kept");
            self.files.done(&key);
        }
        if c.hashing {
            self.auth.forget(id);
        }
        log::info!("{id}: closed ({reason:?})");
    }
}

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    let files = files::Files::new(&args.root, args.max_size)?;
    let mut reactor = Reactor::new(Config::default())?;
    let auth = store::Auth::new(reactor.handle());
    let mut upload = Upload { files, auth };
    let addr = reactor.listen(&args.addr)?;
    println!("listening on {addr}");
    reactor.run(&mut upload)
}
