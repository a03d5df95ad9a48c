//! What one wake-up costs beside 10, 100, 1,000 and 10,000 idle connections,
//! per backend: the round trip of one active client and the server's CPU per
//! wake-up (`getrusage(RUSAGE_THREAD)` of the loop thread), as ratios, plus
//! system calls per message from the loop's counters, checked with `strace -c`.
//!
//! One command (it raises the fd soft limit itself):
//! ```text
//! cargo bench --bench scaling                 # writes scaling-new.{md,svg}
//! cargo bench --bench scaling -- --update     # rewrites the committed scaling.{md,svg}
//! cargo bench --bench scaling -- --quick      # a minute: one run, 10 and 100 idle
//! ```
//! Files follow the rule of `benches/shared/output.rs`: a run writes beside
//! the committed report (`scaling-new.*`, `scaling-quick.*`, ignored by git)
//! and only a full run with `--update` rewrites `benches/results/scaling.*`.
//! Each server runs in a child process (this binary, re-executed) so the
//! client's and the server's descriptors do not share one fd table; `select`
//! stops at 1,000 idle connections, since it cannot watch fd 1024.

#[allow(dead_code)]
#[path = "../examples/idle_scaling/main.rs"]
mod idle_scaling;
#[path = "shared/output.rs"]
mod output;

use idle_scaling::{Sample, measure, raise_fd_limit, serve, spawn_server};
use ioplex::Backend;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::process::{Child, Command};
use std::time::Duration;

const SERVE: &str = "IOPLEX_SCALING_SERVE";
const BACKENDS: [&str; 4] = ["mio", "epoll", "poll", "select"];
const IDLE: [usize; 4] = [10, 100, 1_000, 10_000];
const REPEATS: usize = 5;

/// How much a run measures: the full sweep, or `--quick`'s look.
struct Plan {
    idle: &'static [usize],
    repeats: usize,
    /// Round trips per measurement at 1,000 idle or fewer.
    messages: usize,
}

const FULL: Plan = Plan {
    idle: &IDLE,
    repeats: REPEATS,
    messages: 2_000,
};
const QUICK: Plan = Plan {
    idle: &[10, 100],
    repeats: 1,
    messages: 500,
};

fn messages(plan: &Plan, idle: usize) -> usize {
    if idle >= 10_000 { 600 } else { plan.messages }
}

fn server(backend: &str, strace: Option<&str>) -> (Child, std::net::SocketAddr) {
    let me = std::env::current_exe().expect("own path");
    let mut cmd = match strace {
        Some(out) => {
            let mut c = Command::new("strace");
            c.args(["-c", "-f", "-o", out]).arg(me);
            c
        }
        None => Command::new(me),
    };
    cmd.env(SERVE, backend);
    spawn_server(cmd)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the traced server through `messages` round trips (plus the tenth
/// more that `measure` warms up with) and returns strace's total system calls
/// per message and the calls made about once per message.
fn strace_calls(backend: &str, messages: usize) -> Option<(f64, String)> {
    let out = std::env::temp_dir().join(format!("ioplex-strace-{backend}.txt"));
    let (mut child, addr) = server(backend, Some(out.to_str()?));
    measure(addr, 10, messages);
    // Stop the traced server (strace's child): strace then writes its summary.
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()));
    for pid in kids.unwrap_or_default().split_whitespace() {
        // SAFETY: signalling our own grandchild.
        unsafe { libc::kill(pid.parse().ok()?, libc::SIGTERM) };
    }
    let _ = child.wait();
    let total_msgs = (messages + messages / 10) as f64;
    let text = std::fs::read_to_string(&out).ok()?;
    let mut per_msg = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (cols.last(), cols.get(3).and_then(|c| c.parse().ok()))
        else {
            continue;
        };
        let calls: f64 = calls;
        if *name == "total" {
            total = Some(calls / total_msgs);
        } else if calls >= total_msgs / 2.0 {
            per_msg.push(format!("{name} {:.2}", calls / total_msgs));
        }
    }
    Some((total?, per_msg.join(", ")))
}

fn main() {
    if let Ok(b) = std::env::var(SERVE) {
        raise_fd_limit();
        serve(Backend::parse(&b, None).unwrap(), "127.0.0.1:0").unwrap();
        return;
    }
    let flag = |f: &str| std::env::args().any(|a| a == f);
    if flag("--list") {
        return; // `cargo bench -- --list`
    }
    let (quick, update) = (flag("--quick"), flag("--update"));
    let stem = output::stem("scaling", update, quick, false).unwrap_or_else(|e| {
        eprintln!("scaling: {e}");
        std::process::exit(2);
    });
    let plan = if quick { &QUICK } else { &FULL };
    raise_fd_limit();
    let mut runs: Vec<(&str, usize, Vec<Sample>)> = Vec::new();
    for &b in &BACKENDS {
        for &n in plan.idle {
            if b != "select" || n <= 1_000 {
                runs.push((b, n, Vec::new()));
            }
        }
    }
    // Repeats interleaved, medians kept: other load on the machine hits all alike.
    for rep in 0..plan.repeats {
        for (b, n, samples) in runs.iter_mut() {
            let (mut child, addr) = server(b, None);
            let s = measure(addr, *n, messages(plan, *n));
            let _ = (child.kill(), child.wait());
            eprintln!("[{}/{}] {b:>6} {n:>6} idle: {s:?}", rep + 1, plan.repeats);
            samples.push(s);
            std::thread::sleep(Duration::from_millis(100)); // let the sockets go
        }
    }
    let med = |s: &[Sample], f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    let rows: Vec<Row<'_>> = runs
        .iter()
        .map(|(b, n, s)| {
            (
                *b,
                *n,
                med(s, |x| x.rtt_ns / 1e3),
                med(s, |x| x.cpu_per_wakeup_ns / 1e3),
                med(s, |x| x.wakeups_per_msg),
                med(s, |x| x.syscalls_per_msg),
            )
        })
        .collect();
    let find = |b: &str, n: usize| rows.iter().find(|r| r.0 == b && r.1 == n);

    let mut md = String::new();
    let (command, repeats) = (
        if quick {
            "cargo bench --bench scaling -- --quick"
        } else {
            "cargo bench --bench scaling"
        },
        plan.repeats,
    );
    let _ = writeln!(
        md,
        "# Wake-up cost against idle connections\n\n\
         `{command}`: one client's 32-byte round trips beside N idle \
         connections, medians of {repeats} runs. CPU is the server loop thread's \
         (`getrusage(RUSAGE_THREAD)`) per wake-up. Ratios: against the same backend \
         at 10 idle, and against mio at the same N.\n\n\
         | backend | idle | round trip µs | × 10 idle | × mio | CPU per wake-up µs | × 10 idle | × mio | wake-ups/msg | syscalls/msg |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        let base = find(r.0, 10).unwrap();
        let mio = find("mio", r.1).unwrap();
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.0,
            r.1,
            r.2,
            r.2 / base.2,
            r.2 / mio.2,
            r.3,
            r.3 / base.3,
            r.3 / mio.3,
            r.4,
            r.5
        );
    }
    let traced_msgs = plan.messages * 5 / 2;
    let traced = traced_msgs + traced_msgs / 10;
    let _ = writeln!(
        md,
        "\n## System calls per message, counted twice\n\n\
         The loop's counters (`Metrics`: wake-ups + reads + writes + (re/de)registrations) \
         against `strace -c -f` on the server for {traced} round trips beside 10 idle \
         connections (strace's total also holds start-up, accepting and the probes).\n\n\
         | backend | loop counters | strace -c, total | strace -c, calls made once per message |\n\
         |---|---:|---:|---|"
    );
    for &b in &BACKENDS {
        let counted = find(b, 10).map_or(0.0, |r| r.5);
        let (traced, which) = match strace_calls(b, traced_msgs) {
            Some((c, w)) => (format!("{c:.2}"), w),
            None => ("strace unavailable".into(), String::new()),
        };
        let _ = writeln!(md, "| {b} | {counted:.2} | {traced} | {which} |");
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/{stem}.md"), &md).unwrap();
    plot(&format!("{dir}/{stem}.svg"), &rows).unwrap();
    println!("{md}\nwrote {dir}/{stem}.md and {stem}.svg");
}

type Row<'a> = (&'a str, usize, f64, f64, f64, f64);
type Panel = (&'static str, fn(&Row<'_>) -> f64);

fn plot(path: &str, rows: &[Row<'_>]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let colors = [BLUE, GREEN, RED, MAGENTA];
    let metrics: [Panel; 2] = [
        ("round trip (µs)", |r| r.2),
        ("server CPU per wake-up (µs)", |r| r.3),
    ];
    for (area, (title, get)) in panels.iter().zip(metrics) {
        let max = rows.iter().map(get).fold(1.0, f64::max) * 1.5;
        let min = rows.iter().map(get).fold(f64::MAX, f64::min).max(0.1) / 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((5f64..20_000f64).log_scale(), (min..max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("idle connections")
            .y_desc(title)
            .draw()?;
        for (b, color) in BACKENDS.iter().zip(colors) {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.0 == *b)
                .map(|r| (r.1 as f64, get(r)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(*b)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
