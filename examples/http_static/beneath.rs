//! Opening a file strictly beneath the root: `openat2(2)` with
//! `RESOLVE_BENEATH` (Linux 5.6+). `resolve` checked the path, but a
//! directory on it can be swapped for a symlink before the open; here the
//! kernel itself refuses (`EXDEV`) any step that would leave the root.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Opens `rel` (relative, no `..`) read-only beneath `root`, never
/// following a symlink in its last component nor leaving `root` on the way.
pub fn open(root: &Path, rel: &Path) -> io::Result<File> {
    let dir = File::open(root)?;
    let rel = CString::new(rel.as_os_str().as_bytes())?;
    // SAFETY: open_how is plain integers; all zero is "no flags".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
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

/// Whether `e` says the kernel has no `openat2` (or a sandbox forbids it).
pub fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}
