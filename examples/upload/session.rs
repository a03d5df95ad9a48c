//! The upload server's handler (`main.rs`): each connection's commands and
//! file bytes, and the answers of the worker threads.

use crate::files::{Files, Key, Put};
use crate::guard::Guard;
use crate::pool::Pool;
use crate::store;
use crate::work::{Done, Wait};
use ioplex::{Action, CloseReason, ConnId, Ctx, Handler, Peer};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;

const MAX_COMMAND: usize = 64 << 10;

/// A file body being received: bytes still due, size, the hash the `put` named.
pub struct Body {
    pub file: File,
    pub left: u64,
    pub size: u64,
    pub key: Key,
    pub hash: Option<String>,
}

/// One client: input not parsed yet, who it is logged in as (with the quota).
pub struct Conn {
    pub ip: IpAddr,
    pub buf: Vec<u8>,
    pub user: Option<(String, u64)>,
    pub body: Option<Body>,
}

/// The server: files, limits, the worker pool and the connections.
pub struct Upload {
    pub files: Files,
    pub guard: Guard,
    pub pool: Pool<Done>,
    pub quota: u64,
    pub conns: HashMap<ConnId, Conn>,
    pub waits: HashMap<ConnId, (IpAddr, Wait)>,
}

pub fn reply(ctx: &mut Ctx<'_>, id: ConnId, line: &str) {
    ctx.send_parts_to(id, &[line.as_bytes(), b"\n"]);
}

impl Upload {
    /// Handles input: file bytes while a body is due, else commands.
    pub fn feed(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &mut Conn, mut data: &[u8]) {
        if let Some(b) = &mut c.body {
            let n = data.len().min(b.left as usize);
            if let Err(e) = b.file.write_all(&data[..n]) {
                log::warn!("{id}: write {}: {e}", b.key.1);
                reply(ctx, id, &format!("error: write failed: {e}"));
                return ctx.close(id);
            }
            (b.left, data) = (b.left - n as u64, &data[n..]);
            self.complete(ctx, id, c);
        }
        c.buf.extend_from_slice(data);
        while c.body.is_none() && !self.waits.contains_key(&id) {
            let mut stream = serde_json::Deserializer::from_slice(&c.buf).into_iter();
            match stream.next() {
                None => return c.buf.clear(), // only whitespace
                Some(Ok(cmd)) => {
                    c.buf.drain(..stream.byte_offset());
                    self.command(ctx, id, c, cmd);
                }
                Some(Err(e)) if e.is_eof() && c.buf.len() <= MAX_COMMAND => return,
                Some(Err(e)) => {
                    reply(ctx, id, &format!("error: malformed command: {e}"));
                    return ctx.close(id);
                }
            }
        }
        if c.body.is_some() && !c.buf.is_empty() {
            let rest = std::mem::take(&mut c.buf); // file bytes glued to `put`
            self.feed(ctx, id, c, &rest);
        } else if c.buf.len() > MAX_COMMAND {
            reply(ctx, id, "error: too much input while busy");
            ctx.close(id);
        }
    }

    fn command(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &mut Conn, cmd: serde_json::Value) {
        let s = |k: &str| cmd[k].as_str().unwrap_or("").to_string();
        let (user, pw, root, quota) = (
            s("username"),
            s("password"),
            self.files.root.clone(),
            self.quota,
        );
        match cmd["cmd"].as_str() {
            Some("register") => match self.guard.start_register(c.ip) {
                Ok(()) => {
                    let work =
                        Box::new(move || Done::User(store::register(&root, &user, &pw, quota)));
                    self.submit(ctx, id, c, Wait::Register, work);
                }
                Err(e) => reply(ctx, id, &format!("error: {e}")),
            },
            Some("check_user") => match self.guard.start_login(&user, c.ip) {
                Ok(()) => {
                    let who = user.clone();
                    let work = Box::new(move || Done::User(store::login(&root, &who, &pw)));
                    self.submit(ctx, id, c, Wait::Login(user), work);
                }
                Err(e) => reply(ctx, id, &format!("error: {e}")),
            },
            Some("put") => match self.put(c, &cmd) {
                Ok(0) => reply(ctx, id, "Start"),
                Ok(have) => reply(ctx, id, &have.to_string()),
                Err(e) => reply(ctx, id, &format!("error: {e}")),
            },
            _ => reply(ctx, id, "Invalid command..."),
        }
        self.complete(ctx, id, c); // a partial file that was already whole
    }

    /// Checks a `put` and opens its file; returns the bytes already held.
    fn put(&mut self, c: &mut Conn, cmd: &serde_json::Value) -> Result<u64, String> {
        let (user, quota) = c.user.as_ref().ok_or("log in first")?;
        let size = cmd["filesize"]
            .as_u64()
            .ok_or("filesize must be a non-negative integer")?;
        let name = cmd["filename"].as_str().unwrap_or("");
        let hash = cmd["blake2b"].as_str();
        let (file, have, key) = self.files.put(
            user,
            &Put {
                name,
                size,
                hash,
                quota: *quota,
            },
        )?;
        let hash = hash.map(String::from);
        c.body = Some(Body {
            file,
            left: size - have,
            size,
            key,
            hash,
        });
        Ok(have)
    }
}

impl Handler for Upload {
    type Conn = ();

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        log::info!("{}: {peer} connected", ctx.id());
        reply(ctx, ctx.id(), "欢迎使用... ");
        let c = Conn {
            // Clients on a Unix socket share one address's limits.
            ip: peer.ip().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
            buf: Vec::new(),
            user: None,
            body: None,
        };
        self.conns.insert(ctx.id(), c);
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let id = ctx.id();
        if let Some(mut c) = self.conns.remove(&id) {
            self.take(ctx, id, &mut c, data);
            self.conns.insert(id, c);
        }
        Action::Continue
    }

    /// Workers finished (or could not start).
    fn on_notify(&mut self, ctx: &mut Ctx<'_>, _: u64) {
        self.finished(ctx);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _: (), reason: CloseReason) {
        let id = ctx.id();
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Some(b) = c.body {
            let kept = b.size - b.left;
            log::warn!(
                "{id}: {} interrupted, {kept} of {} bytes kept",
                b.key.1,
                b.size
            );
            self.files.done(&b.key);
        }
        if self.pool.forget(c.ip, id) {
            let wait = self.waits.remove(&id).unwrap();
            self.settle(wait, ""); // it never ran
        }
        log::info!("{id}: closed ({reason:?})");
    }
}
