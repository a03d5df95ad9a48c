//! The notes' file transfer client (`004_530bf3ed11a85fd8.txt`, "图片已保存"):
//! reads one JSON document `{"filename": ..., "filedata": <base64>}` to EOF
//! from `file_transfer` and saves the decoded file in `--out`.
//!
//! Fixed from the notes:
//! - **A malformed header or body crashed with a traceback** (or wrote
//!   garbage). Here each is a one-line error naming what is wrong, exit
//!   code 1, and nothing is written.
//! - **`open('/Users/Hao/' + filename)`** trusts the server's name: `../x` or
//!   `/etc/x` writes anywhere. Here the name must be a plain file name.
//! - **No size limit** on what is read; here `--max-bytes` (default 128 MiB).
//! - **`in_data += data`** copies the whole buffer per chunk; here it grows.
//! - **`open(..., 'wb')` overwrote** a file of that name silently; here an
//!   existing file is an error unless `--force` is given.
//! - A server that turns the client away says why (`{"error": ...}`): printed.
//!
//! Try it:
//! ```text
//! cargo run --example file_transfer -- --file Cargo.toml &
//! cargo run --example file_transfer_client -- --addr 127.0.0.1:5566 --out /tmp
//! ```

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Parser;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

/// The notes' file transfer client: saves the file the server sends.
#[derive(Parser)]
struct Args {
    /// The server (the notes: 192.168.1.2:5566).
    #[arg(long, default_value = "127.0.0.1:5566")]
    addr: String,
    /// Directory to save the file in.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Largest document accepted, in bytes.
    #[arg(long, default_value_t = 128 << 20)]
    max_bytes: u64,
    /// Overwrite a file of the same name in `--out`.
    #[arg(long)]
    force: bool,
}

/// The name and contents the document carries, or what is wrong with it.
fn decode(doc: &[u8]) -> Result<(String, Vec<u8>), String> {
    let v: serde_json::Value =
        serde_json::from_slice(doc).map_err(|e| format!("malformed JSON header: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .ok_or(format!("malformed JSON header: no string field {k:?}"))
    };
    if let Some(why) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("the server refused: {why}"));
    }
    let name = field("filename")?;
    let bad = name.is_empty() || name == "." || name == "..";
    if bad || name.contains(['/', '\\', '\0']) {
        return Err(format!("refused file name {name:?}: not a plain file name"));
    }
    let data = STANDARD
        .decode(field("filedata")?)
        .map_err(|e| format!("malformed body: filedata is not base64: {e}"))?;
    Ok((name.to_string(), data))
}

fn run(args: &Args) -> Result<String, String> {
    let mut sock = TcpStream::connect(&args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut doc = Vec::new();
    let limit = args.max_bytes + 1;
    (&mut sock)
        .take(limit)
        .read_to_end(&mut doc)
        .map_err(|e| format!("receive: {e}"))?;
    if doc.len() as u64 == limit {
        return Err(format!("document over --max-bytes ({})", args.max_bytes));
    }
    let (name, data) = decode(&doc)?;
    let path = args.out.join(&name);
    let mut open = std::fs::OpenOptions::new();
    match args.force {
        true => open.write(true).create(true).truncate(true),
        false => open.write(true).create_new(true),
    };
    let mut file = open.open(&path).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => {
            format!("{} exists: not overwritten (--force to)", path.display())
        }
        _ => format!("{}: {e}", path.display()),
    })?;
    file.write_all(&data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("saved {} ({} bytes)", path.display(), data.len()))
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(msg) => println!("{msg}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
