//! Which file a request target names (`main.rs`): never one outside the
//! root, no hidden file unless asked, `index.html` for a directory, and
//! nothing that is not a regular file or a directory (a FIFO, a device, a
//! socket: 403). Opening never waits: `O_NONBLOCK` (a FIFO without a writer
//! would hold the loop), then `fstat` says what was opened.

use crate::request::Refusal;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The directory served.
pub struct Root {
    /// Canonical path, for the symlink check.
    pub path: PathBuf,
    /// Held open: what `openat2` resolves beneath.
    pub dir: File,
    /// Serve dotfiles and dot-directories (`--allow-hidden`).
    pub allow_hidden: bool,
}

/// What a target names.
pub enum Found {
    /// A regular file, its metadata and the name whose extension gives its type.
    File(File, Metadata, PathBuf),
    /// A directory named without its trailing slash: where it is (`301`).
    Redirect(String),
}

impl Root {
    /// Opens what `target` names.
    pub fn open(&self, target: &str) -> Result<Found, Refusal> {
        let (path, query) = match target.find(['?', '#']) {
            Some(at) => target.split_at(at),
            None => (target, ""),
        };
        let rel = self.relative(path)?;
        let (file, meta, real_rel) = match self.open_direct(&rel) {
            Some((file, meta)) => (file, meta, rel.clone()),
            None => self.open_resolved(&rel)?,
        };
        if meta.is_file() {
            return Ok(Found::File(file, meta, rel));
        }
        if !path.ends_with('/') {
            return Ok(Found::Redirect(format!("{path}/{query}")));
        }
        drop(file);
        let index = real_rel.join("index.html");
        match self.open_beneath(&index)? {
            (file, meta) if meta.is_file() => Ok(Found::File(file, meta, index)),
            _ => Err((403, "not a regular file")),
        }
    }

    /// A target with no symlink on its way (most) opens as named: its real
    /// path is the one checked, known without `canonicalize`'s readlink of
    /// every component (4 of a request's 12 system calls). Anything else
    /// (a symlink, an error, not a file or directory) goes the long way.
    fn open_direct(&self, rel: &Path) -> Option<(File, Metadata)> {
        let file = crate::beneath::open_no_symlinks(&self.dir, rel).ok()?;
        let meta = file.metadata().ok()?;
        (meta.is_file() || meta.is_dir()).then_some((file, meta))
    }

    /// Follows every symlink; what is left must still be under the root.
    fn open_resolved(&self, rel: &Path) -> Result<(File, Metadata, PathBuf), Refusal> {
        let real = self.path.join(rel).canonicalize().map_err(refusal)?;
        let Ok(real_rel) = real.strip_prefix(&self.path) else {
            return Err((403, "outside the root"));
        };
        if !self.allow_hidden && real_rel.iter().any(hidden) {
            return Err((404, "not found")); // a symlink to a hidden file
        }
        let (file, meta) = self.open_beneath(real_rel)?;
        Ok((file, meta, real_rel.to_path_buf()))
    }

    /// The target's path, decoded once, as segments under the root.
    fn relative(&self, path: &str) -> Result<PathBuf, Refusal> {
        if !path.starts_with('/') {
            return Err((400, "target must start with /"));
        }
        let bytes = decode_once(path)?;
        if bytes.contains(&0) {
            return Err((400, "NUL in path"));
        }
        if bytes.contains(&b'\\') {
            return Err((400, "backslash in path"));
        }
        let mut rel = PathBuf::new();
        for seg in bytes.split(|&b| b == b'/') {
            match seg {
                b"" | b"." => {}
                b".." => return Err((400, "`..` in path")),
                s if s[0] == b'.' && !self.allow_hidden => return Err((404, "not found")),
                s => rel.push(OsStr::from_bytes(s)),
            }
        }
        Ok(rel)
    }

    /// Opens `rel` beneath the root without waiting, and says what it is:
    /// a regular file or a directory, or a 403.
    fn open_beneath(&self, rel: &Path) -> Result<(File, Metadata), Refusal> {
        let file = match crate::beneath::open(&self.dir, rel) {
            // No openat2: O_NOFOLLOW still guards the last component.
            Err(e) if crate::beneath::unsupported(&e) => {
                crate::beneath::open_plain(&self.path, rel)
            }
            r => r,
        };
        let file = file.map_err(|e| {
            let errno = match e.raw_os_error() {
                Some(libc::EMFILE) => "EMFILE",
                Some(libc::ENFILE) => "ENFILE",
                _ => return refusal(e),
            };
            let rel = rel.display();
            log::warn!("cannot open {rel}: out of file descriptors ({errno}): answering 503");
            refusal(e)
        })?;
        let meta = file.metadata().map_err(refusal)?;
        if meta.is_file() || meta.is_dir() {
            Ok((file, meta))
        } else {
            Err((403, "not a regular file"))
        }
    }
}

/// A dotfile or dot-directory name (`.git`, `.env`).
fn hidden(name: &OsStr) -> bool {
    name.as_bytes().first() == Some(&b'.')
}

/// The answer to a failed `canonicalize`, `open` or `fstat`.
fn refusal(e: io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EXDEV) => (403, "outside the root"),
        Some(libc::EACCES | libc::EPERM) => (403, "permission denied"),
        Some(libc::EMFILE | libc::ENFILE) => (503, "out of file descriptors, try again"),
        _ => (404, "not found"),
    }
}

/// Percent-decodes once. An escape that decodes to `.`, `/`, `\`, `%` or
/// NUL is refused: it can only be there to slip past a check (`%2e%2e`,
/// `.%2e`, `%2f`), or to be decoded a second time by someone (`%252e`).
fn decode_once(s: &str) -> Result<Vec<u8>, Refusal> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return Err((400, "bad percent escape"));
        };
        let c = (hi * 16 + lo) as u8;
        if matches!(c, b'.' | b'/' | b'\\' | b'%' | 0) {
            return Err((400, "escaped dot, separator, percent or NUL"));
        }
        out.push(c);
        i += 3;
    }
    Ok(out)
}
