//! # The IO-multiplexing guide: from a blocking socket to the reactor, and io_uring
//!
//! Note 003 (`../shared/notes/003_8786073bdc871acb.txt`) explains select,
//! poll and epoll and level versus edge triggering in words. This guide
//! takes the same path one step at a time; each step names its example and
//! the number the scaling bench measured on the machine this crate is
//! developed on (2 cores, Linux, loopback, medians of 5 runs):
//!
//! ```text
//! cargo bench --bench scaling -- --update   # rewrites benches/results/scaling.md and .svg
//! ```
//!
//! The bench keeps one client doing 32-byte round trips while N other
//! connections sit idle, and reads the server loop thread's CPU time
//! (`getrusage(RUSAGE_THREAD)`) and its own counters ([`Metrics`](crate::Metrics)).
//!
//! | backend | round trip, 10 idle | 10,000 idle | CPU per wake-up, 10 idle | 1,000 idle | 10,000 idle |
//! |---|---:|---:|---:|---:|---:|
//! | mio (epoll, edge) | 24.8 µs | 24.0 µs | 9.1 µs | 8.3 µs (×0.91) | 7.6 µs (×0.83) |
//! | epoll, level | 22.6 µs | 23.0 µs | 9.5 µs | 8.2 µs (×0.86) | 8.5 µs (×0.89) |
//! | poll | 24.6 µs | 5,160 µs | 9.9 µs | 92.4 µs (×9.3) | 3,450 µs (×348) |
//! | select | 20.4 µs | — (fd ≥ 1024) | 10.8 µs | 89.3 µs (×8.3) | — |
//!
//! Every backend makes the same 3 system calls per message (one wait, one
//! `recvfrom`, one `sendto`: the loop's counters say 3.00, `strace -c` says
//! 3.04 with start-up included). What differs is what one wait costs.
//!
//! ## 1. Blocking sockets
//!
//! `accept`, `recv` and `send` wait until they can finish. One thread can
//! therefore serve one client at a time (the notes' first echo server), or
//! one thread per client (`socketserver.ThreadingTCPServer`, here
//! `examples/socketserver.rs --threads`). Threads cost memory and context
//! switches, but the code stays straight-line:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _) = listener.accept()?; // blocks until a client comes
//!     let mut buf = [0; 1024];
//!     let n = conn.read(&mut buf)?; // blocks until it sends
//!     conn.write_all(&buf[..n])
//! });
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hi")?;
//! let mut reply = [0; 2];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hi");
//! server.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## 2. Non-blocking sockets
//!
//! `set_nonblocking(true)` makes a call that would wait fail at once with
//! `WouldBlock` (`EAGAIN`). One thread can now juggle many sockets, but it
//! must not ask them in a loop: that burns a core doing nothing. It needs
//! someone to say *which* socket is ready: the multiplexer.
//!
//! ```
//! use std::io::{ErrorKind, Read};
//! use std::net::{TcpListener, TcpStream};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let mut client = TcpStream::connect(listener.local_addr()?)?;
//! client.set_nonblocking(true)?;
//! let err = client.read(&mut [0; 16]).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::WouldBlock); // nothing there: no waiting
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## 3. `select(2)`
//!
//! Hand the kernel bitmaps of fds (`fd_set`) to watch for reading and
//! writing; it sleeps until one is ready and overwrites the bitmaps with the
//! answer. So every call copies the sets in, the kernel looks at every fd up
//! to the highest, and the caller scans them all again: the cost grows with
//! the number of fds watched, ready or not (×8.3 per wake-up from 10 to 1,000
//! idle connections above). And the bitmap has `FD_SETSIZE` = 1024 bits:
//! in C, `FD_SET(1500, &set)` writes past its end. ioplex's
//! [`Backend::Select`](crate::Backend::Select) refuses such an fd with an
//! error instead (`tests/backends.rs` opens fds past 1024 to prove it).
//!
//! Example: the notes' select server, `examples/echo_select.rs`:
//! `cargo run --example echo_select -- --backend select`.
//!
//! ## 4. `poll(2)`
//!
//! An array of `struct pollfd { fd, events, revents }` instead of bitmaps:
//! no 1024 limit, and the input (`events`) is not overwritten by the output
//! (`revents`). But it is still the whole array, passed in and scanned on
//! every call: ×348 per wake-up from 10 to 10,000 idle connections, a round
//! trip of 5 ms instead of 25 µs. [`Backend::Poll`](crate::Backend::Poll).
//!
//! The same program runs on each; only the backend value changes
//! ([`Selector`](crate::Selector) is Python's `selectors` module):
//!
//! ```
//! use ioplex::{Backend, Interest, Selector, Trigger};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//!
//! for backend in [Backend::Select, Backend::Poll, Backend::Epoll(Trigger::Level)] {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     listener.set_nonblocking(true)?;
//!     let mut sel = Selector::with_backend(backend)?;
//!     sel.register(&listener, Interest::READABLE, "accept")?;
//!     let _client = TcpStream::connect(listener.local_addr()?)?;
//!     let ready = sel.select(Some(Duration::from_secs(5)))?;
//!     assert_eq!(ready[0].0.data, "accept", "{backend}");
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## 5. `epoll(7)`, level and edge
//!
//! Register each fd once (`epoll_ctl`), and `epoll_wait` returns only the
//! ready ones: the kernel keeps a ready list, so a wake-up costs the same
//! beside 10 or 10,000 idle connections (×0.89 and ×0.83 above: flat, within
//! noise). [`Backend::Epoll`](crate::Backend::Epoll) with a
//! [`Trigger`](crate::Trigger):
//!
//! - **level** (the default, as select and poll): reported on every wait
//!   while the condition holds. Read part of the data and you are told again.
//! - **edge** (`EPOLLET`): reported when the condition *changes*. Read part
//!   of it and you are told nothing more until new data arrives.
//!
//! ```
//! use ioplex::{Backend, Interest, Selector, Trigger};
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//!
//! let wait = Some(Duration::from_secs(5));
//! for trigger in [Trigger::Level, Trigger::Edge] {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let mut client = TcpStream::connect(listener.local_addr()?)?;
//!     let (mut conn, _) = listener.accept()?;
//!     conn.set_nonblocking(true)?;
//!     let mut sel = Selector::with_backend(Backend::Epoll(trigger))?;
//!     sel.register(&conn, Interest::READABLE, ())?;
//!     client.write_all(&[b'x'; 3000])?;
//!     assert_eq!(sel.select(wait)?.len(), 1);
//!     assert_eq!(conn.read(&mut [0; 1024])?, 1024); // read once, not to the end
//!     let again = sel.select(Some(Duration::from_millis(50)))?;
//!     match trigger {
//!         Trigger::Level => assert_eq!(again.len(), 1), // told again: 1976 bytes wait
//!         _ => assert!(again.is_empty()), // no new edge: the lost wake-up
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `examples/level_vs_edge.rs` is a whole server with each classic bug and
//! its fix (`--trigger edge|level`, `--bug`); `tests/level_vs_edge.rs` shows
//! the client waiting forever under the edge bug and 10,000 wake-ups with
//! nothing to do under the level bug, from the server's counters.
//!
//! ## 6. The reactor
//!
//! [`Reactor`](crate::Reactor) is the loop these steps lead to: wait,
//! dispatch each event by its token, read up to a budget, hand the bytes to
//! your [`Handler`](crate::Handler), write what it sends at once and queue
//! only what the socket refuses, close what was marked, sleep again. It runs
//! unchanged on every backend; under mio (epoll, edge) a connection is
//! registered once at accept and never again, so a message costs exactly
//! one wait, one read and one write. `examples/idle_scaling.rs` runs it
//! beside N idle connections on each backend.
//!
//! ```
//! use ioplex::{Action, Backend, Config, Ctx, Handler, Reactor};
//! use std::io::{Read, Write};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type Conn = ();
//!     fn on_connect(&mut self, _: &mut Ctx<'_>, _: ioplex::Peer) {}
//!     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
//!         ctx.send(data);
//!         Action::Continue
//!     }
//! }
//!
//! let mut reactor = Reactor::new(Config { backend: Backend::Poll, ..Config::default() })?;
//! let addr = reactor.listen("127.0.0.1:0")?;
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let mut c = std::net::TcpStream::connect(addr)?;
//!     c.write_all(b"hello")?;
//!     let mut reply = vec![0; 5];
//!     c.read_exact(&mut reply)?;
//!     handle.stop();
//!     Ok(reply)
//! });
//! reactor.run(&mut Echo)?;
//! assert_eq!(client.join().unwrap()?, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## 7. io_uring: completions instead of readiness
//!
//! Every backend so far answers one question: *which fds are ready?* The
//! loop then makes the system calls itself — a wait, a `recv`, a `send`:
//! three per message at one message in flight, whatever the backend
//! (`tests/echo.rs` asserts ≤ 1 read and ≤ 1 write per message from the
//! loop's own counters). io_uring asks the kernel to *do* the operations:
//! the loop writes requests (receive into a buffer of this ring, send these
//! bytes, accept on this listener) into a submission queue shared with the
//! kernel, and reads what finished from a completion queue, and one
//! `io_uring_enter` both hands over everything queued and waits for what
//! comes back ([`Backend::Uring`](crate::Backend::Uring), `--backend uring`).
//!
//! | | readiness (select, poll, epoll) | completion (io_uring) |
//! |---|---|---|
//! | the kernel reports | an fd can be read or written | a receive, send or accept finished, with its result |
//! | who copies the bytes | the loop's `recv`/`send` calls | the kernel, into buffers the loop provided (a buffer ring) |
//! | system calls per message | wait + `recv` + `send` | a share of one `io_uring_enter` |
//! | a buffer's lifetime | the call's | until its completion comes back: the kernel may write it any time before |
//! | closing | `close(2)`, done | cancel what is in flight, keep the slot until every completion is back |
//!
//! What the loop's counters say ([`Metrics`](crate::Metrics):
//! `uring_enters` against messages; `tests/uring.rs`, and the `syscalls/msg`
//! column of `cargo bench --bench compare -- --servers
//! ioplex,ioplex-uring,epoll,uring,monoio --workloads 1,2,4`):
//!
//! | load | epoll (mio) | io_uring |
//! |---|---:|---:|
//! | 1 connection, 1 message in flight | 3.0 | 2.0 (the send's completion wakes the loop once more) |
//! | 1 connection, 16 in flight in one write | 0.19 | 0.125 |
//! | 50 connections, 1 in flight (workload 1) | 2.16 | 0.105 |
//! | 50 connections, 16 in flight (workload 2) | 0.146 | 0.005 |
//! | 1,000 connections, 1 in flight (workload 4) | 2.04 | 0.037 |
//!
//! Where it does not help: the system calls were never most of the cost. A
//! bare system call costs ~120 ns here, a `recv` that finds nothing ~240 ns;
//! the TCP work behind an echoed 64-byte message costs 6–9 µs of kernel time
//! on these machines, and io_uring does that same work (in task work on the
//! loop's thread, with `DEFER_TASKRUN`, when it enters). So the server CPU per
//! message does not drop below epoll's in the same run (workloads 2 and
//! 4: 0.98× and 0.99× in one run, 1.31× and 1.14× in another, where the
//! raw io_uring loop paid 1.11× and 1.09×; workload 1 moved ±40 % between
//! rounds), and one
//! connection with one message in flight gains nothing at all: there is
//! nothing to batch, and the round trip's latency is the network stack's.
//! It pays where many operations would each be a system call — many busy
//! connections per wake-up, pipelined requests — and saves those calls'
//! cost, not the TCP work behind them.
//!
//! ## Questions students ask
//!
//! ### Why drain to `WouldBlock`?
//!
//! Under edge triggering the kernel tells you once that a socket became
//! readable. If you read less than is there and go back to sleep, nothing
//! will ever tell you about the rest: the peer waits for an answer to bytes
//! you never read (the doc-test above; mio issues #1076, #1337). So read
//! until `WouldBlock`, or, to be fair to other connections, until a budget,
//! and then *remember* the connection and come back without waiting (the
//! reactor's own ready queue, [`Config::read_budget`](crate::Config::read_budget)).
//! The same goes for `accept` on a listener. Level triggering forgives a
//! single read: you are told again.
//!
//! ### When should WRITABLE be on?
//!
//! Only while output is queued. A socket with room in its send buffer, which
//! is nearly always, is writable; under level triggering (select, poll,
//! epoll's default) asking for WRITABLE on an idle connection wakes the loop
//! on every wait: a busy loop at 100% CPU (the `--trigger level --bug` mode
//! of `examples/level_vs_edge.rs`). So: write directly first; on
//! `WouldBlock` queue the rest and ask for WRITABLE; when the queue is empty,
//! stop asking. Under edge triggering asking once is free (you are told only
//! when room appears), which is why mio registers READABLE|WRITABLE once.
//!
//! ### What does a short read mean?
//!
//! `read` returned fewer bytes than the buffer holds. On a stream socket
//! that means the kernel had no more *right then*: the socket is drained,
//! and an edge-triggered loop may go back to sleep without another `read`
//! that would only say `WouldBlock`, saving a system call per message. With
//! one exception: if the event also said the peer closed (`EPOLLRDHUP`),
//! EOF may sit behind the data and no new edge will come for it, so read
//! on to the 0. And a short read never means a whole message: TCP has no
//! message boundaries (the [`codec`](crate::codec) module's business).
//!
//! ### Why do tokens need generations?
//!
//! The loop finds a connection from an event by its token, a slab index.
//! Close connection 7 while an event for it is still in this wait's batch,
//! accept a new client, and the slab hands out index 7 again: the old event
//! would now reach the new client (mio #219). ioplex tokens carry a
//! generation beside the index ([`ConnId`](crate::ConnId)); an event whose
//! generation does not match is dropped and counted
//! ([`Snapshot::stale_events`](crate::Snapshot::stale_events)).
//!
//! ### What does EMFILE do to an accept loop?
//!
//! Out of descriptors, `accept` fails with `EMFILE`, but the connection
//! stays in the listen queue, so the listener stays readable. A
//! level-triggered loop is woken again at once, fails again, and spins at
//! 100% CPU while logging an error per turn (tokio #3529, libuv #690). The
//! reactor logs once, stops watching the listener for
//! [`Config::accept_backoff`](crate::Config::accept_backoff) and tries again
//! (`tests/hardening.rs` runs it out of descriptors).
//!
//! ### Why TCP_NODELAY?
//!
//! Nagle's algorithm holds back a small segment while an earlier one is
//! unacknowledged, and the peer's delayed ACK waits up to 40 ms hoping to
//! piggyback. A server that writes a reply in two pieces (a header, then a
//! body) meets both and stalls 40 ms per message. The reactor sets
//! `TCP_NODELAY` on every accepted socket ([`Config::nodelay`](crate::Config::nodelay))
//! and lets a handler send several pieces as one `sendmsg`
//! ([`Ctx::send_parts`](crate::Ctx::send_parts)), so there are no small
//! writes to delay in the first place.
