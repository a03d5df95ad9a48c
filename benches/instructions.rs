//! User-space instructions per echoed message, counted by callgrind: a
//! figure that does not move with the machine's noise.
//!
//! ```text
//! cargo bench --bench instructions                  # every server, 2,000 and 12,000 messages
//! cargo bench --bench instructions -- --servers echo_select,mio --top 25
//! ```
//!
//! Each server runs under `valgrind --tool=callgrind` twice, once for
//! `N1` and once for `N2` round trips of one 64-byte message on one
//! connection (one message in flight); per message = (instructions of the
//! N2 run − of the N1 run) / (N2 − N1), so start-up and shutdown cancel
//! out. The servers: `echo_select` (the example, on mio, answering
//! `response:` + the chunk), and the plain echo servers of the compare
//! bench (`ioplex`, `mio`, `epoll`, `tokio-ct`). For the ioplex ones the
//! per-function difference (callgrind_annotate, exclusive) is printed too:
//! where a message's instructions go.

#[path = "compare/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N1: usize = 2_000;
const N2: usize = 12_000;
const SIZE: usize = 64;
const ALL: [&str; 5] = ["echo_select", "ioplex", "mio", "epoll", "tokio-ct"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let imp = args.get(i + 1).map_or("", String::as_str);
        if let Err(e) = servers::serve(imp, 0) {
            eprintln!("server {imp}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("instructions: {e}");
        std::process::exit(1);
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn run(args: &[String]) -> io::Result<()> {
    for tool in ["valgrind", "callgrind_annotate"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(io::Error::other(format!(
                "`{tool}` not found: install it with `apt-get install -y valgrind`"
            )));
        }
    }
    let servers: Vec<String> = flag(args, "--servers").map_or_else(
        || ALL.iter().map(|s| s.to_string()).collect(),
        |s| s.split(',').map(str::to_owned).collect(),
    );
    let top: usize = flag(args, "--top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for name in &servers {
        let a = measure(name, N1, dir.path())?;
        let b = measure(name, N2, dir.path())?;
        let per_msg = (b.total as f64 - a.total as f64) / (N2 - N1) as f64;
        rows.push((name.clone(), per_msg));
        if name == "echo_select" || name.starts_with("ioplex") {
            breakdown(name, &a.file, &b.file, top)?;
        }
    }
    let base = rows
        .iter()
        .find(|(n, _)| n == "mio")
        .map(|r| r.1)
        .filter(|b| *b > 0.0);
    println!(
        "\nuser-space instructions per echoed message ({SIZE} B, 1 connection, 1 in flight; ({N2} − {N1}) runs):"
    );
    println!("| server | instructions/msg | × bare mio |");
    println!("|---|---:|---:|");
    for (name, per) in &rows {
        let ratio = base.map_or("–".to_owned(), |b| format!("{:.2}", per / b));
        println!("| {name} | {per:.0} | {ratio} |");
    }
    Ok(())
}

/// One callgrind run: its output file and its total instruction count.
struct Counted {
    file: PathBuf,
    total: u64,
}

fn measure(name: &str, n: usize, dir: &Path) -> io::Result<Counted> {
    let file = dir.join(format!("{name}.{n}.out"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()));
    if name == "echo_select" {
        cmd.arg(example("echo_select")?)
            .args(["--addr", "127.0.0.1:0"]);
    } else {
        cmd.arg(std::env::current_exe()?).args(["--serve", name]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(cmd.spawn()?);
    let addr = listening_addr(&mut child.0, name)?;
    let greeting = if name == "echo_select" { 8 } else { 0 };
    let prefix = if name == "echo_select" { 9 } else { 0 };
    round_trips(addr, n, greeting, prefix)?;
    // SIGTERM: the server exits and callgrind writes its counts.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{name} did not exit after SIGTERM"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| io::Error::other(format!("callgrind output {}: {e}", file.display())))?;
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no totals in {}", file.display())))?;
    Ok(Counted { file, total })
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release build of an example (`cargo bench` builds them).
fn example(name: &str) -> io::Result<PathBuf> {
    let mut p = std::env::current_exe()?;
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    let p = p.join("examples").join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(io::Error::other(format!(
            "{} is missing: build it with `cargo build --release --example {name}`",
            p.display()
        )))
    }
}

fn listening_addr(child: &mut Child, name: &str) -> io::Result<SocketAddr> {
    let out = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(Ok(line))) => line,
        _ => {
            return Err(io::Error::other(format!(
                "{name} did not say `listening on ADDR`"
            )));
        }
    };
    line.strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("{name}: unexpected first line {line:?}")))
}

/// `n` round trips of one `SIZE`-byte message; each reply checked.
fn round_trips(addr: SocketAddr, n: usize, greeting: usize, prefix: usize) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = vec![0; prefix + SIZE];
    s.read_exact(&mut buf[..greeting])?;
    for i in 0..n {
        let msg = [(i % 251) as u8; SIZE];
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        if buf[prefix..] != msg {
            return Err(io::Error::other(format!("wrong echo at message {i}")));
        }
    }
    Ok(())
}

/// Exclusive instructions per function, from callgrind_annotate.
fn per_function(file: &Path) -> io::Result<HashMap<String, u64>> {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=no", "--auto=no", "--threshold=100"])
        .arg(file)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // "1,234 (12.3%)  file:function [object]"
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, r)| r).trim_start(),
            None => rest,
        };
        let func = rest.split_once(':').map_or(rest, |(_, f)| f);
        let func = func.rsplit_once(" [").map_or(func, |(f, _)| f);
        if func == "PROGRAM TOTALS" {
            continue;
        }
        *map.entry(func.to_owned()).or_insert(0) += count;
    }
    Ok(map)
}

fn breakdown(name: &str, a: &Path, b: &Path, top: usize) -> io::Result<()> {
    let (fa, fb) = (per_function(a)?, per_function(b)?);
    let mut diff: Vec<(f64, &str)> = fb
        .iter()
        .map(|(f, &n)| {
            let m = fa.get(f).copied().unwrap_or(0);
            ((n as f64 - m as f64) / (N2 - N1) as f64, f.as_str())
        })
        .filter(|(d, _)| *d >= 0.5)
        .collect();
    diff.sort_by(|x, y| y.0.total_cmp(&x.0));
    println!("\n{name}: where a message's instructions go (exclusive, per message):");
    for (d, f) in diff.iter().take(top) {
        let short: String = f.chars().take(110).collect();
        println!("{d:8.1}  {short}");
    }
    Ok(())
}
