//! UDP sockets: each readable event drains datagrams (up to the read
//! budget) into the shared buffer and hands each to
//! [`Handler::on_datagram`]; [`Core::send_datagram`] answers.

use super::Loop;
use super::core::Core;
use super::state::Kind;
use crate::handler::Handler;
use crate::metrics::add;
use crate::sys;
use crate::token::ConnId;
use std::io;
use std::net::SocketAddr;

impl<H: Handler> Loop<'_, H> {
    pub(super) fn recv_udp(&mut self, key: usize) {
        let mut budget = self.core.cfg.read_budget;
        loop {
            let Some(e) = self.core.entries.get(key) else {
                return;
            };
            let id = ConnId::new(self.core.index, key, e.generation);
            add(&self.core.metrics.reads, 1);
            match sys::recv_from(e.raw_fd(), &mut self.rbuf) {
                Ok((n, from)) => {
                    add(&self.core.metrics.datagrams_in, 1);
                    if n > self.rbuf.len() {
                        add(&self.core.metrics.datagrams_truncated, 1);
                        log::warn!(
                            "{id}: {n}-byte datagram from {from} is larger than the {}-byte read buffer: dropped",
                            self.rbuf.len()
                        );
                    } else {
                        add(&self.core.metrics.bytes_in, n as u64);
                        self.handler
                            .on_datagram(ctx!(self, Some(id)), from, &self.rbuf[..n]);
                    }
                    budget = budget.saturating_sub(n.max(1));
                    if budget == 0 {
                        self.core.push_ready(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors (port unreachable and friends) land here: not fatal.
                Err(e) => log::debug!("{id}: recv_from: {e}"),
            }
        }
    }
}

impl Core {
    /// Sends a datagram from UDP socket `from`. A datagram the kernel cannot
    /// take now is dropped (UDP promises nothing more) and `Ok(0)` returned.
    pub(crate) fn send_datagram(
        &mut self,
        from: Option<ConnId>,
        to: SocketAddr,
        data: &[u8],
    ) -> io::Result<usize> {
        let e = from.and_then(|id| {
            self.entries
                .get(id.key())
                .filter(|e| e.generation == id.generation())
        });
        let Some(e) = e.filter(|e| matches!(e.kind, Kind::Udp)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send_datagram outside a UDP callback",
            ));
        };
        match socket2::SockRef::from(&e.fd).send_to(data, &to.into()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => {
                add(&self.metrics.writes, 1);
                r
            }
        }
    }
}
