//! How a server is born and dies among other processes: signals
//! (SIGTERM and SIGINT stop it gracefully, a second SIGINT at once, SIGHUP
//! reaches the handler), listeners inherited from systemd or a parent
//! (`LISTEN_FDS`), Unix domain socket listeners, and `sd_notify`
//! (`READY=1` once serving, `STOPPING=1` at the stop; nothing without
//! `NOTIFY_SOCKET`).

use super::Reactor;
use super::handle::Handle;
use super::state::{Flags, Kind};
use crate::backend::Interest;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};

/// Catches SIGTERM, SIGINT and SIGHUP on a thread of its own and turns
/// them into what `handle` does: the graceful stop, a stop at once for a
/// second SIGINT, `Handler::on_signal` for SIGHUP.
pub(crate) fn watch_signals(handle: Handle) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| io::Error::new(e.kind(), format!("cannot catch signals: {e}")))?;
    std::thread::Builder::new()
        .name("ioplex-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    SIGTERM | SIGINT if !stopping => {
                        let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                        log::info!("{name}: stopping gracefully (a second SIGINT stops at once)");
                        stopping = true;
                        handle.stop();
                    }
                    SIGINT => {
                        log::warn!("second SIGINT: stopping at once");
                        handle.stop_now();
                    }
                    SIGTERM => log::debug!("SIGTERM again: already stopping"),
                    other => handle.signal(other),
                }
            }
        })?;
    Ok(())
}

/// Tells systemd (or whatever set `NOTIFY_SOCKET`) `state`, say `READY=1`.
/// Nothing happens without `NOTIFY_SOCKET`; a failure is logged, not fatal.
pub(crate) fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let path = path.to_string_lossy();
        match path.strip_prefix('@') {
            // An abstract socket: its name starts with a NUL byte.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(state.as_bytes(), &addr)
            }
            None => sock.send_to(state.as_bytes(), Path::new(&*path)),
        }
    });
    if let Err(e) = sent {
        log::warn!("sd_notify {state:?}: {e}");
    }
}

impl Reactor {
    /// SIGTERM and SIGINT begin the graceful stop (stop accepting, let
    /// idle connections go, finish the busy ones, return from `run`); a
    /// second SIGINT stops at once; SIGHUP calls
    /// [`Handler::on_signal`](crate::Handler::on_signal). The signals are
    /// caught on a thread of this crate's, for the rest of the process.
    ///
    /// ```no_run
    /// let mut reactor = ioplex::Reactor::new(ioplex::Config::default())?;
    /// reactor.listen("127.0.0.1:7000")?;
    /// reactor.stop_on_signals()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        watch_signals(self.handle())
    }

    /// Serves a Unix domain socket at `path` (a socket file left there by
    /// an earlier run is replaced; anything else there is an error). The
    /// file is removed when the reactor is dropped.
    pub fn listen_unix(&mut self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let what = || format!("cannot listen on unix:{}", path.display());
        remove_stale_socket(path).map_err(|e| super::context(e, &what()))?;
        let sock = UnixListener::bind(path).map_err(|e| super::context(e, &what()))?;
        self.add_unix_listener(sock)?;
        self.unix_paths.push(path.to_path_buf());
        Ok(())
    }

    /// Serves a bound Unix domain socket listener (made non-blocking here).
    pub fn add_unix_listener(&mut self, sock: UnixListener) -> io::Result<()> {
        sock.set_nonblocking(true)?;
        self.add_listener_fd(OwnedFd::from(sock))
    }

    /// Serves the listeners this process inherited by the systemd socket
    /// activation protocol (`LISTEN_FDS`, `LISTEN_PID`; a parent process can
    /// set them too): TCP and Unix stream sockets. Returns how many; 0 when
    /// there are none.
    pub fn listen_inherited(&mut self) -> io::Result<usize> {
        let mut fds = listenfd::ListenFd::from_env();
        for i in 0..fds.len() {
            let what = || format!("inherited listener {i} (fd {})", i + 3);
            // listenfd refuses (and leaves in place) a socket of another
            // kind than asked: TCP first, then Unix.
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                self.add_listener(l)
                    .map_err(|e| super::context(e, &what()))?;
            } else if let Ok(Some(l)) = fds.take_unix_listener(i) {
                self.add_unix_listener(l)
                    .map_err(|e| super::context(e, &what()))?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: not a TCP or Unix stream listener", what()),
                ));
            }
        }
        Ok(fds.len())
    }

    pub(crate) fn add_listener_fd(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.core
            .insert(fd, Kind::Listener, Interest::READABLE, Flags::default())
            .map(drop)
    }
}

/// A socket file at `path` from an earlier run is removed; anything else
/// that is there stays, and binding fails with "address in use".
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

/// Removes the socket files of `paths` (the reactor's Unix listeners).
pub(crate) fn remove_sockets(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
