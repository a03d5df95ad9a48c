//! The notes' UDP Ping client (`004_530bf3ed11a85fd8.txt`, "UDPPinger.py"):
//! 9 pings `Ping <seq> <time>`, each waiting at most 1 s, then a summary as
//! `ping` prints it. Talks to `udp_ping` (or the notes' server).
//!
//! Fixed from the notes:
//! - **A late reply is counted for the wrong ping.** The notes take any
//!   datagram as the answer to the current ping; a reply that arrives after
//!   its 1 s timeout is then "the reply" to the next one. Here a reply must
//!   be the upper-cased copy of this very ping; others are skipped.
//! - **No summary.** Here: transmitted, received, loss, min/avg/max RTT.
//! - **Seconds per line.** The notes print each RTT as `0.000s` (loopback
//!   rounds to zero); here every RTT, per line and in the summary, is in
//!   milliseconds, as `ping` prints it.
//!
//! Try it:
//! ```text
//! cargo run --example udp_ping &
//! cargo run --example udp_ping_client -- --addr 127.0.0.1:12000
//! ```

#[path = "support/mod.rs"]
mod support;

use clap::Parser;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The notes' UDP Ping client: pings, waits for each reply, prints a summary.
#[derive(Parser)]
struct Args {
    /// The ping server (the notes: 127.0.0.1:12000).
    #[arg(long, default_value = "127.0.0.1:12000")]
    addr: SocketAddr,
    /// Pings to send.
    #[arg(long, default_value_t = 9)]
    count: u32,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
}

/// Waits until `deadline` for the upper-cased copy of `sent`.
fn await_reply(sock: &UdpSocket, sent: &[u8], deadline: Instant) -> std::io::Result<bool> {
    let want = sent.to_ascii_uppercase();
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) if buf[..n] == want[..] => return Ok(true),
            Ok(_) => continue, // a late reply to an earlier ping
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            // ICMP port unreachable (no server): counts as lost, like a timeout.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    support::exit(run(Args::parse()))
}

fn run(args: Args) -> std::io::Result<()> {
    let bind = if args.addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(support::cannot(format!("bind UDP {bind}")))?;
    let to = args.addr;
    sock.connect(to)
        .map_err(support::cannot(format!("send to {to}")))?; // only its replies come in
    let timeout = Duration::try_from_secs_f64(args.timeout).unwrap_or_else(|e| {
        support::usage_error::<Args>(format!("--timeout {}: {e}", args.timeout))
    });
    let ip = args.addr.ip();
    let mut rtts = Vec::new();
    for seq in 1..=args.count {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let message = format!("Ping {seq} {}", stamp.as_secs_f64());
        let sent = Instant::now();
        let ok = match sock.send(message.as_bytes()) {
            Ok(_) => await_reply(&sock, message.as_bytes(), sent + timeout)?,
            Err(_) => false,
        };
        if ok {
            let rtt = sent.elapsed().as_secs_f64() * 1000.0;
            println!("Sequence {seq}: Reply from {ip}    RTT = {rtt:.3} ms");
            rtts.push(rtt);
        } else {
            println!("Sequence {seq}: Request timed out.");
        }
    }
    let (sent, got) = (args.count as usize, rtts.len());
    let loss = ((sent - got) * 100).checked_div(sent).unwrap_or(0);
    println!("--- {ip} ping statistics ---");
    println!("{sent} packets transmitted, {got} received, {loss}% packet loss");
    if got > 0 {
        let min = rtts.iter().cloned().fold(f64::MAX, f64::min);
        let max = rtts.iter().cloned().fold(0.0, f64::max);
        let avg = rtts.iter().sum::<f64>() / got as f64;
        println!("rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
    }
    Ok(())
}
