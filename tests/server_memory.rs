//! The hot path of a `Server` of two loops, measured on the loop threads
//! only: no allocation per message once warm, neither for a connection's
//! own echo nor for bytes or notifications sent to a connection on the
//! other loop; and, from the loops' counters, one read and one write per
//! message and at most one wake-up of the other loop.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::*;
use counting::ALLOCATIONS;
use ioplex::{Action, Config, ConnId, Ctx, Distribution, Handler, Peer, Server, Snapshot};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The first client's bytes go to the second client (on the other loop),
/// as bytes or, after `n`, as a notification; the others' are echoed.
struct Relay {
    ids: Arc<Mutex<Vec<ConnId>>>,
    /// (first, second), looked up once both are there.
    pair: Option<(ConnId, ConnId)>,
}

impl Handler for Relay {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        self.ids.lock().unwrap().push(ctx.id());
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        if self.pair.is_none() {
            let ids = self.ids.lock().unwrap();
            self.pair = (ids.len() >= 2).then(|| (ids[0], ids[1]));
        }
        match self.pair {
            Some((first, second)) if ctx.id() == first && data[0] == b'n' => {
                assert!(ctx.notify_conn(second, data.len() as u64));
            }
            Some((first, second)) if ctx.id() == first => assert!(ctx.send_to(second, data)),
            _ => assert!(ctx.send(data)),
        }
        Action::Continue
    }
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, _: &mut (), tag: u64) -> Action {
        ctx.send(&b"nnnnnnnnnnnnnnnnnnnnnnnn"[..tag as usize]);
        Action::Continue
    }
}

#[test]
fn messages_within_and_between_two_loops_allocate_nothing_once_warm() {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let mut server = Server::new(Config::default(), 2).unwrap();
    server.distribution(Distribution::LeastLoaded);
    let addr = server.listen("127.0.0.1:0").unwrap();
    let (handle, metrics) = (server.handle(), server.metrics());
    let join = std::thread::spawn(move || {
        server.run(|_| {
            counting::count_this_thread(true); // on the loop's own thread
            Relay {
                ids: ids.clone(),
                pair: None,
            }
        })
    });
    // One at a time: least-loaded puts the first on loop 0, the second on 1.
    let mut first = connect(addr);
    assert!(wait_for(Duration::from_secs(10), || metrics
        .total()
        .accepted
        == 1));
    let mut second = connect(addr);
    assert!(wait_for(Duration::from_secs(10), || metrics
        .total()
        .accepted
        == 2));
    let on_loop: Vec<u64> = metrics.per_loop().iter().map(|m| m.accepted).collect();
    assert_eq!(on_loop, [1, 1]);

    let relay = |first: &mut TcpStream, second: &mut TcpStream, i: usize| {
        let msg = format!("message {i:06}");
        first.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(second, msg.len()), msg.as_bytes());
    };
    let notify = |first: &mut TcpStream, second: &mut TcpStream| {
        first.write_all(b"nnnnnnnnnnnn").unwrap();
        assert_eq!(read_n(second, 12), b"nnnnnnnnnnnn");
    };
    let echo = |second: &mut TcpStream, i: usize| {
        let msg = format!("echo {i:06}");
        second.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(second, msg.len()), msg.as_bytes());
    };
    for i in 0..100 {
        relay(&mut first, &mut second, i);
        notify(&mut first, &mut second);
        echo(&mut second, i);
    }
    const N: usize = 2000;
    let (before, m0) = (ALLOCATIONS.load(Relaxed), metrics.per_loop());
    for i in 0..N {
        relay(&mut first, &mut second, i);
    }
    let (after_relay, m1) = (ALLOCATIONS.load(Relaxed), metrics.per_loop());
    for _ in 0..N {
        notify(&mut first, &mut second);
    }
    let after_notify = ALLOCATIONS.load(Relaxed);
    for i in 0..N {
        echo(&mut second, i);
    }
    let after_echo = ALLOCATIONS.load(Relaxed);
    let (relayed, notified, echoed) = (
        after_relay - before,
        after_notify - after_relay,
        after_echo - after_notify,
    );
    eprintln!(
        "allocations on the loop threads per {N} messages: {relayed} sent to the other loop, \
         {notified} notifications to it, {echoed} echoed"
    );
    assert_eq!((relayed, notified, echoed), (0, 0, 0));

    // From the counters, over the relayed messages: loop 0 read each once
    // and queued one record for loop 1, which wrote it once; loop 1 was
    // woken at most once per message, and nothing was refused.
    let d: Vec<Snapshot> = m1.iter().zip(&m0).map(|(a, b)| a.since(b)).collect();
    eprintln!(
        "per relayed message: loop 0 {} reads, {} records, {} wakes sent; loop 1 {} writes, {} records taken",
        d[0].reads as f64 / N as f64,
        d[0].mesh_sent as f64 / N as f64,
        d[0].mesh_wakes as f64 / N as f64,
        d[1].writes as f64 / N as f64,
        d[1].mesh_received as f64 / N as f64,
    );
    assert_eq!(
        (d[0].reads, d[0].mesh_sent, d[0].mesh_full),
        (N as u64, N as u64, 0)
    );
    assert_eq!((d[1].writes, d[1].mesh_received), (N as u64, N as u64));
    assert!(d[0].mesh_wakes <= N as u64);
    drop((first, second));
    handle.stop();
    join.join().unwrap().unwrap();
}
