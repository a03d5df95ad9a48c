//! Uploaded files for the upload server (`main.rs`): which names are
//! allowed, where they land, the per-user quota, and resuming.
//!
//! Layout per user: `files/NAME` holds complete files only; an upload is
//! written to `partial/NAME` and renamed into `files/` once whole (and, when
//! the client named the file's BLAKE2b hash, checked against it first);
//! `resume/NAME` records the size and hash a partial file belongs to. A
//! `put` resumes only when it names the same size and hash; any other `put`
//! (a complete file again, a different file under the same name, a client
//! that names no hash) starts from byte 0, so the body it announced is
//! always read as file bytes, never as commands.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folders of a user, beside `user_info.json`.
pub const DIRS: [&str; 3] = ["files", "partial", "resume"];

/// (user, file name): one upload.
pub type Key = (String, String);

/// What a `put` asks for.
pub struct Put<'a> {
    pub name: &'a str,
    pub size: u64,
    /// BLAKE2b-256 of the whole file, lowercase hex, if the client sent it.
    pub hash: Option<&'a str>,
    /// The user's quota in bytes (`disk_limit` of `user_info.json`).
    pub quota: u64,
}

/// The upload area and the uploads under way (one at a time per file),
/// with the bytes each has announced (reserved against the quota).
pub struct Files {
    pub root: PathBuf,
    pub max_size: u64,
    pub max_files: usize,
    busy: HashMap<Key, u64>,
}

impl Files {
    /// Creates the root if needed.
    pub fn new(root: &Path, max_size: u64, max_files: usize) -> std::io::Result<Files> {
        std::fs::create_dir_all(root)
            .and_then(|_| root.canonicalize())
            .map(|root| Files {
                root,
                max_size,
                max_files,
                busy: HashMap::new(),
            })
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", root.display())))
    }

    /// Checks a `put` by `user` and opens its partial file for appending:
    /// the file, the bytes already held (the resume offset), and the key
    /// to pass to [`Files::done`].
    pub fn put(&mut self, user: &str, p: &Put) -> Result<(File, u64, Key), String> {
        let key = (user.to_string(), p.name.to_string());
        if self.busy.contains_key(&key) {
            return Err(format!(
                "{} is being uploaded on another connection",
                p.name
            ));
        }
        if !valid_file(p.name) {
            return Err(format!("refused file name {:?}", p.name));
        }
        if p.size > self.max_size {
            return Err(format!(
                "file too large: {} bytes, limit {}",
                p.size, self.max_size
            ));
        }
        for d in DIRS {
            // A user registered before `partial/` and `resume/` existed.
            std::fs::create_dir_all(self.root.join(user).join(d)).map_err(|e| e.to_string())?;
        }
        self.check_quota(user, p)?;
        let (file, have) = open(&self.root.join(user), p)?;
        self.busy.insert(key.clone(), p.size);
        Ok((file, have, key))
    }

    /// Bytes and files `user` holds, not counting `name` (a `put` replaces
    /// it), with uploads under way counted at their announced size.
    fn check_quota(&self, user: &str, p: &Put) -> Result<(), String> {
        let (mut used, mut count) = (p.size, 1);
        let mine = |k: &Key| k.0 == user && k.1 != p.name;
        for (_, size) in self.busy.iter().filter(|(k, _)| mine(k)) {
            (used, count) = (used + size, count + 1);
        }
        for sub in ["files", "partial"] {
            let dir =
                std::fs::read_dir(self.root.join(user).join(sub)).map_err(|e| e.to_string())?;
            for e in dir.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let busy = self
                    .busy
                    .contains_key(&(user.to_string(), name.to_string()));
                if name != p.name && !busy {
                    (used, count) = (used + e.metadata().map_or(0, |m| m.len()), count + 1);
                }
            }
        }
        if used > p.quota {
            return Err(format!(
                "quota exceeded: {used} bytes with this file, quota {}",
                p.quota
            ));
        }
        if count > self.max_files {
            return Err(format!(
                "too many files: at most {} per user",
                self.max_files
            ));
        }
        Ok(())
    }

    /// The upload ended, complete or not.
    pub fn done(&mut self, key: &Key) {
        self.busy.remove(key);
    }
}

/// Opens `partial/NAME` for appending: resumed when `resume/NAME` records
/// this size and hash, else emptied and recorded anew.
fn open(dir: &Path, p: &Put) -> Result<(File, u64), String> {
    let (part, record) = (
        dir.join("partial").join(p.name),
        dir.join("resume").join(p.name),
    );
    let want = serde_json::json!({ "size": p.size, "blake2b": p.hash }).to_string();
    let same = p.hash.is_some() && std::fs::read_to_string(&record).is_ok_and(|r| r == want);
    let have = match std::fs::symlink_metadata(&part) {
        Ok(m) if !m.is_file() => return Err(format!("{} is not a regular file", p.name)),
        Ok(m) if same => m.len(),
        Ok(_) | Err(_) => 0,
    };
    if have > p.size {
        return Err(format!(
            "resume offset {have} is beyond the declared size {}",
            p.size
        ));
    }
    let mut open = OpenOptions::new();
    open.append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW);
    let file = open.open(&part).map_err(|e| format!("{}: {e}", p.name))?;
    if have == 0 {
        file.set_len(0).map_err(|e| format!("{}: {e}", p.name))?;
        std::fs::write(&record, want).map_err(|e| format!("{}: {e}", p.name))?;
    }
    Ok((file, have))
}

/// Moves a whole upload into `files/`, after checking it against the hash
/// its `put` named (on a worker thread: this reads the whole file).
pub fn finish(root: &Path, key: &Key, hash: Option<&str>) -> Result<(), String> {
    let dir = root.join(&key.0);
    let (part, name) = (dir.join("partial").join(&key.1), &key.1);
    if let Some(want) = hash {
        let got = File::open(&part)
            .and_then(crate::hash::blake2b)
            .map_err(|e| format!("{name}: {e}"))?;
        if got != want {
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(dir.join("resume").join(name));
            return Err(format!(
                "{name}: the bytes stored do not match its blake2b ({got}); not kept"
            ));
        }
    }
    std::fs::rename(&part, dir.join("files").join(name)).map_err(|e| format!("{name}: {e}"))?;
    let _ = std::fs::remove_file(dir.join("resume").join(name));
    Ok(())
}

/// A file name: one path component, no separator, no NUL, not `.`/`..`.
fn valid_file(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
}
