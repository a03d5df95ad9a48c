//! The notes' client for the `Ready|N` / `Start` handshake
//! (`003_8786073bdc871acb.txt`, "客户端:发--收"): sends a request, waits
//! for `Ready|N`, answers `Start`, reads exactly N bytes, prints them.
//! Requests come from the command line, else one per line from stdin
//! (`exit` ends, empty lines are skipped, as in the notes).
//!
//! Fixed from the notes:
//! - **`s.recv(1024)` for `Ready|N`** may return part of it, or (from a
//!   server that does not wait for `Start`) glued to the body; here the
//!   `Handshake` codec decodes from a buffer, so any split works.
//! - **`recv_msg += recv_data` then `decode`** of a body whose last read
//!   split a UTF-8 character raised; here the body is printed whole.
//!
//! Try it (with `examples/handshake.rs` running):
//! ```text
//! cargo run --example handshake_client -- --addr 127.0.0.1:9999 hello world
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use ioplex::codec::{Codec, Handshake, Hs};
use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// The notes' handshake client: sends a request, answers `Ready|N` with
/// `Start`, prints the N bytes.
#[derive(Parser)]
struct Args {
    /// Server address (the notes: `127.0.0.1:9999`).
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: String,
    /// Requests to send; without any, lines from stdin.
    requests: Vec<String>,
}

/// A decoded message the caller owns.
enum Msg {
    Ready(usize),
    Start,
    Body(Vec<u8>),
}

/// Reads until `codec` decodes one message from `buf` (kept across calls).
fn next(sock: &mut TcpStream, codec: &mut Handshake, buf: &mut Vec<u8>) -> io::Result<Msg> {
    loop {
        if let Some((m, n)) = codec.decode(buf)? {
            let m = match m {
                Hs::Ready(n) => Msg::Ready(n),
                Hs::Start => Msg::Start,
                Hs::Body(b) => Msg::Body(b.to_vec()),
            };
            buf.drain(..n);
            return Ok(m);
        }
        let mut chunk = [0u8; 1024];
        match sock.read(&mut chunk)? {
            0 => return Err(io::Error::other("the server closed the connection")),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn ask(sock: &mut TcpStream, codec: &mut Handshake, request: &str) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    sock.write_all(request.as_bytes())?;
    let Msg::Ready(size) = next(sock, codec, &mut buf)? else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected Ready|N",
        ));
    };
    sock.write_all(b"Start")?;
    let Msg::Body(body) = next(sock, codec, &mut buf)? else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected the body",
        ));
    };
    eprintln!("data size {size} ,recv size {}", body.len());
    Ok(body)
}

fn main() -> ExitCode {
    support::exit(run(Args::parse()))
}

fn run(args: Args) -> io::Result<()> {
    let addr = &args.addr;
    let mut sock = support::connect(addr, Some(Duration::from_secs(30)))?;
    let mut codec = Handshake::new(64 << 20);
    let requests: Vec<String> = if args.requests.is_empty() {
        io::stdin().lock().lines().collect::<io::Result<_>>()?
    } else {
        args.requests
    };
    let mut out = io::stdout().lock();
    for request in requests.iter().map(|r| r.trim()) {
        if request == "exit" {
            break;
        }
        if !request.is_empty() {
            let body = ask(&mut sock, &mut codec, request)
                .map_err(support::cannot(format!("get an answer from {addr}")))?;
            out.write_all(&body)?;
            out.flush()?;
        }
    }
    Ok(())
}
