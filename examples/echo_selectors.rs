//! The notes' `selectors` callback echo server (`003_8786073bdc871acb.txt`,
//! "selectors模块"), on [`ioplex::Selector`].
//!
//! As in the notes, each registration's data is the callback to run: the
//! listener's is `accept`, which registers each new connection with `read`,
//! which echoes what it got as is and closes on EOF or error.
//!
//! Fixed from the notes:
//! - `conn.send(data)` may send only part of the data; here what the
//!   socket refuses is kept and sent when the connection is writable
//!   (the key is modified to ask for WRITABLE only while something waits).
//! - `print(data.decode('utf8'))` raises on non-UTF-8 input and closes the
//!   client; here bytes are logged lossily (control bytes escaped).
//! - **No limits.** Here a connection silent for 5 minutes is closed (the
//!   loop looks once a second) and one address holds at most 64 (the next
//!   are told `error: too many connections; try again later`).
//!
//! Like Python's `DefaultSelector` it is level-triggered: a callback may read once per event.
//!
//! Try it:
//! ```text
//! cargo run --example echo_selectors                   # localhost:1234
//! nc localhost 1234
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::{Interest, Selector};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connection silent this long is closed.
const IDLE: Duration = Duration::from_secs(300);
/// Connections one client address may hold.
const PER_IP: usize = 64;

/// The notes' selectors echo server: echoes every chunk as is.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "localhost:1234")]
    addr: String,
}

/// What a key's data holds: the callback and the socket it is for (Python's
/// `key.data` and `key.fileobj`), and the connections held.
#[derive(Clone)]
struct Data {
    callback: fn(&mut Sel, &Data, Interest),
    sock: Sock,
    held: Rc<Held>,
}

#[derive(Clone)]
enum Sock {
    Listener(Rc<TcpListener>),
    Stream(Rc<Conn>),
}

struct Conn {
    sock: TcpStream,
    pending: RefCell<Vec<u8>>,
    ip: IpAddr,
    last_input: Cell<Instant>,
}

/// The open connections by fd, for the per-address cap and the idle sweep
/// (what Python would read from `sel.get_map()`).
type Held = RefCell<HashMap<RawFd, Rc<Conn>>>;

type Sel = Selector<Data>;

fn accept(sel: &mut Sel, data: &Data, _mask: Interest) {
    let Sock::Listener(l) = &data.sock else {
        return;
    };
    let (mut conn, addr) = match l.accept() {
        Ok(c) => c,
        Err(e) => return log::warn!("accept: {e}"),
    };
    let ip = addr.ip();
    let held = data.held.borrow().values().filter(|c| c.ip == ip).count();
    if held >= PER_IP {
        log::warn!("{addr}: {ip} holds {held} connections already: turned away");
        let _ = conn.write_all(support::BUSY);
        return;
    }
    log::info!("accepted {conn:?} from {addr}");
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let _ = conn.set_nodelay(true);
    let fd = conn.as_raw_fd();
    let (pending, last_input) = (RefCell::default(), Cell::new(Instant::now()));
    let c = Rc::new(Conn {
        sock: conn,
        pending,
        ip,
        last_input,
    });
    let d = Data {
        callback: read,
        sock: Sock::Stream(c.clone()),
        held: data.held.clone(),
    };
    match sel.register(&fd, Interest::READABLE, d) {
        Ok(_) => drop(data.held.borrow_mut().insert(fd, c)),
        Err(e) => log::warn!("register: {e}"),
    }
}

fn read(sel: &mut Sel, data: &Data, mask: Interest) {
    let Sock::Stream(c) = &data.sock else {
        return;
    };
    let (conn, pending) = (&c.sock, &c.pending);
    let mut buf = [0u8; 1000];
    let result = (|| -> io::Result<bool> {
        if mask.is_writable() {
            let mut p = pending.borrow_mut();
            let n = (&*conn).write(&p)?;
            p.drain(..n);
        }
        if mask.is_readable() && pending.borrow().is_empty() {
            let n = match (&*conn).read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            };
            c.last_input.set(Instant::now());
            log::info!("{}", support::printable(&buf[..n]));
            let sent = match (&*conn).write(&buf[..n]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                r => r?,
            };
            pending.borrow_mut().extend_from_slice(&buf[sent..n]);
        }
        // Ask for WRITABLE only while something waits, or level triggering spins.
        let want = if pending.borrow().is_empty() {
            Interest::READABLE
        } else {
            Interest::WRITABLE
        };
        sel.modify(conn, want, data.clone())?;
        Ok(true)
    })();
    if !matches!(result, Ok(true)) {
        close(sel, &data.held, conn);
    }
}

/// Unregisters and forgets a connection; the socket closes when the last
/// `Rc` (a callback's, or the sweep's) is dropped.
fn close(sel: &mut Sel, held: &Held, conn: &TcpStream) {
    log::info!("closing {conn:?}");
    let _ = sel.unregister(conn);
    held.borrow_mut().remove(&conn.as_raw_fd());
}

fn serve(args: Args) -> io::Result<()> {
    let addr = &args.addr;
    let sock = TcpListener::bind(addr).map_err(support::cannot(format!("listen on {addr}")))?;
    sock.set_nonblocking(true)?;
    println!("listening on {}", sock.local_addr()?);
    let fd = sock.as_raw_fd();
    let mut sel: Sel = Selector::new()?;
    let held = Rc::new(Held::default());
    let data = Data {
        callback: accept,
        sock: Sock::Listener(Rc::new(sock)),
        held: held.clone(),
    };
    sel.register(&fd, Interest::READABLE, data)?;
    loop {
        for (key, mask) in sel.select(Some(Duration::from_secs(1)))? {
            let callback = key.data.callback;
            callback(&mut sel, &key.data, mask);
        }
        let silent = |c: &&Rc<Conn>| c.last_input.get().elapsed() >= IDLE;
        let idle: Vec<Rc<Conn>> = held.borrow().values().filter(silent).cloned().collect();
        for c in idle {
            close(&mut sel, &held, &c.sock);
        }
    }
}

fn main() -> ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}
