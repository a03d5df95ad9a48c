//! What every TCP example server does to run behind a load balancer and
//! under systemd (`docs/deploy.md`): `--proxy-protocol`, `--unix PATH`,
//! listeners inherited through `LISTEN_FDS` (socket activation), and the
//! signals: SIGTERM and SIGINT stop it gracefully, a second SIGINT at
//! once, SIGHUP reaches `Handler::on_signal`.

use ioplex::{Config, Reactor, Server};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// The flags, flattened into a server's own `Args` (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Deploy {
    /// Every connection begins with a PROXY protocol header (v1 or v2, as
    /// HAProxy's send-proxy-v2 sends): the client is the address it names.
    /// Only behind a balancer: anyone reaching the port may claim any address.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Serve a Unix domain socket at PATH instead of --addr (a socket file
    /// left there by an earlier run is replaced; removed at exit).
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
}

impl Deploy {
    /// `base` with what the flags set.
    pub fn config(&self, base: Config) -> Config {
        Config {
            proxy_protocol: self.proxy_protocol,
            ..base
        }
    }
}

/// A listener being served.
pub enum Listening {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listening::Tcp(a) => write!(f, "{a}"),
            Listening::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What [`Reactor`] and [`Server`] both offer for [`listen`].
pub trait Listen {
    fn tcp(&mut self, addr: &str) -> io::Result<SocketAddr>;
    fn unix(&mut self, path: &Path) -> io::Result<()>;
    fn inherited(&mut self) -> io::Result<usize>;
    fn signals(&mut self) -> io::Result<()>;
}

macro_rules! listen_on {
    ($t:ty) => {
        impl Listen for $t {
            fn tcp(&mut self, addr: &str) -> io::Result<SocketAddr> {
                self.listen(addr)
            }
            fn unix(&mut self, path: &Path) -> io::Result<()> {
                self.listen_unix(path)
            }
            fn inherited(&mut self) -> io::Result<usize> {
                self.listen_inherited()
            }
            fn signals(&mut self) -> io::Result<()> {
                self.stop_on_signals()
            }
        }
    };
}
listen_on!(Reactor);
listen_on!(Server);

/// Listens where this process was told: the listeners it inherited
/// (`LISTEN_FDS`, systemd's socket activation) if any, else `--unix`, else
/// `addr`; makes the signals stop it; then prints `listening on …` for each
/// listener (the first line scripts and tests wait for).
pub fn listen(server: &mut impl Listen, addr: &str, deploy: &Deploy) -> io::Result<Vec<Listening>> {
    let inherited = server.inherited()?;
    let bound = if inherited > 0 {
        (0..inherited).map(|i| inherited_at(3 + i as i32)).collect()
    } else if let Some(path) = &deploy.unix {
        server.unix(path)?;
        vec![Listening::Unix(path.clone())]
    } else {
        vec![Listening::Tcp(server.tcp(addr)?)]
    };
    server.signals()?;
    for l in &bound {
        println!("listening on {l}");
    }
    Ok(bound)
}

/// What the inherited listener at `fd` is bound to.
fn inherited_at(fd: i32) -> Listening {
    // SAFETY: `fd` is one of the listeners the server just took from
    // LISTEN_FDS (3, 4, …); it holds it open for its whole life.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let addr = socket2::SockRef::from(&fd).local_addr();
    match addr.as_ref().map(|a| (a.as_socket(), a.as_pathname())) {
        Ok((Some(a), _)) => Listening::Tcp(a),
        Ok((None, Some(p))) => Listening::Unix(p.to_path_buf()),
        _ => Listening::Unix(PathBuf::from("(unnamed)")),
    }
}
