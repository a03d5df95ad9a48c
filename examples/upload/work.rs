//! The upload server's work off the loop (`session.rs`): what each
//! connection waits for, handing work to the pool, and settling its answer
//! with the limits, the file table and the client.

use crate::files::{self, Key};
use crate::guard::Verdict;
use crate::session::{Conn, Upload, reply};
use crate::store::Outcome;
use ioplex::{ConnId, Ctx};
use std::net::IpAddr;

/// What a worker hands back.
pub enum Done {
    User(Outcome),
    Stored(Result<(), String>),
}

/// What a connection waits for while its work is with the pool.
pub enum Wait {
    Register,
    Login(String),
    Store(Key, u64),
}

/// Work for a worker thread.
pub type Work = Box<dyn FnOnce() -> Done + Send>;

impl Upload {
    /// [`Upload::feed`], then tells the loop whether `id` is mid-request
    /// (work with the pool, a body due, a command partly in): a graceful
    /// stop closes it only once it is answered.
    pub fn take(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &mut Conn, data: &[u8]) {
        self.feed(ctx, id, c, data);
        let busy = c.body.is_some() || !c.buf.is_empty() || self.waits.contains_key(&id);
        ctx.set_busy(id, busy);
    }

    /// Once the whole body is held: checked against its hash on a worker, or
    /// (no hash named) moved into place now; `ok SIZE` when it is kept.
    pub fn complete(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &mut Conn) {
        let Some(b) = c.body.take_if(|b| b.left == 0) else {
            return;
        };
        log::info!("{id}: {}/{} received, {} bytes", b.key.0, b.key.1, b.size);
        let (root, key, hash) = (self.files.root.clone(), b.key.clone(), b.hash);
        if hash.is_none() {
            let r = files::finish(&root, &key, None);
            return self.answer(
                ctx,
                id,
                c,
                (c.ip, Wait::Store(b.key, b.size)),
                Ok(Done::Stored(r)),
            );
        }
        let work = Box::new(move || Done::Stored(files::finish(&root, &key, hash.as_deref())));
        self.submit(ctx, id, c, Wait::Store(b.key, b.size), work);
    }

    /// Hands `work` for `c` to the pool; if no worker could start, `c` is
    /// answered (`error: …`) and the limits settled at once.
    pub fn submit(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &mut Conn, wait: Wait, work: Work) {
        match self.pool.submit(c.ip, id, work) {
            Ok(()) => {
                self.waits.insert(id, (c.ip, wait));
            }
            Err(e) => {
                log::warn!("{id}: no worker: {e}");
                self.answer(ctx, id, c, (c.ip, wait), Err(e));
            }
        }
    }

    /// Answers of the workers that finished (or could not start).
    pub fn finished(&mut self, ctx: &mut Ctx<'_>) {
        for (id, r) in self.pool.done() {
            let Some(wait) = self.waits.remove(&id) else {
                continue;
            };
            match self.conns.remove(&id) {
                Some(mut c) => {
                    self.answer(ctx, id, &mut c, wait, r);
                    self.conns.insert(id, c);
                }
                None => {
                    let line = match r {
                        Ok(Done::User(o)) => o.line(),
                        _ => String::new(),
                    };
                    self.settle(wait, &line);
                }
            }
        }
    }

    /// A worker's answer (or why none ran): the limits learn it, then the
    /// client, if still here, gets its line and its next commands run.
    fn answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        c: &mut Conn,
        wait: (IpAddr, Wait),
        r: Result<Done, String>,
    ) {
        let line = match (&wait.1, r) {
            (_, Err(e)) => format!("error: {e}"),
            (Wait::Login(user), Ok(Done::User(Outcome::LoggedIn(q)))) => {
                c.user = Some((user.clone(), q));
                Outcome::LoggedIn(q).line()
            }
            (_, Ok(Done::User(o))) => o.line(),
            (Wait::Store(_, size), Ok(Done::Stored(Ok(())))) => format!("ok {size}"),
            (_, Ok(Done::Stored(r))) => format!("error: {}", r.err().unwrap_or_default()),
        };
        self.settle(wait, &line);
        reply(ctx, id, &line);
        self.take(ctx, id, c, &[]); // commands that arrived meanwhile
    }

    /// Tells the limits and the file table how a piece of work ended.
    pub fn settle(&mut self, (ip, wait): (IpAddr, Wait), line: &str) {
        match wait {
            Wait::Register => self.guard.end_register(ip, line == "注册成功"),
            Wait::Login(user) => {
                let verdict = match line {
                    "登陆成功" => Verdict::Right,
                    "密码错误" => Verdict::WrongPassword,
                    "用户名不存在" => Verdict::NoSuchUser,
                    _ => Verdict::Unknown,
                };
                self.guard.end_login(&user, ip, verdict);
            }
            Wait::Store(key, _) => self.files.done(&key),
        }
    }
}
