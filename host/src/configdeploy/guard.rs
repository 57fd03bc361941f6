//! One change at a time per config directory: a local `flock` on
//! `<config_dir>/.gantry.lock` (the kernel drops it if the process dies;
//! it also guards against a process using another state store), then the
//! directory's lease in the state store, which names the owner to every
//! host and lets `gantry status` tell a running change from an
//! interrupted one. Both are polled (never a blocking wait) up to a
//! timeout. Taking the guard also removes temp files a killed writer left.

use super::error::ConfigError;
use crate::store::{Lease, LeaseError, Store};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct DirGuard {
    _file: File,
    pub lease: Lease,
}

/// The lease name of `host`'s `config_dir`.
pub fn lease_name(host: &str, config_dir: &Path) -> String {
    format!("config:{host}:{}", config_dir.display())
}

impl DirGuard {
    pub async fn acquire(
        store: &Store,
        host: &str,
        config_dir: &Path,
        timeout: Duration,
        ttl: Duration,
        mut waiting: impl FnMut(String),
    ) -> Result<DirGuard, ConfigError> {
        let started = Instant::now();
        let path = config_dir.join(".gantry.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ConfigError::io(format!("open {}", path.display()), e))?;
        let locked = |waited| ConfigError::Locked {
            dir: config_dir.to_path_buf(),
            waited,
            holder: None,
        };
        let mut told = false;
        loop {
            if crate::flock::try_lock(&file, false)
                .map_err(|e| ConfigError::io(format!("lock {}", path.display()), e))?
            {
                break;
            }
            if started.elapsed() >= timeout {
                return Err(locked(started.elapsed()));
            }
            if !told {
                told = true;
                waiting("another gantry process on this host".into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let name = lease_name(host, config_dir);
        let lease = loop {
            match store.try_lease(&name, "config change", ttl).await {
                Ok(lease) => break lease,
                Err(LeaseError::Held { holder, .. }) => {
                    if started.elapsed() >= timeout {
                        return Err(ConfigError::Locked {
                            dir: config_dir.to_path_buf(),
                            waited: started.elapsed(),
                            holder: Some(holder.to_string()),
                        });
                    }
                    if !told {
                        told = true;
                        waiting(holder.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err.into()),
            }
        };
        remove_stale_temp_files(config_dir);
        Ok(DirGuard { _file: file, lease })
    }

    pub async fn release(self) {
        self.lease.release().await;
    }
}

/// `.gantry-*` temp files are written then renamed; one left behind was a
/// killed writer's (we hold the directory now, so no writer is live).
fn remove_stale_temp_files(config_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(config_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".gantry-")
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed a temp file a killed writer left")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), "cannot remove a stale temp file: {e}")
                }
            }
        }
    }
}
