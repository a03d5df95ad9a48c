//! The loop: one thread, one readiness backend, a slab of listeners, UDP
//! sockets and connections.
//!
//! # One iteration, in order (this is the code of [`Reactor::run`])
//!
//! 1. **Timeout.** Sleep until the nearest timer or deadline, capped by
//!    [`Config::max_wait`]; 0 when the own ready queue is not empty.
//! 2. **Wait** for events (retrying on `EINTR`).
//! 3. **Events.** For each: drop it if its token's generation is stale;
//!    a listener accepts until `WouldBlock` or `accepts_per_cycle`; a
//!    connection flushes queued output on WRITABLE and reads up to
//!    `read_budget` on READABLE, handing the bytes to the handler, whose
//!    sends are written at once (only what the socket refuses is queued);
//!    a connection whose queue empties hears [`Handler::on_drain`]; the
//!    waker's event delivers [`Handle::notify`] tags.
//! 4. **Ready queue.** Run the listeners and connections that stopped at
//!    their budget last time (no new edge will come for them).
//! 5. **Timers.** Fire user timers and connection deadlines (idle, flush,
//!    linger) that are due; resume accepting after an EMFILE back-off.
//! 6. **Before sleep.** Close what was marked for closing (telling the
//!    handler), call [`Handler::on_tick`], close what that marked, and apply
//!    the interest changes that level-triggered or one-shot backends need.
//!    Edge-triggered backends need none: a connection is registered
//!    READABLE|WRITABLE once at accept and never again.
//!
//! A graceful stop ([`Handle::stop`] or [`Ctx::stop`]) closes the
//! listeners, lets every connection flush within `shutdown_timeout`, and
//! returns from `run` when the last one is gone.

use crate::backend::{Event, Interest, Poller, Trigger, Waker};
use crate::buffer::OutBuf;
use crate::config::Config;
use crate::handler::{Action, CloseReason, Handler, Tick};
use crate::metrics::{Metrics, Snapshot, add};
use crate::timer::{TimerId, Timers, ms_ceil};
use crate::token::{ConnId, Generations, WAKER};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A [`Handle::notify`] (no connection) or [`Handle::notify_conn`] tag.
type Note = (Option<ConnId>, u64);

/// Talks to a running loop from any thread: stop it gracefully, or hand it
/// a notification (say, a worker thread's result is ready).
///
/// ```no_run
/// let mut reactor = ioplex::Reactor::new(ioplex::Config::default())?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     handle.stop();
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    notes: Arc<Mutex<Vec<Note>>>,
    waker: Waker,
}

impl Handle {
    /// Stops accepting, flushes queued output (within `shutdown_timeout`),
    /// closes everything and makes [`Reactor::run`] return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the loop to stop it: {e}");
        }
    }

    /// Wakes the loop and calls [`Handler::on_notify`] with `tag` on its
    /// thread: the way for a worker thread to say its result is ready (the
    /// result itself travels in whatever the handler and worker share).
    /// Notifications sent before [`Reactor::run`] are delivered when it starts.
    pub fn notify(&self, tag: u64) {
        self.post(None, tag);
    }

    /// Like [`notify`](Handle::notify), for one connection: the loop calls
    /// [`Handler::on_conn_notify`] with that connection's state, or drops
    /// the tag if the connection is gone by then.
    pub fn notify_conn(&self, id: ConnId, tag: u64) {
        self.post(Some(id), tag);
    }

    fn post(&self, to: Option<ConnId>, tag: u64) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to, tag));
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the loop to notify it: {e}");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Reading and writing.
    Open,
    /// Close requested: flushing output, input discarded.
    Draining,
    /// FIN sent: discarding input until the peer's EOF or `linger`.
    Lingering,
    /// Marked for closing in step 6; events are ignored.
    Closed,
}

const READ_CLOSED: u8 = 1;
const PAUSED: u8 = 2;
const IN_READY: u8 = 4;
const DIRTY: u8 = 8;
const REG_R: u8 = 16;
const REG_W: u8 = 32;
/// The handler paused reading ([`Ctx::pause_reading`]).
const HELD: u8 = 64;
/// Kept input is handed to the handler again at the next ready-queue turn.
const REDELIVER: u8 = 128;

/// One connection's loop state. Its size is most of what an idle connection costs.
pub(crate) struct Conn {
    sock: TcpStream,
    generation: u32,
    state: State,
    flags: u8,
    reason: CloseReason,
    out: Option<Box<OutBuf>>,
    // Boxed: 8 bytes while idle instead of 24 for a bare Vec.
    #[allow(clippy::box_collection)]
    input: Option<Box<Vec<u8>>>,
    /// Last input (Open) or when the state began (Draining, Lingering), in ticks.
    since: u64,
    /// Tick of this connection's one live deadline entry; 0: none.
    armed: u64,
    /// The peer's address, kept only while the loop needs it after accept
    /// (the per-address cap counts it down at close).
    peer: Option<Box<SocketAddr>>,
}

pub(crate) struct Listener {
    sock: TcpListener,
    generation: u32,
    in_ready: bool,
}

pub(crate) struct Udp {
    sock: UdpSocket,
    generation: u32,
    in_ready: bool,
}

pub(crate) enum Entry {
    Listener(Listener),
    Udp(Udp),
    Conn(Conn),
}

impl Entry {
    fn generation(&self) -> u32 {
        match self {
            Entry::Listener(l) => l.generation,
            Entry::Udp(u) => u.generation,
            Entry::Conn(c) => c.generation,
        }
    }
    fn fd(&self) -> RawFd {
        match self {
            Entry::Listener(l) => l.sock.as_raw_fd(),
            Entry::Udp(u) => u.sock.as_raw_fd(),
            Entry::Conn(c) => c.sock.as_raw_fd(),
        }
    }
}

/// Everything the loop owns except the handler and its per-connection state.
pub(crate) struct Core {
    cfg: Config,
    poller: Poller,
    trigger: Trigger,
    entries: Slab<Entry>,
    generations: Generations,
    ready: VecDeque<usize>,
    closing: Vec<usize>,
    dirty: Vec<usize>,
    scratch: Vec<usize>,
    timers: Timers,
    metrics: Arc<Metrics>,
    conns: usize,
    /// Connections with output queued: while 0, WRITABLE events need no look.
    queued_conns: usize,
    start: Instant,
    now: u64,
    stop: Arc<AtomicBool>,
    /// Tags from [`Handle::notify`], taken on the loop's thread.
    notes: Arc<Mutex<Vec<Note>>>,
    /// The loop's own buffer the notes are swapped into.
    notes_taken: Vec<Note>,
    waker: Waker,
    stopping: Option<u64>,
    accept_resume: Option<u64>,
    rejecting: bool,
    /// In an EMFILE/ENFILE episode: logged once, cleared by the next accept.
    exhausted: bool,
    /// Connections per peer address, kept while `max_connections_per_ip` is set.
    per_ip: HashMap<IpAddr, u32>,
    tick: Tick,
}

/// The event loop. Build it, add listeners, then [`run`](Reactor::run) it
/// with a [`Handler`].
///
/// ```no_run
/// use ioplex::{Action, Config, Ctx, Handler, Reactor};
/// struct Echo;
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_connect(&mut self, _: &mut Ctx<'_>, _: std::net::SocketAddr) {}
///     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
///         ctx.send(data);
///         Action::Continue
///     }
/// }
/// let mut reactor = Reactor::new(Config::default())?;
/// let addr = reactor.listen("127.0.0.1:0")?;
/// println!("echo on {addr}");
/// reactor.run(&mut Echo)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    core: Core,
}

impl Reactor {
    /// A loop on `config.backend`, with nothing registered yet.
    pub fn new(config: Config) -> io::Result<Reactor> {
        let mut poller = Poller::new(config.backend)?;
        let waker = poller.waker(WAKER)?;
        Ok(Reactor {
            core: Core {
                trigger: poller.trigger(),
                poller,
                cfg: config,
                entries: Slab::new(),
                generations: Generations::default(),
                ready: VecDeque::new(),
                closing: Vec::new(),
                dirty: Vec::new(),
                scratch: Vec::new(),
                timers: Timers::default(),
                metrics: Arc::new(Metrics::default()),
                conns: 0,
                queued_conns: 0,
                start: Instant::now(),
                now: 0,
                stop: Arc::new(AtomicBool::new(false)),
                notes: Arc::default(),
                notes_taken: Vec::new(),
                waker,
                stopping: None,
                accept_resume: None,
                rejecting: false,
                exhausted: false,
                per_ip: HashMap::new(),
                tick: Tick::default(),
            },
        })
    }

    /// Binds a TCP listener (`SO_REUSEADDR`, backlog 1024) and returns its address.
    /// An error names the address: `cannot listen on 127.0.0.1:9999: address already in use`.
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let addr = first_addr(addr)?;
        let bind = || -> io::Result<TcpListener> {
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )?;
            sock.set_reuse_address(true)?;
            sock.bind(&addr.into())?;
            sock.listen(1024)?;
            Ok(sock.into())
        };
        let what = || format!("cannot listen on {addr}");
        let sock = bind().map_err(|e| context(e, &what()))?;
        self.add_listener(sock).map_err(|e| context(e, &what()))
    }

    /// Serves an already bound listener (set up with [`socket2`] for
    /// options such as `SO_REUSEPORT`); it is made non-blocking here.
    pub fn add_listener(&mut self, sock: TcpListener) -> io::Result<SocketAddr> {
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        self.core.insert_registered(|generation| {
            Entry::Listener(Listener {
                sock,
                generation,
                in_ready: false,
            })
        })?;
        Ok(addr)
    }

    /// Binds a UDP socket; its datagrams go to [`Handler::on_datagram`].
    /// An error names the address, as [`listen`](Reactor::listen)'s does.
    pub fn bind_udp(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let addr = first_addr(addr)?;
        let sock =
            UdpSocket::bind(addr).map_err(|e| context(e, &format!("cannot bind UDP {addr}")))?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        self.core.insert_registered(|generation| {
            Entry::Udp(Udp {
                sock,
                generation,
                in_ready: false,
            })
        })?;
        Ok(addr)
    }

    /// A handle to stop the loop from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: self.core.stop.clone(),
            notes: self.core.notes.clone(),
            waker: self.core.waker.clone(),
        }
    }

    /// The loop's counters, shared: read them from any thread, any time.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.core.metrics.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// Runs the loop until a graceful stop completes. See the module docs
    /// for the steps of one iteration.
    pub fn run<H: Handler>(&mut self, handler: &mut H) -> io::Result<()> {
        let rbuf = vec![0; self.core.cfg.read_buffer.max(1)];
        let mut lp = Loop {
            core: &mut self.core,
            handler,
            states: Vec::new(),
            rbuf,
        };
        lp.run()
    }
}

/// `e` with `what` in front and its kind kept: one line a person can act on.
pub(crate) fn context(e: io::Error, what: &str) -> io::Error {
    let msg = e.to_string();
    // "Address already in use (os error 98)" → "address already in use".
    let msg = msg.split(" (os error").next().unwrap_or(&msg);
    let mut lower = msg.to_owned();
    if let Some(first) = lower.get(..1) {
        let first = first.to_lowercase();
        lower.replace_range(..1, &first);
    }
    io::Error::new(e.kind(), format!("{what}: {lower}"))
}

fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    let what = "cannot resolve the address to listen on";
    addr.to_socket_addrs()
        .map_err(|e| context(e, what))?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what}: it resolved to nothing"),
            )
        })
}

/// `recv(2)` straight into `buf`: the hot path, without std's wrapper layers.
fn sys_recv(sock: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(2)` with `MSG_NOSIGNAL`: a reset peer is an `EPIPE` error for
/// that connection, never a SIGPIPE for the process.
fn sys_send(sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one system call, not three.
fn accept_nonblocking(l: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: accept4 fills at most `len` bytes of the storage socket2 hands us.
    let (fd, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(
                l.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(fd)
            }
        })?
    };
    // SAFETY: accept4 returned a fresh fd we now own.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let peer = addr
        .as_socket()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    Ok((stream, peer))
}

impl Core {
    fn register_key(&mut self, key: usize, interest: Interest) -> io::Result<()> {
        let e = &self.entries[key];
        let token = ConnId::new(key, e.generation()).token();
        self.poller.register(e.fd(), token, interest)?;
        add(&self.metrics.registrations, 1);
        Ok(())
    }

    /// Adds a listener or UDP socket under a new generation and registers it
    /// READABLE; on failure it is not kept.
    fn insert_registered(&mut self, make: impl FnOnce(u32) -> Entry) -> io::Result<()> {
        let generation = self.generations.next();
        let key = self.entries.insert(make(generation));
        self.register_key(key, Interest::READABLE).inspect_err(|_| {
            self.entries.remove(key);
        })
    }

    /// Slab keys of the listeners.
    fn listener_keys(&self) -> Vec<usize> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Listener(_)))
            .map(|(k, _)| k)
            .collect()
    }

    /// One connection from `ip` is gone: count it down (and forget the address at 0).
    fn forget_peer(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn update_now(&mut self) {
        self.now = self.start.elapsed().as_millis() as u64;
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        match self.entries.get(id.key()) {
            Some(Entry::Conn(c)) if c.generation == id.generation() => Some(c),
            _ => None,
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        match self.entries.get_mut(id.key()) {
            Some(Entry::Conn(c)) if c.generation == id.generation() => Some(c),
            _ => None,
        }
    }

    fn conn_at(&mut self, key: usize) -> Option<&mut Conn> {
        match self.entries.get_mut(key) {
            Some(Entry::Conn(c)) => Some(c),
            _ => None,
        }
    }

    fn edge(&self) -> bool {
        self.trigger == Trigger::Edge
    }

    /// Step 1: how long the backend may sleep.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut due = self.timers.next_due();
        for t in [self.accept_resume, self.stopping].into_iter().flatten() {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
        let timeout = due.map(|d| Duration::from_millis(d.saturating_sub(self.now)));
        match (timeout, self.cfg.max_wait) {
            (Some(t), Some(m)) => Some(t.min(m)),
            (t, m) => t.or(m),
        }
    }

    /// Arms a connection's deadline for its current state, if it has one.
    fn arm(&mut self, key: usize) {
        let (idle, drain, linger) = (
            self.cfg.idle_timeout.map(ms_ceil),
            ms_ceil(self.cfg.shutdown_timeout),
            ms_ceil(self.cfg.linger),
        );
        let Some(Entry::Conn(c)) = self.entries.get_mut(key) else {
            return;
        };
        let due = match c.state {
            State::Open => idle.map(|i| c.since + i),
            State::Draining => Some(c.since + drain),
            State::Lingering => Some(c.since + linger),
            State::Closed => None,
        };
        if let Some(due) = due.map(|d| d.max(1)) {
            if c.armed == 0 || due < c.armed {
                c.armed = due;
                let token = ConnId::new(key, c.generation).token();
                self.timers.arm_deadline(due, token);
            }
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conn_at(key) {
            if c.flags & DIRTY == 0 {
                c.flags |= DIRTY;
                self.dirty.push(key);
            }
        }
    }

    fn push_ready(&mut self, key: usize) {
        let queued = match self.entries.get_mut(key) {
            Some(Entry::Conn(c)) => {
                let was = c.flags & IN_READY != 0;
                c.flags |= IN_READY;
                was
            }
            Some(Entry::Listener(l)) => std::mem::replace(&mut l.in_ready, true),
            Some(Entry::Udp(u)) => std::mem::replace(&mut u.in_ready, true),
            None => true,
        };
        if !queued {
            self.ready.push_back(key);
        }
    }

    /// Writes `parts` to a connection: directly when nothing is queued, the
    /// rest (or all of it) into its output queue.
    fn send(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        let (max_output, high) = (self.cfg.max_output, self.cfg.output_high_water);
        let edge = self.edge();
        let metrics = &*self.metrics;
        let c = match self.entries.get_mut(id.key()) {
            Some(Entry::Conn(c)) if c.generation == id.generation() => c,
            _ => return false,
        };
        if c.state != State::Open && c.state != State::Draining {
            return false;
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return true;
        }
        let mut written = 0;
        if c.out.as_ref().is_none_or(|o| o.is_empty()) {
            add(&metrics.writes, 1);
            let r = if parts.len() == 1 {
                sys_send(&c.sock, parts[0])
            } else {
                let mut slices = [IoSlice::new(&[]); 8];
                let n = parts.len().min(8);
                for (slot, part) in slices[..n].iter_mut().zip(parts) {
                    *slot = IoSlice::new(part);
                }
                socket2::SockRef::from(&c.sock)
                    .send_vectored_with_flags(&slices[..n], libc::MSG_NOSIGNAL)
            };
            match r {
                Ok(n) => {
                    add(&metrics.bytes_out, n as u64);
                    written = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("{id}: write failed: {e}");
                    self.abort(id.key(), CloseReason::Error(e.kind()));
                    return false;
                }
            }
        }
        if written == total {
            return true;
        }
        let out = c.out.get_or_insert_with(|| {
            self.queued_conns += 1;
            Box::default()
        });
        let mut skip = written;
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            out.push(&p[skip..]);
            skip = 0;
        }
        let queued = out.len();
        if queued > max_output {
            log::warn!(
                "{id}: {queued} bytes queued, over max_output {max_output}: closing slow consumer"
            );
            add(&metrics.output_limit, 1);
            self.abort(id.key(), CloseReason::OutputLimit);
            return false;
        }
        if queued > high && c.flags & PAUSED == 0 && c.state == State::Open {
            c.flags |= PAUSED;
            add(&metrics.paused, 1);
            log::debug!("{id}: {queued} bytes queued: reading paused");
        }
        if !edge {
            self.mark_dirty(id.key());
        }
        true
    }

    /// Writes queued output until the socket refuses; resumes a paused reader
    /// below the low watermark; finishes a requested close once empty.
    /// Returns whether an open connection's queue just became empty
    /// (then the handler hears [`Handler::on_drain`]).
    fn flush(&mut self, key: usize) -> bool {
        let low = self.cfg.output_low_water;
        let metrics = &*self.metrics;
        let Some(Entry::Conn(c)) = self.entries.get_mut(key) else {
            return false;
        };
        if c.out.is_none() {
            // Nothing queued: nothing to write, resume or finish (a paused
            // reader has output queued; a drained close already finished).
            return false;
        }
        let id = ConnId::new(key, c.generation);
        if let Some(out) = c.out.as_mut() {
            while !out.is_empty() {
                add(&metrics.writes, 1);
                match sys_send(&c.sock, out.bytes()) {
                    Ok(n) => {
                        add(&metrics.bytes_out, n as u64);
                        out.consume(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("{id}: write failed: {e}");
                        self.abort(key, CloseReason::Error(e.kind()));
                        return false;
                    }
                }
            }
        }
        let queued = c.out.as_ref().map_or(0, |o| o.len());
        if queued == 0 {
            c.out = None;
            self.queued_conns -= 1;
        }
        let resume = c.flags & PAUSED != 0 && queued <= low;
        if resume {
            c.flags &= !PAUSED;
            log::debug!("{id}: output drained to {queued} bytes: reading resumed");
        }
        let finish = queued == 0 && c.state == State::Draining;
        let drained = queued == 0 && c.state == State::Open;
        if resume {
            self.push_ready(key);
        }
        if !self.edge() {
            self.mark_dirty(key);
        }
        if finish {
            self.finish_flush(key);
        }
        drained
    }

    /// Close requested: stop handing input to the handler, flush, then FIN.
    fn begin_close(&mut self, key: usize, reason: CloseReason) {
        let now = self.now;
        let Some(c) = self.conn_at(key) else { return };
        if c.state != State::Open {
            return;
        }
        c.state = State::Draining;
        c.reason = reason;
        c.since = now;
        c.input = None;
        let empty = c.out.as_ref().is_none_or(|o| o.is_empty());
        if empty {
            // No flush deadline to arm: a closing client that sent its EOF
            // first (churn) leaves no timer entry behind.
            self.finish_flush(key);
            return;
        }
        self.arm(key);
        if !self.edge() {
            self.mark_dirty(key);
        }
    }

    /// Output is flushed: send FIN; close now if the peer's EOF came, else linger.
    fn finish_flush(&mut self, key: usize) {
        let now = self.now;
        let Some(c) = self.conn_at(key) else { return };
        let _ = c.sock.shutdown(Shutdown::Write);
        if c.flags & READ_CLOSED != 0 {
            self.mark_closed(key);
            return;
        }
        c.state = State::Lingering;
        c.since = now;
        self.arm(key);
        self.push_ready(key);
    }

    /// Close now, dropping queued output.
    fn abort(&mut self, key: usize, reason: CloseReason) {
        if let Some(c) = self.conn_at(key) {
            if c.state == State::Closed {
                return;
            }
            c.reason = reason;
            self.mark_closed(key);
        }
    }

    fn mark_closed(&mut self, key: usize) {
        if let Some(c) = self.conn_at(key) {
            if c.state != State::Closed {
                c.state = State::Closed;
                self.closing.push(key);
            }
        }
    }

    /// Step 6 for level-triggered and one-shot backends: make the
    /// registered interest match what the connection needs now.
    fn apply_interest(&mut self) {
        while let Some(key) = self.dirty.pop() {
            let oneshot = self.trigger == Trigger::Oneshot;
            let Some(Entry::Conn(c)) = self.entries.get_mut(key) else {
                continue;
            };
            c.flags &= !DIRTY;
            if c.state == State::Closed {
                continue;
            }
            let want_r = c.flags & READ_CLOSED == 0
                && !(c.state == State::Open && c.flags & (PAUSED | HELD) != 0);
            let want_w = c.out.as_ref().is_some_and(|o| !o.is_empty());
            let have_r = c.flags & REG_R != 0;
            let have_w = c.flags & REG_W != 0;
            if !oneshot && want_r == have_r && want_w == have_w {
                continue;
            }
            let mut i = Interest::NONE;
            if want_r {
                i = i | Interest::READABLE;
            }
            if want_w {
                i = i | Interest::WRITABLE;
            }
            c.flags = (c.flags & !(REG_R | REG_W))
                | if want_r { REG_R } else { 0 }
                | if want_w { REG_W } else { 0 };
            let token = ConnId::new(key, c.generation).token();
            let fd = c.sock.as_raw_fd();
            add(&self.metrics.reregistrations, 1);
            if let Err(e) = self.poller.reregister(fd, token, i) {
                log::warn!("reregister {fd}: {e}");
                self.abort(key, CloseReason::Error(e.kind()));
            }
        }
    }
}

/// What a handler may do: send, close, broadcast, set timers, stop the server.
pub struct Ctx<'a> {
    core: &'a mut Core,
    current: Option<ConnId>,
}

impl Ctx<'_> {
    /// The connection (or UDP socket) this callback is about.
    ///
    /// # Panics
    /// In [`Handler::on_loop_timer`], [`Handler::on_tick`] and
    /// [`Handler::on_shutdown`], which are about no connection; use
    /// [`Ctx::current`] there.
    pub fn id(&self) -> ConnId {
        self.current
            .expect("Ctx::id called outside a connection callback")
    }

    /// The connection this callback is about, if any.
    pub fn current(&self) -> Option<ConnId> {
        self.current
    }

    /// Sends to the current connection. Returns `false` if it is gone or closing.
    pub fn send(&mut self, data: &[u8]) -> bool {
        self.send_parts(&[data])
    }

    /// Sends several slices as one write (`sendmsg`), e.g. a header and a body.
    /// Up to 8 slices go in one system call.
    pub fn send_parts(&mut self, parts: &[&[u8]]) -> bool {
        match self.current {
            Some(id) => self.send_parts_to(id, parts),
            None => false,
        }
    }

    /// Sends to any connection. Returns `false` if it is gone or closing.
    pub fn send_to(&mut self, id: ConnId, data: &[u8]) -> bool {
        self.send_parts_to(id, &[data])
    }

    /// [`send_parts`](Ctx::send_parts) to any connection.
    pub fn send_parts_to(&mut self, id: ConnId, parts: &[&[u8]]) -> bool {
        if parts.len() > 8 {
            return parts.chunks(8).all(|c| self.core.send(id, c));
        }
        self.core.send(id, parts)
    }

    /// Sends to every open connection except `except`; returns how many took it.
    pub fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        let mut ids = std::mem::take(&mut self.core.scratch);
        ids.clear();
        ids.extend(self.connections().map(|id| id.0));
        let mut n = 0;
        for &raw in &ids {
            let id = ConnId(raw);
            if Some(id) != except && self.core.send(id, &[data]) {
                n += 1;
            }
        }
        self.core.scratch = ids;
        n
    }

    /// Ids of the open connections.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.core.entries.iter().filter_map(|(key, e)| match e {
            Entry::Conn(c) if c.state == State::Open => Some(ConnId::new(key, c.generation)),
            _ => None,
        })
    }

    /// How many connections the loop holds.
    pub fn connection_count(&self) -> usize {
        self.core.conns
    }

    /// Bytes queued for `id` that the socket has not taken yet.
    pub fn queued(&self, id: ConnId) -> usize {
        self.core
            .conn(id)
            .and_then(|c| c.out.as_ref())
            .map_or(0, |o| o.len())
    }

    /// The peer's address of a connection.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.core.conn(id).and_then(|c| c.sock.peer_addr().ok())
    }

    /// The local address of a connection: the address of the listener it
    /// came in on (with the concrete IP when that listener is on `0.0.0.0`).
    /// A handler serving two listeners tells them apart with it in
    /// [`Handler::on_connect`], say a service port and a metrics port.
    /// One `getsockname(2)` per call; nothing is stored per connection.
    pub fn local_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.core.conn(id).and_then(|c| c.sock.local_addr().ok())
    }

    /// Flushes `id`'s output, sends FIN, then closes. Idempotent.
    pub fn close(&mut self, id: ConnId) {
        if self.core.conn(id).is_some() {
            self.core.begin_close(id.key(), CloseReason::Closed);
        }
    }

    /// Stops reading from `id`: its bytes wait in the kernel, whose flow
    /// control slows the peer down (backpressure, not buffering). Input kept
    /// with [`Action::Consumed`] stays kept. Say, while a long reply is being
    /// sent and pipelined requests should wait behind it.
    pub fn pause_reading(&mut self, id: ConnId) {
        let edge = self.core.edge();
        if let Some(c) = self.core.conn_mut(id) {
            if c.state == State::Open && c.flags & HELD == 0 {
                c.flags |= HELD;
                if !edge {
                    self.core.mark_dirty(id.key());
                }
            }
        }
    }

    /// Reads from `id` again after [`pause_reading`](Ctx::pause_reading).
    /// Input kept with [`Action::Consumed`] is handed to
    /// [`Handler::on_data`] again before the loop sleeps, without waiting
    /// for new bytes.
    pub fn resume_reading(&mut self, id: ConnId) {
        let edge = self.core.edge();
        let Some(c) = self.core.conn_mut(id) else {
            return;
        };
        if c.flags & HELD == 0 {
            return;
        }
        c.flags &= !HELD;
        if c.input.is_some() {
            c.flags |= REDELIVER;
        }
        self.core.push_ready(id.key());
        if !edge {
            self.core.mark_dirty(id.key());
        }
    }

    /// Closes `id` now, dropping queued output.
    pub fn abort(&mut self, id: ConnId) {
        if self.core.conn(id).is_some() {
            self.core.abort(id.key(), CloseReason::Aborted);
        }
    }

    /// Calls [`Handler::on_timer`] for the current connection after `after`
    /// (or [`Handler::on_loop_timer`] outside a connection), with `tag`.
    /// A connection's timers die with it.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let at = self.core.now + ms_ceil(after);
        self.core.timers.set(at, self.current, tag)
    }

    /// Cancels a timer; `false` if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.timers.cancel(id)
    }

    /// Begins a graceful stop, as [`Handle::stop`] does.
    pub fn stop(&mut self) {
        self.core.stop.store(true, Ordering::Release);
    }

    /// The loop's counters now.
    pub fn metrics(&self) -> Snapshot {
        self.core.metrics.snapshot()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// Sends a datagram from the current UDP socket. A datagram the kernel
    /// cannot take now is dropped (UDP promises nothing more) and `Ok(0)` returned.
    pub fn send_datagram(&mut self, to: SocketAddr, data: &[u8]) -> io::Result<usize> {
        let key = self.current.map(|c| c.key());
        match key.and_then(|k| self.core.entries.get(k)) {
            Some(Entry::Udp(u)) => match u.sock.send_to(data, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                r => {
                    add(&self.core.metrics.writes, 1);
                    r
                }
            },
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send_datagram outside a UDP callback",
            )),
        }
    }
}

/// The loop while it runs: the core, the handler and its states, the shared read buffer.
struct Loop<'a, H: Handler> {
    core: &'a mut Core,
    handler: &'a mut H,
    /// Handler state per slab key (`None` for listeners and free keys).
    states: Vec<Option<H::Conn>>,
    /// The loop's one read buffer, shared by every connection.
    rbuf: Vec<u8>,
}

macro_rules! ctx {
    ($self:ident, $id:expr) => {
        &mut Ctx {
            core: &mut *$self.core,
            current: $id,
        }
    };
}

impl<H: Handler> Loop<'_, H> {
    fn run(&mut self) -> io::Result<()> {
        let mut events: Vec<Event> = Vec::with_capacity(1024);
        self.take_notes();
        loop {
            // 1. timeout
            let timeout = self.core.poll_timeout();
            // 2. wait
            events.clear();
            self.core.poller.wait(&mut events, timeout)?;
            self.core.update_now();
            add(&self.core.metrics.wakeups, 1);
            add(&self.core.metrics.events, events.len() as u64);
            if self.core.stop.load(Ordering::Acquire) && self.core.stopping.is_none() {
                self.begin_shutdown();
            }
            // 3. events
            self.core.tick = Tick::default();
            for ev in &events {
                self.dispatch(ev);
            }
            // 4. ready queue
            for _ in 0..self.core.ready.len() {
                let Some(key) = self.core.ready.pop_front() else {
                    break;
                };
                self.run_ready(key);
            }
            // 5. timers
            self.fire_timers();
            // 6. before sleep
            self.close_marked();
            let tick = Tick {
                connections: self.core.conns,
                ..self.core.tick
            };
            self.handler.on_tick(ctx!(self, None), &tick);
            self.close_marked();
            self.core.apply_interest();
            if self.core.stop.load(Ordering::Acquire) && self.core.stopping.is_none() {
                self.begin_shutdown(); // a handler called Ctx::stop
                self.close_marked();
                self.core.apply_interest();
            }
            if let Some(deadline) = self.core.stopping {
                if self.core.conns == 0 {
                    return Ok(());
                }
                if self.core.now >= deadline {
                    self.abort_all(CloseReason::FlushTimeout);
                    return Ok(());
                }
            }
        }
    }

    fn dispatch(&mut self, ev: &Event) {
        if ev.token == WAKER {
            self.core.waker.reset();
            self.take_notes();
            return;
        }
        let id = ConnId(ev.token);
        let key = id.key();
        match self.core.entries.get(key) {
            Some(e) if e.generation() == id.generation() => match e {
                Entry::Listener(_) => {
                    self.accept(key);
                    self.rearm_oneshot(key);
                }
                Entry::Udp(_) => {
                    self.recv_udp(key);
                    self.rearm_oneshot(key);
                }
                Entry::Conn(_) => {
                    if ev.writable {
                        self.core.tick.writable += 1;
                    }
                    if ev.readable {
                        self.core.tick.readable += 1;
                    }
                    if (ev.writable || ev.error)
                        && self.core.queued_conns > 0
                        && self.core.flush(key)
                    {
                        self.drained(key);
                    }
                    if ev.readable || ev.read_closed || ev.error {
                        self.read(key, ev.read_closed);
                    }
                    if self.core.trigger == Trigger::Oneshot {
                        self.core.mark_dirty(key);
                    }
                }
            },
            _ => add(&self.core.metrics.stale_events, 1),
        }
    }

    /// A one-shot backend disarms an fd after each event: listeners and UDP
    /// sockets are armed again at once (connections in step 6).
    fn rearm_oneshot(&mut self, key: usize) {
        if self.core.trigger != Trigger::Oneshot || self.core.accept_resume.is_some() {
            return;
        }
        let Some(e) = self.core.entries.get(key) else {
            return;
        };
        let token = ConnId::new(key, e.generation()).token();
        add(&self.core.metrics.reregistrations, 1);
        if let Err(e) = self
            .core
            .poller
            .reregister(e.fd(), token, Interest::READABLE)
        {
            log::error!("re-arming a listener: {e}");
        }
    }

    /// A connection's queued output was all written: the handler may send more.
    fn drained(&mut self, key: usize) {
        let Some(Entry::Conn(c)) = self.core.entries.get(key) else {
            return;
        };
        let id = ConnId::new(key, c.generation);
        self.call_open(id, |h, ctx, st| h.on_drain(ctx, st));
    }

    /// Calls the handler with an open connection's state and applies the
    /// action it returns; nothing if `id` is gone or already closing.
    fn call_open(
        &mut self,
        id: ConnId,
        call: impl FnOnce(&mut H, &mut Ctx<'_>, &mut H::Conn) -> Action,
    ) {
        if !self.core.conn(id).is_some_and(|c| c.state == State::Open) {
            return;
        }
        let Some(st) = self.states.get_mut(id.key()).and_then(|s| s.as_mut()) else {
            return;
        };
        let action = call(self.handler, ctx!(self, Some(id)), st);
        self.apply(id.key(), action, CloseReason::Closed);
    }

    /// Delivers [`Handle::notify`] tags to the handler, oldest first.
    fn take_notes(&mut self) {
        let mut notes = std::mem::take(&mut self.core.notes_taken);
        std::mem::swap(
            &mut notes,
            &mut self.core.notes.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for &(to, tag) in &notes {
            match to {
                None => self.handler.on_notify(ctx!(self, None), tag),
                Some(id) => self.call_open(id, |h, ctx, st| h.on_conn_notify(ctx, st, tag)),
            }
        }
        notes.clear();
        self.core.notes_taken = notes;
    }

    fn run_ready(&mut self, key: usize) {
        match self.core.entries.get_mut(key) {
            Some(Entry::Conn(c)) => {
                let redeliver = c.flags & REDELIVER != 0 && c.state == State::Open;
                c.flags &= !(IN_READY | REDELIVER);
                let id = ConnId::new(key, c.generation);
                if redeliver && c.input.is_some() {
                    self.deliver(key, id, 0);
                }
                self.read(key, true);
            }
            Some(Entry::Listener(l)) => {
                l.in_ready = false;
                self.accept(key);
            }
            Some(Entry::Udp(u)) => {
                u.in_ready = false;
                self.recv_udp(key);
            }
            None => {}
        }
    }

    /// Accepts until WouldBlock, the per-cycle cap (then: ready queue), or
    /// descriptor exhaustion (then: pause for `accept_backoff`).
    fn accept(&mut self, key: usize) {
        if self.core.accept_resume.is_some() || self.core.stopping.is_some() {
            return;
        }
        for _ in 0..self.core.cfg.accepts_per_cycle {
            let Some(Entry::Listener(l)) = self.core.entries.get(key) else {
                return;
            };
            match accept_nonblocking(&l.sock) {
                Ok((sock, peer)) => {
                    if std::mem::take(&mut self.core.exhausted) {
                        log::info!("accept: descriptors available again");
                    }
                    self.add_conn(sock, peer)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    self.pause_accepting(&e);
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
        self.core.push_ready(key);
    }

    fn pause_accepting(&mut self, e: &io::Error) {
        let core = &mut *self.core;
        add(&core.metrics.accept_errors, 1);
        let backoff = core.cfg.accept_backoff;
        if core.exhausted {
            log::debug!("accept: {e}: still out of descriptors, pausing again");
        } else {
            log::warn!(
                "accept: {e}: pausing accepts for {backoff:?} at a time until descriptors free up"
            );
            core.exhausted = true;
        }
        core.accept_resume = Some(core.now + ms_ceil(backoff).max(1));
        // Level-triggered backends would report the listener again at once.
        for k in core.listener_keys() {
            if core.poller.deregister(core.entries[k].fd()).is_ok() {
                add(&core.metrics.deregistrations, 1);
            }
        }
    }

    fn resume_accepting(&mut self) {
        self.core.accept_resume = None;
        log::debug!("accept: retrying after the back-off");
        for k in self.core.listener_keys() {
            if let Err(e) = self.core.register_key(k, Interest::READABLE) {
                log::error!("accept: cannot re-register listener: {e}");
            }
            self.core.push_ready(k);
        }
    }

    fn add_conn(&mut self, sock: TcpStream, peer: SocketAddr) {
        let core = &mut *self.core;
        if core.conns >= core.cfg.max_connections {
            add(&core.metrics.rejected, 1);
            if !core.rejecting {
                log::warn!(
                    "max_connections ({}) reached: turning new clients away",
                    core.cfg.max_connections
                );
                core.rejecting = true;
            }
            let _ = (&sock).write(&core.cfg.busy_message);
            return;
        }
        if core.rejecting {
            log::info!("below max_connections again: accepting");
            core.rejecting = false;
        }
        if let Some(cap) = core.cfg.max_connections_per_ip {
            let held = core.per_ip.entry(peer.ip()).or_insert(0);
            if *held as usize >= cap {
                add(&core.metrics.rejected_per_ip, 1);
                log::debug!(
                    "{peer}: already holds {cap} connections (max_connections_per_ip): turned away"
                );
                let _ = (&sock).write(&core.cfg.busy_message);
                return;
            }
            *held += 1;
        }
        if core.cfg.nodelay {
            let _ = sock.set_nodelay(true);
        }
        let generation = core.generations.next();
        let edge = core.edge();
        let interest = if edge {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let key = core.entries.insert(Entry::Conn(Conn {
            sock,
            generation,
            state: State::Open,
            flags: REG_R | if edge { REG_W } else { 0 },
            reason: CloseReason::Eof,
            out: None,
            input: None,
            since: core.now,
            armed: 0,
            peer: core.cfg.max_connections_per_ip.map(|_| Box::new(peer)),
        }));
        if let Err(e) = core.register_key(key, interest) {
            log::warn!("register {peer}: {e}");
            core.entries.remove(key);
            if core.cfg.max_connections_per_ip.is_some() {
                core.forget_peer(peer.ip());
            }
            return;
        }
        core.conns += 1;
        add(&core.metrics.accepted, 1);
        core.arm(key);
        let id = ConnId::new(key, generation);
        log::debug!("{id}: accepted {peer}");
        if self.states.len() <= key {
            self.states.resize_with(key + 1, || None);
        }
        let state = self.handler.on_connect(ctx!(self, Some(id)), peer);
        self.states[key] = Some(state);
    }

    /// Reads until WouldBlock, a short read (drained, unless the event said
    /// the peer closed: EOF may sit behind the data), EOF, or the budget
    /// (then: ready queue). Input of a closing connection is discarded.
    fn read(&mut self, key: usize, until_would_block: bool) {
        let mut budget = self.core.cfg.read_budget;
        let now = self.core.now;
        loop {
            let Some(Entry::Conn(c)) = self.core.entries.get_mut(key) else {
                return;
            };
            let (state, generation) = (c.state, c.generation);
            if state == State::Closed || (state == State::Open && c.flags & (PAUSED | HELD) != 0) {
                return;
            }
            if c.flags & READ_CLOSED != 0 {
                if state == State::Lingering {
                    self.core.mark_closed(key);
                }
                return;
            }
            let r = sys_recv(&c.sock, &mut self.rbuf);
            match r {
                Ok(0) => c.flags |= READ_CLOSED,
                Ok(_) if state == State::Open => c.since = now,
                _ => {}
            }
            add(&self.core.metrics.reads, 1);
            let id = ConnId::new(key, generation);
            match r {
                Ok(0) => {
                    if !self.core.edge() {
                        self.core.mark_dirty(key); // stop asking for READABLE
                    }
                    match state {
                        State::Open => {
                            let action = match self.states[key].as_mut() {
                                Some(st) => self.handler.on_eof(ctx!(self, Some(id)), st),
                                None => Action::Close,
                            };
                            self.apply(key, action, CloseReason::Eof);
                        }
                        State::Lingering => self.core.mark_closed(key),
                        _ => {}
                    }
                    return;
                }
                Ok(n) => {
                    add(&self.core.metrics.bytes_in, n as u64);
                    if state == State::Open {
                        self.deliver(key, id, n);
                    }
                    if n >= budget {
                        self.core.push_ready(key);
                        return;
                    }
                    budget -= n;
                    if n < self.rbuf.len() && !until_would_block {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read failed: {e}");
                    self.core.abort(key, CloseReason::Error(e.kind()));
                    return;
                }
            }
        }
    }

    /// Hands `rbuf[..n]` (after any unconsumed rest) to the handler.
    fn deliver(&mut self, key: usize, id: ConnId, n: usize) {
        let Some(state) = self.states[key].as_mut() else {
            return;
        };
        let pending = self.core.conn_at(key).and_then(|c| c.input.take());
        let (action, mut pending) = match pending {
            None => {
                let a = self
                    .handler
                    .on_data(ctx!(self, Some(id)), state, &self.rbuf[..n]);
                (a, None)
            }
            Some(mut buf) => {
                buf.extend_from_slice(&self.rbuf[..n]);
                let a = self.handler.on_data(ctx!(self, Some(id)), state, &buf);
                (a, Some(buf))
            }
        };
        let Action::Consumed(used) = action else {
            return self.apply(key, action, CloseReason::Closed);
        };
        let held = match &pending {
            Some(b) => b.len(),
            None => n,
        };
        let used = used.min(held);
        if used == held {
            return;
        }
        let max = self.core.cfg.max_input;
        if held - used > max {
            log::warn!(
                "{id}: {} bytes of unconsumed input, over max_input {max}: closing",
                held - used
            );
            add(&self.core.metrics.input_limit, 1);
            return self.core.abort(key, CloseReason::InputLimit);
        }
        let rest = match pending.as_mut() {
            Some(b) => {
                b.drain(..used);
                pending.take()
            }
            None => Some(Box::new(self.rbuf[used..n].to_vec())),
        };
        if let Some(c) = self.core.conn_at(key) {
            if c.state == State::Open {
                c.input = rest;
            }
        }
    }

    fn apply(&mut self, key: usize, action: Action, reason: CloseReason) {
        match action {
            Action::Continue | Action::Consumed(_) => {}
            Action::Close => self.core.begin_close(key, reason),
            Action::Abort => self.core.abort(key, CloseReason::Aborted),
        }
    }

    fn recv_udp(&mut self, key: usize) {
        let mut budget = self.core.cfg.read_budget;
        loop {
            let Some(Entry::Udp(u)) = self.core.entries.get(key) else {
                return;
            };
            let id = ConnId::new(key, u.generation);
            add(&self.core.metrics.reads, 1);
            // SAFETY: u8 and MaybeUninit<u8> have the same layout; the buffer is initialised.
            let buf =
                unsafe { &mut *(self.rbuf.as_mut_slice() as *mut [u8] as *mut [MaybeUninit<u8>]) };
            match socket2::SockRef::from(&u.sock).recv_from_with_flags(buf, libc::MSG_TRUNC) {
                Ok((n, from)) => {
                    let from = from
                        .as_socket()
                        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    add(&self.core.metrics.datagrams_in, 1);
                    if n > self.rbuf.len() {
                        add(&self.core.metrics.datagrams_truncated, 1);
                        log::warn!(
                            "{id}: {n}-byte datagram from {from} is larger than the {}-byte read buffer: dropped",
                            self.rbuf.len()
                        );
                    } else {
                        add(&self.core.metrics.bytes_in, n as u64);
                        self.handler
                            .on_datagram(ctx!(self, Some(id)), from, &self.rbuf[..n]);
                    }
                    budget = budget.saturating_sub(n.max(1));
                    if budget == 0 {
                        self.core.push_ready(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors (port unreachable and friends) land here: not fatal.
                    log::debug!("{id}: recv_from: {e}");
                }
            }
        }
    }

    /// Step 5: user timers, connection deadlines, the accept back-off.
    fn fire_timers(&mut self) {
        let now = self.core.now;
        while let Some((owner, tag)) = self.core.timers.pop_due(now) {
            add(&self.core.metrics.timers, 1);
            match owner {
                None => self.handler.on_loop_timer(ctx!(self, None), tag),
                Some(id) => self.call_open(id, |h, ctx, st| h.on_timer(ctx, st, tag)),
            }
        }
        while let Some((at, token)) = self.core.timers.pop_deadline(now) {
            self.deadline(ConnId(token), at);
        }
        if self.core.accept_resume.is_some_and(|t| t <= now) && self.core.stopping.is_none() {
            self.resume_accepting();
        }
    }

    fn deadline(&mut self, id: ConnId, at: u64) {
        let now = self.core.now;
        let Some(c) = self.core.conn_mut(id) else {
            return;
        };
        if c.armed != at {
            return; // superseded by an earlier deadline
        }
        c.armed = 0;
        let state = c.state;
        let key = id.key();
        self.core.arm(key);
        let due = self.core.conn_mut(id).map_or(0, |c| c.armed);
        if due == 0 || due > now {
            return;
        }
        match state {
            State::Open => {
                log::info!(
                    "{id}: idle for {:?}: closing",
                    self.core.cfg.idle_timeout.unwrap_or_default()
                );
                add(&self.core.metrics.idle_timeouts, 1);
                self.core.begin_close(key, CloseReason::IdleTimeout);
            }
            State::Draining => {
                log::info!(
                    "{id}: output not flushed in {:?}: closing",
                    self.core.cfg.shutdown_timeout
                );
                self.core.abort(key, CloseReason::FlushTimeout);
            }
            State::Lingering => self.core.mark_closed(key),
            State::Closed => {}
        }
    }

    /// Step 6: closes what was marked, telling the handler.
    fn close_marked(&mut self) {
        while let Some(key) = self.core.closing.pop() {
            let Some(Entry::Conn(c)) = self.core.entries.try_remove(key) else {
                continue;
            };
            if c.out.is_some() {
                self.core.queued_conns -= 1;
            }
            if let Some(peer) = &c.peer {
                self.core.forget_peer(peer.ip());
            }
            let id = ConnId::new(key, c.generation);
            self.core.conns -= 1;
            add(&self.core.metrics.closed, 1);
            // epoll forgets an fd when it is closed; poll and select keep tables.
            if self.core.poller.keeps_table()
                && self.core.poller.deregister(c.sock.as_raw_fd()).is_ok()
            {
                add(&self.core.metrics.deregistrations, 1);
            }
            log::debug!("{id}: closing ({:?})", c.reason);
            let reason = c.reason.clone();
            drop(c);
            if let Some(st) = self.states.get_mut(key).and_then(Option::take) {
                self.handler.on_close(ctx!(self, Some(id)), st, reason);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        let core = &mut *self.core;
        core.stopping = Some(core.now + ms_ceil(core.cfg.shutdown_timeout));
        log::info!("shutting down: {} connections to flush", core.conns);
        let keys: Vec<usize> = core.entries.iter().map(|(k, _)| k).collect();
        for key in keys {
            if matches!(core.entries[key], Entry::Conn(_)) {
                core.begin_close(key, CloseReason::Shutdown);
            } else {
                let e = core.entries.remove(key);
                let _ = core.poller.deregister(e.fd());
                add(&core.metrics.deregistrations, 1);
            }
        }
        self.handler.on_shutdown(ctx!(self, None));
    }

    fn abort_all(&mut self, reason: CloseReason) {
        let keys: Vec<usize> = self.core.entries.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.core.abort(key, reason.clone());
        }
        self.close_marked();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// Counts what reaches it.
    #[derive(Default)]
    struct Count {
        bytes: usize,
    }

    impl Handler for Count {
        type Conn = ();
        fn on_connect(&mut self, _: &mut Ctx<'_>, _: SocketAddr) {}
        fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
            self.bytes += data.len();
            Action::Continue
        }
    }

    #[test]
    fn an_event_for_a_closed_and_reused_slot_never_reaches_the_new_owner() {
        let mut reactor = Reactor::new(Config::default()).unwrap();
        let addr = reactor.listen("127.0.0.1:0").unwrap();
        let mut handler = Count::default();
        let mut lp = Loop {
            core: &mut reactor.core,
            handler: &mut handler,
            states: Vec::new(),
            rbuf: vec![0; 4096],
        };
        let listener = 0;
        let _first = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        lp.accept(listener);
        let (key, old) = match lp
            .core
            .entries
            .iter()
            .find(|(_, e)| matches!(e, Entry::Conn(_)))
        {
            Some((k, e)) => (k, ConnId::new(k, e.generation())),
            None => panic!("not accepted"),
        };
        lp.core.abort(key, CloseReason::Aborted);
        lp.close_marked();
        // A second client takes the same slab key, with data waiting.
        let mut second = TcpStream::connect(addr).unwrap();
        second.write_all(b"for the new owner").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        lp.accept(listener);
        let new = ConnId::new(key, lp.core.entries[key].generation());
        assert_ne!(new, old, "the key was not reused");
        lp.dispatch(&Event {
            token: old.token(),
            readable: true,
            ..Event::default()
        });
        assert_eq!(lp.core.metrics.snapshot().stale_events, 1);
        assert_eq!(lp.handler.bytes, 0, "a stale event was delivered");
        lp.dispatch(&Event {
            token: new.token(),
            readable: true,
            ..Event::default()
        });
        assert_eq!(lp.handler.bytes, 17);
    }
}
