//! How a server is born and dies among other processes: signals
//! (SIGTERM and SIGINT stop it gracefully, a second SIGINT at once, SIGHUP
//! reaches the handler), listeners inherited from systemd or a parent
//! (`LISTEN_FDS`), Unix domain socket listeners, and `sd_notify`
//! (`READY=1` once serving, `STOPPING=1` at the stop; nothing without
//! `NOTIFY_SOCKET`).

use super::Reactor;
use super::state::{Flags, Kind};
use crate::backend::Interest;
use crate::sys::cvt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};

/// The signals a server catches.
const CAUGHT: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// A `signalfd` for SIGTERM, SIGINT and SIGHUP, which are blocked in the
/// calling thread (and so in every thread it starts afterwards: a
/// [`Server`](crate::Server)'s loops), so the kernel queues them on the fd
/// instead of running a handler. No thread of its own: the process stays
/// single-threaded (glibc's system-call wrappers take their fast path).
fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset operations on a local set; pthread_sigmask and
    // signalfd only read it; the fd returned is fresh and ours.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in CAUGHT {
            libc::sigaddset(&mut set, s);
        }
        let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

impl<H: crate::handler::Handler> super::Loop<'_, H> {
    /// The signalfd is readable: SIGTERM and SIGINT begin the graceful stop
    /// (of every loop of a server), a second SIGINT stops at once, SIGHUP
    /// reaches `Handler::on_signal` on every loop. (On io_uring the
    /// completion's `polled` polls the fd again.)
    pub(super) fn signals(&mut self, key: usize) {
        loop {
            let Some(e) = self.core.entries.get(key) else {
                return;
            };
            // SAFETY: a plain C struct of integers: all-zero is a valid value.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most `size` bytes into `info`, from our fd.
            let n = unsafe {
                libc::read(
                    e.raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                break; // EAGAIN: all taken
            }
            let sig = info.ssi_signo as libc::c_int;
            let handle = self.core.handle();
            match sig {
                libc::SIGTERM | libc::SIGINT if !self.signalled => {
                    let name = if sig == libc::SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info!("{name}: stopping gracefully (a second SIGINT stops at once)");
                    self.signalled = true;
                    handle.stop();
                }
                libc::SIGINT => {
                    log::warn!("second SIGINT: stopping at once");
                    handle.stop_now();
                }
                libc::SIGTERM => log::debug!("SIGTERM again: already stopping"),
                other => handle.signal(other),
            }
        }
    }
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
    /// blocked in this thread and read from a `signalfd` by the loop (no
    /// thread of its own); call it before starting threads that should not
    /// take them.
    ///
    /// ```no_run
    /// let mut reactor = ioplex::Reactor::new(ioplex::Config::default())?;
    /// reactor.listen("127.0.0.1:7000")?;
    /// reactor.stop_on_signals()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        let fd = signal_fd().map_err(|e| super::context(e, "cannot catch signals"))?;
        self.core
            .insert(fd, Kind::Signals, Interest::READABLE, Flags::default())
            .map(drop)
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
