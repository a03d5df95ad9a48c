//! The file hash the upload server and `upload_client` agree on: BLAKE2b-256
//! (from the `blake2` crate Argon2 is built on), as lowercase hex.

use blake2::{Blake2b256, Digest};
use std::io::{ErrorKind, Read};

/// BLAKE2b-256 of everything `r` yields, lowercase hex.
pub fn blake2b(mut r: impl Read) -> std::io::Result<String> {
    let (mut h, mut buf) = (Blake2b256::new(), vec![0; 64 << 10]);
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
