//! The load generator: one thread, one `mio::Poll`, many client sockets.
//!
//! Every connection sends a stream of bytes from a fixed pattern (period
//! 251, shifted per connection) cut into fixed-size messages, keeps up to
//! `inflight` messages outstanding, and checks each byte that comes back
//! against the pattern at the same stream offset: an echo that is wrong,
//! reordered, short or longer than what was sent is an error, never a
//! speed-up. A message's latency runs from the moment it was queued to
//! the moment its last byte came back.

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Period of the byte pattern: prime, so no message size lines up with it.
const PERIOD: usize = 251;
/// Largest slice handed out at once (reads and writes are cut to this).
const CHUNK: usize = 64 << 10;
/// Handshakes in progress at once while opening connections.
const OPENING: usize = 512;
/// First token of the idle connections (active ones count from 0).
const IDLE_TOKENS: usize = 1 << 24;
/// No byte back for this long while replies are owed: the server is stuck.
const STALL: Duration = Duration::from_secs(5);

/// The byte stream every connection sends, shifted by a per-connection seed.
pub struct Pattern {
    table: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Pattern {
        Pattern {
            table: (0..PERIOD + CHUNK)
                .map(|i| (i % PERIOD) as u8 ^ 0x5a)
                .collect(),
        }
    }
}

impl Pattern {
    /// Bytes `offset..offset + len` of connection `seed`'s stream (`len` ≤ 64 KiB).
    pub fn slice(&self, seed: usize, offset: u64, len: usize) -> &[u8] {
        let start = ((offset % PERIOD as u64) as usize + seed) % PERIOD;
        &self.table[start..start + len.min(CHUNK)]
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum LoadError {
    /// A reply byte differs from what was sent at that offset.
    WrongEcho {
        /// Connection index.
        conn: usize,
        /// Stream offset of the first wrong byte.
        offset: u64,
        /// What was sent there.
        expected: u8,
        /// What came back.
        got: u8,
    },
    /// More bytes came back than were sent.
    TooMuch {
        /// Connection index.
        conn: usize,
    },
    /// The server closed a connection that still owed replies.
    Closed {
        /// Connection index.
        conn: usize,
    },
    /// Nothing came back for [`STALL`] while replies were owed.
    Stalled,
    /// A socket call failed.
    Io(io::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::WrongEcho {
                conn,
                offset,
                expected,
                got,
            } => write!(
                f,
                "wrong echo on connection {conn} at byte {offset}: sent {expected:#04x}, got {got:#04x}"
            ),
            LoadError::TooMuch { conn } => {
                write!(f, "connection {conn} got more bytes back than it sent")
            }
            LoadError::Closed { conn } => {
                write!(f, "server closed connection {conn} with replies owed")
            }
            LoadError::Stalled => write!(f, "no reply for {STALL:?} with replies owed"),
            LoadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> LoadError {
        LoadError::Io(e)
    }
}

/// One workload's shape.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Active connections (for churn: connections in progress at once).
    pub conns: usize,
    /// Messages outstanding per connection.
    pub inflight: usize,
    /// Bytes per message.
    pub size: usize,
    /// Connect, one echo, close, again (instead of long-lived connections).
    pub churn: bool,
    /// Idle connections held open on the side, each checked by one echo.
    pub idle: usize,
}

/// Phases the caller is told about, to sample the server around them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Every connection is open (idle ones too); warm-up begins.
    Connected,
    /// Warm-up is over; counting begins.
    MeasureStart,
    /// Counting is over.
    MeasureEnd,
}

/// What one measured run produced.
pub struct Outcome {
    /// Messages echoed in the measured window (churn: connections completed).
    pub msgs: u64,
    /// Payload bytes echoed in the measured window.
    pub bytes: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency per message, in nanoseconds.
    pub hist: Histogram<u64>,
}

struct Conn {
    sock: TcpStream,
    seed: usize,
    /// Stream bytes written, queued for writing, and received (verified).
    sent: u64,
    target: u64,
    recvd: u64,
    /// When each outstanding message was queued.
    stamps: VecDeque<Instant>,
    /// Churn: the connect has completed.
    connected: bool,
    start: Instant,
}

impl Conn {
    fn new(sock: TcpStream, seed: usize) -> Conn {
        Conn {
            sock,
            seed,
            sent: 0,
            target: 0,
            recvd: 0,
            stamps: VecDeque::new(),
            connected: false,
            start: Instant::now(),
        }
    }

    fn queue(&mut self, size: usize, now: Instant) {
        self.target += size as u64;
        self.stamps.push_back(now);
    }

    /// Writes what is queued until done or WouldBlock.
    fn flush(&mut self, pat: &Pattern) -> io::Result<()> {
        while self.sent < self.target {
            let len = (self.target - self.sent).min(CHUNK as u64) as usize;
            match self.sock.write(pat.slice(self.seed, self.sent, len)) {
                Ok(n) => self.sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until WouldBlock, checking every byte; returns the messages
    /// completed (their queue times are popped into `done`).
    fn read(
        &mut self,
        idx: usize,
        size: usize,
        pat: &Pattern,
        buf: &mut [u8],
        done: &mut Vec<Instant>,
    ) -> Result<(), LoadError> {
        loop {
            let n = match self.sock.read(buf) {
                Ok(0) => return Err(LoadError::Closed { conn: idx }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if self.recvd + n as u64 > self.sent {
                return Err(LoadError::TooMuch { conn: idx });
            }
            let want = pat.slice(self.seed, self.recvd, n);
            if want != &buf[..n] {
                let i = (0..n).find(|&i| want[i] != buf[i]).unwrap_or(0);
                return Err(LoadError::WrongEcho {
                    conn: idx,
                    offset: self.recvd + i as u64,
                    expected: want[i],
                    got: buf[i],
                });
            }
            let before = self.recvd / size as u64;
            self.recvd += n as u64;
            for _ in before..self.recvd / size as u64 {
                if let Some(t) = self.stamps.pop_front() {
                    done.push(t);
                }
            }
            // A short read drained the socket: new bytes bring a new edge.
            // (Saves the WouldBlock read, so the client costs what a server does.)
            if n < buf.len() {
                return Ok(());
            }
        }
    }
}

/// Opens `n` connections to `addr` (at most [`OPENING`] handshakes at
/// once), each proven accepted by a one-byte echo, with one byte of their
/// stream used. They stay registered under tokens from `first` on; once
/// open they have no more events unless the server misbehaves.
fn open(
    poll: &mut Poll,
    addr: SocketAddr,
    n: usize,
    first: usize,
    pat: &Pattern,
) -> Result<Vec<Conn>, LoadError> {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64];
    let mut done = Vec::new();
    let mut out: Vec<Conn> = Vec::with_capacity(n);
    let mut pending = 0usize;
    let mut ok = 0usize;
    let mut last = Instant::now();
    while ok < n {
        while pending < OPENING && out.len() < n {
            let idx = out.len();
            let mut c = Conn::new(TcpStream::connect(addr)?, idx % PERIOD);
            poll.registry().register(
                &mut c.sock,
                Token(first + idx),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            c.queue(1, Instant::now());
            out.push(c);
            pending += 1;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let Some(idx) = ev.token().0.checked_sub(first).filter(|&i| i < out.len()) else {
                continue;
            };
            let c = &mut out[idx];
            if c.recvd == 1 {
                continue;
            }
            if !c.connected {
                if let Some(e) = c.sock.take_error()? {
                    return Err(e.into());
                }
                match c.sock.peer_addr() {
                    Ok(_) => c.connected = true,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => return Err(e.into()),
                }
                let _ = c.sock.set_nodelay(true);
            }
            c.flush(pat)?;
            c.read(idx, 1, pat, &mut buf, &mut done)?;
            if c.recvd == 1 {
                pending -= 1;
                ok += 1;
                last = Instant::now();
            }
        }
        if last.elapsed() > STALL {
            return Err(LoadError::Stalled);
        }
    }
    for c in &mut out {
        c.stamps.clear();
    }
    Ok(out)
}

/// Runs one workload against `addr`: open, warm up, measure, drain.
/// `on_phase` is called at each [`Phase`] so the caller can sample the server.
pub fn run(
    addr: SocketAddr,
    spec: Spec,
    warmup: Duration,
    measure: Duration,
    on_phase: &mut dyn FnMut(Phase),
) -> Result<Outcome, LoadError> {
    let pat = Pattern::default();
    let mut poll = Poll::new()?;
    // Idle connections' tokens come after every active one's.
    let _idle = open(&mut poll, addr, spec.idle, IDLE_TOKENS, &pat)?;
    let mut conns = if spec.churn {
        Vec::new()
    } else {
        open(&mut poll, addr, spec.conns, 0, &pat)?
    };
    on_phase(Phase::Connected);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut events = Events::with_capacity(4096);
    let mut buf = vec![0u8; CHUNK];
    let mut done = Vec::new();
    let start = Instant::now();
    let (measure_at, end_at) = (start + warmup, start + warmup + measure);
    let mut measuring = false;
    let mut msgs = 0u64;
    let mut last_progress = Instant::now();
    if spec.churn {
        for i in 0..spec.conns {
            conns.push(churn_connect(&mut poll, addr, i)?);
        }
    } else {
        let now = Instant::now();
        for c in &mut conns {
            for _ in 0..spec.inflight {
                c.queue(spec.size, now);
            }
            c.flush(&pat)?;
        }
    }
    loop {
        let now = Instant::now();
        if !measuring && now >= measure_at {
            measuring = true;
            msgs = 0;
            hist.reset();
            on_phase(Phase::MeasureStart);
        }
        if now >= end_at {
            on_phase(Phase::MeasureEnd);
            break;
        }
        let wait = if measuring { end_at } else { measure_at } - now;
        poll.poll(&mut events, Some(wait.min(Duration::from_millis(50))))?;
        let now = Instant::now();
        for ev in events.iter() {
            let idx = ev.token().0;
            if idx >= conns.len() {
                continue; // an idle connection: it has nothing to say
            }
            if spec.churn {
                if churn_event(&mut conns[idx], idx, spec.size, &pat, &mut buf)? {
                    let t0 = conns[idx].start;
                    done.push(t0);
                    conns[idx] = churn_connect(&mut poll, addr, idx)?;
                }
            } else {
                let c = &mut conns[idx];
                c.read(idx, spec.size, &pat, &mut buf, &mut done)?;
                for _ in 0..done.len() {
                    c.queue(spec.size, now);
                }
                c.flush(&pat)?;
            }
            if !done.is_empty() {
                last_progress = now;
            }
            for t in done.drain(..) {
                if measuring {
                    msgs += 1;
                    hist.saturating_record(now.saturating_duration_since(t).as_nanos() as u64);
                }
            }
        }
        if now.duration_since(last_progress) > STALL {
            return Err(LoadError::Stalled);
        }
    }
    let elapsed = measure;
    if !spec.churn {
        drain(&mut poll, &mut conns, spec.size, &pat, &mut buf)?;
    }
    Ok(Outcome {
        msgs,
        bytes: msgs * spec.size as u64,
        elapsed,
        hist,
    })
}

/// After the measured window: no new messages; wait (up to a second) for
/// the replies still owed, so every byte sent is checked and the servers
/// see an orderly close.
fn drain(
    poll: &mut Poll,
    conns: &mut [Conn],
    size: usize,
    pat: &Pattern,
    buf: &mut [u8],
) -> Result<(), LoadError> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut events = Events::with_capacity(4096);
    let mut done = Vec::new();
    while conns.iter().any(|c| c.recvd < c.target) && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for ev in events.iter() {
            let idx = ev.token().0;
            let Some(c) = conns.get_mut(idx) else {
                continue;
            };
            c.flush(pat)?;
            c.read(idx, size, pat, buf, &mut done)?;
            done.clear();
        }
    }
    Ok(())
}

/// Source addresses churn connections rotate over (127.1.0.1 onwards).
const CHURN_SOURCES: u32 = 60_000;

/// Opens a churn connection. To a 127/8 server it comes from a rotating
/// source address: each closed connection leaves its port in TIME_WAIT for
/// 60 s, and one source address's ~28,000 ports would run out within
/// seconds, after which the kernel's port search, not the server, sets the
/// pace (every server measured the same ~11,600 connections/s).
fn churn_connect(poll: &mut Poll, addr: SocketAddr, idx: usize) -> Result<Conn, LoadError> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let sock = match addr {
        SocketAddr::V4(a) if a.ip().is_loopback() => {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % CHURN_SOURCES;
            let src = std::net::Ipv4Addr::from(0x7f01_0001 + n);
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            s.bind(&SocketAddr::from((src, 0)).into())?;
            match s.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e.into()),
            }
            TcpStream::from_std(s.into())
        }
        _ => TcpStream::connect(addr)?,
    };
    let mut c = Conn::new(sock, idx % PERIOD);
    poll.registry().register(
        &mut c.sock,
        Token(idx),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(c)
}

/// One churn connection's event: finish the connect, send the message,
/// check the echo. True when the echo is complete (the caller closes).
fn churn_event(
    c: &mut Conn,
    idx: usize,
    size: usize,
    pat: &Pattern,
    buf: &mut [u8],
) -> Result<bool, LoadError> {
    if !c.connected {
        if let Some(e) = c.sock.take_error()? {
            return Err(e.into());
        }
        match c.sock.peer_addr() {
            Ok(_) => c.connected = true,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let _ = c.sock.set_nodelay(true);
        c.queue(size, c.start);
    }
    c.flush(pat)?;
    let mut got = Vec::new();
    c.read(idx, size, pat, buf, &mut got)?;
    Ok(!got.is_empty())
}
