//! Worker threads for slow work off the loop, shared by `remote_cmd` and
//! `upload` (`#[path]`): at most `max` run at once, the rest wait in a fair
//! line, and a slot is freed when the work ends, not when its client leaves
//! (a client that connects, asks and vanishes cannot start more than `max`).
//!
//! The line is round-robin over peer addresses, first come first served
//! within one address: an entry from another address waits behind at most
//! one entry of each address ahead of it. "Busy, try again" would hand the
//! next free slot to whoever retries fastest: the flooder.

use ioplex::{ConnId, Handle};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::mpsc;

/// One piece of work for a connection.
type Work<R> = Box<dyn FnOnce() -> R + Send>;
/// A finished piece: its connection and the result, or why no worker ran it.
pub type Done<R> = (ConnId, Result<R, String>);

/// Worker threads with a fair line in front of them.
pub struct Pool<R> {
    max: usize,
    running: usize,
    line: FairLine<(ConnId, Work<R>)>,
    tx: mpsc::Sender<(ConnId, R)>,
    rx: mpsc::Receiver<(ConnId, R)>,
    handle: Handle,
}

impl<R: Send + 'static> Pool<R> {
    /// A pool of `max` workers; each wakes the loop with `Handle::notify`
    /// (the handler's `on_notify` then calls [`Pool::done`]).
    pub fn new(max: usize, handle: Handle) -> Pool<R> {
        let (tx, rx) = mpsc::channel();
        let line = FairLine::default();
        Pool {
            max,
            running: 0,
            line,
            tx,
            rx,
            handle,
        }
    }

    /// Runs `work` for `id` (from `ip`) now if a slot is free and nobody
    /// waits, else puts it in line. `Err`: no worker thread could start.
    pub fn submit(&mut self, ip: IpAddr, id: ConnId, work: Work<R>) -> Result<(), String> {
        if self.running < self.max && self.line.len == 0 {
            return self.spawn(id, work);
        }
        self.line.push(ip, (id, work));
        Ok(())
    }

    /// Results that came in, then what the freed slots started (or failed to start).
    pub fn done(&mut self) -> Vec<Done<R>> {
        let mut out: Vec<Done<R>> = self.rx.try_iter().map(|(id, r)| (id, Ok(r))).collect();
        self.running -= out.len(); // those workers have ended
        while self.running < self.max {
            let Some((id, work)) = self.line.pop() else {
                break;
            };
            if let Err(e) = self.spawn(id, work) {
                out.push((id, Err(e)));
            }
        }
        out
    }

    /// `id` left: its work still in line is dropped (`true`: there was
    /// some); work running goes on and holds its slot until it ends.
    pub fn forget(&mut self, ip: IpAddr, id: ConnId) -> bool {
        self.line.remove(ip, |(x, _)| *x == id)
    }

    fn spawn(&mut self, id: ConnId, work: Work<R>) -> Result<(), String> {
        let (tx, handle) = (self.tx.clone(), self.handle.clone());
        std::thread::Builder::new()
            .spawn(move || {
                let _ = tx.send((id, work()));
                handle.notify(0);
            })
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        self.running += 1;
        Ok(())
    }
}

/// Entries by the address they came from, served one address at a time.
struct FairLine<T> {
    /// Addresses with entries waiting, in the order they are served.
    turn: VecDeque<IpAddr>,
    by_ip: HashMap<IpAddr, VecDeque<T>>,
    len: usize,
}

impl<T> Default for FairLine<T> {
    fn default() -> Self {
        FairLine {
            turn: VecDeque::new(),
            by_ip: HashMap::new(),
            len: 0,
        }
    }
}

impl<T> FairLine<T> {
    fn push(&mut self, ip: IpAddr, item: T) {
        let line = self.by_ip.entry(ip).or_default();
        if line.is_empty() {
            self.turn.push_back(ip);
        }
        line.push_back(item);
        self.len += 1;
    }

    /// The first entry of the address whose turn it is; that address goes
    /// to the back of the turn if it has more.
    fn pop(&mut self) -> Option<T> {
        let ip = self.turn.pop_front()?;
        let line = self.by_ip.get_mut(&ip)?;
        let item = line.pop_front()?;
        if line.is_empty() {
            self.by_ip.remove(&ip);
        } else {
            self.turn.push_back(ip);
        }
        self.len -= 1;
        Some(item)
    }

    /// Drops the entries of `ip` that `which` picks; `true` if there were any.
    fn remove(&mut self, ip: IpAddr, which: impl Fn(&T) -> bool) -> bool {
        let Some(line) = self.by_ip.get_mut(&ip) else {
            return false;
        };
        let before = line.len();
        line.retain(|x| !which(x));
        let (removed, empty) = (before - line.len(), line.is_empty());
        self.len -= removed;
        if empty {
            self.by_ip.remove(&ip);
            self.turn.retain(|a| *a != ip);
        }
        removed > 0
    }
}
