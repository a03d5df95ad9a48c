//! The PROXY protocol (v1 text, v2 binary), as HAProxy and nginx `stream`
//! send it in front of a connection's bytes: who the client really is.
//!
//! With [`Config::proxy_protocol`](crate::Config::proxy_protocol), a new
//! connection waits for its header before the handler hears of it: its
//! first bytes are parsed with the `ppp` crate straight from the read
//! buffer (a header split across reads is kept and completed), then
//! `on_connect` gets the client's address the header names and `on_data`
//! the bytes after it. A v2 `LOCAL` header (HAProxy's health checks send
//! it) is accepted and the connection's own address used. A missing,
//! malformed or oversized header, or one not complete within
//! `proxy_timeout`, closes the connection with a log line and a counter
//! (`proxy_errors`); the handler never hears of it. A connection that goes
//! away before any header (a health check ending with RST) is routine:
//! debug level only. A header that completes during a graceful stop
//! (accepted from the queue then, or incomplete when it began) gets what
//! came with it answered, then the close every connection gets.

use super::Loop;
use super::state::{Flags, Kept};
use crate::handler::Handler;
use crate::metrics::add;
use crate::peer::Peer;
use crate::token::ConnId;
use ppp::{HeaderResult, PartialResult, v1, v2};
use std::net::SocketAddr;

/// The longest header accepted: a v1 header is at most 107 bytes; a v2
/// one carries TLVs (HAProxy's unique id, SSL facts) and is refused past this.
pub(crate) const MAX_HEADER: usize = 1024;

/// What the first bytes of a connection said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// Not all of it yet.
    Partial,
    /// A header of `len` bytes naming `source` (`None`: `LOCAL` or
    /// `UNKNOWN`, use the connection's own address).
    Done {
        len: usize,
        source: Option<SocketAddr>,
    },
    /// Not a PROXY header, or not one this server takes.
    Bad(String),
}

/// The longest v1 header, `\r\n` included.
const V1_MAX: usize = 107;

/// Parses the PROXY header at the front of `buf`; allocates nothing.
pub(crate) fn parse(buf: &[u8]) -> Header {
    // A v1 header is text up to `\r\n`: until that has come, what is there
    // may be any prefix of one (ppp reads "…4242 " as a bad empty port).
    let v1 = b"PROXY ";
    let n = buf.len().min(v1.len());
    if n > 0 && buf[..n] == v1[..n] {
        let window = &buf[..buf.len().min(V1_MAX)];
        if !window.windows(2).any(|w| w == b"\r\n") {
            return match buf.len() >= V1_MAX {
                true => Header::Bad(format!("no end of a PROXY v1 header in {V1_MAX} bytes")),
                false => Header::Partial,
            };
        }
    }
    let r = HeaderResult::parse(buf);
    if r.is_incomplete() {
        return match buf.len() > MAX_HEADER {
            true => Header::Bad(format!("no whole PROXY header in {MAX_HEADER} bytes")),
            false => Header::Partial,
        };
    }
    match r {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Unknown => None,
            };
            Header::Done {
                len: h.header.len(),
                source,
            }
        }
        HeaderResult::V2(Ok(h)) if h.len() > MAX_HEADER => Header::Bad(format!(
            "a {}-byte PROXY v2 header, over {MAX_HEADER}",
            h.len()
        )),
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => Some((a.source_address, a.source_port).into()),
                (_, v2::Addresses::IPv6(a)) => Some((a.source_address, a.source_port).into()),
                (_, _) => None, // UNIX or unspecified: the connection's own
            };
            Header::Done {
                len: h.len(),
                source,
            }
        }
        HeaderResult::V1(Err(e)) => Header::Bad(format!("bad PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Header::Bad(format!("bad PROXY v2 header: {e}")),
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Bytes for a connection still waiting for its PROXY header: parse it;
    /// once whole, the handler hears `on_connect` and then what followed.
    pub(super) fn proxy_header(&mut self, key: usize, id: ConnId, data: &[u8], kept: Option<Kept>) {
        let mut kept = kept;
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(data);
        }
        let buf: &[u8] = kept.as_deref().map_or(data, |k| k.as_slice());
        match parse(buf) {
            Header::Partial => {
                let rest = kept.unwrap_or_else(|| Box::new(data.to_vec()));
                if let Some((_, c)) = self.core.conn_at(key) {
                    c.input = Some(rest);
                }
            }
            Header::Bad(why) => {
                log::warn!("{id}: {}: {why}: closed", self.socket_peer(key));
                add(&self.core.metrics.proxy_errors, 1);
                self.core.abort(key, crate::action::CloseReason::InputLimit);
            }
            Header::Done { len, source } => {
                add(&self.core.metrics.proxy_headers, 1);
                let peer = source.unwrap_or_else(|| self.socket_peer(key));
                if !self.proxied(key, id, peer) {
                    return;
                }
                let rest = &buf[len.min(buf.len())..];
                if !rest.is_empty() && self.states[key].is_some() {
                    self.deliver(key, id, rest, None);
                }
                if self.core.stopping.is_some() {
                    // Its header came during a stop: what came with it is
                    // answered (a partial request finished), then it closes.
                    self.core.stop_conn(key);
                }
            }
        }
    }

    /// The header named `peer`: admit it (the per-address cap counts the
    /// client, not the balancer), then tell the handler.
    fn proxied(&mut self, key: usize, id: ConnId, peer: SocketAddr) -> bool {
        let core = &mut *self.core;
        let Some(e) = core.entries.get_mut(key) else {
            return false;
        };
        e.flags.clear(Flags::PROXY);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&e.fd);
        let kept = core.keep_peer(peer);
        if let Some((_, c)) = core.conn_at(key) {
            c.peer = Some(kept);
        }
        if !core.admit_ip(fd, peer) {
            if let Some(b) = core.conn_at(key).and_then(|(_, c)| c.peer.take()) {
                core.spare_peer(b); // never counted
            }
            core.begin_close(key, crate::action::CloseReason::Closed);
            return false;
        }
        core.arm(key); // from the header's deadline to the idle one
        log::debug!("{id}: PROXY header: client {peer}");
        let state = self
            .handler
            .on_connect(ctx!(self, Some(id)), Peer::Inet(peer));
        self.states[key] = Some(state);
        true
    }

    /// The address the socket itself is connected to (the balancer).
    pub(super) fn socket_peer(&self, key: usize) -> SocketAddr {
        self.core
            .entries
            .get(key)
            .and_then(|e| socket2::SockRef::from(&e.fd).peer_addr().ok())
            .and_then(|a| a.as_socket())
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addrs: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend(((addrs.len() + tlvs.len()) as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h.extend_from_slice(tlvs);
        h
    }

    fn tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
        let mut a = src.to_vec();
        a.extend([10, 0, 0, 1]);
        a.extend(sport.to_be_bytes());
        a.extend(443u16.to_be_bytes());
        a
    }

    #[test]
    fn v1_and_v2_name_the_client_and_their_length_at_every_split() {
        let v1 = b"PROXY TCP4 127.0.0.77 10.0.0.1 4242 443\r\nPING\r\n";
        let v2 = [
            v2(1, 0x11, &tcp4([127, 0, 0, 77], 4242), &[]),
            b"PING\r\n".to_vec(),
        ]
        .concat();
        let want = Some(SocketAddr::from(([127, 0, 0, 77], 4242)));
        for (wire, len) in [(&v1[..], 41), (&v2[..], 28)] {
            for cut in 0..len {
                assert_eq!(parse(&wire[..cut]), Header::Partial, "cut at {cut}");
            }
            for cut in len..=wire.len() {
                assert_eq!(parse(&wire[..cut]), Header::Done { len, source: want });
            }
        }
    }

    #[test]
    fn local_and_unknown_use_the_connections_own_address() {
        let local = v2(0, 0x00, &[], &[]);
        assert_eq!(
            parse(&local),
            Header::Done {
                len: 16,
                source: None
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(unknown),
            Header::Done {
                len: 15,
                source: None
            }
        );
    }

    #[test]
    fn anything_else_is_refused_and_nothing_waits_forever() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PROXY TCP9 a b c d\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x99\x11\0\0",
        ] {
            assert!(matches!(parse(bad), Header::Bad(_)), "{bad:?}");
        }
        // A v2 header announcing more than MAX_HEADER of TLVs.
        let big = v2(1, 0x11, &tcp4([1, 2, 3, 4], 5), &vec![0; 2000]);
        assert!(matches!(parse(&big), Header::Bad(_)));
        // Never complete: refused once it passes MAX_HEADER.
        let mut endless = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2".to_vec();
        endless.resize(MAX_HEADER + 1, b' ');
        assert!(matches!(parse(&endless), Header::Bad(_)));
    }
}
