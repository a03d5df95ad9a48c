//! Limits and knobs of the loop, each with a default that is safe to serve with.

use crate::backend::Backend;
use std::time::Duration;

/// What the reactor allows and how it behaves. Every limit is logged when it
/// fires and counted in [`Metrics`](crate::Metrics).
///
/// | field | default | what happens at the limit |
/// |---|---|---|
/// | `max_connections` | 10 000 | new client gets `busy_message`, then close |
/// | `max_connections_per_ip` | off | a client from an address already holding this many gets `busy_message`, then close |
/// | `max_output` | 8 MiB | that connection is closed (`OutputLimit`) |
/// | `output_high_water` / `output_low_water` | 1 MiB / 256 KiB | reading from that connection pauses / resumes |
/// | `max_input` | 1 MiB | unconsumed input past this closes the connection (`InputLimit`) |
/// | `idle_timeout` | none | connection closed (`IdleTimeout`) |
/// | `read_budget` | 256 KiB | the connection yields; it goes on next turn |
/// | `accepts_per_cycle` | 256 | the listener yields; it goes on next turn |
/// | `accept_backoff` | 200 ms | on EMFILE/ENFILE accepting pauses this long |
/// | `shutdown_timeout` | 5 s | queued output still unsent is dropped |
/// | `linger` | 2 s | after our FIN, unread input is drained this long before close |
/// | `proxy_timeout` | 3 s | (with `proxy_protocol`) a connection without its whole PROXY header by then is closed |
/// | `accept_drain` | 50 ms | at a stop, handshakes already begun get this long to complete and be served |
/// | `loop_queue` | 256 KiB | a [`Server`](crate::Server) loop's sends to another loop past this fail (`false`) |
///
/// ```
/// use std::time::Duration;
/// let cfg = ioplex::Config {
///     idle_timeout: Some(Duration::from_secs(30)),
///     ..Default::default()
/// };
/// assert_eq!(cfg.max_connections, 10_000);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Which readiness mechanism to wait on.
    pub backend: Backend,
    /// Connections held at once; past it new clients get `busy_message` and are closed.
    pub max_connections: usize,
    /// Connections one peer IP address may hold at once; past it that
    /// address's new clients get `busy_message` and are closed, while
    /// everyone else is still served. `None`: no cap.
    pub max_connections_per_ip: Option<usize>,
    /// What a turned-away client gets (`max_connections`,
    /// `max_connections_per_ip`) before the close: set it to what the
    /// protocol expects, say an HTTP 503 for a web server.
    pub busy_message: Vec<u8>,
    /// Bytes queued for one connection past which it is closed as a slow consumer.
    pub max_output: usize,
    /// Queued output at which reading from that connection pauses.
    pub output_high_water: usize,
    /// Queued output at which reading resumes.
    pub output_low_water: usize,
    /// Unconsumed input (a partial frame) one connection may hold.
    pub max_input: usize,
    /// A connection with no input for this long is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Bytes read from one connection per turn before the others get theirs.
    pub read_budget: usize,
    /// Size of the loop's one shared read buffer.
    pub read_buffer: usize,
    /// Connections accepted from one listener per turn.
    pub accepts_per_cycle: usize,
    /// How long accepting pauses after EMFILE/ENFILE.
    pub accept_backoff: Duration,
    /// How long a graceful shutdown waits for queued output to drain.
    pub shutdown_timeout: Duration,
    /// How long a closing connection drains unread input after sending FIN,
    /// so the kernel sends FIN rather than RST and the peer gets every byte.
    pub linger: Duration,
    /// Longest the loop sleeps without waking (the notes' `select(..., 1)`). `None`: as long as no timer is due.
    pub max_wait: Option<Duration>,
    /// Set `TCP_NODELAY` on accepted sockets (Nagle plus split writes stalls 40 ms).
    pub nodelay: bool,
    /// Every connection begins with a PROXY protocol header (v1 or v2), as
    /// HAProxy's `send-proxy`/`send-proxy-v2` sends it: the handler hears of
    /// the connection only once it is parsed, with the client's address it
    /// names (a v2 `LOCAL` header, HAProxy's health check: the connection's
    /// own). A missing, malformed or oversized header closes that connection.
    /// Turn it on only behind a balancer: anyone reaching the port may claim
    /// any address. Off by default.
    pub proxy_protocol: bool,
    /// How long a connection may take to send its whole PROXY header.
    pub proxy_timeout: Duration,
    /// [`Backend::Uring`]: entries of the submission queue (the completion
    /// queue has twice as many; a full one is not lost, the kernel keeps the rest).
    pub uring_entries: u32,
    /// [`Backend::Uring`]: buffers in the provided buffer ring the kernel
    /// receives into (rounded up to a power of two); one per receive in
    /// flight that has data, given back when the handler returns.
    pub uring_buffers: usize,
    /// [`Backend::Uring`]: bytes of each of those buffers: the most one
    /// receive hands to `on_data`.
    pub uring_buffer_size: usize,
    /// At a graceful stop the listeners take no new SYN, but stay open this
    /// long so that handshakes already begun complete and are served; then
    /// the kernel is told to complete none, what it had accepted is accepted
    /// and served, and only then are they closed (closing a listener resets
    /// the connections still queued on it).
    pub accept_drain: Duration,
    /// Bytes of the queue from one loop of a [`Server`](crate::Server) to
    /// another (rounded up to a power of two); a cross-loop send that does
    /// not fit fails. Unused by a lone [`Reactor`](crate::Reactor).
    pub loop_queue: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            backend: Backend::default(),
            max_connections: 10_000,
            max_connections_per_ip: None,
            busy_message: b"-ERR max number of clients reached\r\n".to_vec(),
            max_output: 8 << 20,
            output_high_water: 1 << 20,
            output_low_water: 256 << 10,
            max_input: 1 << 20,
            idle_timeout: None,
            read_budget: 256 << 10,
            read_buffer: 64 << 10,
            accepts_per_cycle: 256,
            accept_backoff: Duration::from_millis(200),
            shutdown_timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            max_wait: None,
            nodelay: true,
            proxy_protocol: false,
            proxy_timeout: Duration::from_secs(3),
            uring_entries: 4096,
            uring_buffers: 1024,
            uring_buffer_size: 16 << 10,
            accept_drain: Duration::from_millis(50),
            loop_queue: 256 << 10,
        }
    }
}
