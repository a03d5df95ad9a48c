//! The notes' echo client (`001_55c31efdbee7bdde.txt`, the `client端`):
//! sends each message and prints `Client received: ` + the reply.
//! Messages come from the command line, as in the notes, or else one per
//! line from stdin; with neither, the notes' default `Hello network world`.
//!
//! Fixed from the notes:
//! - **One `recv(1024)` per message** may return half a reply (or, after a
//!   split send, leave the rest for the next message). Here the client reads
//!   until it has at least `Echo=>` + its message, the smallest whole reply.
//! - `print repr(data)` printed Python's escaping; here the reply is printed
//!   as text (invalid UTF-8 shown as `�`).
//!
//! Try it (with `examples/echo_server.rs` running):
//! ```text
//! cargo run --example echo_client -- --addr 127.0.0.1:50007 hello world
//! printf 'one\ntwo\n' | cargo run --example echo_client -- --stdin
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// The notes' echo client: sends each message, prints `Client received: ` + the reply.
#[derive(Parser)]
struct Args {
    /// Server address (the notes: `localhost:50007`).
    #[arg(long, default_value = "127.0.0.1:50007")]
    addr: String,
    /// Read the messages from stdin, one per line.
    #[arg(long)]
    stdin: bool,
    /// Messages to send (the notes: `sys.argv[2:]`).
    messages: Vec<String>,
}

/// Sends `msg`, reads at least `Echo=>` + `msg` bytes of reply.
fn exchange(sock: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    sock.write_all(msg)?;
    let want = b"Echo=>".len() + msg.len();
    let mut reply = Vec::with_capacity(want);
    let mut buf = [0u8; 4096];
    while reply.len() < want {
        match sock.read(&mut buf)? {
            0 => {
                return Err(io::Error::other(
                    "the server closed the connection mid-reply",
                ));
            }
            n => reply.extend_from_slice(&buf[..n]),
        }
    }
    Ok(reply)
}

fn main() -> ExitCode {
    support::exit(run(Args::parse()))
}

fn run(args: Args) -> io::Result<()> {
    let addr = &args.addr;
    let mut sock = support::connect(addr, Some(Duration::from_secs(30)))?;
    let messages: Vec<String> = if args.stdin {
        io::stdin().lock().lines().collect::<io::Result<_>>()?
    } else if args.messages.is_empty() {
        vec!["Hello network world".into()]
    } else {
        args.messages
    };
    let mut out = io::stdout().lock();
    for msg in messages.iter().filter(|m| !m.is_empty()) {
        let reply = exchange(&mut sock, msg.as_bytes())
            .map_err(support::cannot(format!("get a reply from {addr}")))?;
        writeln!(out, "Client received: {}", String::from_utf8_lossy(&reply))?;
        out.flush()?;
    }
    Ok(())
}
