//! Every command of the README's table, run as written: the table is
//! parsed, each row's first command started (a server prints `listening
//! on`; anything else must finish by itself), then the row's other commands
//! run against it, and their output is checked.
//!
//! "As written" with two substitutions a person would not notice:
//! `cargo run [--release] --example NAME [--]` is the example binary
//! `cargo test` built (a nested cargo would wait for this one's lock), and
//! each row runs in a network and mount namespace of its own (`unshare`:
//! its own loopback, its own empty `/tmp`), so the README's fixed ports
//! (9999 for half the rows) and files (`/tmp/uploads`, `--out /tmp`) meet
//! nothing of this machine's, and nothing is left behind.
//!
//! Tools: `unshare`/`nsenter` (util-linux), `ip` (iproute2), `nc`
//! (netcat-openbsd), `curl`, `python3`; `.ci/run` installs them, and a
//! missing one fails the test.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What a row's commands should show, keyed by the example's name.
struct Expect {
    /// Typed into each client (the last, when there are several copies).
    stdin: &'static str,
    /// Each must appear in the clients' stdout or stderr (`#` is any digit).
    shows: &'static [&'static str],
    /// The row's commands are clients of this row's server, started first.
    after: Option<&'static str>,
    /// Run each client command this many times at once (a chat room).
    copies: usize,
    /// How long the clients get.
    limit: Duration,
}

const fn expect(stdin: &'static str, shows: &'static [&'static str]) -> Expect {
    Expect {
        stdin,
        shows,
        after: None,
        copies: 1,
        limit: Duration::from_secs(10),
    }
}

/// A row with no entry here still runs: its server must start and its
/// clients must not fail; an entry says what they must show.
fn expectation(example: &str) -> Expect {
    match example {
        "timeout_server" => expect("", &["welcome to server!"]),
        "echo_server" => expect("hello\n", &["Echo=>hello"]),
        "echo_client" => Expect {
            after: Some("echo_server"),
            ..expect(
                "",
                &[
                    "Client received: Echo=>hello",
                    "Client received: Echo=>world",
                ],
            )
        },
        "cs_echo" => expect("hello\n", &["Hello, client!Echo: hello"]),
        "chat" => Expect {
            copies: 2,
            ..expect("hello\n", &["] hello"])
        },
        "chat_client" => Expect {
            after: Some("chat"),
            copies: 2,
            ..expect("hello\n", &["] hello"])
        },
        "lines" => expect("hello\n", &["hello\n"]),
        "handshake_client" => Expect {
            after: Some("handshake"),
            ..expect("", &["hello\nhello\nhello\n"])
        },
        "framed" => expect("", &["hello\nhello\n", "world\nworld\n"]),
        "remote_cmd" => expect("", &["hi\n"]),
        "udp_echo" => expect("hi\n", &["ok"]),
        "socketserver" => expect("hello\n", &["欢迎致电... hello"]),
        "echo_select" => expect("hello\n", &["hello...response:hello"]),
        "echo_selectors" => expect("hello\n", &["hello"]),
        "http_static" => expect("", &["[package]", "200 OK"]),
        "time_server" => expect("", &["####-##-## ##:##:##.######"]),
        "file_transfer" => expect("", &["Cargo.toml"]),
        "udp_ping" => expect("", &["RTT = ", "9 packets transmitted, 6 received"]),
        "level_vs_edge" => expect("", &["1024\n"]),
        "idle_scaling" => Expect {
            limit: Duration::from_secs(120),
            ..expect(
                "",
                &[" mio ", " epoll ", " poll ", " select ", "round trip"],
            )
        },
        _ => expect("hello\n", &[]),
    }
}

/// One row of the table: the example's name and the commands of "try it".
struct Row {
    example: String,
    commands: Vec<String>,
}

/// The cells of a table line, split at `|` but not at `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.trim().trim_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push(chars.next().unwrap())
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.iter().map(|c| c.trim().to_owned()).collect()
}

/// The `code spans` of a cell that are commands: their first word (after
/// `VAR=value`s) is a program's name, not a flag (`--bug`) or a file
/// (`benches/results/scaling-new.{md,svg}`). Benchmarks (`cargo bench`)
/// take minutes and write reports: their own runs check them.
fn commands(cell: &str) -> Vec<String> {
    let program = |c: &str| {
        let first = c.split(' ').find(|w| !w.contains('=')).unwrap_or("");
        !first.is_empty()
            && first
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            && !first.starts_with('-')
    };
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| program(c) && !c.starts_with("cargo bench"))
        .map(str::to_owned)
        .collect()
}

/// The rows of the README's table of examples ("pattern | example | try it").
fn rows(readme: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let c = cells(line);
        if c.len() == 3 && c[1] == "example" && c[2] == "try it" {
            in_table = true;
            continue;
        }
        if !in_table || c.len() != 3 || c[0].starts_with("---") {
            continue;
        }
        let example = c[1]
            .split('`')
            .nth(1)
            .or_else(|| c[1].strip_prefix('[').and_then(|l| l.split(']').next()))
            .unwrap_or(&c[1])
            .to_owned();
        rows.push(Row {
            example,
            commands: commands(&c[2]),
        });
    }
    rows
}

/// `cargo run [--release] --example NAME [--]` → the built binary.
fn as_built(cmd: &str) -> String {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(i) = rest.find("cargo run ") {
        out.push_str(&rest[..i]);
        let mut words = rest[i + "cargo run ".len()..].split(' ').peekable();
        let mut used = "cargo run ".len();
        let mut take = |w: &str| used += w.len() + 1;
        if words.peek() == Some(&"--release") {
            take(words.next().unwrap());
        }
        assert_eq!(words.peek(), Some(&"--example"), "{cmd}");
        take(words.next().unwrap());
        let name = words.next().expect("example name");
        take(name);
        if words.peek() == Some(&"--") {
            take(words.next().unwrap());
        }
        out.push_str(&format!("{} ", example_path(name).display()));
        rest = rest.get(i + used..).unwrap_or("");
    }
    out.push_str(rest);
    out.trim_end().to_owned()
}

/// Whether `text` holds `pattern`, `#` standing for any digit.
fn shows(text: &str, pattern: &str) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    t.windows(p.len().max(1)).any(|w| {
        w.iter().zip(&p).all(|(c, q)| {
            if *q == '#' {
                c.is_ascii_digit()
            } else {
                c == q
            }
        })
    })
}

/// A namespace of its own (loopback up, an empty tmpfs on /tmp), held by a
/// sleeping process; every command runs in it with `nsenter`.
struct Sandbox {
    holder: Quiet,
}

impl Sandbox {
    fn new() -> Sandbox {
        // What lives under /tmp (the repository, the built examples) is
        // carried into the fresh /tmp by a bind mount.
        let mut keep: Vec<String> = [env!("CARGO_MANIFEST_DIR").into(), example_path("x")]
            .iter()
            .filter_map(|p| {
                p.strip_prefix("/tmp")
                    .ok()?
                    .iter()
                    .next()
                    .map(|d| format!("/tmp/{}", d.to_string_lossy()))
            })
            .collect();
        keep.dedup();
        let keep = keep.join(" ");
        let script = format!(
            "set -e; ip link set lo up; i=0; for k in {keep}; do i=$((i+1)); mkdir -p /mnt/keep$i; \
             mount --bind $k /mnt/keep$i; done; mount -t tmpfs tmpfs /tmp; i=0; for k in {keep}; do \
             i=$((i+1)); mkdir -p $k; mount --bind /mnt/keep$i $k; done; echo ready; exec sleep 600"
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]);
        let holder = Quiet::spawn("unshare", cmd);
        if holder
            .stdout
            .line("ready", Duration::from_secs(10))
            .is_none()
        {
            panic!(
                "cannot make a network namespace (unshare, ip, root): {}",
                holder.output()
            );
        }
        Sandbox { holder }
    }

    /// `bash -c CMD` inside, in its own process group (killed as one).
    fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--target={}", self.holder.child.id()))
            .args(["--net", "--mount"])
            .arg(format!("--wd={}", env!("CARGO_MANIFEST_DIR")))
            .args(["bash", "-c", cmd])
            .env("NO_COLOR", "1")
            .process_group(0);
        c
    }
}

/// A command running in the sandbox: its output captured, its whole
/// process group killed on drop.
type Job = Quiet;

fn job(sandbox: &Sandbox, cmd: &str, input: &str) -> Job {
    Quiet::spawn_typed(cmd, sandbox.command(cmd), Some(input.as_bytes()))
}

/// Starts a row's first command: a server (it says `listening on`), or a
/// command that runs to its end by itself. Returns the job and whether it
/// is a server still running.
fn start_first(
    sandbox: &Sandbox,
    row: &Row,
    cmd: &str,
    limit: Duration,
) -> Result<(Job, bool), String> {
    let mut job = job(sandbox, &as_built(cmd), "");
    let deadline = Instant::now() + limit;
    loop {
        if job
            .stdout
            .line("listening on ", Duration::from_millis(20))
            .is_some()
        {
            return Ok((job, true));
        }
        if let Some(st) = job.exited_within(Duration::ZERO) {
            if !st.success() {
                return Err(format!(
                    "{}: `{cmd}` failed ({st}):\n{}",
                    row.example,
                    job.text()
                ));
            }
            return Ok((job, false));
        }
        if Instant::now() > deadline {
            let text = job.text();
            return Err(format!(
                "{}: `{cmd}` neither served nor finished:\n{text}",
                row.example
            ));
        }
    }
}

/// Runs one row; returns an error text to report, or nothing.
fn run_row(row: &Row, all: &[Row]) -> Result<(), String> {
    let want = expectation(&row.example);
    let sandbox = Sandbox::new();
    let mut held = Vec::new();
    if let Some(server_row) = want.after {
        let other = all
            .iter()
            .find(|r| r.example == server_row)
            .ok_or(format!("{}: no row for {server_row}", row.example))?;
        let first = &other.commands[0];
        let (job, serving) = start_first(&sandbox, other, first, Duration::from_secs(10))?;
        if !serving {
            return Err(format!(
                "{}: `{first}` of {server_row} is no server",
                row.example
            ));
        }
        held.push(job);
    }
    let mut clients = row.commands.as_slice();
    let mut seen = String::new();
    if want.after.is_none() {
        let (job, serving) = start_first(&sandbox, row, &row.commands[0], want.limit)?;
        clients = &clients[1..];
        if !serving {
            seen.push_str(&job.text());
        }
        held.push(job);
    }
    let deadline = Instant::now() + want.limit;
    let mut jobs = Vec::new();
    for cmd in clients {
        for copy in 1..=want.copies {
            let stdin = if copy == want.copies { want.stdin } else { "" };
            jobs.push(job(&sandbox, &as_built(cmd), stdin));
            std::thread::sleep(Duration::from_millis(200)); // one joins before the next speaks
        }
    }
    // Until everything is shown, or every client is done, or time is up.
    loop {
        // Asked first: a client that is done has all its output captured.
        let done = jobs
            .iter_mut()
            .all(|j| j.exited_within(Duration::ZERO).is_some());
        let text: String = seen.clone() + &jobs.iter().map(Quiet::text).collect::<String>();
        let missing: Vec<&str> = want
            .shows
            .iter()
            .copied()
            .filter(|p| !shows(&text, p))
            .collect();
        if (missing.is_empty() && !want.shows.is_empty()) || done || Instant::now() > deadline {
            for j in jobs.iter_mut() {
                if let Ok(Some(st)) = j.child.try_wait() {
                    if !st.success() && (!missing.is_empty() || want.shows.is_empty()) {
                        return Err(format!(
                            "{}: a client failed ({st}):\n{}",
                            row.example,
                            j.text()
                        ));
                    }
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            let servers: String = held.iter().map(Quiet::text).collect();
            return Err(format!(
                "{}: {:?} did not show {missing:?} within {:?}; they printed:\n{text}\n(server: {servers})",
                row.example, row.commands, want.limit
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_command_of_the_readme_table_works_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let all = rows(&readme);
    assert!(
        all.len() >= 20,
        "the table has {} rows: parse failed?",
        all.len()
    );
    let mut failed = Vec::new();
    let mut ran = 0;
    for row in &all {
        if row.commands.is_empty() {
            let bench = row.example.starts_with("benches/");
            assert!(bench, "{}: no command in its row", row.example);
            continue; // a benchmark's row
        }
        ran += 1;
        if let Err(e) = run_row(row, &all) {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {ran} rows failed:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

#[test]
fn the_table_parser_reads_escaped_pipes_commands_and_names() {
    let readme = "| pattern | example | try it |\n|---|---|---|\n\
        | x (001) | [`foo`](examples/foo.rs) | `cargo run --example foo`, then `echo 1 \\| nc -q 1 h 1` (`--bug` too) |\n\
        | y | [benches/s.rs](benches/s.rs) | `cargo bench --bench s` → `benches/r/s-new.{md,svg}` (`-- --update`: `s.*`) |\n\
        | z | [`u`](examples/u.rs) | `X=1 cargo run --example u`, `nc localhost 1` |\n\ntext | not a row |\n";
    let r = rows(readme);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].example, "foo");
    assert_eq!(
        r[0].commands,
        ["cargo run --example foo", "echo 1 | nc -q 1 h 1"]
    );
    assert_eq!(r[1].example, "benches/s.rs");
    assert!(r[1].commands.is_empty(), "{:?}", r[1].commands);
    assert_eq!(
        r[2].commands,
        ["X=1 cargo run --example u", "nc localhost 1"]
    );
    let built =
        as_built("A=1 cargo run --release --example bar -- --x 1 | cargo run --example baz");
    let (bar, baz) = (example_path("bar"), example_path("baz"));
    assert_eq!(
        built,
        format!("A=1 {} --x 1 | {}", bar.display(), baz.display())
    );
    assert!(shows("at 2026-01-02 03:04", "####-##-## ##:##"));
    assert!(!shows("at 2026-0x-02", "####-##-##"));
}
