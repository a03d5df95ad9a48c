//! The Rust echo servers compared, each run as its own process
//! (`compare --serve IMPL --port P`). Each prints `listening on ADDR`
//! first on stdout, then echoes every byte back unchanged until killed.
//! All set `TCP_NODELAY` on accepted sockets, as ioplex does by default.

use ioplex::{Backend, Distribution, Peer};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

fn announce(addr: SocketAddr) {
    println!("listening on {addr}");
    let _ = io::stdout().flush();
}

/// Serves `imp` on 127.0.0.1:`port` until killed.
pub fn serve(imp: &str, port: u16) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match imp {
        "ioplex" => ioplex_echo(addr, Backend::Mio, 1, Distribution::default()),
        "ioplex-uring" => ioplex_echo(addr, Backend::Uring, 1, Distribution::default()),
        "ioplex-1loop" => ioplex_echo(addr, Backend::Mio, 1, Distribution::default()),
        "ioplex-2loops" => ioplex_echo(addr, Backend::Mio, 2, Distribution::default()),
        "ioplex-2loops-reuseport" => ioplex_echo(addr, Backend::Mio, 2, Distribution::ReusePort),
        "uring" => crate::uring::raw_uring_echo(addr, announce),
        "monoio" => crate::uring::monoio_echo(addr, announce),
        "epoll" => epoll_echo(addr),
        "mio" => mio_echo(addr),
        "tokio-ct" => tokio_echo(addr, false),
        "tokio-mt" => tokio_echo(addr, true),
        "threads" => threads_echo(addr),
        other => Err(io::Error::other(format!("unknown server {other:?}"))),
    }
}

/// ioplex's plain echo handler.
pub struct Echo;

impl ioplex::Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut ioplex::Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut ioplex::Ctx<'_>, _: &mut (), data: &[u8]) -> ioplex::Action {
        ctx.send(data);
        ioplex::Action::Continue
    }
    /// SIGHUP: prints this loop's system calls so far (from its own
    /// counters) and the bytes it received, for the bench's per-message figure.
    fn on_signal(&mut self, ctx: &mut ioplex::Ctx<'_>, _: i32) {
        let m = ctx.metrics();
        println!("counters {} {}", syscalls(&m), m.bytes_in);
        let _ = io::stdout().flush();
    }
}

/// The system calls a loop made, by its counters: on a readiness backend a
/// wait per wake-up and a call per read, write and registration; on
/// io_uring its `io_uring_enter` calls (reads and writes are operations in
/// the ring there, not calls); `sendfile` and accepting on either.
pub fn syscalls(m: &ioplex::Snapshot) -> u64 {
    let regs = m.registrations + m.reregistrations + m.deregistrations;
    match m.uring_enters {
        0 => m.wakeups + m.reads + m.writes + regs + m.sendfiles + m.accepted,
        enters => enters + m.sendfiles + m.accepted,
    }
}

/// The config of every ioplex server measured: the limits out of the way.
pub fn ioplex_config() -> ioplex::Config {
    ioplex::Config {
        max_connections: 1_000_000,
        ..ioplex::Config::default()
    }
}

/// ioplex: the echo handler, logging off (no logger installed), on
/// `backend` and `threads` loops (a `Server`; one loop is one `Reactor` on this thread).
fn ioplex_echo(
    addr: SocketAddr,
    backend: Backend,
    threads: usize,
    d: Distribution,
) -> io::Result<()> {
    let config = ioplex::Config {
        backend,
        ..ioplex_config()
    };
    let mut server = ioplex::Server::new(config, threads)?;
    server.distribution(d);
    server.stop_on_signals()?; // SIGTERM ends it, SIGHUP prints the counters
    announce(server.listen(addr)?);
    server.run(|_| Echo)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The baseline: raw epoll, level-triggered, one read and one write per
/// event. Output the socket refuses is kept and sent on EPOLLOUT; while it
/// waits, that connection is not read.
fn epoll_echo(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    announce(listener.local_addr()?);
    let lfd = listener.as_raw_fd();
    // SAFETY: plain system calls on fds this function owns; buffers outlive the calls.
    unsafe {
        let ep = cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?;
        let ctl = |op, fd: i32, events: u32| {
            let mut ev = libc::epoll_event {
                events,
                u64: fd as u64,
            };
            cvt(libc::epoll_ctl(ep, op, fd, &mut ev))
        };
        ctl(libc::EPOLL_CTL_ADD, lfd, libc::EPOLLIN as u32)?;
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 64 << 10];
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let one: libc::c_int = 1;
        loop {
            let n = libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1);
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                let (fd, flags) = (ev.u64 as i32, ev.events);
                if fd == lfd {
                    loop {
                        let c = libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        );
                        if c < 0 {
                            break;
                        }
                        libc::setsockopt(
                            c,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            4,
                        );
                        if pending.len() <= c as usize {
                            pending.resize_with(c as usize + 1, Vec::new);
                        }
                        ctl(libc::EPOLL_CTL_ADD, c, libc::EPOLLIN as u32)?;
                    }
                    continue;
                }
                let out = &mut pending[fd as usize];
                if flags & libc::EPOLLOUT as u32 != 0 && !out.is_empty() {
                    let w = libc::write(fd, out.as_ptr().cast(), out.len());
                    if w < 0 {
                        if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                            out.clear();
                            libc::close(fd);
                        }
                    } else {
                        out.drain(..w as usize);
                        if out.is_empty() {
                            ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32)?;
                        }
                    }
                    continue;
                }
                let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if r <= 0 {
                    if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                        libc::close(fd);
                    }
                    continue;
                }
                let w = libc::write(fd, buf.as_ptr().cast(), r as usize);
                let w = if w < 0 {
                    if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                        libc::close(fd);
                        continue;
                    }
                    0
                } else {
                    w as usize
                };
                if w < r as usize {
                    out.extend_from_slice(&buf[w..r as usize]);
                    ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT as u32)?;
                }
            }
        }
    }
}

/// Raw mio, edge-triggered: read until WouldBlock, write what was read,
/// keep what the socket refuses and stop reading until it is sent.
fn mio_echo(addr: SocketAddr) -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    announce(listener.local_addr()?);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: slab::Slab<(TcpStream, Vec<u8>)> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 << 10];

    /// Flushes what is kept, then echoes until WouldBlock. Err: close it.
    fn drive(sock: &mut TcpStream, out: &mut Vec<u8>, buf: &mut [u8]) -> io::Result<()> {
        loop {
            while !out.is_empty() {
                match sock.write(out) {
                    Ok(n) => drop(out.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            let n = match sock.read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            match sock.write(&buf[..n]) {
                Ok(w) => out.extend_from_slice(&buf[w..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let _ = sock.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    poll.registry().register(
                        &mut sock,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert((sock, Vec::new()));
                }
                continue;
            }
            let key = ev.token().0;
            let Some((sock, out)) = conns.get_mut(key) else {
                continue;
            };
            if drive(sock, out, &mut buf).is_err() {
                let (mut sock, _) = conns.remove(key);
                let _ = poll.registry().deregister(&mut sock);
            }
        }
    }
}

/// tokio: a task per connection with its own 8 KiB buffer, `read` then
/// `write_all`. Multi-thread gets as many workers as CPUs it may use (one).
fn tokio_echo(addr: SocketAddr, multi: bool) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?
    };
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        announce(listener.local_addr()?);
        loop {
            let (mut sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => continue,
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8 << 10];
                loop {
                    let n = match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if sock.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// std, a thread per connection with an 8 KiB buffer on its stack.
fn threads_echo(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    announce(listener.local_addr()?);
    for sock in listener.incoming() {
        let Ok(mut sock) = sock else { continue };
        let _ = sock.set_nodelay(true);
        // A thread that cannot be made drops its socket: the client sees the close.
        let _ = std::thread::Builder::new().spawn(move || {
            let mut buf = [0u8; 8 << 10];
            loop {
                let n = match sock.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if sock.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}
