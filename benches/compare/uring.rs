//! The io_uring peers of the compare bench: a raw echo loop written
//! directly on the `io-uring` crate with the design of ioplex's uring
//! backend and no framework (the overhead anchor), and monoio, the Rust
//! io_uring runtime users pick (thread-per-core; one thread here).

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ACCEPT: u64 = 1 << 62;
const RECV: u64 = 1 << 61;
const SEND: u64 = 1 << 60;
const KEY: u64 = (1 << 32) - 1;
const BUFS: u16 = 1024;
const BUF_SIZE: usize = 16 << 10;

struct Conn {
    fd: OwnedFd,
    /// Bytes to send, the front of which is in flight while `sending`.
    out: Vec<u8>,
    later: Vec<u8>,
    sending: bool,
    ops: u8,
    closing: bool,
}

/// The raw loop: multishot accept; one receive per connection into a
/// provided buffer ring; one send in flight per connection; one
/// `submit_and_wait` per iteration. Echoes until killed.
pub fn raw_uring_echo(addr: SocketAddr, announce: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    announce(listener.local_addr()?);
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(4096)?;
    // The provided buffer ring: entries, then the buffers, both page-aligned.
    let ring_mem = vec![0u8; usize::from(BUFS) * 16 + 4096];
    let base = ((ring_mem.as_ptr() as usize + 4095) & !4095) as *mut types::BufRingEntry;
    let mut data = vec![0u8; usize::from(BUFS) * BUF_SIZE];
    // SAFETY: `base` points at BUFS entries inside `ring_mem`, which lives until the loop ends.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(base as u64, BUFS, 0, 0)?
    };
    let mut tail: u16 = 0;
    let mut give = |bid: u16, data: &mut [u8]| {
        // SAFETY: the index is masked into the ring; the tail store publishes the entry.
        unsafe {
            let e = &mut *base.add(usize::from(tail & (BUFS - 1)));
            e.set_addr(data.as_mut_ptr().add(usize::from(bid) * BUF_SIZE) as u64);
            e.set_len(BUF_SIZE as u32);
            e.set_bid(bid);
            tail = tail.wrapping_add(1);
            let t = types::BufRingEntry::tail(base) as *const std::sync::atomic::AtomicU16;
            (*t).store(tail, std::sync::atomic::Ordering::Release);
        }
    };
    for bid in 0..BUFS {
        give(bid, &mut data);
    }
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let push = |ring: &mut IoUring, sqe: squeue::Entry| {
        // SAFETY: every buffer an entry points at outlives its completion.
        while unsafe { ring.submission().push(&sqe) }.is_err() {
            let _ = ring.submit();
        }
    };
    let recv = |ring: &mut IoUring, fd: i32, key: usize| {
        let sqe = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), BUF_SIZE as u32)
            .buf_group(0)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(RECV | key as u64);
        push(ring, sqe);
    };
    let send = |ring: &mut IoUring, c: &mut Conn, key: usize| {
        c.sending = true;
        c.ops += 1;
        let sqe = opcode::Send::new(
            types::Fd(c.fd.as_raw_fd()),
            c.out.as_ptr(),
            c.out.len() as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(SEND | key as u64);
        push(ring, sqe);
    };
    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
        .user_data(ACCEPT);
    push(&mut ring, accept.clone());
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(4096);
    // The wait's timeout only lets a signal in under valgrind, which holds
    // signals while a thread sits in a system call it does not know blocks.
    let ts = types::Timespec::new().sec(1);
    let args = types::SubmitArgs::new().timespec(&ts);
    loop {
        match ring.submitter().submit_with_args(1, &args) {
            Err(e) if e.raw_os_error() != Some(libc::ETIME) => return Err(e),
            _ => {}
        }
        done.clear();
        done.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, flags) in &done {
            let key = (ud & KEY) as usize;
            if ud & ACCEPT != 0 {
                if res >= 0 {
                    // SAFETY: a successful accept returns a fresh fd.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
                    let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
                    let raw = fd.as_raw_fd();
                    let k = conns.insert(Conn {
                        fd,
                        out: Vec::new(),
                        later: Vec::new(),
                        sending: false,
                        ops: 1,
                        closing: false,
                    });
                    recv(&mut ring, raw, k);
                }
                if !cqueue::more(flags) {
                    push(&mut ring, accept.clone());
                }
                continue;
            }
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            c.ops -= 1;
            if ud & RECV != 0 {
                let bid = cqueue::buffer_select(flags);
                if res > 0 && !c.closing {
                    let bid = bid.unwrap_or(0);
                    let at = usize::from(bid) * BUF_SIZE;
                    let bytes = &data[at..at + res as usize];
                    if c.sending {
                        c.later.extend_from_slice(bytes);
                    } else {
                        c.out.extend_from_slice(bytes);
                        send(&mut ring, c, key);
                    }
                    c.ops += 1;
                    recv(&mut ring, c.fd.as_raw_fd(), key);
                } else if res == -libc::ENOBUFS {
                    c.ops += 1;
                    recv(&mut ring, c.fd.as_raw_fd(), key);
                } else {
                    c.closing = true;
                }
                if let Some(bid) = bid {
                    give(bid, &mut data);
                }
            } else if ud & SEND != 0 {
                c.sending = false;
                if res < 0 {
                    c.closing = true;
                } else if (res as usize) < c.out.len() {
                    c.out.drain(..res as usize);
                    send(&mut ring, c, key);
                } else {
                    c.out.clear();
                    std::mem::swap(&mut c.out, &mut c.later);
                    if !c.out.is_empty() && !c.closing {
                        send(&mut ring, c, key);
                    }
                }
            }
            if c.closing && c.ops == 0 {
                conns.remove(key);
            }
        }
    }
}

/// monoio on its io_uring driver, one thread: a task per connection that
/// reads into an owned buffer and writes it back.
pub fn monoio_echo(addr: SocketAddr, announce: impl FnOnce(SocketAddr)) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(4096)
        .build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind(addr)?;
        announce(listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            monoio::spawn(async move {
                let mut buf = vec![0u8; BUF_SIZE];
                loop {
                    let (r, b) = stream.read(buf).await;
                    let n = match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let (r, b) = stream.write_all(monoio::buf::IoBuf::slice(b, 0..n)).await;
                    if r.is_err() {
                        return;
                    }
                    buf = b.into_inner();
                }
            });
        }
    })
}
