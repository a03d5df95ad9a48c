//! One `remote_cmd` client's lines: taken one at a time, checked, and run
//! through the pool, so its answers go out in the order it asked.

use crate::child::{self, Reply, frame};
use crate::pool::Pool;
use ioplex::codec::{Codec, Lines};
use ioplex::{ConnId, Ctx};
use std::net::IpAddr;
use std::time::Duration;

/// A client: its address, input not run yet, a command in the pool, EOF seen.
pub struct Client {
    pub ip: IpAddr,
    pub pending: Vec<u8>,
    pub busy: bool,
    pub eof: bool,
}

impl Client {
    /// Takes lines while none of this client's is in the pool: refused ones
    /// are answered at once, a checked one goes to the pool (to run or wait).
    pub fn pump(&mut self, ctx: &mut Ctx<'_>, id: ConnId, pool: &mut Pool<Reply>, t: Duration) {
        while !self.busy {
            let (line, n) = match Lines::new(1024).decode(&self.pending) {
                Ok(Some((line, n))) => (child::check(line), n),
                Ok(None) if self.eof => return ctx.close(id),
                Ok(None) => return,
                Err(e) => {
                    ctx.send_to(id, &frame(Err(e.to_string()))); // the rest is unknown
                    return ctx.close(id);
                }
            };
            self.pending.drain(..n);
            let started = line.and_then(|argv| {
                log::info!("{id}: run {argv:?}");
                pool.submit(self.ip, id, Box::new(move || child::run(&argv, t)))
            });
            match started {
                Ok(()) => self.busy = true,
                Err(e) => _ = ctx.send_to(id, &frame(Err(e))),
            }
        }
    }
}

/// Line ends in `b`: lines are at most 1 KiB (`pump`), so counting them
/// bounds the bytes a client holds too.
pub fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&b| b == b'\n').count()
}
