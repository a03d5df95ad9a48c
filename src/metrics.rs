//! Counters the loop keeps about itself, readable from any thread at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// The loop's own counters. Only the loop writes them (a plain load and
        /// store, no locked instruction on the hot path); anyone may read them.
        ///
        /// ```
        /// let m = ioplex::Metrics::default();
        /// assert_eq!(m.snapshot().accepted, 0);
        /// ```
        #[derive(Default, Debug)]
        pub struct Metrics { $( $(#[doc = $doc])* pub $name: AtomicU64, )* }

        /// A plain copy of [`Metrics`] at one moment.
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
        pub struct Snapshot { $( $(#[doc = $doc])* pub $name: u64, )* }

        impl Metrics {
            /// Copies every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $( $name: self.$name.load(Relaxed), )* }
            }
        }

        impl Snapshot {
            /// `self - earlier`, counter by counter.
            pub fn since(&self, earlier: &Snapshot) -> Snapshot {
                Snapshot { $( $name: self.$name.wrapping_sub(earlier.$name), )* }
            }

            /// Every counter as `(name, help, value)`, in declaration order;
            /// the help is the field's doc comment.
            fn counters(&self) -> [(&'static str, &'static str, u64); COUNTERS] {
                [$( (stringify!($name), concat!($($doc),*), self.$name), )*]
            }

            /// `self + other`, counter by counter: the loops of a
            /// [`Server`](crate::Server) summed.
            pub fn plus(&self, other: &Snapshot) -> Snapshot {
                Snapshot { $( $name: self.$name.wrapping_add(other.$name), )* }
            }
        }

        /// How many counters [`Metrics`] has.
        const COUNTERS: usize = [$(stringify!($name)),*].len();
    };
}

counters! {
    /// Connections accepted.
    accepted,
    /// Connections closed (for any reason).
    closed,
    /// Clients turned away at `max_connections`.
    rejected,
    /// Clients turned away at `max_connections_per_ip`.
    rejected_per_ip,
    /// PROXY protocol headers parsed (`Config::proxy_protocol`).
    proxy_headers,
    /// Connections closed for a missing, malformed, oversized or late PROXY header.
    proxy_errors,
    /// `read`/`recv` system calls on connections.
    reads,
    /// `write`/`send` system calls on connections.
    writes,
    /// Bytes read from connections.
    bytes_in,
    /// Bytes written to connections.
    bytes_out,
    /// `sendfile` system calls ([`Ctx::send_file`](crate::Ctx::send_file)).
    sendfiles,
    /// Returns from the backend's wait.
    wakeups,
    /// Events delivered by the backend.
    events,
    /// Events dropped because their token's generation was stale.
    stale_events,
    /// `register` calls to the backend (`epoll_ctl(ADD)` under epoll).
    registrations,
    /// `reregister` calls to the backend (`epoll_ctl(MOD)`).
    reregistrations,
    /// `deregister` calls to the backend (`epoll_ctl(DEL)`).
    deregistrations,
    /// Connections paused because their output passed the high watermark.
    paused,
    /// Connections closed for passing `max_output`.
    output_limit,
    /// Connections closed for passing `max_input`.
    input_limit,
    /// Connections closed by the idle timeout.
    idle_timeouts,
    /// Accept errors (EMFILE and friends) that paused accepting.
    accept_errors,
    /// Timers fired.
    timers,
    /// UDP datagrams received.
    datagrams_in,
    /// UDP datagrams larger than the read buffer, dropped and reported.
    datagrams_truncated,
    /// `io_uring_enter` calls (the completion backend's only system call per iteration).
    uring_enters,
    /// Operations submitted to the ring.
    uring_submissions,
    /// Completions reaped from the ring.
    uring_completions,
    /// Receives that found the provided buffer ring empty (`ENOBUFS`), re-armed.
    uring_nobufs,
    /// Waits that found the completion queue had overflowed (the kernel kept
    /// the completions that did not fit; none is lost).
    uring_overflows,
    /// Connections handed to this loop by another loop's acceptor (each
    /// also counts in `accepted` once admitted).
    adopted,
    /// Records this loop queued for other loops of a [`Server`](crate::Server)
    /// (sends to the same connection in one iteration share a record).
    mesh_sent,
    /// Records this loop took from other loops' queues.
    mesh_received,
    /// Sends to another loop refused because its queue was full (or the
    /// message larger than half of it): the sender got `false`.
    mesh_full,
    /// Wake-ups this loop sent to other loops (at most one per loop it
    /// sent to per iteration, none while that loop is still busy with
    /// the last batch).
    mesh_wakes,
}

impl Snapshot {
    /// The counters in the Prometheus text exposition format (version
    /// 0.0.4, what `GET /metrics` answers with): for each counter a `# HELP`
    /// line (its doc), a `# TYPE … counter` line and the sample, named
    /// `{prefix}_{counter}_total`. `prefix` must be a valid metric name
    /// (`[a-zA-Z_:][a-zA-Z0-9_:]*`), say `ioplex` or the server's name.
    ///
    /// ```
    /// let mut s = ioplex::Snapshot::default();
    /// s.accepted = 3;
    /// let text = s.to_prometheus("ioplex");
    /// let first: Vec<&str> = text.lines().take(3).collect();
    /// assert_eq!(first, [
    ///     "# HELP ioplex_accepted_total Connections accepted.",
    ///     "# TYPE ioplex_accepted_total counter",
    ///     "ioplex_accepted_total 3",
    /// ]);
    /// ```
    pub fn to_prometheus(&self, prefix: &str) -> String {
        debug_assert!(valid_metric_name(prefix), "bad metric prefix {prefix:?}");
        let mut out = String::with_capacity(COUNTERS * 160);
        for (name, help, value) in self.counters() {
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            // HELP text escapes only `\` and line feeds; doc lines are joined above.
            let help = help.replace('\\', "\\\\");
            let metric = format!("{prefix}_{name}_total");
            out.push_str(&format!(
                "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric} {value}\n"
            ));
        }
        out
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Adds `n` to a counter that only one thread writes.
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}
