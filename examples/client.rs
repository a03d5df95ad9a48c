//! A line client for machines without `nc`: connects, prints what the
//! server sends, sends each line typed on stdin (with its newline).
//!
//! When the server closes the connection the client says
//! `connection closed by server` at once and exits 0, without waiting
//! for the next line to be typed. Ctrl-D sends FIN and waits for the
//! server to finish its answer.
//!
//! ```text
//! cargo run --release --example client -- 127.0.0.1:9999
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// A line client: prints what the server sends, sends the lines typed.
#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(default_value = "127.0.0.1:9999")]
    addr: String,
}

/// Set once stdin ended and our FIN went out: a close then is the answer to it.
static DONE_SENDING: AtomicBool = AtomicBool::new(false);

/// Prints what the server sends until it closes; then ends the process.
fn print_until_closed(mut reader: TcpStream) -> ! {
    let mut buf = [0u8; 4096];
    let mut out = io::stdout();
    let code = loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                let _ = out.flush();
                if !DONE_SENDING.load(Ordering::Acquire) {
                    eprintln!("connection closed by server");
                }
                break 0;
            }
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {}", support::cannot("read from the server")(e));
                break 1;
            }
        }
    };
    std::process::exit(code)
}

fn run(addr: &str) -> io::Result<()> {
    let stream = support::connect(addr, None)?;
    eprintln!("connected to {addr}; type lines, Ctrl-D to finish");
    let reader = stream.try_clone()?;
    let printer = std::thread::spawn(move || print_until_closed(reader));
    let mut writer = &stream;
    for line in io::stdin().lock().lines() {
        let line = line?;
        let sent = writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.write_all(b"\n"));
        if sent.is_err() {
            // The server is gone: the printer says so and ends the process.
            let _ = printer.join();
            return Ok(());
        }
    }
    DONE_SENDING.store(true, Ordering::Release);
    let _ = stream.shutdown(Shutdown::Write);
    let _ = printer.join(); // it ends the process when the server closes
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    support::exit(run(&args.addr))
}
