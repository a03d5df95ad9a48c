//! The notes' remote command server (`003_8786073bdc871acb.txt`, "服务端:
//! 收--发"), in a safe form only. A request is a line (`date\n`); the reply
//! is the program's output as one length-prefixed frame (u32 big-endian
//! length, then the bytes), so the client always knows where it ends.
//!
//! **Why the notes' version is a hole:** it runs
//! `subprocess.Popen(recv_data, shell=True)` on whatever arrives from the
//! network. Anyone who can connect runs any shell command as the server's
//! user (`rm -rf ~`, `curl … | sh`, a reverse shell). Binding 127.0.0.1
//! narrows "anyone" to every local user and every local process a browser
//! page can make connect. So here:
//! - it binds a loopback address only (any other `--addr` is refused);
//! - the first word must be in an allow-list (`date`, `echo`, `hostname`,
//!   `uname`, `uptime`, `whoami`), run with `std::process::Command`, no
//!   shell: the other words are plain arguments, so `echo a; rm x` prints
//!   `a; rm x`;
//! - the child gets no stdin, at most `--timeout-ms` (then it is killed)
//!   and at most 64 KiB of its output is sent.
//!
//! Running the child blocks the loop (every other client waits) for as long
//! as it runs: the allowed programs finish in a few milliseconds, and the
//! timeout bounds the rest. A server running slow programs would run them on
//! a thread and hand the result back to the loop.
//!
//! Also fixed: the notes decode output as GBK (Windows) and send
//! `cmd error` for a command that printed nothing; here output is bytes as
//! they are, and errors are `error: ...` frames.
//!
//! Try it:
//! ```text
//! cargo run --example remote_cmd                       # 127.0.0.1:9999
//! printf 'echo hello; id\n' | nc -q 1 127.0.0.1 9999 | tail -c +5
//! ```

use clap::Parser;
use ioplex::codec::{LengthPrefixed, Lines, decode_all};
use ioplex::{Action, Config, Ctx, Handler, Reactor};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALLOWED: &[&str] = &["date", "echo", "hostname", "uname", "uptime", "whoami"];
const MAX_OUTPUT: u64 = 64 * 1024;

/// The notes' command server, allow-listed and without a shell.
#[derive(Parser)]
struct Args {
    /// Loopback address to listen on (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: SocketAddr,
    /// Kill a command that runs longer than this.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Runs an allowed program with the request's words as arguments.
fn run(request: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(request).map_err(|_| "request is not UTF-8".to_string())?;
    let mut words = text.split_ascii_whitespace();
    let program = words.next().ok_or("empty request")?;
    if !ALLOWED.contains(&program) {
        return Err(format!(
            "`{program}` is not allowed; allowed: {}",
            ALLOWED.join(", ")
        ));
    }
    let mut child = Command::new(program)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let deadline = Instant::now() + timeout;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{program}` ran longer than {timeout:?}: killed"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut out);
    }
    Ok(out)
}

/// Answers every request line with one length-prefixed frame.
pub struct RemoteCmd {
    timeout: Duration,
}

impl Handler for RemoteCmd {
    type Conn = Lines;

    fn on_connect(&mut self, ctx: &mut Ctx<'_>, peer: SocketAddr) -> Lines {
        log::info!("{}: connected from {peer}", ctx.id());
        Lines::new(1024)
    }

    fn on_data(&mut self, ctx: &mut Ctx<'_>, lines: &mut Lines, data: &[u8]) -> Action {
        let frames = LengthPrefixed::new(MAX_OUTPUT as usize + 1024);
        let r = decode_all(lines, data, |request| {
            log::info!("{}: run {:?}", ctx.id(), String::from_utf8_lossy(request));
            let out = run(request, self.timeout).unwrap_or_else(|e| format!("error: {e}\n").into());
            let head = frames.header(out.len()).expect("output is bounded");
            ctx.send_parts(&[&head, &out]);
            Action::Continue
        });
        r.unwrap_or_else(|e| {
            let msg = format!("error: {e}\n");
            let head = frames.header(msg.len()).expect("short");
            ctx.send_parts(&[&head, msg.as_bytes()]);
            Action::Close
        })
    }
}

fn main() -> std::io::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .env()
        .init()
        .expect("logger");
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        log::error!("refusing to serve commands on {}: loopback only", args.addr);
        std::process::exit(2);
    }
    let config = Config {
        max_input: 1026,
        ..Config::default()
    };
    let mut reactor = Reactor::new(config)?;
    let addr = reactor.listen(args.addr)?;
    println!("listening on {addr}");
    reactor.run(&mut RemoteCmd {
        timeout: Duration::from_millis(args.timeout_ms),
    })
}
