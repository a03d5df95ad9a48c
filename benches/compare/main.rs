//! ioplex against its peers, side by side, in one run.
//!
//! ```text
//! cargo bench --bench compare -- --quick     # under 2 minutes
//! cargo bench --bench compare                # the full run, under 15 minutes
//! cargo bench --bench compare -- --servers ioplex,epoll --workloads 1,2 --rounds 5
//! cargo bench --bench compare -- --servers ioplex --workloads 1 --rounds 1 \
//!     --wrap "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p"
//! ```
//!
//! Every server runs as its own process pinned to CPU 1 (the load
//! generator, in this process, is pinned to CPU 0), a fresh process for
//! every measurement; `ioplex-2loops` (a `Server` of 2 loops) and its
//! like-for-like base `ioplex-1loop` are not pinned, so their loops share
//! both CPUs with the load generator. Rounds repeat the whole grid, servers interleaved,
//! so that drift on a shared machine hits all of them alike; every figure
//! is reported as the median over rounds, and ratios (to the raw epoll
//! baseline and to tokio current-thread) are taken within each round.
//! Churn (workload 5) connects from rotating source addresses in
//! 127.1.0.0/16 (see `load.rs`): every connection stays on loopback.
//! Results go to `benches/results/compare-new.{md,csv,svg}` (`-quick` for
//! `--quick`; `-partial` for part of the grid, `--servers`, `--workloads`,
//! or a run under `--wrap`); only a full run with `--update` rewrites the
//! committed `compare.*` (the rule of `benches/shared/output.rs`; `--out DIR`
//! for another directory). `--replot` redraws `compare.svg` from the
//! committed `compare.csv` without measuring anything.

mod load;
#[path = "../shared/measure.rs"]
mod measure;
#[path = "../shared/output.rs"]
mod output;
mod report;
mod servers;
mod uring;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// One workload of the issue, numbered as there.
#[derive(Clone, Copy)]
pub struct Workload {
    /// 1-based, as in the issue.
    pub id: usize,
    /// What it is, for the report.
    pub title: &'static str,
    /// Its shape.
    pub spec: load::Spec,
}

impl Workload {
    /// A short name for a chart's axis, from the shape: `50 conns · 64 B`,
    /// `pipelined ×16`, `churn · 64 B`, `50 conns + 10,000 idle`, …
    pub fn label(&self) -> String {
        let s = self.spec;
        let n = |v: usize| match v {
            1000.. => format!("{},{:03}", v / 1000, v % 1000),
            _ => v.to_string(),
        };
        let size = match s.size {
            1024.. => format!("{} KiB", s.size >> 10),
            _ => format!("{} B", s.size),
        };
        match () {
            _ if s.churn => format!("churn · {size}"),
            _ if s.idle > 0 => format!("{} conns + {} idle", n(s.conns), n(s.idle)),
            _ if s.inflight > 1 => format!("pipelined ×{}", s.inflight),
            _ => format!("{} conns · {size}", n(s.conns)),
        }
    }
}

const fn spec(conns: usize, inflight: usize, size: usize, churn: bool, idle: usize) -> load::Spec {
    load::Spec {
        conns,
        inflight,
        size,
        churn,
        idle,
    }
}

/// Idle connections in workload 6.
const IDLE: usize = 10_000;

/// The six workloads of the issue.
pub const WORKLOADS: [Workload; 6] = [
    Workload {
        id: 1,
        title: "50 connections, 1 in flight, 64 B (latency-bound)",
        spec: spec(50, 1, 64, false, 0),
    },
    Workload {
        id: 2,
        title: "50 connections, 16 in flight, 64 B (pipelined)",
        spec: spec(50, 16, 64, false, 0),
    },
    Workload {
        id: 3,
        title: "50 connections, 1 in flight, 16 KiB (copy-bound)",
        spec: spec(50, 1, 16 << 10, false, 0),
    },
    Workload {
        id: 4,
        title: "1,000 connections, 1 in flight, 64 B",
        spec: spec(1000, 1, 64, false, 0),
    },
    Workload {
        id: 5,
        title: "churn: connect, one 64 B echo, close (50 at a time); msgs = connections",
        spec: spec(50, 1, 64, true, 0),
    },
    Workload {
        id: 6,
        title: "workload 1 with 10,000 idle connections open on the side",
        spec: spec(50, 1, 64, false, IDLE),
    },
];

/// Every server compared, in report order: the Rust ones, then the notes' Python ones.
pub const SERVERS: [&str; 14] = [
    "ioplex",
    "ioplex-uring",
    "ioplex-1loop",
    "ioplex-2loops",
    "epoll",
    "mio",
    "uring",
    "monoio",
    "tokio-ct",
    "tokio-mt",
    "threads",
    "py-select",
    "py-selectors",
    "py-asyncio",
];

/// The servers run unpinned: `ioplex-1loop`, `ioplex-2loops`, …
pub fn unpinned(name: &str) -> bool {
    name.starts_with("ioplex-") && name.contains("loop")
}

fn python_script(name: &str) -> Option<&'static str> {
    match name {
        "py-select" => Some("select_server.py"),
        "py-selectors" => Some("selectors_server.py"),
        "py-asyncio" => Some("asyncio_server.py"),
        _ => None,
    }
}

/// The run's settings, from the command line.
pub struct Opts {
    /// `--quick`.
    pub quick: bool,
    /// A subset of the grid or a wrapped (profiled) run: its report goes
    /// to `compare-partial.*`, never over the committed full report.
    pub partial: bool,
    /// The report's file stem (`compare`, `compare-new`, …; see `output.rs`).
    pub stem: String,
    /// Rounds over the whole grid.
    pub rounds: usize,
    /// Warm-up before each measured window.
    pub warmup: Duration,
    /// Length of each measured window.
    pub measure: Duration,
    /// Servers to run.
    pub servers: Vec<String>,
    /// Workloads to run (1-based ids).
    pub workloads: Vec<usize>,
    /// Where the report goes.
    pub out: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// `--wrap "CMD ARGS"`: run each server under this command (a
    /// profiler); CPU and RSS figures are then the wrapper process's.
    pub wrap: Vec<String>,
}

/// What one measurement produced.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages (churn: connections) per second.
    pub msgs_s: f64,
    /// Payload megabytes (10^6) per second, one way.
    pub mb_s: f64,
    /// Latency percentiles, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// 99.9th percentile, µs.
    pub p999: f64,
    /// Server user CPU per message, µs.
    pub user_us: f64,
    /// Server system CPU per message, µs.
    pub sys_us: f64,
    /// Server CPU time over wall time in the measured window.
    pub server_busy: f64,
    /// Load generator CPU time over wall time in the measured window.
    pub client_busy: f64,
    /// Growth of the server's RSS from start to the end of the window, per connection held.
    pub rss_per_conn: f64,
    /// System calls per message over the window, from an ioplex server's
    /// own counters (NaN for the others).
    pub syscalls_msg: f64,
}

/// One cell of the grid in one round.
pub struct Run {
    /// Round, from 0.
    pub round: usize,
    /// Workload id.
    pub workload: usize,
    /// Server name.
    pub server: String,
    /// Stats, or why there are none (error or skip).
    pub result: Result<Stats, String>,
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let imp = args.get(i + 1).map_or("", String::as_str);
        let port = flag(&args, "--port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if let Err(e) = servers::serve(imp, port) {
            eprintln!("server {imp}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = parse_opts(&args);
    if args.iter().any(|a| a == "--replot") {
        match report::replot(&opts.out) {
            Ok(svg) => println!("wrote {}", svg.display()),
            Err(e) => {
                eprintln!("compare --replot: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = drive(&opts) {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn parse_opts(args: &[String]) -> Opts {
    let quick = args.iter().any(|a| a == "--quick");
    let secs = |name: &str, default: f64| {
        Duration::from_secs_f64(
            flag(args, name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default),
        )
    };
    let list =
        |name: &str| flag(args, name).map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>());
    let command = measure::command("compare", args);
    let partial = ["--servers", "--workloads", "--wrap"]
        .iter()
        .any(|f| flag(args, f).is_some());
    let update = args.iter().any(|a| a == "--update");
    let stem = output::stem("compare", update, quick, partial).unwrap_or_else(|e| {
        eprintln!("compare: {e}");
        std::process::exit(2);
    });
    Opts {
        quick,
        partial,
        stem,
        rounds: flag(args, "--rounds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        warmup: secs("--warmup", if quick { 0.1 } else { 0.5 }),
        measure: secs("--measure", if quick { 0.25 } else { 2.5 }),
        servers: list("--servers")
            .unwrap_or_else(|| SERVERS.iter().map(|s| s.to_string()).collect()),
        workloads: list("--workloads")
            .map(|v| v.iter().filter_map(|w| w.parse().ok()).collect())
            .unwrap_or_else(|| WORKLOADS.iter().map(|w| w.id).collect()),
        out: flag(args, "--out").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results"),
            PathBuf::from,
        ),
        command,
        wrap: flag(args, "--wrap").map_or_else(Vec::new, |w| {
            w.split_whitespace().map(str::to_owned).collect()
        }),
    }
}

/// Raises the soft fd limit to the hard one; returns the soft limit in force.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

/// A server process under test.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// `counters SYSCALLS BYTES_IN` lines an ioplex server printed on SIGHUP.
    counters: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Server {
    fn start(name: &str, cpu: Option<usize>, wrap: &[String]) -> io::Result<Server> {
        let mut argv: Vec<std::ffi::OsString> = wrap.iter().map(Into::into).collect();
        match python_script(name) {
            Some(script) => {
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/compare/python");
                argv.push("python3".into());
                argv.push(dir.join(script).into());
                argv.push("0".into()); // the scripts take the port as their argument
            }
            None => {
                argv.push(std::env::current_exe()?.into());
                argv.extend(["--serve", name, "--port", "0"].map(Into::into));
            }
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpu) = cpu {
            // SAFETY: only sched_setaffinity, which is async-signal-safe, runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || measure::pin(0, cpu));
            }
        }
        let mut child = cmd.spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                keep.lock().unwrap_or_else(|e| e.into_inner()).push_str(&s);
            });
        }
        let out = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Mutex::new(Vec::new()));
        let kept = counters.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep the pipe drained; keep what ioplex's SIGHUP prints.
            for line in lines.map_while(Result::ok) {
                let mut w = line.split_whitespace();
                if let (Some("counters"), Some(Ok(a)), Some(Ok(b))) =
                    (w.next(), w.next().map(str::parse), w.next().map(str::parse))
                {
                    kept.lock().unwrap_or_else(|e| e.into_inner()).push((a, b));
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(Ok(line))) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                let err = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(io::Error::other(format!(
                    "{name} did not say `listening on ADDR`: {}",
                    err.trim()
                )));
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("{name}: unexpected first line {line:?}")))?;
        Ok(Server {
            child,
            addr,
            stderr,
            counters,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a `--wrap` profiler writes its data then), SIGKILL after 5 s.
    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let err = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        err.trim().chars().take(300).collect()
    }
}

/// utime and stime of a process (all its threads, live and dead), in seconds.
fn cpu_times(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz;
    (get(11), get(12)) // fields 14 and 15 of proc(5); `rest` starts at field 3
}

/// Resident set size of a process, bytes.
fn rss(pid: u32) -> f64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64
}

/// CPU time of the calling thread (the load generator), seconds.
fn own_cpu() -> f64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

fn skip_reason(server: &str, w: &Workload, fd_limit: u64) -> Option<String> {
    if w.spec.idle > 0 && fd_limit < (w.spec.idle + w.spec.conns + 200) as u64 {
        return Some(format!(
            "SKIPPED: the fd limit is {fd_limit} and could not be raised to hold {} idle connections",
            w.spec.idle
        ));
    }
    if server == "py-select" && w.spec.idle > 0 {
        return Some("skipped: select(2) cannot watch fds >= 1024 (FD_SETSIZE)".to_owned());
    }
    None
}

/// A sample at a phase: when, server (utime, stime), own CPU, server RSS.
type Mark = (load::Phase, Instant, (f64, f64), f64, f64);

/// One measurement: a fresh server, the load, the samples around it.
fn measure_one(name: &str, w: &Workload, opts: &Opts, cpu: Option<usize>) -> Result<Stats, String> {
    let server = Server::start(name, cpu, &opts.wrap).map_err(|e| e.to_string())?;
    let pid = server.pid();
    let rss0 = rss(pid);
    let mut marks: Vec<Mark> = Vec::new();
    // An ioplex server prints its loops' counters on SIGHUP: at both ends of the window.
    let counted = name.starts_with("ioplex") && opts.wrap.is_empty();
    let result = load::run(
        server.addr,
        w.spec,
        opts.warmup,
        opts.measure,
        &mut |phase| {
            marks.push((phase, Instant::now(), cpu_times(pid), own_cpu(), rss(pid)));
            if counted && matches!(phase, load::Phase::MeasureStart | load::Phase::MeasureEnd) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
            }
        },
    );
    let syscalls_msg = match counted {
        true => syscalls_per_msg(&server, w.spec.size),
        false => f64::NAN,
    };
    let err = server.stop();
    let out = result.map_err(|e| {
        if err.is_empty() {
            e.to_string()
        } else {
            format!("{e} (server stderr: {err})")
        }
    })?;
    let find = |p| marks.iter().find(|m| m.0 == p).cloned();
    let (Some(a), Some(b)) = (
        find(load::Phase::MeasureStart),
        find(load::Phase::MeasureEnd),
    ) else {
        return Err("measured window not reached".to_owned());
    };
    let wall = b.1.duration_since(a.1).as_secs_f64().max(1e-9);
    let msgs = out.msgs.max(1) as f64;
    let held = (w.spec.conns + w.spec.idle) as f64;
    let q = |p: f64| out.hist.value_at_quantile(p) as f64 / 1e3;
    Ok(Stats {
        msgs_s: out.msgs as f64 / out.elapsed.as_secs_f64(),
        mb_s: out.bytes as f64 / out.elapsed.as_secs_f64() / 1e6,
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        user_us: (b.2.0 - a.2.0) / msgs * 1e6,
        sys_us: (b.2.1 - a.2.1) / msgs * 1e6,
        server_busy: (b.2.0 + b.2.1 - a.2.0 - a.2.1) / wall,
        client_busy: (b.3 - a.3) / wall,
        rss_per_conn: (b.4 - rss0).max(0.0) / held,
        syscalls_msg,
    })
}

/// System calls per message between the two SIGHUPs of a window: each
/// prints a line per loop, start lines first.
fn syscalls_per_msg(server: &Server, size: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let lines = server
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if lines.len() >= 2 && lines.len() % 2 == 0 {
            let (start, end) = lines.split_at(lines.len() / 2);
            let sum = |l: &[(u64, u64)]| l.iter().fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
            let ((s0, b0), (s1, b1)) = (sum(start), sum(end));
            let msgs = (b1.saturating_sub(b0) as f64 / size as f64).max(1.0);
            return s1.saturating_sub(s0) as f64 / msgs;
        }
        if Instant::now() > deadline {
            return f64::NAN;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drive(opts: &Opts) -> io::Result<()> {
    let fd_limit = raise_fd_limit();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (client_cpu, server_cpu) = if cpus >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    if let Some(c) = client_cpu {
        measure::pin(0, c)?;
    }
    let workloads: Vec<Workload> = WORKLOADS
        .iter()
        .filter(|w| opts.workloads.contains(&w.id))
        .copied()
        .collect();
    for w in &workloads {
        if w.spec.idle > 0 && fd_limit < (w.spec.idle + w.spec.conns + 200) as u64 {
            eprintln!(
                "!!! workload {} SKIPPED: the fd limit is {fd_limit}; it needs {} (raise `ulimit -Hn`)",
                w.id,
                w.spec.idle + w.spec.conns + 200
            );
        }
    }
    let total = (opts.rounds * workloads.len() * opts.servers.len()) as u64;
    let bar = ProgressBar::new(total);
    if std::env::var_os("CI").is_some() || !io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        for w in &workloads {
            // Rotate the order each round: no server always runs first or last.
            let n = opts.servers.len();
            for k in 0..n {
                let name = &opts.servers[(k + round) % n];
                bar.set_message(format!("round {} workload {} {name}", round + 1, w.id));
                let result = match skip_reason(name, w, fd_limit) {
                    Some(why) => Err(why),
                    // Two loops pinned to one CPU would be one core time-sliced:
                    // they may use both (sharing CPU 0 with the load generator),
                    // and so may `ioplex-1loop`, the like-for-like base for them.
                    None if unpinned(name) => measure_one(name, w, opts, None),
                    None => measure_one(name, w, opts, server_cpu),
                };
                if let Err(e) = &result {
                    if !e.starts_with("skipped") {
                        bar.suspend(|| {
                            eprintln!("round {} workload {} {name}: {e}", round + 1, w.id)
                        });
                    }
                }
                runs.push(Run {
                    round,
                    workload: w.id,
                    server: name.clone(),
                    result,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let env = report::Env {
        cpus,
        pinned: client_cpu.is_some(),
        fd_limit,
        wall: started.elapsed(),
        load_before: load_before.trim().to_owned(),
        load_after: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let files = report::write(opts, &env, &workloads, &runs)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
