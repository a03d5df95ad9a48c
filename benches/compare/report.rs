//! The report: a markdown table (also printed), a CSV of every
//! measurement, and an SVG chart of the ratios to the epoll baseline.

use crate::measure::{median, spread};
use crate::{Opts, Run, Stats, Workload};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Facts about the run, for the report's header.
pub struct Env {
    /// CPUs available.
    pub cpus: usize,
    /// Server and load generator pinned to different CPUs.
    pub pinned: bool,
    /// Soft fd limit in force.
    pub fd_limit: u64,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// `/proc/loadavg` before and after.
    pub load_before: String,
    /// See `load_before`.
    pub load_after: String,
}

const BASELINE: &str = "epoll";
const TOKIO: &str = "tokio-ct";

fn stats<'a>(runs: &'a [Run], w: usize, server: &str) -> Vec<(usize, &'a Stats)> {
    runs.iter()
        .filter(|r| r.workload == w && r.server == server)
        .filter_map(|r| r.result.as_ref().ok().map(|s| (r.round, s)))
        .collect()
}

/// Per-round ratio of `server`'s msgs/s to `base`'s, in workload `w`.
fn ratios(runs: &[Run], w: usize, server: &str, base: &str) -> Vec<f64> {
    ratios_of(runs, w, server, base, |s| s.msgs_s)
}

/// Per round: `f` of `server` over `f` of `base`.
fn ratios_of(runs: &[Run], w: usize, server: &str, base: &str, f: fn(&Stats) -> f64) -> Vec<f64> {
    let b = stats(runs, w, base);
    stats(runs, w, server)
        .into_iter()
        .filter_map(|(round, s)| {
            let bs = f(b.iter().find(|(r, _)| *r == round)?.1);
            (bs > 0.0).then(|| f(s) / bs)
        })
        .collect()
}

fn med_of(runs: &[Run], w: usize, server: &str, f: impl Fn(&Stats) -> f64) -> Option<f64> {
    median(
        &mut stats(runs, w, server)
            .into_iter()
            .map(|(_, s)| f(s))
            .collect::<Vec<_>>(),
    )
}

fn fmt_ratio(v: Vec<f64>) -> String {
    match spread(v) {
        Some((m, lo, hi)) => format!("{m:.2} ({lo:.2}–{hi:.2})"),
        None => "–".to_owned(),
    }
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| {
        if v >= 10_000.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.digits$}")
        }
    })
}

fn table(runs: &[Run], w: &Workload, servers: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| server | msgs/s | × {BASELINE} | × {TOKIO} | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/msg (user + sys) | server busy | RSS/conn | syscalls/msg |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for name in servers {
        let got = stats(runs, w.id, name);
        if got.is_empty() {
            let why = runs
                .iter()
                .find(|r| r.workload == w.id && &r.server == name)
                .and_then(|r| r.result.as_ref().err())
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {name} | {} | | | | | | | | | | |",
                why.replace('|', "/")
            );
            continue;
        }
        let m = |f: fn(&Stats) -> f64| med_of(runs, w.id, name, f);
        let (user, sys) = (m(|s| s.user_us), m(|s| s.sys_us));
        let rounds = runs
            .iter()
            .filter(|r| r.workload == w.id && &r.server == name)
            .count();
        let failed = rounds - got.len();
        let _ = writeln!(
            s,
            "| {name}{} | {} | {} | {} | {} | {} | {} | {} | {} + {} | {} % | {} | {} |",
            if failed > 0 {
                format!(" ({failed} of {rounds} rounds failed)")
            } else {
                String::new()
            },
            fmt_num(m(|s| s.msgs_s), 0),
            fmt_ratio(ratios(runs, w.id, name, BASELINE)),
            fmt_ratio(ratios(runs, w.id, name, TOKIO)),
            fmt_num(m(|s| s.mb_s), 1),
            fmt_num(m(|s| s.p50), 1),
            fmt_num(m(|s| s.p99), 1),
            fmt_num(m(|s| s.p999), 1),
            fmt_num(user, 2),
            fmt_num(sys, 2),
            fmt_num(m(|s| s.server_busy * 100.0), 0),
            m(|s| s.rss_per_conn).map_or("–".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
            m(|s| s.syscalls_msg)
                .filter(|v| v.is_finite())
                .map_or("–".to_owned(), |v| format!("{v:.3}")),
        );
    }
    s
}

/// ioplex against the targets.
fn targets(runs: &[Run]) -> String {
    let mut s =
        String::from("| target | measured (median, min–max over rounds) | met |\n|---|---|---|\n");
    let mut row = |what: &str, v: Vec<f64>, ok: &dyn Fn(f64) -> bool| {
        let met = match spread(v.clone()) {
            Some((m, _, _)) if ok(m) => "yes",
            Some(_) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {what} | {} | {met} |", fmt_ratio(v));
    };
    row(
        "workload 1: ≥ 0.98 × epoll",
        ratios(runs, 1, "ioplex", BASELINE),
        &|m| m >= 0.98,
    );
    row(
        "workload 1: ≥ 1.0 × tokio-ct",
        ratios(runs, 1, "ioplex", TOKIO),
        &|m| m >= 1.0,
    );
    row(
        "workload 2: ≥ 0.95 × epoll",
        ratios(runs, 2, "ioplex", BASELINE),
        &|m| m >= 0.95,
    );
    row(
        "workload 3: ≥ 0.9 × epoll",
        ratios(runs, 3, "ioplex", BASELINE),
        &|m| m >= 0.9,
    );
    let w1 = stats(runs, 1, "ioplex");
    let w6_vs_w1: Vec<f64> = stats(runs, 6, "ioplex")
        .into_iter()
        .filter_map(|(round, s6)| {
            let s1 = w1.iter().find(|(r, _)| *r == round)?.1;
            Some(s6.msgs_s / s1.msgs_s)
        })
        .collect();
    row(
        "workload 6 ≥ 0.95 × workload 1 (msgs/s)",
        w6_vs_w1,
        &|m| m >= 0.95,
    );
    let user: Vec<f64> = w1.iter().map(|(_, s)| s.user_us).collect();
    row("workload 1: server user CPU ≤ 0.15 µs/msg", user, &|m| {
        m <= 0.15
    });
    for w in [1, 4] {
        row(
            &format!("workload {w}: server CPU/msg, 2 loops ≤ 1.05 × 1 loop (both unpinned)"),
            ratios_of(runs, w, "ioplex-2loops", "ioplex-1loop", |s| {
                s.user_us + s.sys_us
            }),
            &|m| m <= 1.05,
        );
    }
    s
}

fn notes(runs: &[Run]) -> String {
    let mut s = String::new();
    for r in runs {
        if let Err(e) = &r.result {
            let _ = writeln!(
                s,
                "- round {}, workload {}, {}: {e}",
                r.round + 1,
                r.workload,
                r.server
            );
        }
    }
    s
}

fn markdown(opts: &Opts, env: &Env, workloads: &[Workload], runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# ioplex and its peers: echo servers side by side\n");
    let _ = writeln!(s, "Made by: `{}`\n", opts.command);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(
        s,
        "Machine: {} × {cpu}, Linux {}; {}; soft fd limit {}.  ",
        env.cpus,
        kernel.trim(),
        if env.pinned {
            "each server pinned to CPU 1 (the ioplex-Nloop(s) ones unpinned), the load generator to CPU 0"
        } else {
            "one CPU: server and load generator share it"
        },
        env.fd_limit
    );
    let _ = writeln!(
        s,
        "Rounds: {}, servers interleaved (order rotated each round), a fresh server process per measurement; \
         warm-up {:?}, measured {:?}. Whole run: {:.0} s. Load average before: `{}`, after: `{}`.\n",
        opts.rounds,
        opts.warmup,
        opts.measure,
        env.wall.as_secs_f64(),
        env.load_before,
        env.load_after
    );
    let _ = writeln!(
        s,
        "Every figure is the median over rounds; ratios are msgs/s within the same round, shown as \
         median (min–max). Latency runs from queueing a message to its last echoed byte. Server CPU \
         is the utime/stime delta of the server process over the measured window (clock ticks), per \
         message; *server busy* is that CPU time over wall time (near 100 %: the server is the \
         bottleneck; well below: the load generator or the round trip is). RSS/conn is the growth \
         of the server's resident set from start to the end of the window, per connection held.\n"
    );
    for w in workloads {
        let _ = writeln!(s, "## Workload {}: {}\n", w.id, w.title);
        s.push_str(&table(runs, w, &opts.servers));
        let client: Vec<f64> = runs
            .iter()
            .filter(|r| r.workload == w.id)
            .filter_map(|r| r.result.as_ref().ok().map(|s| s.client_busy * 100.0))
            .collect();
        if let Some((m, lo, hi)) = spread(client) {
            let _ = writeln!(s, "\nLoad generator busy: {m:.0} % ({lo:.0}–{hi:.0}).\n");
        }
    }
    let _ = writeln!(s, "## ioplex against the targets of issue 5\n");
    s.push_str(&targets(runs));
    let base: Vec<String> = workloads
        .iter()
        .filter_map(|w| {
            let (m, lo, hi) = spread(
                stats(runs, w.id, BASELINE)
                    .iter()
                    .map(|(_, s)| s.msgs_s)
                    .collect(),
            )?;
            Some(format!(
                "workload {}: {:.0} % ",
                w.id,
                (hi - lo) / m * 100.0
            ))
        })
        .collect();
    if !base.is_empty() {
        let _ = writeln!(
            s,
            "\nNoise: spread (max − min over median) of the epoll baseline's own msgs/s across rounds: {}.",
            base.join(", ")
        );
    }
    let n = notes(runs);
    if !n.is_empty() {
        let _ = writeln!(s, "\n## Skipped and failed measurements\n\n{n}");
    }
    s
}

fn csv(runs: &[Run]) -> String {
    let mut s = String::from(
        "round,workload,server,status,msgs_per_s,mb_per_s,p50_us,p99_us,p999_us,server_user_us_per_msg,server_sys_us_per_msg,server_busy,client_busy,rss_per_conn_bytes,ratio_epoll,ratio_tokio_ct,syscalls_per_msg\n",
    );
    for r in runs {
        let ratio = |base: &str| {
            let b = runs
                .iter()
                .find(|b| b.round == r.round && b.workload == r.workload && b.server == base);
            match (&r.result, b.map(|b| &b.result)) {
                (Ok(s), Some(Ok(bs))) if bs.msgs_s > 0.0 => format!("{:.4}", s.msgs_s / bs.msgs_s),
                _ => String::new(),
            }
        };
        match &r.result {
            Ok(st) => {
                let _ = writeln!(
                    s,
                    "{},{},{},ok,{:.1},{:.3},{:.1},{:.1},{:.1},{:.4},{:.4},{:.3},{:.3},{:.0},{},{},{}",
                    r.round + 1,
                    r.workload,
                    r.server,
                    st.msgs_s,
                    st.mb_s,
                    st.p50,
                    st.p99,
                    st.p999,
                    st.user_us,
                    st.sys_us,
                    st.server_busy,
                    st.client_busy,
                    st.rss_per_conn,
                    ratio(BASELINE),
                    ratio(TOKIO),
                    if st.syscalls_msg.is_finite() {
                        format!("{:.4}", st.syscalls_msg)
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(
                    s,
                    "{},{},{},\"{}\",,,,,,,,,,,,,",
                    r.round + 1,
                    r.workload,
                    r.server,
                    e.replace('"', "'")
                );
            }
        }
    }
    s
}

fn chart(
    path: &PathBuf,
    workloads: &[Workload],
    servers: &[String],
    runs: &[Run],
) -> io::Result<()> {
    let err = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let data: Vec<Vec<Option<(f64, f64, f64)>>> = workloads
        .iter()
        .map(|w| {
            servers
                .iter()
                .map(|name| spread(ratios(runs, w.id, name, BASELINE)))
                .collect()
        })
        .collect();
    let top = data
        .iter()
        .flatten()
        .flatten()
        .map(|d| d.2)
        .fold(1.2f64, f64::max)
        .min(5.0);
    let root = SVGBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    // The legend gets a column of its own, right of the plot: it covers no bar.
    let (plot, side) = root.split_horizontally(950);
    let mut c = ChartBuilder::on(&plot)
        .caption(
            "msgs/s relative to the raw epoll baseline (median; whiskers: min–max over rounds)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..workloads.len() as f64, 0f64..top)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(workloads.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < workloads.len() {
                workloads[i as usize].label()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 14))
        .y_desc("× epoll")
        .draw()
        .map_err(|e| err(&e))?;
    let n = servers.len() as f64;
    let width = 0.8 / n;
    for (k, name) in servers.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let bars: Vec<_> = data
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let (m, _, _) = row[k]?;
                let x0 = i as f64 + 0.1 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, m.min(top))],
                    color.filled(),
                ))
            })
            .collect();
        c.draw_series(bars).map_err(|e| err(&e))?;
        let y = 40 + 24 * k as i32;
        side.draw(&Rectangle::new([(8, y), (22, y + 14)], color.filled()))
            .and_then(|()| side.draw(&Text::new(name.as_str(), (28, y), ("sans-serif", 15))))
            .map_err(|e| err(&e))?;
        let whiskers: Vec<_> = data
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let (_, lo, hi) = row[k]?;
                let x = i as f64 + 0.1 + k as f64 * width + width * 0.45;
                Some(PathElement::new(
                    vec![(x, lo.min(top)), (x, hi.min(top))],
                    BLACK,
                ))
            })
            .collect();
        c.draw_series(whiskers).map_err(|e| err(&e))?;
    }
    c.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (workloads.len() as f64, 1.0)],
        BLACK.mix(0.4),
    )))
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Redraws `compare.svg` in `dir` from the `compare.csv` there (a run's
/// every measurement), measuring nothing: the chart of a committed run,
/// after a change to the chart. Returns the SVG's path.
pub fn replot(dir: &std::path::Path) -> io::Result<PathBuf> {
    let csv_path = dir.join("compare.csv");
    let text = std::fs::read_to_string(&csv_path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", csv_path.display())))?;
    let runs =
        parse_csv(&text).map_err(|e| io::Error::other(format!("{}: {e}", csv_path.display())))?;
    let has = |w: usize, s: &str| runs.iter().any(|r| r.workload == w && r.server == s);
    let workloads: Vec<Workload> = crate::WORKLOADS
        .iter()
        .filter(|w| runs.iter().any(|r| r.workload == w.id))
        .copied()
        .collect();
    let servers: Vec<String> = crate::SERVERS
        .iter()
        .filter(|s| workloads.iter().any(|w| has(w.id, s)))
        .map(|s| s.to_string())
        .collect();
    let svg = dir.join("compare.svg");
    chart(&svg, &workloads, &servers, &runs)?;
    Ok(svg)
}

/// The runs of a CSV written by [`csv`]: rounds, cells, msgs/s (what the
/// chart needs); a non-`ok` status is the run's error.
fn parse_csv(text: &str) -> Result<Vec<Run>, String> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().ok_or("empty")?.split(',').collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (round, workload, server) = (col("round")?, col("workload")?, col("server")?);
    let (status, msgs) = (col("status")?, col("msgs_per_s")?);
    let mut runs = Vec::new();
    for (i, line) in lines.enumerate() {
        // Only a failed run's status is quoted (it may hold commas); its
        // measurement columns are empty.
        let (fields, why) = match line.split_once(",\"") {
            Some((f, rest)) => (f, rest.split('"').next()),
            None => (line, None),
        };
        let f: Vec<&str> = fields.split(',').collect();
        let get = |c: usize| f.get(c).copied().ok_or(format!("line {}: short", i + 2));
        let num = |c: usize| {
            get(c)?
                .parse::<f64>()
                .map_err(|e| format!("line {}: {e}", i + 2))
        };
        let result = match why {
            Some(why) => Err(why.to_owned()),
            None if get(status)? == "ok" => Ok(Stats {
                msgs_s: num(msgs)?,
                ..Stats::default()
            }),
            None => Err(get(status)?.to_owned()),
        };
        runs.push(Run {
            round: num(round)? as usize - 1,
            workload: num(workload)? as usize,
            server: get(server)?.to_owned(),
            result,
        });
    }
    Ok(runs)
}

/// Prints the tables and writes the markdown, CSV and SVG files.
pub fn write(
    opts: &Opts,
    env: &Env,
    workloads: &[Workload],
    runs: &[Run],
) -> io::Result<Vec<PathBuf>> {
    let md = markdown(opts, env, workloads, runs);
    println!("{md}");
    std::fs::create_dir_all(&opts.out)?;
    let stem = &opts.stem;
    let files = [
        opts.out.join(format!("{stem}.md")),
        opts.out.join(format!("{stem}.csv")),
        opts.out.join(format!("{stem}.svg")),
    ];
    std::fs::write(&files[0], md)?;
    std::fs::write(&files[1], csv(runs))?;
    chart(&files[2], workloads, &opts.servers, runs)?;
    Ok(files.to_vec())
}
