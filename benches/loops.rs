//! One loop per core, scaled: an echo `Server` of 1, 2, … nproc loops
//! under the compare bench's workloads 1 (50 connections, 1 message in
//! flight, 64 B) and 4 (1,000 connections), with msgs/s, the server's CPU
//! per message and how the connections and messages spread over the loops.
//!
//! ```text
//! cargo bench --bench loops                                  # 1..nproc loops, 3 rounds
//! cargo bench --bench loops -- --rounds 1 --measure 1        # a quick look
//! cargo bench --bench loops -- --distribution reuseport --loops 2
//! ```
//!
//! The server runs in this process, the load generator (compare's
//! `load.rs`, one thread) beside it; nothing is pinned. Server CPU is the
//! process's CPU time minus the load generator thread's
//! (`getrusage`), over the measured window. On a machine with as many
//! cores as loops the load generator shares them: throughput scaling
//! needs more cores than loops + load generator; CPU per message and the
//! balance are what such a run shows. Results go where
//! `benches/shared/output.rs` says: `benches/results/loops-new.md`, or
//! `loops-partial.md` with `--loops` or `--distribution`; only a full run
//! with `--update` rewrites the committed `loops.md` (`--out DIR` elsewhere).

#[allow(dead_code)]
#[path = "compare/load.rs"]
mod load;
#[path = "shared/output.rs"]
mod output;
#[allow(dead_code)]
#[path = "compare/servers.rs"]
mod servers;
#[path = "compare/uring.rs"]
#[allow(dead_code)]
mod uring;

use ioplex::{Distribution, Server};
use servers::{Echo, ioplex_config};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const WORKLOADS: [(usize, &str, load::Spec); 2] = [
    (1, "50 connections, 1 in flight, 64 B", spec(50)),
    (4, "1,000 connections, 1 in flight, 64 B", spec(1000)),
];

const fn spec(conns: usize) -> load::Spec {
    load::Spec {
        conns,
        inflight: 1,
        size: 64,
        churn: false,
        idle: 0,
    }
}

/// One measurement.
struct Sample {
    msgs_s: f64,
    /// Server CPU (user + system) per message, µs.
    cpu_us: f64,
    /// Server CPU over wall time.
    busy: f64,
    /// Each loop's share of the connections, %.
    conns: Vec<f64>,
    /// Each loop's share of the bytes read in the window, %.
    msgs: Vec<f64>,
    /// Returns from the backend's wait per message, all loops together.
    wakeups: f64,
}

/// CPU seconds (user + system) of the process and of the calling thread.
fn cpu() -> (f64, f64) {
    let of = |who| {
        // SAFETY: getrusage fills a local struct.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut ru);
            ru
        };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    };
    (of(libc::RUSAGE_SELF), of(libc::RUSAGE_THREAD))
}

fn measure(
    loops: usize,
    spec: load::Spec,
    d: Distribution,
    warmup: Duration,
    window: Duration,
) -> Result<Sample, String> {
    let mut server = Server::new(ioplex_config(), loops).map_err(|e| e.to_string())?;
    server.distribution(d);
    let addr = server.listen("127.0.0.1:0").map_err(|e| e.to_string())?;
    let (handle, metrics) = (server.handle(), server.metrics());
    let join = std::thread::Builder::new()
        .name("ioplex-loop-0".into())
        .spawn(move || server.run(|_| Echo))
        .map_err(|e| e.to_string())?;
    let mut marks = Vec::new();
    let out = load::run(addr, spec, warmup, window, &mut |phase| {
        marks.push((phase, Instant::now(), cpu(), metrics.per_loop()));
    });
    handle.stop();
    let ran = join
        .join()
        .map_err(|_| "the server thread panicked".to_owned())?;
    ran.map_err(|e| e.to_string())?;
    let out = out.map_err(|e| e.to_string())?;
    let find = |p| marks.iter().find(|m| m.0 == p);
    let (Some(a), Some(b)) = (
        find(load::Phase::MeasureStart),
        find(load::Phase::MeasureEnd),
    ) else {
        return Err("the measured window was not reached".into());
    };
    let server_cpu = (b.2.0 - b.2.1) - (a.2.0 - a.2.1);
    let wall = b.1.duration_since(a.1).as_secs_f64();
    let msgs = out.msgs.max(1) as f64;
    let delta: Vec<ioplex::Snapshot> = b.3.iter().zip(&a.3).map(|(x, y)| x.since(y)).collect();
    let share = |v: Vec<f64>| {
        let sum: f64 = v.iter().sum::<f64>().max(1.0);
        v.iter().map(|x| 100.0 * x / sum).collect()
    };
    Ok(Sample {
        msgs_s: out.msgs as f64 / out.elapsed.as_secs_f64(),
        cpu_us: server_cpu / msgs * 1e6,
        busy: server_cpu / wall,
        conns: share(b.3.iter().map(|m| m.accepted as f64).collect()),
        msgs: share(delta.iter().map(|m| m.bytes_in as f64).collect()),
        wakeups: delta.iter().map(|m| m.wakeups).sum::<u64>() as f64 / msgs,
    })
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let num = |name, default: f64| {
        flag(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = num("--rounds", 3.0) as usize;
    let warmup = Duration::from_secs_f64(num("--warmup", 0.5));
    let window = Duration::from_secs_f64(num("--measure", 2.0));
    let loops: Vec<usize> = flag(&args, "--loops").map_or_else(
        || (1..=nproc).collect(),
        |v| v.split(',').filter_map(|n| n.parse().ok()).collect(),
    );
    let d = match flag(&args, "--distribution") {
        None | Some("least-loaded") => Distribution::LeastLoaded,
        Some("round-robin") => Distribution::RoundRobin,
        Some("reuseport") => Distribution::ReusePort,
        Some(other) => {
            eprintln!(
                "loops: unknown --distribution {other:?}: least-loaded, round-robin or reuseport"
            );
            std::process::exit(2);
        }
    };
    let partial = flag(&args, "--loops").is_some() || flag(&args, "--distribution").is_some();
    let update = args.iter().any(|a| a == "--update");
    let stem = output::stem("loops", update, false, partial).unwrap_or_else(|e| {
        eprintln!("loops: {e}");
        std::process::exit(2);
    });
    let out = flag(&args, "--out").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results"),
        std::path::PathBuf::from,
    );
    let mut samples: Vec<(usize, usize, Sample)> = Vec::new();
    for round in 0..rounds {
        for &(w, _, spec) in &WORKLOADS {
            for k in 0..loops.len() {
                let n = loops[(k + round) % loops.len()]; // rotated: none always first
                match measure(n, spec, d, warmup, window) {
                    Ok(s) => samples.push((w, n, s)),
                    Err(e) => eprintln!("round {} workload {w}, {n} loops: {e}", round + 1),
                }
            }
        }
    }
    let report = report(&samples, &loops, d, nproc, rounds, window);
    print!("{report}");
    let path = out.join(format!("{stem}.md"));
    match std::fs::create_dir_all(&out).and_then(|_| std::fs::write(&path, &report)) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("loops: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

fn report(
    samples: &[(usize, usize, Sample)],
    loops: &[usize],
    d: Distribution,
    nproc: usize,
    rounds: usize,
    window: Duration,
) -> String {
    let mut s = String::new();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let command = match args.is_empty() {
        true => "cargo bench --bench loops".to_owned(),
        false => format!("cargo bench --bench loops -- {}", args.join(" ")),
    };
    let _ = writeln!(
        s,
        "# One loop per core: an echo `Server` of 1..{nproc} loops\n"
    );
    let _ = writeln!(
        s,
        "Made by `{command}` on {nproc} CPUs ({d:?}; {rounds} rounds of {window:?}, \
         medians). Server and load generator share the CPUs, unpinned: **throughput scaling needs \
         more cores than loops + load generator, which this machine does not have**; the server's \
         CPU per message and the balance over the loops are what it shows.\n"
    );
    for &(w, title, _) in &WORKLOADS {
        let _ = writeln!(s, "## Workload {w}: {title}\n");
        let _ = writeln!(
            s,
            "| loops | msgs/s | server CPU µs/msg | × 1 loop | server busy | wake-ups/msg | connections per loop | messages per loop |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---|---|");
        let of = |n: usize| {
            samples
                .iter()
                .filter(move |x| x.0 == w && x.1 == n)
                .map(|x| &x.2)
        };
        let base = median(of(1).map(|x| x.cpu_us).collect());
        for &n in loops {
            let got: Vec<&Sample> = of(n).collect();
            if got.is_empty() {
                continue;
            }
            let cpu = median(got.iter().map(|x| x.cpu_us).collect());
            let spread = |f: &dyn Fn(&Sample) -> &Vec<f64>| {
                let per: Vec<String> = (0..n)
                    .map(|i| format!("{:.0} %", median(got.iter().map(|x| f(x)[i]).collect())))
                    .collect();
                per.join(" / ")
            };
            let _ = writeln!(
                s,
                "| {n} | {:.0} | {cpu:.2} | {:.2} | {:.0} % | {:.3} | {} | {} |",
                median(got.iter().map(|x| x.msgs_s).collect()),
                cpu / base,
                100.0 * median(got.iter().map(|x| x.busy).collect()),
                median(got.iter().map(|x| x.wakeups).collect()),
                spread(&|x| &x.conns),
                spread(&|x| &x.msgs),
            );
        }
        s.push('\n');
    }
    s
}
