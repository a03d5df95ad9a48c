//! A line client for machines without `nc`: connects, prints what the
//! server sends, sends each line typed on stdin (with its newline).
//!
//! ```text
//! cargo run --release --example client -- 127.0.0.1:9999
//! ```

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let stream = TcpStream::connect(&addr)?;
    eprintln!("connected to {addr}; type lines, Ctrl-D to finish");
    let mut reader = stream.try_clone()?;
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
    let mut writer = &stream;
    for line in io::stdin().lock().lines() {
        writer.write_all(line?.as_bytes())?;
        writer.write_all(b"\n")?;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let _ = printer.join();
    Ok(())
}
