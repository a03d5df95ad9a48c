//! The notes' `selectors` callback echo server (`003_8786073bdc871acb.txt`,
//! "selectors模块"), on [`ioplex::Selector`].
//!
//! As in the notes, each registration's data is the callback to run: the
//! listener's is `accept`, which registers each new connection with `read`.
//! `read` echoes what it got as is and closes on EOF or error.
//!
//! Fixed from the notes:
//! - `conn.send(data)` may send only part of the data; here what the
//!   socket refuses is kept and sent when the connection is writable
//!   (the key is modified to ask for WRITABLE only while something waits).
//! - `print(data.decode('utf8'))` raises on non-UTF-8 input and closes the
//!   client; here bytes are logged lossily and echoed untouched.
//!
//! Like Python's `DefaultSelector`, the selector is level-triggered, so a
//! callback may read once per event.
//!
//! Try it:
//! ```text
//! cargo run --example echo_selectors                   # localhost:1234
//! nc localhost 1234
//! ```

use clap::Parser;
use ioplex::{Interest, Selector};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

/// The notes' selectors echo server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "localhost:1234")]
    addr: String,
}

/// What a key's data holds: the callback and the socket it is for (Python's
/// `key.data` and `key.fileobj`).
#[derive(Clone)]
struct Data {
    callback: fn(&mut Sel, &Data, Interest),
    sock: Rc<Sock>,
}

enum Sock {
    Listener(TcpListener),
    Stream(TcpStream, std::cell::RefCell<Vec<u8>>),
}

type Sel = Selector<Data>;

fn accept(sel: &mut Sel, data: &Data, _mask: Interest) {
    let Sock::Listener(l) = &*data.sock else {
        return;
    };
    let (conn, addr) = match l.accept() {
        Ok(c) => c,
        Err(e) => return log::warn!("accept: {e}"),
    };
    log::info!("accepted {conn:?} from {addr}");
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let _ = conn.set_nodelay(true);
    let sock = Rc::new(Sock::Stream(conn, Default::default()));
    let Sock::Stream(s, _) = &*sock else { return };
    let d = Data {
        callback: read,
        sock: sock.clone(),
    };
    if let Err(e) = sel.register(s, Interest::READABLE, d) {
        log::warn!("register: {e}");
    }
}

fn read(sel: &mut Sel, data: &Data, mask: Interest) {
    let Sock::Stream(conn, pending) = &*data.sock else {
        return;
    };
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
            log::info!("{}", String::from_utf8_lossy(&buf[..n]));
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
        log::info!("closing {conn:?}");
        let _ = sel.unregister(conn);
        // The socket closes when the last Rc (this callback's) is dropped.
    }
}

fn main() -> io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    let sock = TcpListener::bind(&args.addr)?;
    sock.set_nonblocking(true)?;
    println!("listening on {}", sock.local_addr()?);
    let mut sel: Sel = Selector::new()?;
    let sock = Rc::new(Sock::Listener(sock));
    let Sock::Listener(l) = &*sock else {
        unreachable!()
    };
    sel.register(
        l,
        Interest::READABLE,
        Data {
            callback: accept,
            sock: sock.clone(),
        },
    )?;
    loop {
        for (key, mask) in sel.select(None)? {
            let callback = key.data.callback;
            callback(&mut sel, &key.data, mask);
        }
    }
}
