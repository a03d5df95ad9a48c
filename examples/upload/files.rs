//! Uploaded files for the upload server (`main.rs`): which names are
//! allowed, where they land, and which uploads are under way.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// (user, file name): one upload.
pub type Key = (String, String);

/// The upload area and the uploads under way (one at a time per file).
pub struct Files {
    pub root: PathBuf,
    pub max_size: u64,
    busy: HashSet<Key>,
}

impl Files {
    /// Creates the root if needed.
    pub fn new(root: &Path, max_size: u64) -> std::io::Result<Files> {
        std::fs::create_dir_all(root)?;
        let (root, busy) = (root.canonicalize()?, HashSet::new());
        Ok(Files {
            root,
            max_size,
            busy,
        })
    }

    /// Checks a `put` of `name` (`size` bytes) by `user` and opens the file
    /// for appending: the file, the bytes already held (the resume offset),
    /// and the key to pass to [`Files::done`].
    pub fn put(&mut self, user: &str, name: &str, size: u64) -> Result<(File, u64, Key), String> {
        let key = (user.to_string(), name.to_string());
        if self.busy.contains(&key) {
            return Err(format!("{name} is being uploaded on another connection"));
        }
        let (file, have) = open(&self.root, user, name, size, self.max_size)?;
        self.busy.insert(key.clone());
        Ok((file, have, key))
    }

    /// The upload ended, complete or not.
    pub fn done(&mut self, key: &Key) {
        self.busy.remove(key);
    }
}

/// Checks a `put` of `name` (`size` bytes) by `user` and opens the file for
/// appending; returns it and the bytes already held (the resume offset).
fn open(root: &Path, user: &str, name: &str, size: u64, max: u64) -> Result<(File, u64), String> {
    if !valid_file(name) {
        return Err(format!("refused file name {name:?}"));
    }
    if size > max {
        return Err(format!("file too large: {size} bytes, limit {max}"));
    }
    let path = dir(root, user).join(name);
    let have = match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(format!("{name} is not a regular file")),
        Err(e) if e.kind() == ErrorKind::NotFound => 0,
        Err(e) => return Err(e.to_string()),
    };
    if have > size {
        return Err(format!(
            "resume offset {have} is beyond the declared size {size}"
        ));
    }
    let mut open = OpenOptions::new();
    open.append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW);
    let file = open.open(&path).map_err(|e| format!("{name}: {e}"))?;
    Ok((file, have))
}

/// A file name: one path component, no separator, no NUL, not `.`/`..`.
fn valid_file(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
}

/// Where a user's uploads live: `ROOT/USER/files/`, apart from the user's
/// record, so no upload can overwrite `user_info.json`.
pub fn dir(root: &Path, user: &str) -> PathBuf {
    root.join(user).join("files")
}
