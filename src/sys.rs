//! The system calls the loop makes itself, each a thin safe wrapper, and
//! the one helper that turns a `-1` into the `errno` error ([`cvt`]).
//!
//! Every fd the crate owns is an [`OwnedFd`]: closed exactly once, on drop.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::peer::Peer;

/// A system call's return value whose `-1` means "see errno".
pub(crate) trait MinusOne: Copy + PartialEq {
    const MINUS_ONE: Self;
}

impl MinusOne for i32 {
    const MINUS_ONE: i32 = -1;
}

impl MinusOne for isize {
    const MINUS_ONE: isize = -1;
}

/// `-1` → the `errno` error; any other value passes.
#[inline]
pub(crate) fn cvt<T: MinusOne>(r: T) -> io::Result<T> {
    if r == T::MINUS_ONE {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `recv(2)` into `buf`: the hot path, without std's wrapper layers.
#[inline]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
    cvt(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) }).map(|n| n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL`: a reset peer is an `EPIPE` error for
/// that connection, never a SIGPIPE for the process.
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    cvt(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
        .map(|n| n as usize)
}

/// `sendmsg(2)` of up to 8 slices in one call, with `MSG_NOSIGNAL`.
pub(crate) fn send_parts(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut slices = [MaybeUninit::<IoSlice<'_>>::uninit(); 8];
    let n = parts.len().min(8);
    for (slot, part) in slices[..n].iter_mut().zip(parts) {
        slot.write(IoSlice::new(part));
    }
    // SAFETY: a zeroed msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec; the first `n` are written.
    msg.msg_iov = slices.as_mut_ptr().cast();
    msg.msg_iovlen = n as _;
    // SAFETY: `msg` points at `n` initialised iovecs borrowed from `parts`.
    cvt(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }).map(|n| n as usize)
}

/// `sendfile(2)` of up to `len` bytes of `file` from `*off` to socket `fd`,
/// advancing `*off`: the kernel copies from the page cache, nothing passes
/// through this process.
pub(crate) fn sendfile(fd: RawFd, file: RawFd, off: &mut u64, len: u64) -> io::Result<usize> {
    let mut o = *off as libc::off_t;
    let len = len.min(1 << 30) as usize;
    // SAFETY: `o` is a valid off_t for the kernel to read and advance.
    let n = cvt(unsafe { libc::sendfile(fd, file, &mut o, len) })? as usize;
    *off = o as u64;
    Ok(n)
}

/// `shutdown(SHUT_WR)`: our FIN. Errors (the peer is gone) do not matter here.
pub(crate) fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on an fd we own.
    let _ = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one system call, not three.
pub(crate) fn accept(fd: RawFd) -> io::Result<(OwnedFd, Peer)> {
    // SAFETY: accept4 fills at most `len` bytes of the storage socket2 hands us.
    let (new, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            cvt(libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ))
        })?
    };
    // SAFETY: accept4 returned a fresh fd that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(new) }, peer_of_addr(&addr)))
}

/// The peer of a connected socket (`getpeername`), TCP or Unix.
pub(crate) fn peer_of(fd: &OwnedFd) -> Peer {
    match socket2::SockRef::from(fd).peer_addr() {
        Ok(a) => peer_of_addr(&a),
        Err(_) => Peer::Inet(SocketAddr::from(([0, 0, 0, 0], 0))),
    }
}

fn peer_of_addr(a: &socket2::SockAddr) -> Peer {
    match a.as_socket() {
        Some(inet) => Peer::Inet(inet),
        None => Peer::Unix(a.as_pathname().map(|p| p.to_path_buf())),
    }
}

/// Bytes sent on a TCP socket that the peer has not acknowledged (`SIOCOUTQ`).
pub(crate) fn unacked(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: an int for the kernel to fill, on a socket the caller owns.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) })?;
    Ok(n.max(0) as usize)
}

/// Whether an accept error means "out of descriptors or memory": pause
/// accepting instead of spinning on a listener that stays readable.
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `recvfrom(2)` with `MSG_TRUNC`: the datagram's real length even when
/// it did not fit, so an oversized one is reported instead of cut short.
pub(crate) fn recv_from(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    // SAFETY: u8 and MaybeUninit<u8> have the same layout; the buffer is initialised.
    let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    // SAFETY: `fd` is a socket the caller keeps open for the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd);
    let (n, from) = sock.recv_from_with_flags(buf, libc::MSG_TRUNC)?;
    Ok((
        n,
        from.as_socket()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
    ))
}

/// An `eventfd(2)`: the wake-up fd of the backends without their own waker.
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall; the result is a fresh fd or -1.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: eventfd returned a fresh fd that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Adds one: the fd becomes readable.
    pub(crate) fn write(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own fd.
        match cvt(unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) }) {
            // A full counter already means "woken".
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// Resets the counter, so a level-triggered backend stops reporting it.
    pub(crate) fn read(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own fd.
        let _ = unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// A poll-style timeout in milliseconds, rounded up so a timer never fires
/// early; `-1` waits forever.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => crate::timer::ms_ceil(d).min(i32::MAX as u64) as libc::c_int,
    }
}

/// Milliseconds on `CLOCK_MONOTONIC`: one vDSO call, no `Instant` arithmetic.
#[inline]
pub(crate) fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// What a listening socket's kernel may still take in during a stop; set
/// with [`filter_listener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Drop SYNs: no new handshake begins, those already begun complete
    /// into the accept queue.
    Handshakes,
    /// Drop every packet: no handshake completes any more, so the accept
    /// queue can only shrink (it holds what the kernel had accepted).
    Nothing,
}

/// Attaches a classic BPF socket filter to a listening TCP socket. The
/// kernel runs it on the packets that reach the listener (SYNs and the
/// last ACK of each handshake; a connection once accepted has its own
/// socket), with the TCP header at offset 0; byte 13 holds the flags.
pub(crate) fn filter_listener(fd: RawFd, admit: Admit) -> io::Result<()> {
    const fn op(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
    /// The SYN bit of the TCP flags byte.
    const SYN: u32 = 0x02;
    let (ld_byte, jset, ret) = (
        libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    let handshakes = [
        op(ld_byte, 0, 0, 13),   // A = TCP flags
        op(jset, 0, 1, SYN),     // SYN set? next, else skip one
        op(ret, 0, 0, 0),        // drop
        op(ret, 0, 0, u32::MAX), // keep
    ];
    let nothing = [op(ret, 0, 0, 0)];
    let prog: &[libc::sock_filter] = match admit {
        Admit::Handshakes => &handshakes,
        Admit::Nothing => &nothing,
    };
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` valid instructions for the duration
    // of the call; the kernel copies them.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The CPUs this process may run on (`sched_getaffinity`), in order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set for the kernel to fill.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) })?;
    let max = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads the set within its size.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling thread to one CPU.
pub(crate) fn pin_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes within the set (the kernel checks the CPU).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) }).map(drop)
}
