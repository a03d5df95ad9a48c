//! The notes' group chat client (`002_38647ddd90221e2c.txt`,
//! "客户端代码" and the `ChatClient` class demo): prints what the room
//! says, sends each line typed on stdin; `exit` (or end of input) leaves.
//!
//! Fixed from the notes:
//! - **No line ends.** The notes send `message.encode()` bare, so two
//!   quick messages can reach the room as one; here every message ends
//!   with `\n`, which is how `examples/chat.rs` frames messages.
//! - **An empty `recv` printed forever.** The class demo's receive loop
//!   never checks for `b''` and spins printing empty messages once the
//!   server closes; here the client says `connection closed by server` at
//!   once and exits 0 (not only when the next two lines typed fail to send).
//!
//! Try it (with `examples/chat.rs` running):
//! ```text
//! cargo run --example chat_client -- --addr 127.0.0.1:9999
//! ```

use clap::Parser;
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The notes' chat client: prints what the room says, sends each line typed.
#[derive(Parser)]
struct Args {
    /// Server address (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
}

fn run(args: &Args) -> Result<(), String> {
    let sock = TcpStream::connect(&args.addr)
        .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
    eprintln!("connected to {}; type lines, `exit` to leave", args.addr);
    let mut reader = sock.try_clone().map_err(|e| e.to_string())?;
    let leaving = Arc::new(AtomicBool::new(false));
    let left = leaving.clone();
    // The room speaks whenever it likes: a thread prints it, and notices the
    // server going away while the main thread waits for a line on stdin.
    let addr = args.addr.clone();
    let printer = std::thread::spawn(move || {
        let (mut buf, mut out) = ([0u8; 4096], io::stdout());
        loop {
            match reader.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = out.write_all(&buf[..n]).and_then(|_| out.flush());
                }
                _ if left.load(Ordering::Acquire) => return, // we left: the close is ours
                // EOF, or a reset (a server killed with input unread sends RST).
                Ok(_) => gone(),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    gone()
                }
                Err(e) => {
                    eprintln!("error: receive from {addr}: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
    let mut writer = &sock;
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        if line.trim().eq_ignore_ascii_case("exit") {
            break;
        }
        writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
    }
    leaving.store(true, Ordering::Release);
    let _ = sock.shutdown(Shutdown::Write);
    let _ = printer.join();
    Ok(())
}

/// The server went away: say so, and end the client (its stdin may be blocked).
fn gone() {
    eprintln!("connection closed by server");
    std::process::exit(0);
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
