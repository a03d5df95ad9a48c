//! A graceful stop and the requests under way: a connection idle between
//! requests is closed at once (its client sees EOF in milliseconds), one
//! mid-request — a partial frame kept with `Action::Consumed`, or marked
//! with `Ctx::set_busy` while its answer is computed — gets its whole
//! answer, then EOF. Behind the PROXY protocol too: a header still
//! incomplete at the stop counts as a request under way, and a connection
//! whose header completes during the stop is closed once what came with it
//! is answered, not left open until `shutdown_timeout`.

mod common;

use common::*;
use ioplex::{Action, Backend, Config, Ctx, Handler, LengthPrefixed, Peer, Trigger};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Echoes length-prefixed frames; a `slow` frame is answered after 300 ms
/// (as from a worker thread), the connection busy meanwhile; a `block`
/// frame holds the loop itself for 300 ms.
struct Frames;

const SLOW: Duration = Duration::from_millis(300);

impl Handler for Frames {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let mut codec = LengthPrefixed::new(1 << 20);
        ioplex::codec::decode_all(&mut codec, data, |body| {
            if body == b"slow" {
                ctx.set_busy(ctx.id(), true);
                ctx.set_timer(SLOW, 0);
            } else if body == b"block" {
                std::thread::sleep(SLOW); // the loop itself waits: what arrives queues
                ctx.send(&frame(body));
            } else {
                ctx.send_parts(&[&(body.len() as u32).to_be_bytes(), body]);
            }
            Action::Continue
        })
        .unwrap_or(Action::Abort)
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: u64) -> Action {
        ctx.send_parts(&[&4u32.to_be_bytes(), b"slow"]);
        ctx.set_busy(ctx.id(), false);
        Action::Continue
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

/// Reads until EOF; the time it took and what came.
fn until_eof(c: &mut TcpStream) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e} (after {got:?})"),
    }
    (t.elapsed(), got)
}

const PROMPT: Duration = Duration::from_millis(250);

#[test]
fn at_a_stop_idle_connections_close_at_once_and_requests_under_way_get_their_whole_answer() {
    let backends = [
        Backend::Mio,
        Backend::Epoll(Trigger::Edge),
        Backend::Poll,
        Backend::Uring,
    ];
    for backend in backends {
        let server = Server::start(Frames, config_on(backend));
        let mut idle = server.connect();
        idle.write_all(&frame(b"first")).unwrap();
        assert_eq!(read_n(&mut idle, 9), frame(b"first"), "{backend}");
        let mut partial = server.connect();
        partial.write_all(&frame(b"hello")[..7]).unwrap(); // 4 + "hel"
        let mut busy = server.connect();
        busy.write_all(&frame(b"slow")).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // all of it read
        let t = Instant::now();
        server.handle.stop();
        let (took, got) = until_eof(&mut idle);
        assert!(
            got.is_empty() && took < PROMPT,
            "{backend}: idle: {got:?} after {took:?}"
        );
        // The rest of the frame, well after the stop began: answered whole.
        std::thread::sleep(Duration::from_millis(150));
        partial.write_all(&frame(b"hello")[7..]).unwrap();
        let (_, got) = until_eof(&mut partial);
        assert_eq!(got, frame(b"hello"), "{backend}: partial frame");
        let (_, got) = until_eof(&mut busy);
        assert_eq!(got, frame(b"slow"), "{backend}: busy");
        drop((idle, partial, busy));
        server.stop();
        let stopped = t.elapsed();
        eprintln!("{backend}: idle closed in {took:?}; stopped after {stopped:?}");
        assert!(stopped < Duration::from_secs(2), "{backend}: {stopped:?}");
    }
}

const HEADER: &[u8] = b"PROXY TCP4 127.0.0.77 127.0.0.1 4000 80\r\n";

#[test]
fn behind_the_proxy_protocol_a_header_under_way_at_the_stop_is_served_then_closed() {
    for backend in [Backend::Mio, Backend::Uring] {
        let config = Config {
            proxy_protocol: true,
            ..config_on(backend)
        };
        let server = Server::start(Frames, config);
        let mut idle = server.connect();
        idle.write_all(&[HEADER, &frame(b"first")].concat())
            .unwrap();
        assert_eq!(read_n(&mut idle, 9), frame(b"first"), "{backend}");
        // Half a header, then the rest with a request, during the stop.
        let mut with_request = server.connect();
        with_request.write_all(&HEADER[..10]).unwrap();
        // Half a header, then only the rest of it.
        let mut header_only = server.connect();
        header_only.write_all(&HEADER[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        server.handle.stop();
        let (took, got) = until_eof(&mut idle);
        assert!(
            got.is_empty() && took < PROMPT,
            "{backend}: idle: {got:?} after {took:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        with_request
            .write_all(&[&HEADER[10..], &frame(b"hello")].concat())
            .unwrap();
        let (_, got) = until_eof(&mut with_request);
        assert_eq!(
            got,
            frame(b"hello"),
            "{backend}: its request answered, then EOF"
        );
        header_only.write_all(&HEADER[10..]).unwrap();
        let (took, got) = until_eof(&mut header_only);
        assert!(
            got.is_empty() && took < PROMPT,
            "{backend}: header only: {got:?} after {took:?}"
        );
        drop((idle, with_request, header_only));
        server.stop();
        let stopped = t.elapsed();
        eprintln!("{backend}: stopped after {stopped:?}");
        assert!(stopped < Duration::from_secs(2), "{backend}: {stopped:?}");
    }
}

#[test]
fn behind_the_proxy_protocol_a_connection_accepted_during_the_stop_is_answered_then_closed() {
    for backend in [Backend::Mio, Backend::Uring] {
        let config = Config {
            proxy_protocol: true,
            ..config_on(backend)
        };
        let server = Server::start(Frames, config);
        let mut blocker = server.connect();
        blocker
            .write_all(&[HEADER, &frame(b"block")].concat())
            .unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the loop is held now
        // Queued by the kernel, accepted only once the stop has begun.
        let mut late = server.connect();
        late.write_all(&[HEADER, &frame(b"late")].concat()).unwrap();
        let t = Instant::now();
        server.handle.stop();
        let (_, got) = until_eof(&mut blocker);
        assert_eq!(got, frame(b"block"), "{backend}");
        let (_, got) = until_eof(&mut late);
        let took = t.elapsed();
        assert_eq!(
            got,
            frame(b"late"),
            "{backend}: its request answered, then EOF"
        );
        assert!(
            took < SLOW + PROMPT,
            "{backend}: EOF {took:?} after the stop"
        );
        assert_eq!(server.metrics.snapshot().proxy_headers, 2, "{backend}");
        drop((blocker, late));
        server.stop();
        let stopped = t.elapsed();
        eprintln!("{backend}: stopped after {stopped:?}");
        assert!(stopped < Duration::from_secs(2), "{backend}: {stopped:?}");
    }
}
