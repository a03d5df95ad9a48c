//! # ioplex
//!
//! An event-loop server framework on [`mio`] and [`slab`]: write a
//! [`Handler`], get a TCP/UDP server with buffering, backpressure, timers,
//! limits and graceful shutdown. The same loop runs on several backends
//! ([`Backend`]) so the trade-offs between select, poll and epoll can be
//! measured, not just read.
//!
//! The whole API:
//!
//! | item | what it is |
//! |---|---|
//! | [`Reactor`] | the loop: `new(Config)`, `listen`, `bind_udp`, `handle`, `metrics`, `run(&mut handler)` |
//! | [`Server`] | one loop per core: `new(Config, threads)`, `distribution` ([`Distribution`]), `pin`, `listen`, `handle` (stops all), `metrics` (per loop and summed), `run(\|loop_index\| handler)` |
//! | [`Handler`] | your server: `on_connect`, `on_data` → [`Action`], `on_eof`, `on_timer`, `on_drain`, `on_close`, … |
//! | [`DatagramHandler`] | a UDP-only server: `on_datagram`, with no connection callbacks to write |
//! | [`Ctx`] | what a handler may do: `send`, `send_to`, `broadcast`, `close`, `pause_reading`, `set_timer`, `stop`; in a [`Server`], `send_to`, `notify_conn`, `close` and `broadcast` reach every loop, `tell_loops` every other loop's handler |
//! | [`Action`], [`CloseReason`], [`Tick`] | what a handler answers; why a connection closed; one iteration's counts |
//! | [`Config`] | limits with defaults: connections, output watermarks, idle timeout, budgets |
//! | [`Handle`] | from another thread: `stop` the loop (a server's: every loop), `notify` it (→ `Handler::on_notify`), `notify_conn` (on whichever loop owns it) |
//! | [`Metrics`] | the loop's own counters: reads, writes, wake-ups, registrations, … ([`ServerMetrics`]: per loop and summed) |
//! | [`Selector`] | Python's `selectors` module, for callback-style programs |
//! | [`codec`] | framing for sticky packets: [`Lines`], [`LengthPrefixed`], the notes' [`Handshake`]; [`decode_all`](codec::decode_all) in `on_data` |
//! | [`Backend`], [`Trigger`], [`Interest`] | readiness mechanism, trigger mode, interest set |
//! | [`guide`] | select → poll → epoll → the reactor, with the numbers measured here |
//!
//! ```no_run
//! use ioplex::{Action, Config, Ctx, Handler, Reactor};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Conn = ();
//!     fn on_connect(&mut self, ctx: &mut Ctx<'_>, _peer: ioplex::Peer) {
//!         ctx.send(b"hello...");
//!     }
//!     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
//!         ctx.send_parts(&[b"response:", data]);
//!         Action::Continue
//!     }
//! }
//!
//! let mut reactor = Reactor::new(Config::default())?;
//! reactor.listen("127.0.0.1:9999")?;
//! reactor.run(&mut Echo)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The same handler on every core: a [`Server`] runs one loop per thread,
//! each with its own handler value, made on its thread by the factory.
//! Nothing is shared on the path of a message; handlers on different loops
//! reach each other's connections with [`Ctx::send_to`] and
//! [`Ctx::broadcast`]. A group chat on 4 loops:
//!
//! ```no_run
//! use ioplex::{Action, Config, Ctx, Handler, Server};
//!
//! struct Chat { loop_index: usize }
//!
//! impl Handler for Chat {
//!     type Conn = ();
//!     fn on_connect(&mut self, ctx: &mut Ctx<'_>, _: ioplex::Peer) {
//!         let hello = format!("you are on loop {} of {}\n", self.loop_index, ctx.loop_count());
//!         ctx.send(hello.as_bytes());
//!     }
//!     fn on_data(&mut self, ctx: &mut Ctx<'_>, _: &mut (), data: &[u8]) -> Action {
//!         let me = ctx.id();
//!         ctx.broadcast(data, Some(me)); // to the clients of every loop
//!         Action::Continue
//!     }
//! }
//!
//! let mut server = Server::new(Config::default(), 4)?; // 4 loops, 4 threads
//! server.listen("127.0.0.1:9999")?; // one address for all loops
//! let metrics = server.metrics();
//! server.run(|loop_index| Chat { loop_index })?; // until `server.handle()` stops it
//! let per_loop: Vec<u64> = metrics.per_loop().iter().map(|m| m.accepted).collect();
//! println!("clients per loop: {per_loop:?}, in all {}", metrics.total().accepted);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Where things live, top to bottom (each calls only what is below it):
//! `lib.rs` (this page), `handler.rs` (the trait), `action.rs` (what it
//! answers), `ctx.rs`, `server.rs` (N loops), `reactor/` (the loop, one
//! room per concern, the iteration in `reactor/iteration.rs`, what loops
//! send each other in `reactor/mesh.rs`), `backend/` (one file per backend
//! behind one seam), `sys.rs` (system calls), `timer.rs`, `codec/`,
//! `selector.rs`, `guide.rs`.
#![deny(missing_docs)]

mod action;
mod backend;
pub mod codec;
mod config;
mod ctx;
pub mod guide;
mod handler;
mod metrics;
mod peer;
mod reactor;
mod selector;
mod server;
mod sys;
mod timer;
mod token;

pub use action::{Action, CloseReason, Tick};
pub use backend::{Backend, Interest, Trigger};
pub use codec::{Codec, CodecError, Handshake, LengthPrefixed, Lines};
pub use config::Config;
pub use ctx::Ctx;
pub use handler::{DatagramHandler, Handler};
pub use metrics::{Metrics, Snapshot};
pub use peer::Peer;
pub use reactor::{Handle, Reactor};
pub use selector::{Key, Selector};
pub use server::{Distribution, Server, ServerMetrics};
pub use timer::TimerId;
pub use token::ConnId;
