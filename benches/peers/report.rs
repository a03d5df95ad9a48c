//! The report: markdown tables (also printed), a CSV of every measurement,
//! and an SVG of each ioplex server's requests/s relative to its peer.

use crate::measure::spread;
use crate::servers::{self, Family, SERVERS};
use crate::{Load, Opts, Run, Sample};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Facts about the machine and the run, for the report's header.
pub struct Env {
    cpus: usize,
    cpu: String,
    kernel: String,
    versions: Vec<String>,
    load_before: String,
    load_after: String,
    wall: Duration,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The first line a tool prints for `arg` (stdout or stderr: nginx says `-v` on stderr).
fn version(tool: &str, arg: &str) -> Option<String> {
    let out = Command::new(servers::which(tool)?).arg(arg).output().ok()?;
    let text = [out.stdout, out.stderr].concat();
    Some(
        String::from_utf8_lossy(&text)
            .lines()
            .next()?
            .trim()
            .to_owned(),
    )
}

impl Env {
    /// The machine, the peers' versions and the load average, before the
    /// run (and before this process is pinned to one CPU).
    pub fn now() -> Env {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                let line = c.lines().find(|l| l.starts_with("model name"))?;
                Some(line.split_once(':')?.1.trim().to_owned())
            })
            .unwrap_or_default();
        let versions = [
            ("redis-server", "--version"),
            ("nginx", "-v"),
            ("wrk", "-v"),
        ]
        .iter()
        .filter_map(|(t, a)| version(t, a))
        .collect();
        Env {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            versions,
            load_before: loadavg(),
            load_after: String::new(),
            wall: Duration::ZERO,
        }
    }

    /// The machine and the peers' versions, one paragraph.
    pub fn machine(&self) -> String {
        format!(
            "Machine: {} × {}, Linux {}; every server pinned to CPU 1, every load tool to CPU 0.  \n\
             Peers: {}.",
            self.cpus,
            self.cpu,
            self.kernel,
            self.versions.join("; ")
        )
    }

    /// The same, after a run of `wall`.
    pub fn finish(mut self, wall: Duration) -> Env {
        self.load_after = loadavg();
        self.wall = wall;
        self
    }
}

fn samples<'a>(runs: &'a [Run], w: usize, server: &str) -> Vec<(usize, &'a Sample)> {
    runs.iter()
        .filter(|r| r.workload == w && r.server == server)
        .filter_map(|r| r.result.as_ref().ok().map(|s| (r.round, s)))
        .collect()
}

fn values(runs: &[Run], w: usize, server: &str, f: fn(&Sample) -> f64) -> Vec<f64> {
    samples(runs, w, server)
        .into_iter()
        .map(|(_, s)| f(s))
        .collect()
}

/// Per round, `f` of `server` over `f` of `base` in workload `w`.
fn ratios(runs: &[Run], w: usize, server: &str, base: &str, f: fn(&Sample) -> f64) -> Vec<f64> {
    let b = samples(runs, w, base);
    samples(runs, w, server)
        .into_iter()
        .filter_map(|(round, s)| {
            let bs = b.iter().find(|(r, _)| *r == round)?.1;
            (f(bs) > 0.0).then(|| f(s) / f(bs))
        })
        .collect()
}

fn rps(s: &Sample) -> f64 {
    s.rps
}

fn cpu(s: &Sample) -> f64 {
    s.cpu_us
}

fn fmt_spread(v: Vec<f64>, digits: usize) -> String {
    match spread(v) {
        Some((m, lo, hi)) => format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})"),
        None => "–".to_owned(),
    }
}

fn fmt_median(v: Vec<f64>, digits: usize) -> String {
    spread(v).map_or("–".to_owned(), |(m, ..)| match m {
        10_000.0.. => format!("{m:.0}"),
        _ => format!("{m:.digits$}"),
    })
}

/// The ioplex servers of a family (all but its peer).
fn ours(family: Family) -> Vec<&'static str> {
    let peer = servers::peer(family);
    SERVERS
        .iter()
        .filter(|s| s.family == family && s.name != peer)
        .map(|s| s.name)
        .collect()
}

fn table(runs: &[Run], loads: &[(usize, &Load)], family: Family) -> String {
    let peer = servers::peer(family);
    let ours = ours(family);
    let mut s = String::new();
    let mut head = format!("| workload | {peer} req/s |");
    let mut rule = String::from("|---|---:|");
    for name in &ours {
        let _ = write!(head, " {name} req/s | × {peer} |");
        rule.push_str("---:|---:|");
    }
    let _ = write!(head, " CPU µs/req: {peer} |");
    rule.push_str("---:|");
    for name in &ours {
        let _ = write!(head, " {name} (× {peer}) |");
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{head}\n{rule}");
    for &(w, load) in loads {
        let _ = write!(
            s,
            "| {} | {} |",
            load.label(),
            fmt_median(values(runs, w, peer, rps), 0)
        );
        for name in &ours {
            let _ = write!(
                s,
                " {} | {} |",
                fmt_median(values(runs, w, name, rps), 0),
                fmt_spread(ratios(runs, w, name, peer, rps), 2)
            );
        }
        let _ = write!(s, " {} |", fmt_median(values(runs, w, peer, cpu), 2));
        for name in &ours {
            let _ = write!(
                s,
                " {} ({}) |",
                fmt_median(values(runs, w, name, cpu), 2),
                fmt_spread(ratios(runs, w, name, peer, cpu), 2)
            );
        }
        s.push('\n');
    }
    s
}

/// Latency, the server's busy share and system share, the tool's busy share.
fn detail(runs: &[Run], loads: &[(usize, &Load)], family: Family) -> String {
    let names: Vec<&str> = SERVERS
        .iter()
        .filter(|s| s.family == family)
        .map(|s| s.name)
        .collect();
    let mut s = String::from("| workload |");
    for n in &names {
        let _ = write!(s, " {n}: p50 / p99 ms, server busy, sys, tool busy |");
    }
    let _ = writeln!(s, "\n|---|{}", "---|".repeat(names.len()));
    for &(w, load) in loads {
        let _ = write!(s, "| {} |", load.label());
        for n in &names {
            let m = |f: fn(&Sample) -> f64| spread(values(runs, w, n, f)).map(|v| v.0);
            match (
                m(|s| s.p50_ms),
                m(|s| s.p99_ms),
                m(|s| s.busy),
                m(|s| s.sys_share),
                m(|s| s.tool_busy),
            ) {
                (Some(a), Some(b), Some(c), Some(d), Some(e)) => {
                    let _ = write!(
                        s,
                        " {a:.3} / {b:.3}, {:.0} %, {:.0} %, {:.0} % |",
                        c * 100.0,
                        d * 100.0,
                        e * 100.0
                    );
                }
                _ => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// Where the target sits against the ratios of the rounds.
fn verdict(v: &[f64], target: f64) -> &'static str {
    match spread(v.to_vec()) {
        None => "not measured",
        Some((_, lo, _)) if lo >= target => "met in every round",
        Some((m, ..)) if m >= target => "met (median); inside the spread",
        Some((_, _, hi)) if hi >= target => "**missed** (median); inside the spread",
        Some(_) => "**missed** in every round",
    }
}

fn targets(runs: &[Run], loads: &[(usize, &Load)]) -> String {
    let mut s = String::from(
        "| target | server | req/s ratio, median (min–max) | verdict | server CPU/req ratio (lower: cheaper) |\n|---|---|---|---|---|\n",
    );
    for &(w, load) in loads {
        let peer = servers::peer(load.family());
        for name in ours(load.family()) {
            let v = ratios(runs, w, name, peer, rps);
            let _ = writeln!(
                s,
                "| {}: ≥ {:.1} × {peer} | {name} | {} | {} | {} |",
                load.label(),
                load.target(),
                fmt_spread(v.clone(), 2),
                verdict(&v, load.target()),
                fmt_spread(ratios(runs, w, name, peer, cpu), 2)
            );
        }
    }
    s
}

/// The spread (max − min over median) of each peer's own req/s across rounds.
fn noise(runs: &[Run], loads: &[(usize, &Load)]) -> String {
    let parts: Vec<String> = loads
        .iter()
        .filter_map(|&(w, load)| {
            let (m, lo, hi) = spread(values(runs, w, servers::peer(load.family()), rps))?;
            Some(format!("{} {:.0} %", load.label(), (hi - lo) / m * 100.0))
        })
        .collect();
    parts.join(", ")
}

fn markdown(opts: &Opts, env: &Env, loads: &[(usize, &Load)], runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# ioplex beside Redis and nginx, under redis-benchmark and wrk\n"
    );
    let _ = writeln!(s, "Made by: `{}`\n", opts.command);
    let _ = writeln!(
        s,
        "{}  \nRounds: {}; the servers of a family started afresh each round, checked (a SET then GET; \
         each file byte for byte) and warmed up; each workload then run on each server in turn, the order \
         rotated per workload and round. Whole run: {:.0} s. Load average before: `{}`, after: `{}`.\n",
        env.machine(),
        opts.rounds,
        env.wall.as_secs_f64(),
        env.load_before,
        env.load_after
    );
    let _ = writeln!(
        s,
        "Figures are medians over rounds; ratios are taken within a round and shown as median (min–max). \
         *CPU µs/req* is the run time of every thread of the server (its processes: nginx's master and \
         worker), from `/proc/PID/task/*/schedstat`, over the tool's run, per request. *server busy* is \
         that CPU over the run's wall time; *sys* the share of it in the kernel (utime/stime); *tool busy* \
         the load tool's own CPU over wall time: near 100 % the tool set the pace, not the server.\n"
    );
    for family in [Family::Redis, Family::Http] {
        let fl: Vec<(usize, &Load)> = loads
            .iter()
            .copied()
            .filter(|(_, l)| l.family() == family)
            .collect();
        if !runs
            .iter()
            .any(|r| fl.iter().any(|(w, _)| *w == r.workload))
        {
            continue;
        }
        let title = match family {
            Family::Redis => format!(
                "RESP: `redis-benchmark -t TEST -n {} -c 50 --csv`, without and with `-P 16`",
                opts.requests
            ),
            Family::Http => format!("HTTP: `wrk -t 1 -c 50 -d {}s --latency`", opts.secs),
        };
        let _ = writeln!(s, "## {title}\n");
        s.push_str(&table(runs, &fl, family));
        s.push('\n');
        s.push_str(&detail(runs, &fl, family));
        s.push('\n');
    }
    let ran: Vec<(usize, &Load)> = loads
        .iter()
        .copied()
        .filter(|(w, _)| runs.iter().any(|r| r.workload == *w))
        .collect();
    let _ = writeln!(s, "## Against the targets of issue 16\n");
    s.push_str(&targets(runs, &ran));
    let _ = writeln!(
        s,
        "\nNoise: spread (max − min over median) of each peer's own req/s across rounds: {}.\n",
        noise(runs, &ran)
    );
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            let e = r.result.as_ref().err()?;
            Some(format!(
                "- round {}, {}, {}: {e}",
                r.round + 1,
                loads[r.workload].1.label(),
                r.server
            ))
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "## Failed measurements\n\n{}\n", failed.join("\n"));
    }
    s
}

fn csv(loads: &[Load], runs: &[Run]) -> String {
    let mut s = String::from(
        "round,workload,server,status,requests,rps,cpu_us_per_req,server_busy,sys_share,tool_busy,p50_ms,p99_ms,rps_ratio_to_peer,cpu_ratio_to_peer\n",
    );
    for r in runs {
        let load = &loads[r.workload];
        let peer = servers::peer(load.family());
        let base = runs
            .iter()
            .find(|b| b.round == r.round && b.workload == r.workload && b.server == peer);
        let ratio = |f: fn(&Sample) -> f64| match (&r.result, base.map(|b| &b.result)) {
            (Ok(a), Some(Ok(b))) if f(b) > 0.0 => format!("{:.4}", f(a) / f(b)),
            _ => String::new(),
        };
        let _ = match &r.result {
            Ok(x) => writeln!(
                s,
                "{},{},{},ok,{},{:.1},{:.4},{:.3},{:.3},{:.3},{:.3},{:.3},{},{}",
                r.round + 1,
                load.label(),
                r.server,
                x.requests,
                x.rps,
                x.cpu_us,
                x.busy,
                x.sys_share,
                x.tool_busy,
                x.p50_ms,
                x.p99_ms,
                ratio(rps),
                ratio(cpu)
            ),
            Err(e) => writeln!(
                s,
                "{},{},{},\"{}\",,,,,,,,,,",
                r.round + 1,
                load.label(),
                r.server,
                e.replace('"', "'")
            ),
        };
    }
    s
}

/// Horizontal bars: a row of bars per workload (its group named on the
/// left), one bar per ioplex server, its req/s over the peer's (median,
/// whiskers min–max), a tick at the target; the legend in a column of its own.
fn chart(path: &PathBuf, loads: &[(usize, &Load)], runs: &[Run]) -> io::Result<()> {
    let err = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let series = ["mio", "uring"];
    let name = |load: &Load, backend: &str| {
        SERVERS
            .iter()
            .find(|s| {
                s.family == load.family()
                    && s.name.ends_with(backend)
                    && s.name != servers::peer(s.family)
            })
            .map_or("", |s| s.name)
    };
    let data: Vec<Vec<Option<(f64, f64, f64)>>> = loads
        .iter()
        .map(|&(w, load)| {
            series
                .iter()
                .map(|b| {
                    spread(ratios(
                        runs,
                        w,
                        name(load, b),
                        servers::peer(load.family()),
                        rps,
                    ))
                })
                .collect()
        })
        .collect();
    let top = data
        .iter()
        .flatten()
        .flatten()
        .map(|d| d.2)
        .fold(1.2f64, f64::max)
        .min(4.0)
        * 1.05;
    let rows = loads.len().max(1);
    let root = SVGBackend::new(path, (1100, 120 + 44 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot, side) = root.split_horizontally(880);
    let label = |i: usize| {
        let load = loads[i].1;
        match load.family() {
            Family::Redis => format!("RESP · {}", load.label()),
            Family::Http => format!("HTTP · {}", load.label()),
        }
    };
    let mut c = ChartBuilder::on(&plot)
        .caption(
            "req/s of ioplex ÷ req/s of Redis (RESP) or nginx (HTTP), same round",
            ("sans-serif", 17),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0f64..top, 0f64..rows as f64)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(rows * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (y - 0.5).round();
            let row = rows as f64 - 1.0 - i;
            match (y - 0.5 - i).abs() < 1e-6 && row >= 0.0 && (row as usize) < loads.len() {
                true => label(row as usize),
                false => String::new(),
            }
        })
        .y_label_style(("sans-serif", 13))
        .x_desc("× peer (median; whiskers: min–max over rounds; black tick: the target)")
        .draw()
        .map_err(|e| err(&e))?;
    let height = 0.8 / series.len() as f64;
    // The first series on top in each group, as in the legend.
    let y_of =
        |i: usize, k: usize| (rows - 1 - i) as f64 + 0.1 + (series.len() - 1 - k) as f64 * height;
    for (k, backend) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let bars = data.iter().enumerate().filter_map(|(i, row)| {
            let (m, ..) = row[k]?;
            let y = y_of(i, k);
            Some(Rectangle::new(
                [(0.0, y), (m.min(top), y + height * 0.9)],
                color.filled(),
            ))
        });
        c.draw_series(bars).map_err(|e| err(&e))?;
        let whiskers = data.iter().enumerate().filter_map(|(i, row)| {
            let (_, lo, hi) = row[k]?;
            let y = y_of(i, k) + height * 0.45;
            Some(PathElement::new(
                vec![(lo.min(top), y), (hi.min(top), y)],
                BLACK,
            ))
        });
        c.draw_series(whiskers).map_err(|e| err(&e))?;
        let y = 40 + 24 * k as i32;
        let text = format!(
            "ioplex on {}",
            if *backend == "uring" {
                "io_uring"
            } else {
                "mio"
            }
        );
        side.draw(&Rectangle::new([(8, y), (22, y + 14)], color.filled()))
            .and_then(|()| side.draw(&Text::new(text, (28, y), ("sans-serif", 15))))
            .map_err(|e| err(&e))?;
    }
    let ticks = loads.iter().enumerate().map(|(i, (_, load))| {
        let y0 = (rows - 1 - i) as f64 + 0.05;
        PathElement::new(
            vec![(load.target(), y0), (load.target(), y0 + 0.9)],
            BLACK.stroke_width(2),
        )
    });
    c.draw_series(ticks).map_err(|e| err(&e))?;
    c.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, rows as f64)],
        BLACK.mix(0.3),
    )))
    .map_err(|e| err(&e))?;
    side.draw(&Text::new("| target", (10, 96), ("sans-serif", 15)))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Prints the markdown and writes the markdown, CSV and SVG files.
pub fn write(opts: &Opts, env: &Env, loads: &[Load], runs: &[Run]) -> io::Result<Vec<PathBuf>> {
    let indexed: Vec<(usize, &Load)> = loads.iter().enumerate().collect();
    let ran: Vec<(usize, &Load)> = indexed
        .iter()
        .copied()
        .filter(|(w, _)| runs.iter().any(|r| r.workload == *w))
        .collect();
    let md = markdown(opts, env, &indexed, runs);
    println!("{md}");
    std::fs::create_dir_all(&opts.out)?;
    let files = ["md", "csv", "svg"].map(|ext| opts.out.join(format!("{}.{ext}", opts.stem)));
    std::fs::write(&files[0], md)?;
    std::fs::write(&files[1], csv(loads, runs))?;
    chart(&files[2], &ran, runs)?;
    Ok(files.to_vec())
}
