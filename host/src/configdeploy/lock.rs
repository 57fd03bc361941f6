//! One deployer at a time per config directory: an exclusive `flock` on
//! `<config_dir>/.gantry.lock`, polled (never a blocking wait) until a
//! timeout. The kernel drops it if the process dies.

use super::error::ConfigError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(config_dir: &Path, timeout: Duration) -> Result<DirLock, ConfigError> {
        let path = config_dir.join(".gantry.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ConfigError::io(format!("open {}", path.display()), e))?;
        let started = Instant::now();
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(DirLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(ConfigError::io(format!("lock {}", path.display()), err));
            }
            if started.elapsed() >= timeout {
                return Err(ConfigError::Locked {
                    dir: config_dir.to_path_buf(),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}
