//! What `remote_cmd` may run, and running it: the allow-list, the
//! arguments that only read, the timeout, the output cap and its frame.

use ioplex::codec::LengthPrefixed;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALLOWED: &str = "date, echo, hostname, sleep, uname, uptime, whoami";
/// Bytes of a command's output that are sent; the rest is cut off.
pub const MAX_OUTPUT: u64 = 64 * 1024;

/// Splits a request line into a program and its arguments, if allowed.
pub fn check(request: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(request).map_err(|_| "request is not UTF-8".to_string())?;
    let argv: Vec<String> = text.split_ascii_whitespace().map(String::from).collect();
    let program = argv.first().ok_or("empty request")?;
    if !ALLOWED.split(", ").any(|p| p == program) {
        return Err(format!("`{program}` is not allowed; allowed: {ALLOWED}"));
    }
    if !read_only(program, &argv[1..]) {
        return Err(format!("`{program}` takes no such arguments here"));
    }
    Ok(argv)
}

/// Output, or the text of an `error: ...` frame.
pub type Reply = Result<Vec<u8>, String>;

/// One frame of the length codec: output is at most 64 KiB, an error a
/// request line (at most 1 KiB) and a few words.
pub fn frame(r: Reply) -> Vec<u8> {
    let out = r.unwrap_or_else(|e| format!("error: {e}\n").into_bytes());
    let frames = LengthPrefixed::new(MAX_OUTPUT as usize + 4096);
    let head = frames.header(out.len()).expect("replies are bounded");
    [&head[..], &out].concat()
}

/// Runs a checked command to its end or its timeout (on a worker thread); a reader
/// takes 64 KiB, then closes the pipe: a chatty child ends, never blocks on it.
pub fn run(argv: &[String], timeout: Duration) -> Reply {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::Builder::new().spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.take(MAX_OUTPUT).read_to_end(&mut out);
        out
    });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            kill(child);
            return Err(format!("cannot read `{}`: {e}", argv[0]));
        }
    };
    let deadline = Instant::now() + timeout;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            kill(child);
            return Err(format!("`{}` ran longer than {timeout:?}: killed", argv[0]));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    reader.join().map_err(|_| "output reader failed".into())
}

/// Kills a child and reaps it, so no zombie is left behind.
fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Arguments that only read (`hostname NAME`, `date -s …` change the machine).
fn read_only(program: &str, args: &[String]) -> bool {
    match program {
        "date" => args.iter().all(|a| a.starts_with('+') || a == "-u"),
        "hostname" | "whoami" => args.is_empty(),
        _ => true, // echo, sleep, uname, uptime change nothing
    }
}
