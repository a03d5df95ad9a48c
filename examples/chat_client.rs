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
//!   server closes; here EOF ends the client.
//!
//! Try it (with `examples/chat.rs` running):
//! ```text
//! cargo run --example chat_client -- --addr 127.0.0.1:9999
//! ```

use clap::Parser;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};

/// The notes' chat client.
#[derive(Parser)]
struct Args {
    /// Server address (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let sock = TcpStream::connect(&args.addr)?;
    eprintln!("connected to {}; type lines, `exit` to leave", args.addr);
    let mut reader = sock.try_clone()?;
    let printer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
    });
    let mut writer = &sock;
    for line in io::stdin().lock().lines() {
        let line = line?;
        if line.trim().eq_ignore_ascii_case("exit") {
            break;
        }
        writer.write_all(format!("{line}\n").as_bytes())?;
    }
    sock.shutdown(Shutdown::Write)?;
    let _ = printer.join();
    Ok(())
}
