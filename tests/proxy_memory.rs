//! A PROXY header costs no allocation: with a counting allocator that
//! counts only the loop thread, connections that each bring a v1 or v2
//! header (in one read with their first bytes) allocate no more than
//! connections without one.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::*;
use counting::ALLOCATIONS;
use ioplex::{Action, Backend, Config, Ctx, Handler, Peer, Reactor};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Echoes, and checks (without allocating) that the client is the one
/// the header named, when there is one.
struct Echo {
    want: Option<SocketAddr>,
}

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: Peer) {
        if let Some(want) = self.want {
            if peer.inet() != Some(want) || ctx.peer_addr(ctx.id()) != Some(want) {
                ctx.abort(ctx.id()); // the client sees no echo
            }
        }
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        ctx.send(data);
        Action::Continue
    }
}

const CLIENT: &str = "127.0.0.77:4242";

fn v1() -> Vec<u8> {
    b"PROXY TCP4 127.0.0.77 127.0.0.1 4242 443\r\n".to_vec()
}

fn v2() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend([127, 0, 0, 77, 127, 0, 0, 1]);
    h.extend(4242u16.to_be_bytes());
    h.extend(443u16.to_be_bytes());
    h
}

/// Allocations of the loop thread per connection, over `n` connections
/// after as many to warm up, each sending `header` and `PING` in one write.
/// With `cap`, the per-address cap counts the client (from the header).
fn per_connection(backend: Backend, header: &[u8], cap: Option<usize>, n: usize) -> f64 {
    let proxy_protocol = !header.is_empty();
    let config = Config {
        proxy_protocol,
        max_connections_per_ip: cap,
        ..config_on(backend)
    };
    let mut reactor = Reactor::new(config).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let (handle, metrics) = (reactor.handle(), reactor.metrics());
    let want = proxy_protocol.then(|| CLIENT.parse().unwrap());
    let join = std::thread::spawn(move || {
        counting::count_this_thread(true);
        reactor.run(&mut Echo { want }).unwrap();
        counting::count_this_thread(false);
    });
    let wire = [header, b"PING"].concat();
    let run = |count: usize| {
        for _ in 0..count {
            let mut c = connect(addr);
            c.write_all(&wire).unwrap();
            assert_eq!(read_n(&mut c, 4), b"PING", "{backend}");
            drop(c);
        }
        // Every one closed on the server too (its slot free for the next).
        let closed = metrics.snapshot().accepted;
        assert!(wait_for(IO_TIMEOUT, || metrics.snapshot().closed == closed));
    };
    run(n);
    let before = ALLOCATIONS.load(Relaxed);
    run(n);
    let allocations = ALLOCATIONS.load(Relaxed) - before;
    handle.stop();
    join.join().unwrap();
    if proxy_protocol {
        assert_eq!(metrics.snapshot().proxy_headers, 2 * n as u64);
    }
    allocations as f64 / n as f64
}

#[test]
fn a_v1_or_v2_header_allocates_nothing_beyond_what_a_plain_connection_does() {
    // The counter is global: one measurement at a time, in this one test.
    for backend in [
        Backend::Mio,
        Backend::Epoll(ioplex::Trigger::Edge),
        Backend::Uring,
    ] {
        let plain = per_connection(backend, b"", None, 200);
        let with_v1 = per_connection(backend, &v1(), None, 200);
        let with_v2 = per_connection(backend, &v2(), None, 200);
        let capped = per_connection(backend, &v2(), Some(8), 200);
        eprintln!(
            "{backend}: allocations per connection: plain {plain:.2}, v1 header {with_v1:.2}, \
             v2 header {with_v2:.2}, v2 header counted by the per-address cap {capped:.2}"
        );
        assert_eq!(with_v1, plain, "{backend}: a v1 header allocates");
        assert_eq!(with_v2, plain, "{backend}: a v2 header allocates");
        assert_eq!(
            capped, plain,
            "{backend}: counting the header's client allocates"
        );
    }
}
