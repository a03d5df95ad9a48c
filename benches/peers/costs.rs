//! `--costs`: where a request's time goes, in figures that do not move
//! with the machine's noise. Each server runs twice under `valgrind
//! --tool=callgrind` and twice under `strace -f -c`, for N1 and N2
//! requests made one after another on one connection (a reconnection when
//! the server closes it: nginx does after 1,000); per request =
//! (count of the N2 run − of the N1 run) / (N2 − N1), so start-up and
//! shutdown cancel out. Instructions are user space only; system calls say
//! what the kernel was asked.

use crate::servers::{Family, SERVERS, Server, Site, Spec};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One request shape, and how many of each run.
#[derive(Clone, Copy)]
struct Probe {
    label: &'static str,
    family: Family,
    /// The request; for HTTP, the file's name.
    what: &'static str,
    n1: usize,
    n2: usize,
}

const PROBES: [Probe; 3] = [
    Probe {
        label: "RESP GET",
        family: Family::Redis,
        what: "k",
        n1: 2_000,
        n2: 12_000,
    },
    Probe {
        label: "HTTP 1 KiB file",
        family: Family::Http,
        what: "1k.bin",
        n1: 2_000,
        n2: 12_000,
    },
    Probe {
        label: "HTTP 1 MiB file",
        family: Family::Http,
        what: "1m.bin",
        n1: 20,
        n2: 120,
    },
];

/// The costs of every server of `families`, as markdown.
pub fn run(families: &[Family], site: &Site, cpu: Option<usize>) -> Result<String, String> {
    for tool in ["valgrind", "callgrind_annotate", "strace"] {
        if crate::servers::which(tool).is_none() {
            return Err(format!(
                "`{tool}` not found: `apt-get install -y valgrind strace`"
            ));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // nginx's worker runs as `nobody` when started by root: callgrind
    // writes its file from the worker, so the directory takes anyone's.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o1777))
        .map_err(|e| e.to_string())?;
    let mut s = String::new();
    for p in PROBES.iter().filter(|p| families.contains(&p.family)) {
        let _ = writeln!(
            s,
            "### {}: one connection, one request at a time ({} and {} requests)\n",
            p.label, p.n1, p.n2
        );
        let _ = writeln!(
            s,
            "| server | user instructions/req | system calls/req | the calls per request | most instructions per request (exclusive) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---|");
        for spec in SERVERS.iter().filter(|sp| sp.family == p.family) {
            eprintln!("costs: {} {}", spec.name, p.label);
            let row = one(spec, p, site, cpu, dir.path())?;
            s.push_str(&row);
        }
        s.push('\n');
    }
    Ok(s)
}

fn one(
    spec: &Spec,
    p: &Probe,
    site: &Site,
    cpu: Option<usize>,
    dir: &Path,
) -> Result<String, String> {
    let per = |a: f64, b: f64| (b - a) / (p.n2 - p.n1) as f64;
    let tag = spec.name.replace('/', "-");
    let mut instr = Vec::new();
    let mut calls = Vec::new();
    for n in [p.n1, p.n2] {
        let prefix = dir.join(format!("{tag}.{}.{n}", p.what));
        let cg = format!("--callgrind-out-file={}.cg.%p", prefix.display());
        let wrap = ["valgrind", "--tool=callgrind", "--trace-children=yes", &cg].map(String::from);
        serve(spec, p, site, cpu, &wrap, n)?;
        instr.push(callgrind(dir, &format!("{tag}.{}.{n}.cg.", p.what))?);
        let st = format!("{}.strace", prefix.display());
        let wrap = ["strace", "-f", "-c", "-o", &st].map(String::from);
        serve(spec, p, site, cpu, &wrap, n)?;
        calls.push(strace(Path::new(&st))?);
    }
    let total = |m: &HashMap<String, u64>| m.values().sum::<u64>() as f64;
    let (i1, i2) = (&instr[0], &instr[1]);
    let (c1, c2) = (&calls[0], &calls[1]);
    let syscalls = growth(c1, c2, p, 0.05);
    let funcs = growth(i1, i2, p, 1.0);
    let list = |v: &[(f64, &str)], digits: usize, take: usize| {
        v.iter()
            .take(take)
            .map(|(d, f)| {
                format!(
                    "{} {d:.digits$}",
                    f.chars().take(48).collect::<String>().replace('|', "/")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "| {} | {:.0} | {:.1} | {} | {} |\n",
        spec.name,
        per(total(i1), total(i2)),
        per(total(c1), total(c2)),
        list(&syscalls, 1, 12),
        list(&funcs, 0, 6)
    ))
}

/// Per request, what grew from the N1 run's counts to the N2 run's, by at
/// least `min`, most first.
fn growth<'a>(
    a: &HashMap<String, u64>,
    b: &'a HashMap<String, u64>,
    p: &Probe,
    min: f64,
) -> Vec<(f64, &'a str)> {
    let mut v: Vec<(f64, &str)> = b
        .iter()
        .map(|(k, &n)| {
            let was = a.get(k).copied().unwrap_or(0) as f64;
            ((n as f64 - was) / (p.n2 - p.n1) as f64, k.as_str())
        })
        .filter(|(d, _)| *d >= min)
        .collect();
    v.sort_by(|x, y| y.0.total_cmp(&x.0));
    v
}

/// Starts `spec` under `wrap`, makes `n` requests, stops it (SIGTERM: the
/// wrapper writes its data).
fn serve(
    spec: &Spec,
    p: &Probe,
    site: &Site,
    cpu: Option<usize>,
    wrap: &[String],
    n: usize,
) -> Result<(), String> {
    let srv = Server::start_under(spec, site, cpu, wrap)?;
    let size = site.file(p.what).map_or(0, |f| f.len());
    requests(srv.addr, p, size, n).map_err(|e| format!("{} {}: {e}", spec.name, p.label))?;
    drop(srv);
    Ok(())
}

/// `n` requests, one at a time, each answer checked; a connection the
/// server closed (between answers) is made again.
fn requests(addr: SocketAddr, p: &Probe, size: usize, n: usize) -> Result<(), String> {
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let mut s = connect()?;
    let (ask, want): (Vec<u8>, usize) = match p.family {
        Family::Redis => {
            s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
                .map_err(|e| e.to_string())?;
            read_reply(&mut s, p.family, 5).map_err(|e| e.unwrap_or("closed".into()))?;
            (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec(), 7)
        }
        Family::Http => (
            format!("GET /{} HTTP/1.1\r\nHost: bench\r\n\r\n", p.what).into_bytes(),
            size,
        ),
    };
    let mut i = 0;
    while i < n {
        s.write_all(&ask).map_err(|e| e.to_string())?;
        match read_reply(&mut s, p.family, want) {
            Ok(()) => i += 1,
            Err(None) => s = connect()?, // closed before an answer: again
            Err(Some(e)) => return Err(format!("request {i}: {e}")),
        }
    }
    Ok(())
}

/// Reads one answer: `want` bytes of RESP, or an HTTP 200 head and a body
/// of `want` bytes. `Err(None)`: the connection closed before any of it.
fn read_reply(s: &mut TcpStream, family: Family, want: usize) -> Result<(), Option<String>> {
    let mut got = Vec::with_capacity(want + 512);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) if got.is_empty() => return Err(None),
            Ok(0) => return Err(Some("closed mid-answer".into())),
            Ok(n) => n,
            Err(e) => return Err(Some(e.to_string())),
        };
        got.extend_from_slice(&buf[..n]);
        let done = match family {
            Family::Redis => got.len() >= want,
            Family::Http => match got.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(h) if !got.starts_with(b"HTTP/1.1 200 ") => {
                    return Err(Some(format!("{:?}", String::from_utf8_lossy(&got[..h]))));
                }
                Some(h) => got.len() >= h + 4 + want,
                None => false,
            },
        };
        if done {
            return Ok(());
        }
    }
}

/// Exclusive instructions per function over every callgrind file in `dir`
/// whose name starts with `prefix` (nginx: the master's and the worker's).
fn callgrind(dir: &Path, prefix: &str) -> Result<HashMap<String, u64>, String> {
    let mut map = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let files: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    if files.is_empty() {
        return Err(format!("callgrind wrote no {prefix}* file"));
    }
    for f in files {
        let out = Command::new("callgrind_annotate")
            .args(["--inclusive=no", "--auto=no", "--threshold=100"])
            .arg(&f)
            .output()
            .map_err(|e| format!("callgrind_annotate: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "1,234 (12.3%)  file:function [object]"
            let Some((count, rest)) = line.trim().split_once(' ') else {
                continue;
            };
            let Ok(count) = count.replace(',', "").parse::<u64>() else {
                continue;
            };
            let rest = rest.trim_start();
            let rest = rest
                .strip_prefix('(')
                .map_or(rest, |r| r.split_once(')').map_or(r, |x| x.1).trim_start());
            let func = rest.split_once(':').map_or(rest, |(_, f)| f);
            let func = func.rsplit_once(" [").map_or(func, |(f, _)| f);
            if func != "PROGRAM TOTALS" {
                *map.entry(func.to_owned()).or_insert(0) += count;
            }
        }
    }
    Ok(map)
}

/// Calls per system call, from `strace -c`'s table (its `errors` column may be empty).
fn strace(file: &Path) -> Result<HashMap<String, u64>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut map = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (f.last(), f.get(3).and_then(|c| c.parse::<u64>().ok()))
        else {
            continue;
        };
        if *name != "total" && f.len() >= 5 {
            map.insert((*name).to_owned(), calls);
        }
    }
    match map.is_empty() {
        true => Err(format!("{}: no strace -c table", file.display())),
        false => Ok(map),
    }
}
