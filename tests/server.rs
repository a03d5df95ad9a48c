//! A `Server` of several loops: how connections spread over them, messages
//! between them (order, bounded queues, broadcast, notifications), one stop
//! for all (under a connect storm too), a panic in one loop, the metrics.

mod common;

use common::storm::{Greeter, storm};
use common::*;
use ioplex::{
    Action, Config, ConnId, Ctx, Distribution, Handle, Handler, Peer, Server, ServerMetrics,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections of every loop in the order they arrived: how a test names
/// a client on another loop (ids are opaque).
type Registry = Arc<Mutex<Vec<ConnId>>>;

/// Greets each client with `<its number> <its loop>\n`, then obeys lines:
/// `send K TEXT` (to client K, wherever it lives), `all TEXT` (broadcast),
/// `notify K TAG`, `tell TEXT` (to the other loops' handlers, which send
/// `loop N says TEXT` to their clients), `close K`, `flood K COUNT SIZE` (answers `sent OK FULL`),
/// `sleep MS`, `boom` (panics).
struct Hub {
    registry: Registry,
}

impl Hub {
    fn of(&self, k: &str) -> Option<ConnId> {
        let k: usize = k.parse().ok()?;
        self.registry.lock().unwrap().get(k).copied()
    }

    fn obey(&mut self, ctx: &mut Ctx<'_>, line: &str) {
        let mut words = line.splitn(3, ' ');
        let (cmd, a, b) = (words.next(), words.next(), words.next());
        match (cmd, a.and_then(|k| self.of(k)), b) {
            (Some("send"), Some(to), Some(text)) => {
                assert!(ctx.send_parts_to(to, &[text.as_bytes(), b"\n"]));
            }
            (Some("notify"), Some(to), Some(tag)) => {
                assert!(ctx.notify_conn(to, tag.parse().unwrap()));
            }
            (Some("close"), Some(to), _) => ctx.close(to),
            (Some("flood"), Some(to), Some(spec)) => {
                let (count, size) = spec.split_once(' ').unwrap();
                let (count, size): (usize, usize) = (count.parse().unwrap(), size.parse().unwrap());
                let (mut ok, mut full) = (0, 0);
                for i in 0..count {
                    // Numbered lines, so the receiver can check order and loss.
                    let mut msg = format!("{i:08}").into_bytes();
                    msg.resize(size - 1, b'.');
                    msg.push(b'\n');
                    match ctx.send_to(to, &msg) {
                        true => ok += 1,
                        false => full += 1,
                    }
                }
                ctx.send(format!("sent {ok} {full}\n").as_bytes());
            }
            _ => match line.split_once(' ') {
                Some(("all", text)) => {
                    let me = ctx.id();
                    ctx.broadcast(format!("{text}\n").as_bytes(), Some(me));
                }
                Some(("tell", text)) => {
                    let told = ctx.tell_loops(text.as_bytes());
                    ctx.send(format!("told {told}\n").as_bytes());
                }
                Some(("sleep", ms)) => {
                    std::thread::sleep(Duration::from_millis(ms.parse().unwrap()))
                }
                _ if line == "boom" => panic!("boom on loop {}", ctx.loop_index()),
                _ => panic!("bad test command {line:?}"),
            },
        }
    }
}

impl Handler for Hub {
    type Conn = ();
    fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: Peer) {
        let mut reg = self.registry.lock().unwrap();
        reg.push(ctx.id());
        let greeting = format!("{} {}\n", reg.len() - 1, ctx.loop_index());
        drop(reg);
        ctx.send(greeting.as_bytes());
    }
    fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
        let Some(end) = data.iter().rposition(|&b| b == b'\n') else {
            return Action::Consumed(0);
        };
        for line in data[..end].split(|&b| b == b'\n') {
            self.obey(ctx, std::str::from_utf8(line).unwrap());
        }
        Action::Consumed(end + 1)
    }
    fn on_conn_notify(&mut self, ctx: &mut Ctx<'_>, _: &mut (), tag: u64) -> Action {
        ctx.send(format!("notified {tag} on loop {}\n", ctx.loop_index()).as_bytes());
        Action::Continue
    }
    fn on_loop_message(&mut self, ctx: &mut Ctx<'_>, from: usize, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let ids: Vec<ConnId> = ctx.connections().collect();
        for id in ids {
            assert!(ctx.send_to(id, format!("loop {from} says {text}\n").as_bytes()));
        }
    }
}

/// A server running on its own thread; stopped (bounded) on drop.
struct Running {
    addr: SocketAddr,
    handle: Handle,
    metrics: ServerMetrics,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    fn start<H: Handler>(
        threads: usize,
        d: Distribution,
        config: Config,
        make: impl Fn(usize) -> H + Send + Sync + 'static,
    ) -> Running {
        let mut server = Server::new(config, threads).expect("server");
        server.distribution(d);
        let addr = server.listen("127.0.0.1:0").expect("listen");
        let (handle, metrics) = (server.handle(), server.metrics());
        let join = std::thread::spawn(move || server.run(make));
        Running {
            addr,
            handle,
            metrics,
            join: Some(join),
        }
    }

    fn hub(threads: usize, d: Distribution) -> (Running, Registry) {
        let registry = Registry::default();
        let r = registry.clone();
        let make = move |_| Hub {
            registry: r.clone(),
        };
        (
            Running::start(threads, d, Config::default(), make),
            registry,
        )
    }

    /// Waits (bounded) for `run` to return after a stop, and gives its result.
    fn wait(&mut self) -> io::Result<()> {
        let join = self.join.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !join.is_finished() {
            assert!(Instant::now() < deadline, "Server::run did not return");
            std::thread::sleep(Duration::from_millis(5));
        }
        join.join().expect("the thread running the server panicked")
    }

    fn stop(mut self) -> io::Result<()> {
        self.handle.stop();
        self.wait()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.handle.stop();
            let _ = self.wait();
        }
    }
}

/// A client of the `Hub`: its number and loop, from the greeting.
struct Client {
    reader: BufReader<TcpStream>,
    number: usize,
    on_loop: usize,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let mut reader = BufReader::new(connect(addr));
        let greeting = line(&mut reader);
        let (n, l) = greeting.trim().split_once(' ').expect("greeting");
        Client {
            reader,
            number: n.parse().unwrap(),
            on_loop: l.parse().unwrap(),
        }
    }

    fn say(&mut self, text: &str) {
        self.reader
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .unwrap();
    }

    fn line(&mut self) -> String {
        line(&mut self.reader)
    }
}

fn line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).expect("read a line");
    assert!(s.ends_with('\n'), "connection closed mid-line: {s:?}");
    s.trim_end().to_owned()
}

/// Clients until one is on each of the two loops.
fn one_per_loop(addr: SocketAddr) -> (Client, Client, Vec<Client>) {
    let mut spare = Vec::new();
    let mut found: [Option<Client>; 2] = [None, None];
    while found.iter().any(Option::is_none) {
        assert!(spare.len() < 64, "64 clients and not one on each loop");
        let c = Client::connect(addr);
        let slot = &mut found[c.on_loop];
        match slot.is_none() {
            true => *slot = Some(c),
            false => spare.push(c),
        }
    }
    let [a, b] = found.map(Option::unwrap);
    (a, b, spare)
}

/// Opens `n` connections and says how many each loop accepted.
fn spread(threads: usize, d: Distribution, n: usize) -> Vec<u64> {
    let server = Running::start(threads, d, Config::default(), |_| Echo);
    let clients: Vec<TcpStream> = (0..n).map(|_| connect(server.addr)).collect();
    let m = server.metrics.clone();
    assert!(wait_for(Duration::from_secs(20), || m.total().accepted == n as u64));
    let per_loop = m.per_loop().iter().map(|s| s.accepted).collect();
    drop(clients);
    server.stop().unwrap();
    per_loop
}

#[test]
fn each_of_two_loops_holds_half_of_1000_connections_with_each_distribution() {
    for (d, band) in [
        (Distribution::LeastLoaded, 45.0..=55.0), // the default: the target band
        (Distribution::RoundRobin, 45.0..=55.0),
        // A hash of the ports: ±1.6 % is one standard deviation; 6 of them here.
        (Distribution::ReusePort, 40.0..=60.0),
    ] {
        let per_loop = spread(2, d, 1000);
        let share: Vec<f64> = per_loop.iter().map(|&n| n as f64 / 10.0).collect();
        eprintln!("{d:?}: 1,000 connections over 2 loops: {per_loop:?} ({share:?} %)");
        assert!(
            share.iter().all(|s| band.contains(s)),
            "{d:?} spread 1,000 connections as {per_loop:?}"
        );
    }
    assert_eq!(Distribution::default(), Distribution::LeastLoaded);
}

#[test]
fn a_message_from_a_client_on_one_loop_reaches_a_client_on_the_other_in_order() {
    for d in [Distribution::LeastLoaded, Distribution::ReusePort] {
        let (server, _reg) = Running::hub(2, d);
        let (mut a, mut b, _spare) = one_per_loop(server.addr);
        for i in 0..200 {
            a.say(&format!("send {} m{i}", b.number));
        }
        for i in 0..200 {
            assert_eq!(b.line(), format!("m{i}"), "{d:?}: out of order or lost");
        }
        b.say(&format!("send {} back", a.number));
        assert_eq!(a.line(), "back");
        let m = server.metrics.per_loop();
        assert!(m[a.on_loop].mesh_sent >= 1 && m[b.on_loop].mesh_received >= 1);
        assert_eq!(m[a.on_loop].mesh_full, 0);
        server.stop().unwrap();
    }
}

#[test]
fn messages_cross_loops_on_every_backend() {
    for backend in backends() {
        let registry = Registry::default();
        let r = registry.clone();
        let make = move |_| Hub {
            registry: r.clone(),
        };
        let server = Running::start(2, Distribution::LeastLoaded, config_on(backend), make);
        let (mut a, mut b, _spare) = one_per_loop(server.addr);
        for i in 0..50 {
            a.say(&format!("send {} m{i}", b.number));
            b.say(&format!("send {} r{i}", a.number));
        }
        for i in 0..50 {
            assert_eq!(b.line(), format!("m{i}"), "on {backend}");
            assert_eq!(a.line(), format!("r{i}"), "on {backend}");
        }
        drop((a, b)); // else each lingers (Config::linger) for our EOF
        server.stop().unwrap();
    }
}

#[test]
fn a_broadcast_reaches_the_clients_of_every_loop() {
    let (server, _reg) = Running::hub(2, Distribution::RoundRobin);
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(server.addr)).collect();
    let loops: Vec<usize> = clients.iter().map(|c| c.on_loop).collect();
    assert!(loops.contains(&0) && loops.contains(&1), "{loops:?}");
    clients[0].say("all hello everyone");
    for c in &mut clients[1..] {
        assert_eq!(c.line(), "hello everyone", "client on loop {}", c.on_loop);
    }
    server.stop().unwrap();
}

#[test]
fn tell_loops_reaches_the_handler_of_every_other_loop_in_order() {
    let (server, _reg) = Running::hub(2, Distribution::LeastLoaded);
    let (mut a, mut b, _spare) = one_per_loop(server.addr);
    for i in 0..50 {
        a.say(&format!("tell m{i}"));
        assert_eq!(a.line(), "told 1");
    }
    for i in 0..50 {
        assert_eq!(b.line(), format!("loop {} says m{i}", a.on_loop));
    }
    let m = server.metrics.per_loop();
    assert!(
        m[b.on_loop].mesh_received >= 50,
        "{:?}",
        m[b.on_loop].mesh_received
    );
    server.stop().unwrap();
}

#[test]
fn notify_conn_reaches_a_connection_on_another_loop_from_a_handler_and_a_thread() {
    let (server, registry) = Running::hub(2, Distribution::LeastLoaded);
    let (mut a, mut b, _spare) = one_per_loop(server.addr);
    a.say(&format!("notify {} 7", b.number));
    assert_eq!(b.line(), format!("notified 7 on loop {}", b.on_loop));
    // From another thread, through the server's handle: routed by the id.
    let id_b = registry.lock().unwrap()[b.number];
    let h = server.handle.clone();
    std::thread::spawn(move || h.notify_conn(id_b, 9))
        .join()
        .unwrap();
    assert_eq!(b.line(), format!("notified 9 on loop {}", b.on_loop));
    // A close from the other loop: b gets EOF.
    a.say(&format!("close {}", b.number));
    let mut rest = Vec::new();
    b.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    server.stop().unwrap();
}

#[test]
fn a_full_queue_is_an_error_to_the_sender_and_nothing_it_accepted_is_lost() {
    let registry = Registry::default();
    let r = registry.clone();
    let config = Config {
        loop_queue: 16 << 10,
        ..Config::default()
    };
    let server = Running::start(2, Distribution::LeastLoaded, config, move |_| Hub {
        registry: r.clone(),
    });
    let (mut a, mut b, _spare) = one_per_loop(server.addr);
    // b's loop sleeps; meanwhile a floods it: 16 KiB of queue holds ~200 of them.
    b.say("sleep 400");
    std::thread::sleep(Duration::from_millis(50));
    a.say(&format!("flood {} 2000 64", b.number));
    let answer = a.line();
    let (ok, full) = answer
        .strip_prefix("sent ")
        .and_then(|r| r.split_once(' '))
        .map(|(o, f)| (o.parse::<usize>().unwrap(), f.parse::<usize>().unwrap()))
        .unwrap();
    eprintln!("flood of 2,000 64-byte messages into a 16 KiB queue: {ok} queued, {full} refused");
    assert!(full > 0 && ok > 0, "{answer}");
    for i in 0..ok {
        let got = b.line();
        assert!(got.starts_with(&format!("{i:08}")), "message {i}: {got:?}");
    }
    let m = server.metrics.per_loop();
    assert_eq!(m[a.on_loop].mesh_full as usize, full);
    // Nothing more was delivered than was accepted.
    b.say(&format!("send {} done", b.number));
    assert_eq!(b.line(), "done");
    server.stop().unwrap();
}

#[test]
fn one_stop_ends_every_loop_after_each_has_flushed_and_closed() {
    let (server, _reg) = Running::hub(2, Distribution::LeastLoaded);
    let (mut a, mut b, mut spare) = one_per_loop(server.addr);
    let m = server.metrics.clone();
    server.stop().unwrap();
    for c in [&mut a, &mut b].into_iter().chain(spare.iter_mut()) {
        let mut rest = Vec::new();
        c.reader.read_to_end(&mut rest).unwrap(); // EOF, not a reset
    }
    let t = m.total();
    assert_eq!(t.accepted, t.closed, "{t:?}");
    assert!(m.per_loop().iter().all(|s| s.accepted > 0));
}

/// A storm of connects while the server stops: (made, answered).
fn storm_then_stop(threads: usize, d: Distribution) -> (usize, usize) {
    let server = Running::start(threads, d, Config::default(), |_| Greeter);
    let s = storm(server.addr, 16, b"hi\n", move || server.stop().unwrap());
    assert!(
        s.lost.is_empty(),
        "{d:?}: {} lost, e.g. {:?}",
        s.lost.len(),
        s.lost[0]
    );
    (s.made, s.answered)
}

#[test]
fn stopping_under_a_connect_storm_loses_no_connection_the_kernel_accepted() {
    for d in [Distribution::LeastLoaded, Distribution::ReusePort] {
        let (made, answered) = storm_then_stop(2, d);
        eprintln!("{d:?}: stop under a connect storm: {made} connects made, {answered} answered");
        assert_eq!(made, answered, "{d:?}");
    }
}

#[test]
fn a_panic_in_one_loop_stops_the_others_gracefully_and_run_names_it() {
    let (mut server, _reg) = Running::hub(2, Distribution::LeastLoaded);
    let (mut a, mut b, _spare) = one_per_loop(server.addr);
    // `a` is mid-conversation on the loop that goes on.
    a.say(&format!("send {} before", a.number));
    assert_eq!(a.line(), "before");
    b.say("boom");
    let err = server.wait().expect_err("run hid the panic");
    let msg = err.to_string();
    eprintln!("Server::run returned: {msg}");
    assert!(
        msg.contains(&format!(
            "loop {} panicked: boom on loop {}",
            b.on_loop, b.on_loop
        )),
        "{msg}"
    );
    // The other loop stopped gracefully: EOF for its client, not a reset.
    let mut rest = Vec::new();
    a.reader.read_to_end(&mut rest).expect("a clean close");
    // The panicking loop's connections were dropped (EOF or reset).
    let _ = b.reader.read_to_end(&mut rest);
}

#[test]
fn metrics_are_kept_per_loop_and_summed() {
    let (server, _reg) = Running::hub(2, Distribution::RoundRobin);
    let clients: Vec<Client> = (0..10).map(|_| Client::connect(server.addr)).collect();
    let m = server.metrics.clone();
    let per_loop = m.per_loop();
    assert_eq!(per_loop.len(), 2);
    assert_eq!(
        per_loop.iter().map(|s| s.accepted).collect::<Vec<_>>(),
        [5, 5]
    );
    let total = m.total();
    assert_eq!(total.accepted, 10);
    assert_eq!(total.writes, per_loop[0].writes + per_loop[1].writes);
    drop(clients);
    server.stop().unwrap();
}

#[test]
fn a_server_of_one_loop_is_a_reactor() {
    let server = Running::start(1, Distribution::ReusePort, Config::default(), |_| Echo);
    let mut c = connect(server.addr);
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    let m = server.metrics.total();
    assert_eq!((m.mesh_sent, m.adopted), (0, 0));
    drop(c);
    server.stop().unwrap();
    let err = Server::new(Config::default(), 0).err().expect("0 loops");
    assert_eq!(err.to_string(), "a server runs 1 to 256 loops, not 0");
}

#[test]
fn the_listeners_of_a_server_share_one_distribution() {
    let mut server = Server::new(Config::default(), 2).unwrap();
    server.distribution(Distribution::ReusePort);
    let first = server.listen("127.0.0.1:0").unwrap();
    let second = server.listen("127.0.0.1:0").unwrap(); // the same: fine
    assert_ne!(first, second);
    server.distribution(Distribution::LeastLoaded);
    let err = server.listen("127.0.0.1:0").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().starts_with("cannot listen on 127.0.0.1:0: this server's listeners hand out connections by ReusePort"),
        "{err}"
    );
}
