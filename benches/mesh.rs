//! Messages between two loops of a `Server`, per second: how fast the
//! mesh (`src/reactor/mesh.rs`, one bounded ring per pair of loops) moves
//! them.
//!
//! ```text
//! cargo bench --bench mesh                  # 3 s per kind
//! cargo bench --bench mesh -- --seconds 1
//! ```
//!
//! Loop 0's handler sends, as fast as credit allows, to a connection that
//! lives on loop 1: at most `WINDOW` messages in flight, and the receiving
//! side hands back credit for every `CREDIT` it took (a notification
//! back), so the sender never waits on a timer and never overfills the
//! queue. Three kinds:
//! - `notify`: `Ctx::notify_conn(id, tag)`, each a call of
//!   `on_conn_notify` on loop 1, which counts them (no socket involved);
//! - `bytes, one connection`: `Ctx::send_to(id, 16 bytes)`, written by loop 1
//!   to its client socket, whose reader here counts bytes / 16 and sends a
//!   byte back per `CREDIT` messages; sends to the same connection in one
//!   iteration share a record, so loop 1 writes a batch with one `send`;
//! - `bytes, two connections`: the same, alternating between two
//!   connections on loop 1, so that no two messages in a row share a
//!   record: one record and one `send` per message.
//!
//! Reported: messages/s, records per message, wake-ups sent by loop 0 per
//! message, sends refused (queue full) per message.

use ioplex::{Action, Config, ConnId, Ctx, Distribution, Handler, Peer, Server, ServerMetrics};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages in flight at most, and the credit handed back at once.
const WINDOW: u64 = 6 * 1024;
const CREDIT: u64 = 1024;
const MSG: [u8; 16] = *b"0123456789abcde\n";
/// Notification tags.
const START: u64 = 0;
const ONE: u64 = 1;
const MORE: u64 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Notify,
    Bytes { conns: usize },
}

/// The first client's connection (loop 0) sends; the connections on loop
/// 1 receive.
struct Flood {
    kind: Kind,
    ids: Arc<Mutex<Vec<ConnId>>>,
    targets: Vec<ConnId>,
    in_flight: u64,
    /// Loop 1: notifications taken; published with a plain store per tick.
    taken: u64,
    count: Arc<AtomicU64>,
    next: usize,
}

impl Flood {
    /// Sends until the window is full (or the queue refuses).
    fn fill(&mut self, ctx: &mut Ctx<'_>) {
        while self.in_flight < WINDOW {
            let to = self.targets[self.next % self.targets.len()];
            let ok = match self.kind {
                Kind::Notify => ctx.notify_conn(to, ONE),
                Kind::Bytes { .. } => ctx.send_to(to, &MSG),
            };
            if !ok {
                return; // full: credit comes back as loop 1 takes them
            }
            self.next += 1;
            self.in_flight += 1;
        }
    }

    /// Loop 1: `CREDIT` more taken; tell the sender.
    fn credit(&mut self, ctx: &mut Ctx<'_>) {
        let first = self.ids.lock().unwrap()[0];
        assert!(ctx.notify_conn(first, MORE));
    }
}

impl Handler for Flood {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        let mut ids = self.ids.lock().unwrap();
        ids.push(ctx.id());
        let on_one = ids.iter().filter(|id| id.loop_index() == 1).count();
        if on_one == receivers(self.kind) && ctx.loop_index() == 1 {
            // The last receiver arrived: tell loop 0's first client to begin.
            let first = ids[0];
            drop(ids);
            ctx.notify_conn(first, START);
        }
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        for _ in data {
            self.credit(ctx); // a reader took CREDIT messages
        }
        Action::Continue
    }
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, _: &mut (), tag: u64) -> Action {
        match tag {
            START => {
                let ids = self.ids.lock().unwrap();
                self.targets = ids
                    .iter()
                    .filter(|i| i.loop_index() == 1)
                    .copied()
                    .collect();
                drop(ids);
                self.fill(ctx);
            }
            MORE => {
                self.in_flight -= CREDIT;
                self.fill(ctx);
            }
            _ => {
                self.taken += 1;
                if self.taken % CREDIT == 0 {
                    self.credit(ctx);
                }
            }
        }
        Action::Continue
    }
    fn on_tick(&mut self, _: &mut Ctx<'_>, _: &ioplex::Tick) {
        if self.taken > 0 {
            self.count.store(self.taken, Relaxed);
        }
    }
}

struct Result {
    msgs_s: f64,
    per_msg: [f64; 3],
}

fn run(kind: Kind, seconds: f64) -> std::io::Result<Result> {
    let mut server = Server::new(Config::default(), 2)?;
    server.distribution(Distribution::RoundRobin); // 0, 1, 0, 1 … by arrival
    let addr = server.listen("127.0.0.1:0")?;
    let (handle, metrics) = (server.handle(), server.metrics());
    let (ids, count) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicU64::new(0)),
    );
    let (i, c) = (ids.clone(), count.clone());
    let join = std::thread::spawn(move || {
        server.run(|_| Flood {
            kind,
            ids: i.clone(),
            targets: Vec::new(),
            in_flight: 0,
            taken: 0,
            count: c.clone(),
            next: 0,
        })
    });
    // Round robin, one at a time: clients 0, 2, … on loop 0, 1, 3, … on loop 1.
    let mut clients = Vec::new();
    for k in 0..2 * receivers(kind) {
        clients.push(TcpStream::connect(addr)?);
        wait_accepted(&metrics, k + 1);
    }
    let readers: Vec<_> = clients
        .iter()
        .skip(1)
        .step_by(2)
        .map(|c| {
            let mut c = c.try_clone().expect("clone");
            let bytes = Arc::new(AtomicU64::new(0));
            let b = bytes.clone();
            std::thread::spawn(move || {
                let (mut buf, mut got, mut credited) = (vec![0; 1 << 16], 0u64, 0u64);
                while let Ok(n @ 1..) = c.read(&mut buf) {
                    got += n as u64;
                    b.store(got, Relaxed);
                    while got / 16 >= credited + CREDIT {
                        credited += CREDIT;
                        if c.write_all(b"+").is_err() {
                            return;
                        }
                    }
                }
            });
            bytes
        })
        .collect();
    let delivered = || match kind {
        Kind::Notify => count.load(Relaxed),
        Kind::Bytes { .. } => readers.iter().map(|b| b.load(Relaxed)).sum::<u64>() / 16,
    };
    std::thread::sleep(Duration::from_millis(300)); // warm
    let (n0, m0, t0) = (delivered(), metrics.per_loop(), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (n1, m1, t1) = (delivered(), metrics.per_loop(), Instant::now());
    handle.stop();
    drop(clients);
    join.join().expect("server thread")?;
    let msgs = (n1 - n0).max(1) as f64;
    let s0 = m1[0].since(&m0[0]);
    Ok(Result {
        msgs_s: msgs / t1.duration_since(t0).as_secs_f64(),
        per_msg: [
            s0.mesh_sent as f64 / msgs,
            s0.mesh_wakes as f64 / msgs,
            s0.mesh_full as f64 / msgs,
        ],
    })
}

fn receivers(kind: Kind) -> usize {
    match kind {
        Kind::Notify => 1,
        Kind::Bytes { conns } => conns,
    }
}

fn wait_accepted(m: &ServerMetrics, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.total().accepted < n as u64 {
        assert!(Instant::now() < deadline, "the server did not accept");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3.0);
    println!("cross-loop messages between 2 loops ({seconds} s each):\n");
    println!("| kind | messages/s | records/msg | wake-ups/msg | refused (full)/msg |");
    println!("|---|---:|---:|---:|---:|");
    for (name, kind) in [
        ("notify", Kind::Notify),
        ("16-byte send_to, one connection", Kind::Bytes { conns: 1 }),
        ("16-byte send_to, two connections", Kind::Bytes { conns: 2 }),
    ] {
        match run(kind, seconds) {
            Ok(r) => println!(
                "| {name} | {:.0} | {:.3} | {:.4} | {:.3} |",
                r.msgs_s, r.per_msg[0], r.per_msg[1], r.per_msg[2]
            ),
            Err(e) => {
                eprintln!("mesh: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
}
