//! [`Peer`]: who is on the other end of a connection, over TCP or a Unix
//! domain socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The other end of a connection, as [`Handler::on_connect`](crate::Handler::on_connect)
/// hears it. Behind a load balancer speaking the PROXY protocol
/// ([`Config::proxy_protocol`](crate::Config::proxy_protocol)), the client the header
/// names, not the balancer.
///
/// ```
/// use ioplex::Peer;
/// let p = Peer::from(std::net::SocketAddr::from(([127, 0, 0, 77], 4242)));
/// assert_eq!(p.to_string(), "127.0.0.77:4242");
/// assert_eq!(p.ip(), Some([127, 0, 0, 77].into()));
/// assert_eq!(Peer::Unix(None).to_string(), "unix:(unnamed)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A TCP (or UDP) peer: address and port.
    Inet(SocketAddr),
    /// A Unix domain socket peer: the path it is bound to, if it bound one
    /// (clients usually do not).
    Unix(Option<PathBuf>),
}

impl Peer {
    /// The address, for a TCP peer.
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Peer::Inet(a) => Some(*a),
            Peer::Unix(_) => None,
        }
    }

    /// The IP address, for a TCP peer.
    pub fn ip(&self) -> Option<IpAddr> {
        self.inet().map(|a| a.ip())
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer::Inet(a)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(a) => write!(f, "{a}"),
            Peer::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Peer::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}
