//! The load tools users run, and what their output says: `redis-benchmark
//! --csv` (one test per run, so the server's CPU is that test's) and `wrk`
//! (its summary: requests, bytes, socket errors, non-2xx, latency).
//! Both run pinned to the load CPU.

use crate::servers;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// What one run of a tool reported.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Requests answered.
    pub requests: u64,
    /// Requests per second, as the tool computed it.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// CPU time of the tool itself over its wall time (1.0: one CPU's worth).
    pub tool_busy: f64,
}

/// CPU seconds of the children waited for so far (`RUSAGE_CHILDREN`).
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

/// Runs `cmd` pinned to `cpu`, bounded by `limit`: its output and its CPU
/// over its wall time, or why not.
fn run(cmd: &mut Command, cpu: Option<usize>, limit: Duration) -> Result<(String, f64), String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let (cpu0, t0) = (children_cpu(), std::time::Instant::now());
    let (mut child, log) = servers::spawn(cmd, cpu).map_err(|e| format!("{name}: {e}"))?;
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not finish in {limit:?}"));
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    };
    let busy = (children_cpu() - cpu0) / t0.elapsed().as_secs_f64().max(1e-6);
    let out = log.all();
    match status.success() {
        true => Ok((out, busy)),
        false => {
            let out: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
            Err(format!(
                "{name} failed ({status}): {}",
                out.chars().take(300).collect::<String>()
            ))
        }
    }
}

/// `redis-benchmark -t TEST -n N -c 50 [-P P] --csv` against `addr`.
pub fn redis_benchmark(
    addr: SocketAddr,
    test: &str,
    requests: u64,
    pipeline: usize,
    cpu: Option<usize>,
) -> Result<Report, String> {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-t", test, "-n", &requests.to_string(), "-c", "50"])
        .arg("--csv");
    if pipeline > 1 {
        cmd.args(["-P", &pipeline.to_string()]);
    }
    let (out, busy) = run(&mut cmd, cpu, Duration::from_secs(120))?;
    let mut r = parse_redis_csv(&out)?;
    r.requests = requests;
    r.tool_busy = busy;
    Ok(r)
}

/// The one data row of `redis-benchmark --csv`:
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`.
pub fn parse_redis_csv(out: &str) -> Result<Report, String> {
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| l.split(',').map(|f| f.trim_matches('"')).collect())
        .collect();
    let head = rows
        .first()
        .ok_or_else(|| format!("redis-benchmark printed no CSV: {out:?}"))?;
    let data: Vec<_> = rows.iter().skip(1).collect();
    let [row] = data[..] else {
        return Err(format!(
            "redis-benchmark: one result row expected, got {}",
            data.len()
        ));
    };
    let col = |name: &str| -> Result<f64, String> {
        let i = head
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))?;
        row.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("redis-benchmark: bad {name} in {row:?}"))
    };
    Ok(Report {
        requests: 0,
        rps: col("rps")?,
        p50_ms: col("p50_latency_ms")?,
        p99_ms: col("p99_latency_ms")?,
        tool_busy: 0.0,
    })
}

/// `wrk -t 1 -c 50 -d SECS --latency http://ADDR/PATH`; the run fails on
/// any socket error or non-2xx/3xx response, or responses shorter than the file.
pub fn wrk(
    addr: SocketAddr,
    path: &str,
    size: usize,
    secs: u64,
    cpu: Option<usize>,
) -> Result<Report, String> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        "1",
        "-c",
        "50",
        "-d",
        &format!("{secs}s"),
        "--latency",
    ])
    .args(["--timeout", "5s"])
    .arg(format!("http://{addr}/{path}"));
    let (out, busy) = run(&mut cmd, cpu, Duration::from_secs(secs + 30))?;
    let mut w = parse_wrk(&out)?;
    w.report.tool_busy = busy;
    if w.socket_errors > 0 || w.non_2xx > 0 {
        return Err(format!(
            "wrk saw {} socket errors and {} non-2xx/3xx responses in {} requests",
            w.socket_errors, w.non_2xx, w.report.requests
        ));
    }
    let per = w.bytes / w.report.requests.max(1) as f64;
    if per < size as f64 * 0.99 {
        return Err(format!(
            "responses of {per:.0} bytes on average for a file of {size}"
        ));
    }
    Ok(w.report)
}

/// What wrk's summary says.
#[derive(Debug, Default)]
pub struct Wrk {
    /// Requests, rate and latency.
    pub report: Report,
    /// Bytes read, from `N requests in T, B read` (binary units, 2 decimals).
    pub bytes: f64,
    /// `Socket errors: connect A, read B, write C, timeout D`, summed.
    pub socket_errors: u64,
    /// `Non-2xx or 3xx responses: N`.
    pub non_2xx: u64,
}

/// Parses wrk's summary (`--latency`).
pub fn parse_wrk(out: &str) -> Result<Wrk, String> {
    let bad = |what: &str| format!("wrk's output has no {what}: {out:?}");
    let mut w = Wrk::default();
    let mut requests = None;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["Requests/sec:", v] = words[..] {
            w.report.rps = v.parse().map_err(|_| bad("Requests/sec"))?;
        } else if let [n, "requests", "in", _, b, "read"] = words[..] {
            requests = n.parse().ok();
            w.bytes = size_in_bytes(b.trim_end_matches(',')).ok_or_else(|| bad("bytes read"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            w.socket_errors = rest
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = rest.trim().parse().map_err(|_| bad("non-2xx count"))?;
        } else if let ["50%", v] = words[..] {
            w.report.p50_ms = ms(v).ok_or_else(|| bad("50% latency"))?;
        } else if let ["99%", v] = words[..] {
            w.report.p99_ms = ms(v).ok_or_else(|| bad("99% latency"))?;
        }
    }
    w.report.requests = requests.ok_or_else(|| bad("`N requests in`"))?;
    if w.report.rps <= 0.0 {
        return Err(bad("Requests/sec"));
    }
    Ok(w)
}

/// `150.23MB` → bytes (wrk's units are binary).
fn size_in_bytes(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let k = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * k)
}

/// `1.23ms`, `850.00us`, `1.02s`, `2.00m` → ms.
fn ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let k = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * k)
}
