//! The handler API on real sockets: timers, partial frames, limits, closing
//! politely, stopping from inside.

mod common;

use common::*;
use ioplex::{Action, CloseReason, Config, Ctx, Handler, Peer, TimerId};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Sends `tick N` from timers; a cancelled timer must never speak.
struct Ticker {
    cancelled: Option<TimerId>,
}

impl Handler for Ticker {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        ctx.set_timer(Duration::from_millis(50), 1);
        let doomed = ctx.set_timer(Duration::from_millis(100), 99);
        ctx.set_timer(Duration::from_millis(150), 2);
        self.cancelled = Some(doomed);
        assert!(ctx.cancel_timer(doomed));
        assert!(!ctx.cancel_timer(doomed), "cancelled twice");
    }
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        Action::Continue
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _: &mut (), tag: u64) -> Action {
        ctx.send(format!("tick {tag}\n").as_bytes());
        if tag == 2 {
            Action::Close
        } else {
            Action::Continue
        }
    }
}

#[test]
fn timers_fire_in_order_and_a_cancelled_one_never_fires() {
    for backend in backends() {
        let server = Server::start(Ticker { cancelled: None }, config_on(backend));
        let mut c = server.connect();
        let t = Instant::now();
        assert_eq!(read_to_eof(&mut c), b"tick 1\ntick 2\n", "on {backend}");
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "fired early on {backend}"
        );
        assert_eq!(server.metrics.snapshot().timers, 2);
        server.stop();
    }
}

/// Answers each complete `\n`-terminated line with its length; keeps partial lines.
struct LineLengths;

impl Handler for LineLengths {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let mut used = 0;
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            ctx.send(format!("{}\n", nl).as_bytes());
            used += nl + 1;
        }
        Action::Consumed(used)
    }
}

#[test]
fn unconsumed_input_is_handed_back_with_what_follows() {
    let server = Server::start(LineLengths, Config::default());
    let mut c = server.connect();
    for piece in [&b"ab"[..], b"cd\nxyz", b"\n\n", b"0123456789"] {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20)); // separate reads
    }
    c.write_all(b"\n").unwrap();
    assert_eq!(read_n(&mut c, 9), b"4\n3\n0\n10\n");
}

#[test]
fn a_partial_frame_over_max_input_closes_that_connection_only() {
    let config = Config {
        max_input: 1024,
        ..Config::default()
    };
    let server = Server::start(LineLengths, config);
    let mut bad = server.connect();
    let mut good = server.connect();
    let _ = bad.write_all(&[b'x'; 4096]); // no newline: a line that never ends
    let mut sink = Vec::new();
    let _ = bad.read_to_end(&mut sink); // EOF or reset: closed either way
    assert_eq!(server.metrics.snapshot().input_limit, 1);
    good.write_all(b"fine\n").unwrap();
    assert_eq!(read_n(&mut good, 2), b"4\n");
}

/// Answers the first bytes with a long goodbye and closes, while the client
/// is still sending.
struct Bye;

const GOODBYE: usize = 24 << 20;

impl Handler for Bye {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        ctx.send(&vec![b'b'; GOODBYE]);
        Action::Close
    }
}

#[test]
fn closing_while_the_client_still_sends_delivers_the_whole_last_reply() {
    for backend in backends() {
        let config = Config {
            max_output: 64 << 20,
            ..config_on(backend)
        };
        let server = Server::start(Bye, config);
        for _ in 0..3 {
            let mut c = server.connect();
            // More than the server reads before it decides to close, and the
            // goodbye still in the server's kernel buffer when it is done:
            // closing a socket with unread input sends RST and throws that
            // buffer away. A lingering close waits for our EOF instead.
            let _ = c.write_all(&[b'q'; 300_000]);
            std::thread::sleep(Duration::from_millis(300));
            let got = read_to_eof(&mut c);
            assert!(
                got.len() == GOODBYE && got.iter().all(|&b| b == b'b'),
                "on {backend}"
            );
        }
        server.stop();
    }
}

/// A `LineLengths` server under `config` with two clients it answered.
fn two_served(
    config: Config,
) -> (
    Server<LineLengths>,
    std::net::TcpStream,
    std::net::TcpStream,
) {
    let server = Server::start(LineLengths, config);
    let mut a = server.connect();
    let mut b = server.connect();
    a.write_all(b"a\n").unwrap();
    b.write_all(b"bb\n").unwrap();
    assert_eq!(read_n(&mut a, 2), b"1\n");
    assert_eq!(read_n(&mut b, 2), b"2\n");
    (server, a, b)
}

#[test]
fn past_max_connections_a_client_gets_one_error_line_and_the_others_are_untouched() {
    let config = Config {
        max_connections: 2,
        ..Config::default()
    };
    let (server, mut a, b) = two_served(config);
    let mut c = server.connect();
    assert_eq!(
        read_to_eof(&mut c),
        b"-ERR max number of clients reached\r\n"
    );
    assert_eq!(server.metrics.snapshot().rejected, 1);
    a.write_all(b"ccc\n").unwrap();
    assert_eq!(read_n(&mut a, 2), b"3\n");
    // One leaves: the server accepts again.
    drop(b);
    let m = server.metrics.clone();
    assert!(wait_for(Duration::from_secs(5), || m.snapshot().closed == 1));
    let mut d = server.connect();
    d.write_all(b"dddd\n").unwrap();
    assert_eq!(read_n(&mut d, 2), b"4\n");
}

/// Echoes what it gets, and checks it was never cut off as a slow consumer.
struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, _: (), reason: CloseReason) {
        assert_ne!(
            reason,
            CloseReason::OutputLimit,
            "a paused reader hit the hard limit"
        );
    }
}

#[test]
fn a_client_that_sends_without_reading_pauses_at_the_high_watermark() {
    const TOTAL: usize = 12 << 20;
    for backend in backends() {
        let config = Config {
            output_high_water: 256 << 10,
            output_low_water: 64 << 10,
            max_output: 1 << 20,
            ..config_on(backend)
        };
        let server = Server::start(Echo, config);
        let mut c = server.connect();
        // 12 MiB sent, none read: far past max_output, unless reading
        // from this client pauses at the high watermark.
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let block = vec![b'z'; 1 << 16];
            for _ in 0..TOTAL / block.len() {
                w.write_all(&block).unwrap();
            }
        });
        let m = server.metrics.clone();
        assert!(
            wait_for(Duration::from_secs(10), || m.snapshot().paused >= 1),
            "never paused on {backend}"
        );
        // Now read it all: every byte arrives, nobody is cut off.
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while total < TOTAL {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("read after {total} bytes on {backend}: {e}"),
            }
        }
        writer.join().unwrap();
        assert_eq!(total, TOTAL, "on {backend}");
        assert_eq!(m.snapshot().output_limit, 0, "on {backend}");
        server.stop();
    }
}

/// Stops the server when told `stop`.
struct Stopper;

impl Handler for Stopper {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        if data == b"stop" {
            ctx.send(b"stopping");
            ctx.stop();
        }
        Action::Continue
    }
}

#[test]
fn a_handler_can_stop_the_server_and_its_reply_still_arrives() {
    let server = Server::start(Stopper, Config::default());
    let mut c = server.connect();
    c.write_all(b"stop").unwrap();
    assert_eq!(read_to_eof(&mut c), b"stopping");
    server.stop(); // returns only if run returned
}

/// Hands each request to a worker thread; the result comes back through
/// `Handle::notify` and is sent from the loop's thread.
struct Offload {
    handle: ioplex::Handle,
    done: std::sync::Arc<std::sync::Mutex<Vec<(ioplex::ConnId, String)>>>,
    next: u64,
}

impl Handler for Offload {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let (id, text) = (ctx.id(), String::from_utf8_lossy(data).into_owned());
        let (handle, done) = (self.handle.clone(), self.done.clone());
        self.next += 1;
        let tag = self.next;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30)); // slow work, off the loop
            done.lock().unwrap().push((id, text.to_uppercase()));
            handle.notify(tag);
        });
        Action::Continue
    }
    fn on_notify(&mut self, ctx: &mut Ctx<'_>, _tag: u64) {
        let results = std::mem::take(&mut *self.done.lock().unwrap());
        for (id, reply) in results {
            ctx.send_to(id, reply.as_bytes());
        }
    }
}

#[test]
fn a_worker_thread_hands_its_result_back_through_notify() {
    let mut reactor = ioplex::Reactor::new(Config::default()).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let handle = reactor.handle();
    let mut handler = Offload {
        handle: handle.clone(),
        done: Default::default(),
        next: 0,
    };
    let join = std::thread::spawn(move || reactor.run(&mut handler));
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"slow").unwrap();
    b.write_all(b"work").unwrap();
    assert_eq!(read_n(&mut b, 4), b"WORK");
    assert_eq!(read_n(&mut a, 4), b"SLOW");
    drop((a, b));
    handle.stop();
    join.join().unwrap().unwrap();
}

/// Streams `total` bytes to each client in 64 KiB pieces, sending the next
/// piece only when the last is out of the loop's queue.
struct Streamer {
    total: usize,
}

impl Streamer {
    fn pump(&self, ctx: &mut Ctx<'_>, sent: &mut usize) -> Action {
        let piece = [b's'; 65536];
        while *sent < self.total && ctx.queued(ctx.id()) == 0 {
            let n = piece.len().min(self.total - *sent);
            ctx.send(&piece[..n]);
            *sent += n;
        }
        if *sent == self.total {
            Action::Close
        } else {
            Action::Continue
        }
    }
}

impl Handler for Streamer {
    type Conn = usize;
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) -> usize {
        let mut sent = 0;
        if self.pump(ctx, &mut sent) == Action::Close {
            ctx.close(ctx.id());
        }
        sent
    }
    fn on_data(&mut self, _: &mut Ctx<'_>, _: &mut usize, _: &[u8]) -> Action {
        Action::Continue
    }
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, sent: &mut usize) -> Action {
        self.pump(ctx, sent)
    }
}

#[test]
fn on_drain_lets_a_handler_stream_a_large_reply_with_a_small_queue() {
    const TOTAL: usize = 16 << 20;
    for backend in backends() {
        // A queue limit far below the reply: only sending on drain keeps under it.
        let config = Config {
            max_output: 256 << 10,
            ..config_on(backend)
        };
        let server = Server::start(Streamer { total: TOTAL }, config);
        let mut c = server.connect();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut reads = 0;
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == b's'));
            got += n;
            reads += 1;
            if reads % 64 == 0 {
                std::thread::sleep(Duration::from_millis(2)); // a slowish reader
            }
        }
        assert_eq!(got, TOTAL, "on {backend}");
        assert_eq!(server.metrics.snapshot().output_limit, 0, "on {backend}");
        drop(c); // our EOF ends the server's lingering close at once
        server.stop();
    }
}

/// Counts requests per connection; a worker thread answers each and tells
/// that connection through `Handle::notify_conn`.
struct PerConnOffload {
    handle: ioplex::Handle,
    results:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ioplex::ConnId, Vec<String>>>>,
}

impl Handler for PerConnOffload {
    type Conn = u32;
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) -> u32 {
        0
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, pending: &mut u32, data: &[u8]) -> Action {
        *pending += 1;
        let (id, text) = (ctx.id(), String::from_utf8_lossy(data).into_owned());
        let (handle, results) = (self.handle.clone(), self.results.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            results
                .lock()
                .unwrap()
                .entry(id)
                .or_default()
                .push(text.to_uppercase());
            handle.notify_conn(id, 7);
        });
        Action::Continue
    }
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, pending: &mut u32, tag: u64) -> Action {
        assert_eq!(tag, 7);
        let ready = self
            .results
            .lock()
            .unwrap()
            .remove(&ctx.id())
            .unwrap_or_default();
        for r in ready {
            *pending -= 1;
            ctx.send(format!("{r} ({pending} pending)\n").as_bytes());
        }
        Action::Continue
    }
}

#[test]
fn notify_conn_reaches_that_connection_with_its_state() {
    let mut reactor = ioplex::Reactor::new(Config::default()).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let handle = reactor.handle();
    let mut handler = PerConnOffload {
        handle: handle.clone(),
        results: Default::default(),
    };
    let join = std::thread::spawn(move || reactor.run(&mut handler));
    let mut a = connect(addr);
    a.write_all(b"one").unwrap();
    assert_eq!(read_n(&mut a, 16), b"ONE (0 pending)\n");
    // A notification for a connection that is gone is dropped quietly.
    let gone = {
        let mut b = connect(addr);
        b.write_all(b"bye").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        b
    };
    drop(gone);
    a.write_all(b"two").unwrap();
    assert_eq!(read_n(&mut a, 16), b"TWO (0 pending)\n");
    drop(a);
    handle.stop();
    join.join().unwrap().unwrap();
}

/// Answers one line per call and then holds the rest: pauses reading and
/// resumes 30 ms later from a timer, so every kept line must come back
/// without new bytes arriving.
#[derive(Default)]
struct OneLineAtATime {
    calls_while_paused: usize,
    paused: bool,
}

impl Handler for OneLineAtATime {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        if self.paused {
            self.calls_while_paused += 1;
        }
        let Some(end) = data.iter().position(|&b| b == b'\n') else {
            return Action::Consumed(0);
        };
        ctx.send(&data[..=end]);
        let id = ctx.id();
        ctx.pause_reading(id);
        self.paused = true;
        ctx.set_timer(Duration::from_millis(30), 0);
        Action::Consumed(end + 1)
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: u64) -> Action {
        self.paused = false;
        let id = ctx.id();
        ctx.resume_reading(id);
        Action::Continue
    }
}

#[test]
fn a_paused_reader_gets_its_kept_input_again_on_resume_without_new_bytes() {
    for backend in backends() {
        let server = Server::start(OneLineAtATime::default(), config_on(backend));
        let mut c = server.connect();
        let t = Instant::now();
        c.write_all(b"one\ntwo\nthree\n").unwrap();
        assert_eq!(read_n(&mut c, 14), b"one\ntwo\nthree\n", "on {backend}");
        assert!(
            t.elapsed() >= Duration::from_millis(60),
            "lines answered while paused on {backend}"
        );
        let h = server.stop();
        assert_eq!(h.calls_while_paused, 0, "on_data while paused on {backend}");
    }
}

/// A client whose source address is `ip`, another peer than 127.0.0.1.
fn connect_from(ip: [u8; 4], to: SocketAddr) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[test]
fn past_max_connections_per_ip_that_address_is_turned_away_and_others_are_served() {
    let config = Config {
        max_connections_per_ip: Some(2),
        ..Config::default()
    };
    let (server, _a, b) = two_served(config);
    let mut third = server.connect();
    assert_eq!(
        read_to_eof(&mut third),
        b"-ERR max number of clients reached\r\n"
    );
    assert_eq!(server.metrics.snapshot().rejected_per_ip, 1);
    // Another address is served while 127.0.0.1 is at its cap.
    let mut other = connect_from([127, 0, 0, 2], server.addr);
    other.write_all(b"ccc\n").unwrap();
    assert_eq!(read_n(&mut other, 2), b"3\n");
    // One of 127.0.0.1's leaves: that address may connect again.
    drop(b);
    let m = server.metrics.clone();
    assert!(wait_for(Duration::from_secs(5), || m.snapshot().closed == 1));
    let mut again = server.connect();
    again.write_all(b"dddd\n").unwrap();
    assert_eq!(read_n(&mut again, 2), b"4\n");
}

#[test]
fn a_busy_port_is_an_error_that_names_the_address() {
    let mut first = ioplex::Reactor::new(Config::default()).unwrap();
    let addr = first.listen("127.0.0.1:0").unwrap();
    let mut second = ioplex::Reactor::new(Config::default()).unwrap();
    let e = second.listen(addr).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        e.to_string(),
        format!("cannot listen on {addr}: address already in use")
    );
}
