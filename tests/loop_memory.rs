//! Memory facts, measured with a counting allocator that counts only the
//! loop thread's allocations: what an idle connection costs, that the
//! echo path allocates nothing per message once warm, and that closed
//! connections leave nothing behind.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::*;
use counting::{ALLOCATIONS, LIVE_BYTES};
use ioplex::{Action, Config, Ctx, Handler, Peer, Reactor};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The two tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Length-prefixed frames of up to 16 MiB, echoed whole.
struct Frames;
impl Handler for Frames {
    type Conn = ();
    fn on_connect(&mut self, _: &mut Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let mut codec = ioplex::LengthPrefixed::new(16 << 20);
        ioplex::codec::decode_all(&mut codec, data, |body| {
            ctx.send(body);
            Action::Continue
        })
        .unwrap_or(Action::Abort)
    }
}

type Running = (
    SocketAddr,
    ioplex::Handle,
    std::sync::Arc<ioplex::Metrics>,
    std::thread::JoinHandle<()>,
);

/// Runs an echo reactor whose thread's allocations are counted.
fn start(config: Config) -> Running {
    start_with(config, Echo)
}

/// Runs `handler` on a reactor whose thread's allocations are counted.
fn start_with<H: Handler + Send + 'static>(config: Config, mut handler: H) -> Running {
    let mut reactor = Reactor::new(config).unwrap();
    let addr = reactor.listen("127.0.0.1:0").unwrap();
    let (handle, metrics) = (reactor.handle(), reactor.metrics());
    let join = std::thread::spawn(move || {
        counting::count_this_thread(true);
        reactor.run(&mut handler).unwrap();
        counting::count_this_thread(false);
    });
    (addr, handle, metrics, join)
}

#[test]
fn an_idle_connection_costs_at_most_128_bytes_of_loop_memory() {
    idle_connection_cost(ioplex::Backend::Mio);
}

/// On io_uring each idle connection has a receive armed; the buffer ring
/// it will receive into is shared by all and mapped once (not counted here).
#[test]
fn an_idle_connection_costs_at_most_128_bytes_on_io_uring_too() {
    idle_connection_cost(ioplex::Backend::Uring);
}

fn idle_connection_cost(backend: ioplex::Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // With an idle timeout, so each connection's deadline is counted too.
    let config = Config {
        backend,
        idle_timeout: Some(Duration::from_secs(600)),
        ..Config::default()
    };
    let (addr, handle, metrics, join) = start(config);
    // One connection first: the loop's one-time buffers are warm.
    let _first = connect(addr);
    assert!(wait_for(Duration::from_secs(10), || metrics
        .snapshot()
        .accepted
        == 1));
    let base = LIVE_BYTES.load(Relaxed);
    const N: usize = 1000;
    let clients: Vec<TcpStream> = (0..N).map(|_| connect(addr)).collect();
    assert!(wait_for(Duration::from_secs(20), || metrics
        .snapshot()
        .accepted
        == N as u64 + 1));
    let per_conn = (LIVE_BYTES.load(Relaxed) - base) as f64 / N as f64;
    // Measured: live heap bytes the loop thread holds after accepting N
    // more idle connections, over N. Slab and heap capacities included
    // (they grow by doubling: 1,001 entries sit in room for 1,024).
    eprintln!("loop memory per idle connection on {backend}: {per_conn:.1} bytes");
    assert!(
        per_conn <= 128.0,
        "{per_conn:.1} bytes per idle connection on {backend}"
    );
    drop(clients);
    handle.stop();
    join.join().unwrap();
}

#[test]
fn the_echo_path_allocates_nothing_per_message_once_warm() {
    echo_allocations(ioplex::Backend::Mio);
}

/// On io_uring every reply is queued until its send completes: the queues
/// come from the loop's pool, so this holds there too.
#[test]
fn the_echo_path_allocates_nothing_per_message_on_io_uring_either() {
    echo_allocations(ioplex::Backend::Uring);
}

fn echo_allocations(backend: ioplex::Backend) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, handle, _metrics, join) = start(Config {
        backend,
        ..Config::default()
    });
    let mut c = connect(addr);
    let round_trip = |c: &mut TcpStream, i: usize| {
        let msg = format!("message {i:06}");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(c, msg.len()), msg.as_bytes());
    };
    for i in 0..100 {
        round_trip(&mut c, i);
    }
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..2000 {
        round_trip(&mut c, i);
    }
    let allocations = ALLOCATIONS.load(Relaxed) - before;
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in 2,000 echoes on {backend}"
    );
    drop(c);
    handle.stop();
    join.join().unwrap();
}

#[test]
fn declared_frames_cost_only_the_bytes_that_arrived() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, handle, metrics, join) = start_with(Config::default(), Frames);
    let mut first = connect(addr);
    first.write_all(&[0, 0, 0, 2, b'h', b'i']).unwrap();
    assert_eq!(read_n(&mut first, 2), b"hi");
    let base = LIVE_BYTES.load(Relaxed);
    // 500 clients each announce an 8 MiB frame and send one byte of it.
    const N: usize = 500;
    let mut clients: Vec<TcpStream> = (0..N).map(|_| connect(addr)).collect();
    for c in &mut clients {
        c.write_all(&[0, 0x80, 0, 0, b'x']).unwrap();
    }
    let want = (N * 5 + 6) as u64;
    assert!(wait_for(Duration::from_secs(20), || metrics
        .snapshot()
        .bytes_in
        == want));
    let per_conn = (LIVE_BYTES.load(Relaxed) - base) as f64 / N as f64;
    // Held: the connection's loop state plus its 5 received bytes in a
    // small tail buffer, never the 8 MiB announced (the bound for any
    // peer is Config::max_input, 1 MiB by default).
    eprintln!("per connection holding a declared 8 MiB frame: {per_conn:.1} bytes");
    assert!(per_conn <= 256.0, "{per_conn:.1} bytes per connection");
    drop(clients);
    handle.stop();
    join.join().unwrap();
}

#[test]
fn closed_connections_leave_no_loop_memory_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, handle, metrics, join) = start(Config::default());
    let cycle = |i: usize| {
        let mut c = connect(addr);
        let msg = format!("churn {i:06}");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(&mut c, msg.len()), msg.as_bytes());
    }; // the client closes first, as a churning client does
    for i in 0..50 {
        cycle(i);
    }
    assert!(wait_for(Duration::from_secs(10), || metrics
        .snapshot()
        .closed
        == 50));
    let base = LIVE_BYTES.load(Relaxed);
    const N: usize = 3000;
    for i in 0..N {
        cycle(i);
    }
    assert!(wait_for(Duration::from_secs(20), || metrics
        .snapshot()
        .closed
        == N as u64 + 50));
    // Measured well inside every close deadline (shutdown_timeout 5 s,
    // linger 2 s): a deadline armed per close would hold 16 bytes per
    // closed connection until it surfaced.
    let held = LIVE_BYTES.load(Relaxed) - base;
    eprintln!("loop memory after {N} closed connections: {held} bytes");
    assert!(
        held < 4096,
        "{held} bytes held after {N} closed connections"
    );
    handle.stop();
    join.join().unwrap();
}

/// On its first message sets a request timeout and cancels it, a million
/// times, while one long timer stays live; answers with the bytes the loop
/// thread held before and after.
struct TimeoutPerRequest;
impl Handler for TimeoutPerRequest {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        ctx.set_timer(Duration::from_secs(3600), 0); // the one that stays
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), _: &[u8]) -> Action {
        // Warm: the heap and the slab have room for two timers.
        let warm = ctx.set_timer(Duration::from_secs(30), 1);
        ctx.cancel_timer(warm);
        let before = LIVE_BYTES.load(Relaxed);
        for i in 0..1_000_000 {
            let t = ctx.set_timer(Duration::from_secs(30), i);
            assert!(ctx.cancel_timer(t));
        }
        let held = LIVE_BYTES.load(Relaxed) - before;
        ctx.send(format!("{held}\n").as_bytes());
        Action::Continue
    }
}

#[test]
fn a_million_set_and_cancelled_timers_hold_no_timer_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, handle, _metrics, join) = start_with(Config::default(), TimeoutPerRequest);
    let mut c = connect(addr);
    c.write_all(b"go").unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        line.extend(read_n(&mut c, 1));
    }
    let held: i64 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    // A cancelled timer used to stay in the heap until its 30 s came:
    // 1,000,000 entries, some 16 MB.
    eprintln!("timer memory after 1,000,000 set-and-cancelled timers: {held} bytes");
    assert!(held < 64 << 10, "{held} bytes held by cancelled timers");
    drop(c);
    handle.stop();
    join.join().unwrap();
}
