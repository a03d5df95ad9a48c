//! ioplex beside the servers users already run, driven by the tools they
//! already use: the `resp` example beside Redis under `redis-benchmark`,
//! `http_static` beside nginx (one worker) under `wrk`.
//!
//! ```text
//! cargo bench --bench peers -- --quick          # about 2 minutes: one round, short runs
//! cargo bench --bench peers                     # the full run: 5 rounds, about 10 minutes
//! cargo bench --bench peers -- --update         # the same, rewriting the committed report
//! cargo bench --bench peers -- --only http --rounds 3
//! cargo bench --bench peers -- --costs --update  # instructions and system calls per request
//! ```
//!
//! - Servers: `redis-server --save "" --appendonly no` and `nginx` with a
//!   config written into a temp dir (1 worker, `sendfile on`, no access log,
//!   `daemon off`), both from Debian's packages; `resp` and `http_static`
//!   (`RUST_LOG=warn`, `--max-per-ip 0`) on the mio and the io_uring
//!   backends. A missing tool (`redis-server`, `redis-benchmark`, `nginx`,
//!   `wrk`) is installed with `apt-get install -y`, or the run stops with
//!   an error naming it.
//! - Every server runs pinned to CPU 1, every load tool to CPU 0. A round
//!   starts the family's servers afresh, checks each answers right (the
//!   files byte for byte, a SET then GET), warms each up, then runs every
//!   workload on each server in turn (A, B, C, the order rotated per
//!   workload and round), so drift hits them all alike.
//! - Workloads: `redis-benchmark -t TEST -n 200000 -c 50 --csv` for each of
//!   ping_inline, ping_mbulk, set, get, incr, lpush, lpop, without and with
//!   `-P 16` (one test per run: the server CPU measured is that test's);
//!   `wrk -t 1 -c 50 -d 3s --latency` on a 1 KiB and a 1 MiB file (a run
//!   with a socket error, a non-2xx/3xx response or short bodies fails).
//! - Figures: requests/s (median, min–max over rounds; ratios to Redis or
//!   nginx taken within a round) and the server's CPU per request (its
//!   threads' run time over the tool's run, from schedstat, / requests).
//!
//! - `--costs`: each server under callgrind and strace instead, for user
//!   instructions and system calls per request (`costs.rs`), written to
//!   `peers-costs*.md` by the same rule.
//!
//! Results go to `benches/results/peers-new.{md,csv,svg}` (`-quick` for
//! `--quick`, `-partial` for `--only`), and only a full run given
//! `--update` rewrites the committed `peers.*` (`benches/shared/output.rs`).

mod costs;
#[path = "../shared/measure.rs"]
mod measure;
#[path = "../shared/output.rs"]
mod output;
mod report;
mod servers;
mod tools;

use servers::{Family, SERVERS, Server, Site, Spec};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A workload: one tool run against one server.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// `redis-benchmark -t TEST`, `-P PIPELINE` when above 1.
    Redis {
        /// redis-benchmark's test name.
        test: &'static str,
        /// Commands in flight per connection.
        pipeline: usize,
    },
    /// `wrk` on one of the files served.
    Http {
        /// The file's name.
        file: &'static str,
        /// Its size, bytes.
        size: usize,
    },
}

impl Load {
    /// The family it belongs to.
    pub fn family(&self) -> Family {
        match self {
            Load::Redis { .. } => Family::Redis,
            Load::Http { .. } => Family::Http,
        }
    }

    /// A short name: `GET`, `GET -P 16`, `1 KiB file`.
    pub fn label(&self) -> String {
        match *self {
            Load::Redis { test, pipeline: 1 } => test.to_uppercase(),
            Load::Redis { test, pipeline } => format!("{} -P {pipeline}", test.to_uppercase()),
            Load::Http { size, .. } if size >= 1 << 20 => format!("{} MiB file", size >> 20),
            Load::Http { size, .. } => format!("{} KiB file", size >> 10),
        }
    }

    /// The issue's target for its ratio to the peer.
    pub fn target(&self) -> f64 {
        match *self {
            Load::Redis { test, .. }
                if ["ping_inline", "ping_mbulk", "set", "get"].contains(&test) =>
            {
                1.0
            }
            Load::Redis { .. } => 0.9,
            Load::Http { size, .. } if size <= 1 << 10 => 1.0,
            Load::Http { .. } => 0.9,
        }
    }
}

/// The redis-benchmark tests, in the order it runs them (LPOP pops what LPUSH pushed).
const TESTS: [&str; 7] = [
    "ping_inline",
    "ping_mbulk",
    "set",
    "get",
    "incr",
    "lpush",
    "lpop",
];

/// Every workload, in run order.
pub fn workloads() -> Vec<Load> {
    let mut v = Vec::new();
    for pipeline in [1, 16] {
        v.extend(TESTS.map(|test| Load::Redis { test, pipeline }));
    }
    v.extend(servers::FILES.map(|(file, size)| Load::Http { file, size }));
    v
}

/// The run's settings.
pub struct Opts {
    /// `--quick`: one round, short runs.
    pub quick: bool,
    /// Rounds.
    pub rounds: usize,
    /// The families run (`--only`).
    pub families: Vec<Family>,
    /// Requests per redis-benchmark run.
    pub requests: u64,
    /// Seconds per wrk run.
    pub secs: u64,
    /// Where the report goes and its file stem.
    pub out: PathBuf,
    /// See `output.rs`.
    pub stem: String,
    /// The command line, for the report.
    pub command: String,
    /// `--costs`: instructions and system calls per request instead.
    pub costs: bool,
}

/// One measurement.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Requests per second, as the tool reported it.
    pub rps: f64,
    /// Requests the tool counted.
    pub requests: u64,
    /// Server CPU per request, µs (run time of its threads).
    pub cpu_us: f64,
    /// System time's share of the server's CPU (utime/stime, clock ticks).
    pub sys_share: f64,
    /// Server CPU over the wall time of the run.
    pub busy: f64,
    /// The tool's median and 99th percentile latency, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// The load tool's CPU over wall time (near 1.0: it set the pace).
    pub tool_busy: f64,
}

/// One workload on one server in one round.
pub struct Run {
    /// From 0.
    pub round: usize,
    /// Index into [`workloads`].
    pub workload: usize,
    /// The server's name.
    pub server: &'static str,
    /// The figures, or why there are none.
    pub result: Result<Sample, String>,
}

const USAGE: &str = "usage: cargo bench --bench peers -- [--quick] [--rounds N] [--only redis|http] [--update] [--out DIR] [--costs]";

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let (mut quick, mut update, mut rounds, mut only, mut out) = (false, false, None, None, None);
    let mut costs = false;
    let mut it = args.iter().skip(1).filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => quick = true,
            "--update" => update = true,
            "--costs" => costs = true,
            "--rounds" => {
                rounds = Some(
                    value()?
                        .parse::<usize>()
                        .map_err(|e| format!("--rounds: {e}"))?,
                )
            }
            "--only" => {
                only = Some(match value()?.as_str() {
                    "redis" => Family::Redis,
                    "http" => Family::Http,
                    v => return Err(format!("--only {v}: redis or http")),
                })
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("Measures resp and http_static beside Redis and nginx.\n{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if rounds == Some(0) {
        return Err("--rounds must be at least 1".into());
    }
    let name = if costs { "peers-costs" } else { "peers" };
    let stem = output::stem(name, update, quick, only.is_some())?;
    let command = measure::command("peers", args);
    Ok(Opts {
        quick,
        rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
        families: only.map_or(vec![Family::Redis, Family::Http], |f| vec![f]),
        requests: if quick { 20_000 } else { 200_000 },
        secs: if quick { 1 } else { 3 },
        out: out
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results")),
        stem,
        command,
        costs,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opts = parse_opts(&args).unwrap_or_else(|e| {
        eprintln!("peers: {e}\n{USAGE}");
        std::process::exit(2);
    });
    if let Err(e) = drive(&opts) {
        eprintln!("peers: {e}");
        std::process::exit(1);
    }
}

/// CPUs for the servers and the load tools (none on a one-CPU machine).
fn cpus() -> (Option<usize>, Option<usize>) {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        2.. => (Some(1), Some(0)),
        _ => (None, None),
    }
}

fn drive(opts: &Opts) -> Result<(), String> {
    servers::ensure_tools(&opts.families)?;
    servers::build_examples()?;
    let env = report::Env::now();
    let (server_cpu, load_cpu) = cpus();
    if let Some(c) = load_cpu {
        measure::pin(0, c).map_err(|e| format!("cannot pin to CPU {c}: {e}"))?;
    }
    let site = Site::new().map_err(|e| format!("cannot write the files served: {e}"))?;
    if opts.costs {
        return write_costs(opts, &env, &site, server_cpu);
    }
    let all = workloads();
    let started = Instant::now();
    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        for &family in &opts.families {
            let specs: Vec<&Spec> = SERVERS.iter().filter(|s| s.family == family).collect();
            eprintln!("round {}/{}: {family:?}", round + 1, opts.rounds);
            let mut up: Vec<Result<Server, String>> = specs
                .iter()
                .map(|s| {
                    Server::start(s, &site, server_cpu).and_then(|mut srv| {
                        check(&mut srv, s, &site, opts, load_cpu)?;
                        Ok(srv)
                    })
                })
                .collect();
            for (wi, load) in all.iter().enumerate().filter(|(_, l)| l.family() == family) {
                let n = specs.len();
                for k in 0..n {
                    let i = (k + round + wi) % n;
                    let result = match &mut up[i] {
                        Ok(srv) => measure(srv, load, opts, load_cpu),
                        Err(e) => Err(e.clone()),
                    };
                    if let Err(e) = &result {
                        eprintln!("  {} {}: {e}", specs[i].name, load.label());
                    }
                    runs.push(Run {
                        round,
                        workload: wi,
                        server: specs[i].name,
                        result,
                    });
                }
            }
        }
    }
    let env = env.finish(started.elapsed());
    for f in
        report::write(opts, &env, &all, &runs).map_err(|e| format!("writing the report: {e}"))?
    {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `--costs`: the table of `costs.rs`, printed and written to `peers-costs*.md`.
fn write_costs(
    opts: &Opts,
    env: &report::Env,
    site: &Site,
    cpu: Option<usize>,
) -> Result<(), String> {
    let table = costs::run(&opts.families, site, cpu)?;
    let md = format!(
        "# Where a request's time goes: resp and http_static beside Redis and nginx\n\n\
         Made by: `{}`\n\n{}\n\n{}",
        opts.command,
        env.machine(),
        table
    );
    println!("{md}");
    let path = opts.out.join(format!("{}.md", opts.stem));
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A fresh server answers right (a SET then GET; each file byte for byte),
/// then is warmed up.
fn check(
    srv: &mut Server,
    spec: &Spec,
    site: &Site,
    opts: &Opts,
    cpu: Option<usize>,
) -> Result<(), String> {
    let fail = |e: String| format!("{}: {e}", spec.name);
    match spec.family {
        Family::Redis => {
            let ask = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            let want = b"+OK\r\n$1\r\nv\r\n";
            let got =
                servers::exchange(srv.addr, ask, want.len()).map_err(|e| fail(e.to_string()))?;
            if got != want {
                return Err(fail(format!(
                    "SET k v, GET k answered {:?}",
                    String::from_utf8_lossy(&got)
                )));
            }
            let warm = if opts.quick { 5_000 } else { 50_000 };
            tools::redis_benchmark(srv.addr, "ping_inline", warm, 1, cpu).map_err(fail)?;
        }
        Family::Http => {
            for (name, _) in servers::FILES {
                let body = site.file(name).map_err(|e| fail(e.to_string()))?;
                let ask =
                    format!("GET /{name} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
                let got = servers::exchange(srv.addr, ask.as_bytes(), usize::MAX)
                    .map_err(|e| fail(e.to_string()))?;
                let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
                let ok = got.starts_with(b"HTTP/1.1 200 ")
                    && head_end.is_some_and(|h| got[h..] == body[..]);
                if !ok {
                    let head =
                        String::from_utf8_lossy(&got[..head_end.unwrap_or(got.len()).min(300)])
                            .into_owned();
                    return Err(fail(format!(
                        "GET /{name}: not a 200 with the file's {} bytes: {head:?}",
                        body.len()
                    )));
                }
            }
            tools::wrk(srv.addr, servers::FILES[0].0, servers::FILES[0].1, 1, cpu).map_err(fail)?;
        }
    }
    srv.check_alive().map_err(fail)
}

/// One tool run against a running server, its CPU sampled around it.
fn measure(
    srv: &mut Server,
    load: &Load,
    opts: &Opts,
    cpu: Option<usize>,
) -> Result<Sample, String> {
    let (c0, t0) = (srv.cpu(), Instant::now());
    let got = match *load {
        Load::Redis { test, pipeline } => {
            tools::redis_benchmark(srv.addr, test, opts.requests, pipeline, cpu)
        }
        Load::Http { file, size } => tools::wrk(srv.addr, file, size, opts.secs, cpu),
    };
    let (c1, wall) = (srv.cpu(), t0.elapsed());
    srv.check_alive()?;
    let got = got?;
    let requests = got.requests.max(1) as f64;
    let (user, sys) = (c1.user - c0.user, c1.sys - c0.sys);
    let ns = c1.ns.saturating_sub(c0.ns) as f64;
    Ok(Sample {
        rps: got.rps,
        requests: got.requests,
        cpu_us: ns / 1e3 / requests,
        sys_share: if user + sys > 0.0 {
            sys / (user + sys)
        } else {
            0.0
        },
        busy: ns / 1e9 / wall.max(Duration::from_micros(1)).as_secs_f64(),
        p50_ms: got.p50_ms,
        p99_ms: got.p99_ms,
        tool_busy: got.tool_busy,
    })
}
