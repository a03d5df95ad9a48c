//! io_uring: the completion backend. The loop does not `recv` or `send`;
//! it submits the operations to a ring shared with the kernel and reaps
//! what finished from another, all of one iteration in one `io_uring_enter`
//! (with the wait's timeout in the same call).
//!
//! | what | how |
//! |---|---|
//! | accept | one multishot accept per listener, re-armed if it ends |
//! | receive | one receive per connection, into a buffer the kernel picks from the loop's provided buffer ring (`IORING_REGISTER_PBUF_RING`); the loop hands it to `on_data` in place and gives it back when the handler returns |
//! | send | at most one in flight per connection, from its output queue, which is not moved until the send completes |
//! | UDP sockets | a poll, then the readiness path's `recvfrom` |
//! | waker | a read of an eventfd, re-armed after each wake-up |
//! | timers | the timeout argument of `io_uring_enter` (`EXT_ARG`) |
//! | set-up | `SINGLE_ISSUER | DEFER_TASKRUN` (task work runs only when the loop waits), else `COOP_TASKRUN`; created disabled and enabled by the thread that runs the loop |
//!
//! A completion's `user_data` is its entry's token with the operation in
//! bits 24..32 (where a token keeps its loop index: one ring serves one loop).

use super::bufring::{BGID, BufRing};
use super::{Driver, Event, Interest, Ready, Source, Trigger, Waker, What};
use crate::config::Config;
use crate::metrics::{Metrics, add};
use crate::sys::EventFd;
use crate::token::WAKER;
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The operation a completion belongs to (bits 24..32 of `user_data`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    /// A cancel: its own completion says nothing the loop needs (the
    /// cancelled operation reports `ECANCELED` itself).
    Cancel = 4,
    Poll = 5,
    Wake = 6,
}

const OP_SHIFT: u32 = 24;
const OP_MASK: u64 = 0xff << OP_SHIFT;

fn user_data(token: u64, op: Op) -> u64 {
    (token & !OP_MASK) | (u64::from(op as u8) << OP_SHIFT)
}

pub(crate) struct UringDriver {
    ring: IoUring,
    bufs: BufRing,
    waker: Arc<EventFd>,
    /// Where the waker's eventfd read lands (the kernel writes it).
    wake_buf: Box<u64>,
    wake_armed: bool,
    enabled: bool,
    /// Operations submitted whose last completion has not come back.
    inflight: usize,
    /// A full submission queue was handed to the kernel between waits:
    /// completions may be waiting already, so the next wait must not sleep.
    backlog: bool,
    /// Completions the last wait reaped.
    reaped: usize,
    metrics: Arc<Metrics>,
}

/// Why the kernel refused io_uring, in words a person can act on.
fn refused(e: io::Error) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
    let why = match (e.raw_os_error(), disabled.as_deref().map(str::trim)) {
        (Some(libc::ENOSYS), _) => "this kernel has no io_uring (ENOSYS)".to_owned(),
        (Some(libc::EPERM), Some("2")) => {
            "kernel.io_uring_disabled is 2: io_uring is off for every process (EPERM)".to_owned()
        }
        (Some(libc::EPERM), Some("1")) => "kernel.io_uring_disabled is 1: only members of \
             kernel.io_uring_group may use io_uring (EPERM)"
            .to_owned(),
        (Some(libc::EPERM), _) => {
            "io_uring_setup was refused (EPERM): a seccomp policy, as containers have, forbids it"
                .to_owned()
        }
        (Some(libc::ENOMEM), _) => {
            "the rings could not be allocated (ENOMEM; RLIMIT_MEMLOCK on older kernels)".to_owned()
        }
        _ => format!("io_uring_setup failed: {e}"),
    };
    io::Error::new(e.kind(), format!("io_uring is not available: {why}"))
}

impl UringDriver {
    pub(crate) fn new(cfg: &Config, metrics: Arc<Metrics>) -> io::Result<UringDriver> {
        let entries = cfg.uring_entries.clamp(8, 32768);
        // Disabled until the loop's thread enables it: a single issuer is
        // the thread that enables the ring, not the one that made it.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .setup_cqsize(entries * 2)
            .build(entries)
            .or_else(|e| match e.raw_os_error() {
                // Before 6.1: no DEFER_TASKRUN.
                Some(libc::EINVAL) => IoUring::builder()
                    .setup_coop_taskrun()
                    .setup_r_disabled()
                    .setup_cqsize(entries * 2)
                    .build(entries),
                _ => Err(e),
            })
            .map_err(refused)?;
        if !ring.params().is_feature_nodrop() || !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is too old here: the loop needs IORING_FEAT_NODROP and EXT_ARG (Linux 5.11)",
            ));
        }
        let bufs = BufRing::new(cfg.uring_buffers, cfg.uring_buffer_size)?;
        // SAFETY: the ring memory is valid for `entries` entries and lives
        // as long as the driver, which unregisters it first (see Drop).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(bufs.ring as u64, bufs.entries, BGID, 0)
        }
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("io_uring: cannot register the provided buffer ring (Linux 5.19): {e}"),
            )
        })?;
        Ok(UringDriver {
            ring,
            bufs,
            waker: Arc::new(EventFd::new()?),
            wake_buf: Box::new(0),
            wake_armed: false,
            enabled: false,
            inflight: 0,
            backlog: false,
            reaped: 0,
            metrics,
        })
    }

    /// Queues one submission; a full queue is handed to the kernel first.
    fn push(&mut self, sqe: &squeue::Entry, counted: bool) {
        // SAFETY: every caller keeps what the entry points at alive until
        // its last completion (see each one).
        while unsafe { self.ring.submission().push(sqe) }.is_err() {
            add(&self.metrics.uring_enters, 1);
            self.backlog = true;
            if let Err(e) = self.ring.submit() {
                log::error!("io_uring: submitting a full queue failed: {e}");
                return;
            }
        }
        add(&self.metrics.uring_submissions, 1);
        if counted {
            self.inflight += 1;
        }
    }

    /// A multishot accept on listener `fd`.
    pub(crate) fn accept(&mut self, fd: RawFd, token: u64) {
        let sqe = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(token, Op::Accept));
        self.push(&sqe, true);
    }

    /// One receive on connection `fd`, into a buffer of the ring.
    pub(crate) fn recv(&mut self, fd: RawFd, token: u64) {
        let sqe = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), self.bufs.size as u32)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(user_data(token, Op::Recv));
        self.push(&sqe, true);
    }

    /// One send of `len` bytes at `buf` on connection `fd`.
    ///
    /// # Safety
    /// `buf..buf + len` stays valid and unmoved until the send's completion.
    pub(crate) unsafe fn send(&mut self, fd: RawFd, token: u64, buf: *const u8, len: usize) {
        let sqe = opcode::Send::new(types::Fd(fd), buf, len.min(u32::MAX as usize) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(token, Op::Send));
        self.push(&sqe, true);
    }

    /// A one-shot poll for input on `fd` (UDP sockets).
    pub(crate) fn poll(&mut self, fd: RawFd, token: u64) {
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(user_data(token, Op::Poll));
        self.push(&sqe, true);
    }

    /// A one-shot poll for room to write on `fd` (a connection sending a file).
    pub(crate) fn poll_out(&mut self, fd: RawFd, token: u64) {
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
            .build()
            .user_data(user_data(token, Op::Poll));
        self.push(&sqe, true);
    }

    /// Cancels everything in flight on `fd`; each cancelled operation
    /// completes with `ECANCELED` under its own token.
    pub(crate) fn cancel(&mut self, fd: RawFd) {
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(user_data(0, Op::Cancel));
        self.push(&sqe, true);
    }

    /// The `len` bytes the kernel received into buffer `bid`.
    ///
    /// # Safety
    /// `bid` came from a receive's completion and has not been given back
    /// with [`recycle`](UringDriver::recycle): the kernel does not write it,
    /// and the slice must not be used after that call.
    pub(crate) unsafe fn received<'a>(&self, bid: u16, len: usize) -> &'a [u8] {
        // SAFETY: see the function's contract; `len` ≤ the buffer's size,
        // which the kernel was told.
        unsafe { std::slice::from_raw_parts(self.bufs.at(bid), len.min(self.bufs.size)) }
    }

    /// Gives buffer `bid` back to the ring.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.bufs.give(bid);
    }

    fn arm_wake(&mut self) {
        let sqe = opcode::Read::new(
            types::Fd(self.waker.fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(user_data(0, Op::Wake));
        // The box lives as long as the driver, which reaps before freeing it.
        self.push(&sqe, true);
        self.wake_armed = true;
    }

    /// Submits what is queued and waits up to `timeout` for a completion.
    fn enter(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if !self.enabled {
            self.ring.submitter().register_enable_rings()?;
            self.enabled = true;
        }
        if !self.wake_armed {
            self.arm_wake();
        }
        // Completions already waiting (an earlier full-queue submit): do not sleep.
        let want = usize::from(!std::mem::take(&mut self.backlog));
        // Only a wait that filled the completion queue can have overflowed it.
        if self.reaped >= self.ring.params().cq_entries() as usize
            && self.ring.submission().cq_overflow()
        {
            add(&self.metrics.uring_overflows, 1);
        }
        add(&self.metrics.uring_enters, 1);
        let ts;
        let r = match timeout {
            None => self.ring.submitter().submit_and_wait(want),
            Some(d) => {
                // A zero timeout still enters with GETEVENTS: deferred task
                // work (the receives that finished) runs only then.
                ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want.max(1), &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Driver for UringDriver {
    fn trigger(&self) -> Trigger {
        Trigger::Completion
    }

    /// Listeners get a multishot accept, other fds a poll; a connection's
    /// receive is armed by the loop, which keeps track of it.
    fn register(&mut self, fd: RawFd, token: u64, _: Interest, source: Source) -> io::Result<()> {
        match source {
            Source::Listener => self.accept(fd, token),
            Source::Other => self.poll(fd, token),
            Source::Stream => {}
        }
        Ok(())
    }

    fn reregister(&mut self, _: RawFd, _: u64, _: Interest) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring has no interest to change",
        ))
    }

    /// Cancels what is in flight on `fd` (a listener's accept).
    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.cancel(fd);
        Ok(())
    }

    fn wait(&mut self, out: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        self.enter(timeout)?;
        let mut n = 0;
        for cqe in self.ring.completion() {
            n += 1;
            let (ud, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            let more = cqueue::more(flags);
            if !more {
                self.inflight -= 1;
            }
            let token = ud & !OP_MASK;
            let what = match ((ud & OP_MASK) >> OP_SHIFT) as u8 {
                1 => What::Accepted { res, more },
                2 => What::Received {
                    res,
                    buf: cqueue::buffer_select(flags),
                },
                3 => What::Sent { res },
                5 => What::Ready(Ready::READABLE),
                6 => {
                    self.wake_armed = false;
                    out.push(Event {
                        token: WAKER,
                        what: What::Ready(Ready::READABLE),
                    });
                    continue;
                }
                _ => continue, // a cancel's own completion
            };
            out.push(Event { token, what });
        }
        add(&self.metrics.uring_completions, n);
        self.reaped = n as usize;
        Ok(())
    }

    fn waker(&mut self, _token: u64) -> io::Result<Waker> {
        Ok(Waker::Ring(self.waker.clone()))
    }
}

impl Drop for UringDriver {
    /// Nothing the kernel may still write into is freed while it may: what
    /// is in flight is cancelled and reaped first (for at most a second,
    /// and only from the ring's own thread); if that fails, the buffers are
    /// left allocated rather than risk it.
    fn drop(&mut self) {
        if self.enabled && self.inflight > 0 {
            let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any().all())
                .build()
                .user_data(user_data(0, Op::Cancel));
            self.push(&sqe, true);
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.inflight > 0 && Instant::now() < deadline {
                let ts = types::Timespec::from(Duration::from_millis(10));
                let args = types::SubmitArgs::new().timespec(&ts);
                match self.ring.submitter().submit_with_args(1, &args) {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                    Err(_) => break, // not the issuer's thread (EEXIST), or worse
                }
                for cqe in self.ring.completion() {
                    if !cqueue::more(cqe.flags()) {
                        self.inflight -= 1;
                    }
                }
            }
        }
        // Never enabled, the kernel never saw a submission.
        if self.enabled && self.inflight > 0 {
            log::warn!(
                "io_uring: {} operations still in flight at drop: their buffers are left allocated",
                self.inflight
            );
            self.bufs.leak();
            std::mem::forget(std::mem::take(&mut self.wake_buf));
        }
        let _ = self.ring.submitter().unregister_buf_ring(BGID);
    }
}
