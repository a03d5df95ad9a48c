//! [`Server`]: one loop per core. N [`Reactor`]s on N threads, each with its
//! own backend, handler, slab, timers and counters, serving the same
//! listeners, talking through bounded queues (`reactor/mesh.rs`), stopped
//! together.

use crate::config::Config;
use crate::handler::Handler;
use crate::metrics::{Metrics, Snapshot};
use crate::reactor::mesh::{Group, Pick};
use crate::reactor::{Handle, Reactor, bind_listener, context, first_addr};
use crate::sys;
use std::any::Any;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// How a [`Server`]'s connections reach its loops.
///
/// Measured with 1,000 connections over 2 loops (`tests/server.rs`):
/// the acceptor's rules split them 500/500; `SO_REUSEPORT`, which hashes
/// each connection's addresses and ports, 490/510 (a fair coin over 1,000
/// has a spread of ±1.6 %; over 50, ±7 %), and it knows nothing of how
/// long connections stay or how busy a loop is. Under churn the acceptor
/// cost no more in the same run (`compare`, workload 5: 25.0 µs of server
/// CPU per connection against 26.8 µs with `ReusePort`). Its limit: one
/// loop accepts for all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distribution {
    /// One listener, on one loop, that accepts and hands each new
    /// connection to the loop holding the fewest (counting those handed to
    /// it and not yet taken). The default: an even split whatever the
    /// clients' addresses, and one accept queue to drain at a stop.
    #[default]
    LeastLoaded,
    /// One listener, on one loop, handing new connections to each loop in turn.
    RoundRobin,
    /// A listener per loop in one `SO_REUSEPORT` group: the kernel picks
    /// the loop by a hash of the connection's addresses, and no loop hands
    /// another anything (nginx's `reuseport`).
    ReusePort,
}

/// N event loops on N threads serving the same listeners: one loop per core.
///
/// Each loop is a [`Reactor`] with its own backend (`Config::backend`),
/// handler value (made on its thread by the factory given to
/// [`run`](Server::run), with the loop's index), slab, timers, read buffer
/// and [`Metrics`]: nothing on the path of a message is shared. Every
/// [`Config`] limit holds per loop (`max_connections` of 10,000 on 4 loops
/// is 40,000 for the server).
///
/// - **Connections** reach the loops by [`Distribution`].
/// - **Between loops**: [`Ctx::send_to`](crate::Ctx::send_to),
///   [`Ctx::notify_conn`](crate::Ctx::notify_conn), [`Ctx::close`](crate::Ctx::close)
///   and [`Handle::notify_conn`] reach a connection on any loop (its
///   [`ConnId::loop_index`](crate::ConnId::loop_index)), and
///   [`Ctx::broadcast`](crate::Ctx::broadcast) every loop's, through a
///   bounded queue per pair of loops ([`Config::loop_queue`]), in order per
///   sender; a full queue is `false` to the sender, never a silent drop.
/// - **One stop for all**: [`Handle::stop`] (or `Ctx::stop` on any loop)
///   stops every loop gracefully; `run` returns once all have flushed and
///   closed, and no connection the kernel accepted is lost (see
///   [`Config::accept_drain`]).
/// - **A panic** in one loop's handler ends that loop (its connections are
///   dropped); the others stop gracefully, and `run` returns an error
///   naming the loop and the panic.
///
/// ```no_run
/// use ioplex::{Action, Config, Ctx, Handler, Server};
///
/// struct Echo;
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_connect(&mut self, _: &mut Ctx<'_>, _: ioplex::Peer) {}
///     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
///         ctx.send(data);
///         Action::Continue
///     }
/// }
///
/// let mut server = Server::new(Config::default(), 4)?;
/// let addr = server.listen("127.0.0.1:7000")?;
/// let (handle, metrics) = (server.handle(), server.metrics());
/// println!("echo on {addr}, 4 loops");
/// server.run(|_loop_index| Echo)?; // until handle.stop()
/// println!("accepted per loop: {:?}", metrics.per_loop().iter().map(|m| m.accepted).collect::<Vec<_>>());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    loops: Vec<Reactor>,
    group: Option<Arc<Group>>,
    distribution: Distribution,
    /// The distribution of the listeners so far.
    listening: Option<Distribution>,
    listeners: usize,
    pin: bool,
}

impl Server {
    /// `threads` loops (1 to 256), each on `config.backend`, with nothing
    /// registered yet. With 1 the server is one [`Reactor`], at its cost.
    pub fn new(config: Config, threads: usize) -> io::Result<Server> {
        if !(1..=256).contains(&threads) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a server runs 1 to 256 loops, not {threads}"),
            ));
        }
        let queue = config.loop_queue;
        let mut loops = (0..threads)
            .map(|i| Reactor::numbered(config.clone(), i as u8))
            .collect::<io::Result<Vec<Reactor>>>()?;
        let group = (threads > 1).then(|| {
            let members = loops.iter().map(Reactor::member).collect();
            Arc::new(Group::new(members, queue))
        });
        if let Some(g) = &group {
            for (i, r) in loops.iter_mut().enumerate() {
                r.join_group(g.clone(), i);
            }
        }
        Ok(Server {
            loops,
            group,
            distribution: Distribution::default(),
            listening: None,
            listeners: 0,
            pin: false,
        })
    }

    /// How the listeners hand out connections; set it before the first
    /// [`listen`](Server::listen): every listener of a server shares it.
    pub fn distribution(&mut self, d: Distribution) -> &mut Server {
        self.distribution = d;
        self
    }

    /// Pins loop `i` to the `i`-th CPU this process may run on (wrapping
    /// around): no migration between cores, and each loop's memory stays
    /// warm in one core's caches. Off by default. (A server of one loop
    /// runs on the thread that calls [`run`](Server::run): that thread is pinned.)
    pub fn pin(&mut self, on: bool) -> &mut Server {
        self.pin = on;
        self
    }

    /// How many loops run.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }

    /// Binds `addr` for every loop, by the [`Distribution`] in force, and
    /// returns the address (port 0 picks one for all). An error names the
    /// address, as [`Reactor::listen`]'s does.
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let n = self.loops.len();
        if n == 1 {
            return self.loops[0].listen(addr);
        }
        let addr = first_addr(addr)?;
        let what = || format!("cannot listen on {addr}");
        match self.listening {
            Some(d) if d != self.distribution => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: this server's listeners hand out connections by {d:?}; all share one distribution",
                        what()
                    ),
                ));
            }
            _ => self.listening = Some(self.distribution),
        }
        let bound = match self.distribution {
            Distribution::ReusePort => {
                let mut bound = addr;
                for r in &mut self.loops {
                    let sock = bind_listener(bound, true).map_err(|e| context(e, &what()))?;
                    bound = r.add_listener(sock).map_err(|e| context(e, &what()))?;
                }
                bound
            }
            d => {
                // Listeners take turns being the acceptor: loop 0, 1, …
                let r = &mut self.loops[self.listeners % n];
                r.set_pick(match d {
                    Distribution::RoundRobin => Pick::RoundRobin,
                    _ => Pick::LeastLoaded,
                });
                let sock = bind_listener(addr, false).map_err(|e| context(e, &what()))?;
                r.add_listener(sock).map_err(|e| context(e, &what()))?
            }
        };
        self.listeners += 1;
        Ok(bound)
    }

    /// Serves a Unix domain socket at `path`, as
    /// [`Reactor::listen_unix`] does; its connections are handed out as a
    /// TCP listener's would be (by the least-loaded loop under
    /// `ReusePort` too: one socket cannot be one per loop).
    pub fn listen_unix(&mut self, path: impl AsRef<std::path::Path>) -> io::Result<()> {
        let n = self.loops.len();
        let r = self.acceptor();
        r.listen_unix(path)?;
        self.listeners += usize::from(n > 1);
        Ok(())
    }

    /// Serves the listeners inherited by the systemd socket activation
    /// protocol, as [`Reactor::listen_inherited`] does (each handed out by
    /// an acceptor loop). Returns how many.
    pub fn listen_inherited(&mut self) -> io::Result<usize> {
        let n = self.loops.len();
        let adopted = self.acceptor().listen_inherited()?;
        self.listeners += usize::from(n > 1) * adopted;
        Ok(adopted)
    }

    /// SIGTERM and SIGINT stop every loop gracefully, a second SIGINT at
    /// once; SIGHUP calls [`Handler::on_signal`](crate::Handler::on_signal)
    /// on every loop. As [`Reactor::stop_on_signals`].
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        self.loops[0].stop_on_signals()
    }

    /// The loop whose turn it is to accept for a listener that is one
    /// socket (acceptor distributions, inherited and Unix listeners).
    fn acceptor(&mut self) -> &mut Reactor {
        let n = self.loops.len();
        let pick = match self.distribution {
            Distribution::RoundRobin => Pick::RoundRobin,
            _ => Pick::LeastLoaded,
        };
        let r = &mut self.loops[self.listeners % n];
        if n > 1 {
            r.set_pick(pick);
        }
        r
    }

    /// A handle to stop every loop (or notify one, or one's connection) from any thread.
    /// [`Handle::notify`] reaches loop 0.
    pub fn handle(&self) -> Handle {
        self.loops[0].handle()
    }

    /// Every loop's counters, readable from any thread: per loop and summed.
    pub fn metrics(&self) -> ServerMetrics {
        ServerMetrics {
            loops: self.loops.iter().map(Reactor::metrics).collect(),
        }
    }

    /// Runs every loop on its own thread (`ioplex-loop-N`), each with the
    /// handler `make(N)` returns there, until a graceful stop completes on
    /// all of them. If a loop fails or its handler panics, the others are
    /// stopped gracefully and the error names that loop
    /// (`loop 1 panicked: …`).
    ///
    /// One loop runs on the calling thread: a process with one thread
    /// makes its system calls through glibc's fast path (no
    /// cancellation-point bookkeeping: 141 fewer instructions per echoed
    /// message, measured with `cargo bench --bench instructions`).
    pub fn run<H, F>(self, make: F) -> io::Result<()>
    where
        H: Handler,
        F: Fn(usize) -> H + Sync,
    {
        let Server {
            loops, group, pin, ..
        } = self;
        let n = loops.len();
        let cpus = match pin {
            true => {
                sys::allowed_cpus().map_err(|e| context(e, "cannot read the CPUs to pin to"))?
            }
            false => Vec::new(),
        };
        let cpu = |i: usize| (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        if n == 1 {
            let reactor = loops.into_iter().next().expect("one loop");
            return match run_loop(0, reactor, &make, None, cpu(0)) {
                Ok(r) => r,
                Err(msg) => Err(io::Error::other(format!("loop 0 panicked: {msg}"))),
            };
        }
        let make = &make;
        let mut not_started = None;
        let outcomes: Vec<Outcome> = std::thread::scope(|s| {
            let mut threads = Vec::with_capacity(n);
            for (i, reactor) in loops.into_iter().enumerate() {
                if not_started.is_some() {
                    if let Some(g) = &group {
                        g.exited(i); // never started: the others do not wait for it
                    }
                    continue;
                }
                let (mine, cpu) = (group.clone(), cpu(i));
                let spawned = std::thread::Builder::new()
                    .name(format!("ioplex-loop-{i}"))
                    .spawn_scoped(s, move || run_loop(i, reactor, make, mine, cpu));
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        if let Some(g) = &group {
                            g.exited(i);
                            g.stop_all();
                        }
                        not_started = Some(io::Error::new(
                            e.kind(),
                            format!("cannot start loop {i}: {e}"),
                        ));
                    }
                }
            }
            threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|p| Err(panic_message(&*p))))
                .collect()
        });
        if let Some(e) = not_started {
            return Err(e);
        }
        let failed = outcomes
            .into_iter()
            .enumerate()
            .find(|(_, o)| !matches!(o, Ok(Ok(()))));
        match failed {
            None | Some((_, Ok(Ok(())))) => Ok(()),
            Some((i, Ok(Err(e)))) => Err(io::Error::new(e.kind(), format!("loop {i}: {e}"))),
            Some((i, Err(msg))) => Err(io::Error::other(format!("loop {i} panicked: {msg}"))),
        }
    }
}

/// Loop `i` on the calling thread: pinned if asked, its handler made here,
/// run until it stops (or panics); then the other loops hear it is gone
/// (and, unless it ended well, are asked to stop).
fn run_loop<H: Handler>(
    i: usize,
    mut reactor: Reactor,
    make: &(impl Fn(usize) -> H + Sync),
    group: Option<Arc<Group>>,
    cpu: Option<usize>,
) -> Outcome {
    if let Some(cpu) = cpu {
        if let Err(e) = sys::pin_thread(cpu) {
            log::warn!("loop {i}: cannot pin to CPU {cpu}: {e}");
        }
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut handler = make(i);
        reactor.run(&mut handler)
    }));
    let outcome = outcome.map_err(|p| panic_message(&*p));
    if let Some(g) = &group {
        g.exited(i);
        if !matches!(outcome, Ok(Ok(()))) {
            g.stop_all(); // the others stop gracefully
        }
    }
    outcome
}

/// What one loop's thread ended with: `run`'s result, or its panic's message.
type Outcome = Result<io::Result<()>, String>;

fn panic_message(p: &(dyn Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(a panic with no message)".to_owned(),
    }
}

/// The counters of every loop of a [`Server`], from any thread.
///
/// ```
/// let server = ioplex::Server::new(ioplex::Config::default(), 2)?;
/// let m = server.metrics();
/// assert_eq!(m.per_loop().len(), 2);
/// assert_eq!(m.total().accepted, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerMetrics {
    loops: Vec<Arc<Metrics>>,
}

impl ServerMetrics {
    /// Each loop's counters now, by loop index.
    pub fn per_loop(&self) -> Vec<Snapshot> {
        self.loops.iter().map(|m| m.snapshot()).collect()
    }

    /// Every loop's counters summed.
    pub fn total(&self) -> Snapshot {
        self.loops
            .iter()
            .fold(Snapshot::default(), |sum, m| sum.plus(&m.snapshot()))
    }

    /// Loop `i`'s live counters.
    pub fn of_loop(&self, i: usize) -> Option<&Arc<Metrics>> {
        self.loops.get(i)
    }
}
