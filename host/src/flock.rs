//! Non-blocking advisory file locks (`flock`), for callers that poll for a
//! lock and report who holds it. A lock is released when its file closes.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Tries to take an exclusive (`shared == false`) or shared lock on
/// `file`; `Ok(false)` when another holder has it.
pub fn try_lock(file: &File, shared: bool) -> std::io::Result<bool> {
    let kind = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    // SAFETY: flock on a file descriptor `file` owns for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}
