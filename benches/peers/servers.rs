//! The servers measured: Redis and nginx from Debian's packages, ioplex's
//! `resp` and `http_static` examples on two backends each. Each runs as its
//! own process group pinned to the server CPU, on a port picked free, and
//! is killed (the whole group: nginx's worker too) when dropped.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which peer a server is measured beside.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    /// RESP servers under redis-benchmark, beside Redis.
    Redis,
    /// HTTP static file servers under wrk, beside nginx.
    Http,
}

/// How a server is started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `redis-server`.
    Redis,
    /// `nginx`, one worker.
    Nginx,
    /// An ioplex example on the named backend.
    Example(&'static str, &'static str),
}

/// One server of the report.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Its name in the report.
    pub name: &'static str,
    /// Its family.
    pub family: Family,
    /// How to start it.
    pub kind: Kind,
}

/// Every server, peers first.
pub const SERVERS: [Spec; 6] = [
    Spec {
        name: "redis",
        family: Family::Redis,
        kind: Kind::Redis,
    },
    Spec {
        name: "resp/mio",
        family: Family::Redis,
        kind: Kind::Example("resp", "mio"),
    },
    Spec {
        name: "resp/uring",
        family: Family::Redis,
        kind: Kind::Example("resp", "uring"),
    },
    Spec {
        name: "nginx",
        family: Family::Http,
        kind: Kind::Nginx,
    },
    Spec {
        name: "http_static/mio",
        family: Family::Http,
        kind: Kind::Example("http_static", "mio"),
    },
    Spec {
        name: "http_static/uring",
        family: Family::Http,
        kind: Kind::Example("http_static", "uring"),
    },
];

/// The peer of a family, whose requests/s the others are divided by.
pub fn peer(family: Family) -> &'static str {
    match family {
        Family::Redis => "redis",
        Family::Http => "nginx",
    }
}

/// The program each tool is, and the Debian package it comes in.
const TOOLS: [(&str, &str, Family); 4] = [
    ("redis-server", "redis-server", Family::Redis),
    ("redis-benchmark", "redis-tools", Family::Redis),
    ("nginx", "nginx", Family::Http),
    ("wrk", "wrk", Family::Http),
];

/// Where `tool` is on PATH (or in /usr/sbin, where nginx lives).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Installs the tools the families need that are missing (`apt-get
/// install -y`, after one `apt-get update`), loudly; an error names each
/// tool that is still missing.
pub fn ensure_tools(families: &[Family]) -> Result<(), String> {
    let wanted: Vec<_> = TOOLS.iter().filter(|t| families.contains(&t.2)).collect();
    let missing: Vec<_> = wanted.iter().filter(|t| which(t.0).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.1).collect();
    eprintln!(
        "peers: {} missing; installing the Debian packages {} (apt-get install -y)",
        missing.iter().map(|t| t.0).collect::<Vec<_>>().join(", "),
        packages.join(" ")
    );
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get: {e}"))
            .and_then(|s| match s.success() {
                true => Ok(()),
                false => Err(format!("`apt-get {}` failed ({s})", args.join(" "))),
            })
    };
    let installed = apt(&["update", "-qq"]).and_then(|()| {
        let mut args = vec!["install", "-y", "-qq"];
        args.extend(&packages);
        apt(&args)
    });
    let still: Vec<&str> = wanted
        .iter()
        .filter(|t| which(t.0).is_none())
        .map(|t| t.0)
        .collect();
    match (still.is_empty(), installed) {
        (true, _) => Ok(()),
        (false, Err(why)) => Err(format!(
            "{} required and could not be installed: {why}",
            still.join(", ")
        )),
        (false, Ok(())) => Err(format!(
            "{} still missing after apt-get install",
            still.join(", ")
        )),
    }
}

/// A free port on 127.0.0.1: bound to port 0, then released. (Redis
/// refuses port 0.) Another process could take it meanwhile; the server's
/// start then fails and says so.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What a child printed (stdout and stderr, the first 64 KiB), as it comes.
pub struct Captured {
    text: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Captured {
    /// What it printed so far.
    pub fn now(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All it printed: waits for its pipes to close (call after it exited).
    pub fn all(mut self) -> String {
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        self.now()
    }
}

/// Spawns `cmd` pinned to `cpu` (if any) in a process group of its own,
/// its output captured.
pub fn spawn(cmd: &mut Command, cpu: Option<usize>) -> io::Result<(Child, Captured)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only setpgid and sched_setaffinity, async-signal-safe, run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            cpu.map_or(Ok(()), |c| crate::measure::pin(0, c))
        });
    }
    let mut child = cmd.spawn()?;
    let text = Arc::new(Mutex::new(String::new()));
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as _),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    let readers = pipes
        .into_iter()
        .flatten()
        .map(|mut pipe| {
            let keep = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                    if t.len() < 64 << 10 {
                        t.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            })
        })
        .collect();
    Ok((child, Captured { text, readers }))
}

/// What the servers of a round share: the files served and nginx's prefix.
pub struct Site {
    /// The temporary directory holding both.
    pub dir: tempfile::TempDir,
    /// The directory served (by nginx and http_static alike).
    pub www: PathBuf,
}

/// The files served: name and size. Random bytes, so no layer can compress them.
pub const FILES: [(&str, usize); 2] = [("1k.bin", 1 << 10), ("1m.bin", 1 << 20)];

impl Site {
    /// Writes the files into a new temporary directory readable by
    /// nginx's worker (which runs as `nobody` when started by root).
    pub fn new() -> io::Result<Site> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let www = dir.path().join("www");
        std::fs::create_dir(&www)?;
        let mut rng = fastrand::Rng::with_seed(16);
        for (name, size) in FILES {
            let bytes: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
            std::fs::write(www.join(name), bytes)?;
            std::fs::set_permissions(www.join(name), PermissionsExt::from_mode(0o644))?;
        }
        for d in [dir.path(), &www] {
            std::fs::set_permissions(d, PermissionsExt::from_mode(0o755))?;
        }
        Ok(Site { dir, www })
    }

    /// The bytes of a served file.
    pub fn file(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.www.join(name))
    }
}

/// nginx's configuration: one worker, sendfile, no access log, in the
/// foreground, every path it writes in `dir`. The rest is nginx's defaults
/// (keep-alive: 1,000 requests per connection, 75 s).
fn nginx_conf(dir: &Path, www: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  default_type application/octet-stream;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
        www.display()
    )
}

/// The release build of an ioplex example, beside this bench's binary.
pub fn example(name: &str) -> io::Result<PathBuf> {
    let mut p = std::env::current_exe()?;
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    Ok(p.join("examples").join(name))
}

/// Builds the examples measured (`cargo build --release --example ...`):
/// `cargo bench --bench peers` builds only the bench itself.
pub fn build_examples() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--example",
            "resp",
            "--example",
            "http_static",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!(
            "`cargo build --release --example resp --example http_static` failed ({status})"
        )),
    }
}

/// A running server.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Captured,
    /// Its process and its children (nginx's worker), for CPU time.
    pub pids: Vec<u32>,
    /// How long it may take to start, and to exit after SIGTERM.
    grace: Duration,
}

impl Server {
    /// Starts `spec` on a free port, pinned to `cpu`; returns once it
    /// answers a first request (`PING`, or a `GET` of the small file).
    pub fn start(spec: &Spec, site: &Site, cpu: Option<usize>) -> Result<Server, String> {
        Server::start_under(spec, site, cpu, &[])
    }

    /// [`Server::start`] under `wrap` (`valgrind ...`, `strace ...`): given
    /// a minute to start, and to write its data after SIGTERM.
    pub fn start_under(
        spec: &Spec,
        site: &Site,
        cpu: Option<usize>,
        wrap: &[String],
    ) -> Result<Server, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: cannot start: {e}", spec.name);
        let port = free_port().map_err(|e| fail(&e))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let at = addr.to_string();
        let mut cmd = match spec.kind {
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
                    .args(["--dir", &site.dir.path().display().to_string()]);
                c
            }
            Kind::Nginx => {
                let conf = site.dir.path().join(format!("nginx-{port}.conf"));
                std::fs::write(&conf, nginx_conf(site.dir.path(), &site.www, port))
                    .map_err(|e| fail(&e))?;
                let mut c = Command::new(which("nginx").unwrap_or_else(|| "nginx".into()));
                c.arg("-p").arg(site.dir.path()).arg("-c").arg(&conf);
                c.args(["-e", "stderr"]);
                c
            }
            Kind::Example(name, backend) => {
                let mut c = Command::new(example(name).map_err(|e| fail(&e))?);
                c.args(["--addr", &at, "--backend", backend])
                    .env("RUST_LOG", "warn");
                if name == "http_static" {
                    c.arg("--root").arg(&site.www).args(["--max-per-ip", "0"]);
                }
                c
            }
        };
        if let [tool, args @ ..] = wrap {
            let mut w = Command::new(tool);
            w.args(args).arg(cmd.get_program()).args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                v.map(|v| w.env(k, v));
            }
            cmd = w;
        }
        let (child, log) = spawn(&mut cmd, cpu).map_err(|e| fail(&e))?;
        let grace = Duration::from_secs(if wrap.is_empty() { 15 } else { 120 });
        let mut server = Server {
            pids: vec![child.id()],
            child,
            addr,
            log,
            grace,
        };
        server.wait_ready(spec).map_err(|e| fail(&e))?;
        server.pids.extend(children(server.child.id()));
        Ok(server)
    }

    fn wait_ready(&mut self, spec: &Spec) -> Result<(), String> {
        let deadline = Instant::now() + self.grace;
        let probe: &[u8] = match spec.family {
            Family::Redis => b"PING\r\n",
            Family::Http => b"HEAD /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        };
        let want: &[u8] = match spec.family {
            Family::Redis => b"+PONG",
            Family::Http => b"HTTP/1.1 200",
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}): {}", self.output()));
            }
            if let Ok(got) = exchange(self.addr, probe, want.len()) {
                if got.starts_with(want) {
                    return Ok(());
                }
                let got = String::from_utf8_lossy(&got).into_owned();
                return Err(format!("answered {got:?} to {probe:?}"));
            }
            if Instant::now() > deadline {
                let (addr, grace) = (self.addr, self.grace);
                return Err(format!(
                    "not answering on {addr} after {grace:?}: {}",
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running? Else what it said.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the server exited ({status}): {}", self.output())),
            Err(e) => Err(format!("the server: {e}")),
        }
    }

    /// What it printed, trimmed, on one line.
    pub fn output(&self) -> String {
        let l = self.log.now();
        l.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(400)
            .collect()
    }

    /// CPU time used so far by its processes, every thread: (total ns from
    /// schedstat, user s, system s from stat).
    pub fn cpu(&self) -> Cpu {
        self.pids
            .iter()
            .map(|&p| cpu_of(p))
            .fold(Cpu::default(), |a, b| Cpu {
                ns: a.ns + b.ns,
                user: a.user + b.user,
                sys: a.sys + b.sys,
            })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our own child leads.
        let pgid = self.child.id() as libc::pid_t;
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + self.grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above; whatever of the group is left (a worker) goes too.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Sends `probe` on a fresh connection and reads until `want` bytes came
/// (or the peer closed); every step bounded by a 2 s timeout.
pub fn exchange(addr: SocketAddr, probe: &[u8], want: usize) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(probe)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 << 10];
    while got.len() < want {
        match s.read(&mut buf)? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(got)
}

/// CPU time of a set of processes.
#[derive(Clone, Copy, Default, Debug)]
pub struct Cpu {
    /// Run time of every thread, ns (`/proc/PID/task/*/schedstat`).
    pub ns: u64,
    /// utime, seconds (`/proc/PID/stat`, clock ticks).
    pub user: f64,
    /// stime, seconds.
    pub sys: f64,
}

fn cpu_of(pid: u32) -> Cpu {
    let mut ns = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz;
    Cpu {
        ns,
        user: get(11), // fields 14 and 15 of proc(5); the slice starts at field 3
        sys: get(12),
    }
}

/// The direct children of `pid` (nginx's worker), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, r)| r.split_whitespace().nth(1));
            ppid == Some(&pid.to_string())
        })
        .collect()
}
