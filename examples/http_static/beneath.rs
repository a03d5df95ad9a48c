//! Opening a file strictly beneath the root: `openat2(2)` with
//! `RESOLVE_BENEATH` (Linux 5.6+). `resolve` checked the path, but a
//! directory on it can be swapped for a symlink before the open; here the
//! kernel itself refuses (`EXDEV`) any step that would leave the root.
//! `O_NONBLOCK`: opening a FIFO returns at once instead of waiting for a
//! writer (the caller refuses it after `fstat`); reads of regular files
//! ignore the flag.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Flags of every open: read-only, never waiting, never a controlling tty.
const FLAGS: i32 = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;

/// Opens `rel` (relative, no `..`; empty for the root itself) read-only
/// beneath the directory `dir`, never following a symlink in its last
/// component nor leaving `dir` on the way.
pub fn open(dir: &File, rel: &Path) -> io::Result<File> {
    open_how(dir, rel, 0)
}

/// [`open`], refusing a symlink anywhere on the way (`ELOOP`): what opens
/// is what was named, so its path needs no resolving.
pub fn open_no_symlinks(dir: &File, rel: &Path) -> io::Result<File> {
    open_how(dir, rel, libc::RESOLVE_NO_SYMLINKS)
}

fn open_how(dir: &File, rel: &Path, resolve: u64) -> io::Result<File> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let rel = CString::new(rel.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain integers; all zero is "no flags".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (FLAGS | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | resolve;
    // SAFETY: valid dirfd, NUL-terminated path, and `how` with its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a fresh fd that we now own.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// Without `openat2`: the same flags by path; `O_NOFOLLOW` guards only the
/// last component (see the README's hardening notes).
pub fn open_plain(root: &Path, rel: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
        .open(root.join(rel))
}

/// Whether `e` says the kernel has no `openat2` (or a sandbox forbids it).
pub fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}
