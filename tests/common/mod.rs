//! Shared test helpers: a reactor on 127.0.0.1:0 in a thread, example
//! binaries as child processes, fd counting, deadlines.
#![allow(dead_code)]

pub mod storm;

use ioplex::{Config, Handle, Handler, Metrics, Peer, Reactor};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every socket operation in tests gives up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A reactor serving `H` on 127.0.0.1:0 in its own thread; stopped on drop.
pub struct Server<H: Handler + Send + 'static> {
    pub addr: SocketAddr,
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    join: Option<JoinHandle<(std::io::Result<()>, H)>>,
}

impl<H: Handler + Send + 'static> Server<H> {
    pub fn start(handler: H, config: Config) -> Server<H> {
        let mut reactor = Reactor::new(config).expect("reactor");
        let addr = reactor.listen("127.0.0.1:0").expect("listen");
        let handle = reactor.handle();
        let metrics = reactor.metrics();
        let join = std::thread::spawn(move || {
            let mut handler = handler;
            let r = reactor.run(&mut handler);
            (r, handler)
        });
        Server {
            addr,
            handle,
            metrics,
            join: Some(join),
        }
    }

    /// Stops the loop and waits (bounded) for `run` to return; gives the handler back.
    pub fn stop(mut self) -> H {
        self.handle.stop();
        let join = self.join.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while !join.is_finished() {
            assert!(Instant::now() < deadline, "run did not return after stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (r, h) = join.join().expect("loop thread panicked");
        r.expect("run returned an error");
        h
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }
}

impl<H: Handler + Send + 'static> Drop for Server<H> {
    fn drop(&mut self) {
        if let Some(j) = self.join.take() {
            self.handle.stop();
            let deadline = Instant::now() + Duration::from_secs(15);
            while !j.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Echoes every byte back, and nothing else.
pub struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_connect(&mut self, _: &mut ioplex::Ctx<'_>, _: Peer) {}
    fn on_data(&mut self, ctx: &mut ioplex::Ctx<'_>, _: &mut (), data: &[u8]) -> ioplex::Action {
        ctx.send(data);
        ioplex::Action::Continue
    }
}

/// A blocking client with read/write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Reads exactly `n` bytes (or fails the test at the timeout).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read_exact");
    buf
}

/// Reads until EOF.
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read_to_end");
    v
}

/// Open file descriptors of process `pid`.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Path of a built example binary (`cargo test` builds the examples).
pub fn example_path(name: &str) -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop(); // deps
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join(name)
}

/// What a child process wrote, kept in memory: shown only if the test
/// fails (see [`ExampleServer`]'s drop), never interleaved with test names.
#[derive(Clone, Default)]
pub struct Captured(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Captured {
    /// Copies `from` into memory on a thread of its own until it closes.
    fn drain(&self, mut from: impl Read + Send + 'static) -> JoinHandle<()> {
        let keep = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, cond) = &*keep.0;
                lock.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
                cond.notify_all();
            }
        })
    }

    /// Everything so far, as text (control bytes escaped, so a log stays text).
    pub fn text(&self) -> String {
        let bytes = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .chars()
            .map(|c| match c {
                '\n' | '\t' => c.to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect()
    }

    /// Waits up to `limit` for a whole line that starts with `prefix`.
    pub fn line(&self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let (lock, cond) = &*self.0;
        let mut bytes = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let text = String::from_utf8_lossy(&bytes);
            let mut lines = text.split_inclusive('\n');
            if let Some(l) = lines.find(|l| l.starts_with(prefix) && l.ends_with('\n')) {
                return Some(l.trim_end().to_owned());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            bytes = cond
                .wait_timeout(bytes, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A child process whose stdout and stderr are captured; killed on drop
/// (with its whole process group, when it leads one: a shell's pipeline),
/// and its output printed then (through the test's own captured output)
/// only if the test is failing.
pub struct Quiet {
    pub child: Child,
    name: String,
    pub stdout: Captured,
    pub stderr: Captured,
    readers: Vec<JoinHandle<()>>,
    /// Held open, as a terminal's stdin is while nobody types.
    _stdin: Option<std::process::ChildStdin>,
}

impl Quiet {
    /// Spawns `cmd` with piped stdout and stderr (stdin: nothing).
    pub fn spawn(name: &str, cmd: Command) -> Quiet {
        Quiet::spawn_typed(name, cmd, None)
    }

    /// Spawns `cmd`; with `input`, that is typed into its stdin, which then
    /// stays open until the drop.
    pub fn spawn_typed(name: &str, mut cmd: Command, input: Option<&[u8]>) -> Quiet {
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let readers = vec![
            stdout.drain(child.stdout.take().unwrap()),
            stderr.drain(child.stderr.take().unwrap()),
        ];
        let mut typed = child.stdin.take();
        if let (Some(pipe), Some(input)) = (typed.as_mut(), input) {
            use std::io::Write;
            let _ = pipe.write_all(input); // a child that exits early closes it
        }
        Quiet {
            child,
            name: name.to_owned(),
            stdout,
            stderr,
            readers,
            _stdin: typed,
        }
    }

    /// The child's output so far, headed with its name.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.name,
            self.stdout.text(),
            self.name,
            self.stderr.text()
        )
    }

    /// Its stdout, then its stderr, as text.
    pub fn text(&self) -> String {
        self.stdout.text() + &self.stderr.text()
    }

    /// Waits up to `limit` for its stdout or stderr to hold `needle`. A line
    /// the child wrote before a reply may still be in the pipe when the
    /// reply arrives: a test asks this, not [`Quiet::text`], for a line it
    /// expects while the child runs.
    pub fn says(&self, needle: &str, limit: Duration) -> bool {
        wait_for(limit, || self.text().contains(needle))
    }

    /// Waits up to `limit` for the child to exit; once it has, everything
    /// it wrote is captured (the pipes read to their end) before this returns.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.drained(Duration::from_secs(1));
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `limit` for the pipe readers to reach the pipes' end.
    fn drained(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: asking for and signalling our own child's process group.
        if unsafe { libc::getpgid(pid) } == pid {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipes close with the child (or with a grandchild it left: bounded).
        self.drained(Duration::from_secs(1));
        if std::thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

/// An example server run as a child process; killed on drop. Its output
/// is captured and shown only when the test fails.
///
/// Convention: every server example prints `listening on ADDR` as the first
/// line of its stdout once it is bound, and accepts `--addr 127.0.0.1:0`.
pub struct ExampleServer {
    pub addr: SocketAddr,
    proc: Quiet,
}

impl std::ops::Deref for ExampleServer {
    type Target = Quiet;
    fn deref(&self) -> &Quiet {
        &self.proc
    }
}

impl std::ops::DerefMut for ExampleServer {
    fn deref_mut(&mut self) -> &mut Quiet {
        &mut self.proc
    }
}

impl ExampleServer {
    pub fn start(name: &str, args: &[&str]) -> ExampleServer {
        let mut cmd = Command::new(example_path(name));
        cmd.args(args);
        ExampleServer::start_command(name, cmd)
    }

    /// Starts a prepared command for example `name` (to set limits, env, …).
    pub fn start_command(name: &str, cmd: Command) -> ExampleServer {
        let path = example_path(name);
        assert!(
            path.exists(),
            "{} is not built: run `cargo test`, which builds the examples",
            path.display()
        );
        let proc = Quiet::spawn(name, cmd);
        let line = proc
            .stdout
            .line("", IO_TIMEOUT)
            .unwrap_or_else(|| panic!("{name} printed no `listening on` line"));
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"));
        ExampleServer { addr, proc }
    }

    /// Waits up to `limit` for a line of the server's stdout starting with `prefix`.
    pub fn stdout_line(&self, prefix: &str, limit: Duration) -> Option<String> {
        self.proc.stdout.line(prefix, limit)
    }

    /// User plus system CPU time the child has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(self.proc.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Asks the example to exit (SIGTERM) and waits up to `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.proc.child.id() as i32, libc::SIGTERM) };
        self.proc.exited_within(limit)
    }
}

/// Runs `cmd` to its end with `stdin` fed to it and its stdout and stderr
/// captured (whatever the caller had set for them); kills it and fails the
/// test if it is not done within `limit`.
pub fn run_bounded(mut cmd: Command, stdin: &[u8], limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&input); // a child that exits early closes it
    });
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for child"),
        Err(_) => {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} did not finish in {limit:?}");
        }
    }
}

/// Runs a Python 3 script with arguments, bounded in time; returns stdout.
/// Fails the test loudly if python3 is missing.
pub fn python(script: &str, args: &[&str], limit: Duration) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args).stderr(Stdio::piped());
    let out = run_bounded(cmd, b"", limit);
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every backend the shared behaviour suite runs on.
pub fn backends() -> Vec<ioplex::Backend> {
    use ioplex::{Backend, Trigger};
    vec![
        Backend::Mio,
        Backend::Epoll(Trigger::Level),
        Backend::Epoll(Trigger::Edge),
        Backend::Epoll(Trigger::Oneshot),
        Backend::Poll,
        Backend::Select,
        Backend::Uring,
    ]
}

/// A config on `backend` with everything else default.
pub fn config_on(backend: ioplex::Backend) -> Config {
    Config {
        backend,
        ..Config::default()
    }
}

/// Descriptors of this process that are TCP sockets with local port `port`:
/// a server's listener and the connections it accepted. Unlike a plain fd
/// count, other tests running in parallel in this process do not disturb it.
pub fn fds_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Some(inode) = cols.get(9) {
                    inodes.insert(format!("socket:[{inode}]"));
                }
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|l| inodes.contains(&*l.to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

/// User plus system CPU time of process `pid` (from /proc/PID/stat).
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' field 3 (state) is at index 0: utime (14) and stime (15) at 11 and 12.
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let ticks = num(11) + num(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Raises this process's fd limit to at least `want` (the hard limit too,
/// which root may); a test that cannot get them fails loudly.
pub fn raise_fd_limit(want: u64) {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: rl.rlim_max.max(want),
        };
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised),
            0,
            "this test needs {want} descriptors; the limit is {} (hard {}): {}",
            rl.rlim_cur,
            rl.rlim_max,
            std::io::Error::last_os_error()
        );
    }
}
