//! The notes' FTP upload server (`003_8786073bdc871acb.txt`, "FTP服务端和客户端"),
//! on the reactor: the notes' JSON commands `register`, `check_user`, `put`;
//! `put` answers `Start` or the offset held, the client sends the rest, then `ok SIZE`.
//!
//! Fixed from the notes:
//! - **md5 passwords** (fixed salt) → Argon2id on worker threads (`pool.rs`):
//!   at most `--workers` at once, a slot freed when the hash ends (not when
//!   its client leaves), the rest in a line fair across addresses ("busy"
//!   handed the slots to whoever retried fastest).
//! - **Guessing**: failures back off per user and per address (`guard.rs`),
//!   checked before any hash; registrations are limited per address and in all.
//! - **`file_owner` from the client** chose the directory; `filename` was joined
//!   as is. Here: `ROOT/USER/files/` of the logged-in user; `/` `\` `..` NUL refused.
//! - **`disk_limit`** was written and never read: here it is the user's quota,
//!   checked (with `--max-files`) before a byte is written.
//! - **Resume trusted the size alone**; here only a `put` naming the same size
//!   and BLAKE2b hash resumes, the file is checked against it before it is
//!   kept, and any other `put` reads its whole body (`files.rs`): a body is
//!   never run as commands.
//! - **Registration** is built aside and renamed into place: all or nothing.
//! - **Sticky packets**: commands are parsed as a JSON stream, the body is
//!   exactly `filesize - offset` bytes, replies end in `\n`.
//! - **A thread per client**, kept forever: here one loop, `--max-per-ip`
//!   connections per address, and `--idle-timeout-ms` of silence closes one.
//!
//! Try it:
//! ```text
//! cargo run --example upload -- --root /tmp/uploads          # 127.0.0.1:9090
//! UPLOAD_PASSWORD=s3cret cargo run --example upload_client -- --user alice --register Cargo.toml
//! ```

mod files;
mod guard;
mod hash;
#[path = "../remote_cmd/pool.rs"]
mod pool;
mod session;
mod store;
#[path = "../support/mod.rs"]
mod support;
mod work;

use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The notes' FTP-style upload server: register, log in, `put` files with resume.
#[derive(Parser)]
pub struct Args {
    /// Address to listen on (the notes' settings file is not shown).
    #[arg(long, default_value = "127.0.0.1:9090")]
    addr: String,
    /// Directory holding users and their files.
    #[arg(long, default_value = "uploads")]
    root: PathBuf,
    /// Largest file a client may declare, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_size: u64,
    /// Bytes each new user may store (its `disk_limit`).
    #[arg(long, default_value_t = 1 << 30)]
    quota: u64,
    /// Files (complete or partial) each user may hold.
    #[arg(long, default_value_t = 1000)]
    max_files: usize,
    /// Users the server holds; past it registration is closed.
    #[arg(long, default_value_t = 1000)]
    max_users: usize,
    /// Registrations one address may make per hour.
    #[arg(long, default_value_t = 5)]
    registrations_per_hour: u32,
    /// Password hashes and file checks running at once (each Argon2 hash takes 19 MiB).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Connections one peer address may hold.
    #[arg(long, default_value_t = 8)]
    max_per_ip: usize,
    /// Close a client that sends nothing for this many milliseconds.
    #[arg(long, default_value_t = 120_000)]
    idle_timeout_ms: u64,
    #[command(flatten)]
    deploy: support::Deploy,
}

fn serve(args: Args) -> std::io::Result<()> {
    let files = files::Files::new(&args.root, args.max_size, args.max_files)?;
    store::clean(&files.root);
    let users = std::fs::read_dir(&files.root)?
        .flatten()
        .filter(|e| store::valid_user(&e.file_name().to_string_lossy()))
        .count();
    let guard = guard::Guard::new(users, args.max_users, args.registrations_per_hour);
    let config = ioplex::Config {
        idle_timeout: Some(Duration::from_millis(args.idle_timeout_ms)),
        max_connections_per_ip: Some(args.max_per_ip),
        busy_message: b"error: too many connections, from your address or in all\n".to_vec(),
        ..args.deploy.config(Default::default())
    };
    let mut reactor = ioplex::Reactor::new(config)?;
    let pool = pool::Pool::new(args.workers, reactor.handle());
    support::listen(&mut reactor, &args.addr, &args.deploy)?;
    let (conns, waits, quota) = (HashMap::new(), HashMap::new(), args.quota);
    reactor.run(&mut session::Upload {
        files,
        guard,
        pool,
        quota,
        conns,
        waits,
    })
}

fn main() -> std::process::ExitCode {
    support::logger();
    support::exit(serve(Args::parse()))
}
