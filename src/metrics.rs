//! Counters the loop keeps about itself, readable from any thread at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// The loop's own counters. Only the loop writes them (a plain load and
        /// store, no locked instruction on the hot path); anyone may read them.
        ///
        /// ```
        /// let m = ioplex::Metrics::default();
        /// assert_eq!(m.snapshot().accepted, 0);
        /// ```
        #[derive(Default, Debug)]
        pub struct Metrics { $( $(#[$doc])* pub $name: AtomicU64, )* }

        /// A plain copy of [`Metrics`] at one moment.
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
        pub struct Snapshot { $( $(#[$doc])* pub $name: u64, )* }

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

            /// `self + other`, counter by counter: the loops of a
            /// [`Server`](crate::Server) summed.
            pub fn plus(&self, other: &Snapshot) -> Snapshot {
                Snapshot { $( $name: self.$name.wrapping_add(other.$name), )* }
            }
        }
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
    /// `read`/`recv` system calls on connections.
    reads,
    /// `write`/`send` system calls on connections.
    writes,
    /// Bytes read from connections.
    bytes_in,
    /// Bytes written to connections.
    bytes_out,
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

/// Adds `n` to a counter that only one thread writes.
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}
