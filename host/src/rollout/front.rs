//! A supervised service's front door, seen from gantry commands: found
//! through its record in the state store, started when it is missing or
//! dead (detached, so it outlives the command that started it), upgraded
//! when the gantry binary changed (the successor takes the listening
//! sockets over before the old one stops: no connection is refused), and
//! told to re-read its pool, drain an instance or stop.
//!
//! Never stops a front door it did not find in the store, and never binds
//! a service's address itself: the front door process does.

use super::error::RolloutError;
use crate::frontdoor::{self, Answer, Request, Status};
use crate::process::ProcessId;
use crate::store::{FrontDoorRecord, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a command starts gantry again as a front door: the same binary, the
/// same deployment config, state store and host name.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
    pub state_url: String,
    pub host: String,
}

/// The `gantry` binary: `$GANTRY_BIN`, this process when it is gantry,
/// else a `gantry` beside it (or one directory up: a test or a program
/// embedding the library in cargo's target directory), else `gantry` on
/// the PATH.
pub fn gantry_exe() -> PathBuf {
    if let Some(bin) = std::env::var_os("GANTRY_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.file_name().is_some_and(|n| n == "gantry") {
        return exe;
    }
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("gantry");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("gantry")
}

impl Launcher {
    pub fn from_settings(settings: &crate::settings::Settings) -> Launcher {
        Launcher {
            exe: gantry_exe(),
            config: settings
                .config
                .path
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            state_url: settings.state.url().to_string(),
            host: settings.host.clone(),
        }
    }
}

/// What identifies the gantry binary a front door runs: when it differs
/// from the running command's, the front door is upgraded.
pub fn binary_id() -> String {
    let meta = std::fs::metadata(gantry_exe());
    let (len, modified) = match meta {
        Ok(meta) => (
            meta.len(),
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos()),
        ),
        Err(_) => (0, 0),
    };
    format!("{}:{len}:{modified}", env!("CARGO_PKG_VERSION"))
}

/// How long a starting front door has to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a control request may take (a drain waits longer).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// One service's front door on this host.
#[derive(Clone)]
pub struct Front {
    pub store: Store,
    pub service: String,
    pub host: String,
    pub launcher: Launcher,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Front {
    /// The recorded front door, if its process runs.
    pub async fn running(&self) -> Result<Option<FrontDoorRecord>, RolloutError> {
        let (service, host) = (self.service.clone(), self.host.clone());
        let record = self
            .store
            .read(async |tx| tx.front_door(&service, &host).await)
            .await?;
        Ok(record.filter(|r| {
            ProcessId {
                pid: r.pid as u32,
                start: r.process_start.clone(),
            }
            .is_running()
        }))
    }

    /// A running front door on the current binary, started or upgraded as
    /// needed.
    pub async fn ensure(&self) -> Result<FrontDoorRecord, RolloutError> {
        let running = self.running().await?;
        if let Some(record) = &running
            && record.binary_id == binary_id()
            && self.status_of(record).await.is_ok()
        {
            return Ok(record.clone());
        }
        // A successor takes the sockets over from a live predecessor.
        let take_over = running.as_ref().map(|r| r.pid);
        self.start(take_over).await
    }

    async fn start(&self, take_over: Option<i64>) -> Result<FrontDoorRecord, RolloutError> {
        use std::os::unix::process::CommandExt;
        let failed = |detail: String| RolloutError::FrontDoor {
            service: self.service.clone(),
            detail,
        };
        if let Some(dir) = self.log.parent() {
            crate::store::private::dir(dir)
                .map_err(|e| failed(format!("create {}: {e}", dir.display())))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| failed(format!("open {}: {e}", self.log.display())))?;
        let log_err = log.try_clone().map_err(|e| failed(e.to_string()))?;
        let mut cmd = std::process::Command::new(&self.launcher.exe);
        if let Some(config) = &self.launcher.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["front-door", "run", "--service", &self.service]);
        if let Some(pid) = take_over {
            cmd.args(["--take-over", &pid.to_string()]);
        }
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("LISTEN_") || key == "GANTRY_PAUSE_AT" || key == "GANTRY_INSTANCE_ID"
            {
                cmd.env_remove(&key);
            }
        }
        // In the environment, not the command line: a URL may hold a password.
        cmd.env("GANTRY_STATE_URL", &self.launcher.state_url)
            .env("GANTRY_HOST", &self.launcher.host)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: setsid is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("{}: {e}", self.launcher.exe.display())))?;
        let pid = child.id() as i64;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(failed(format!(
                    "it exited ({status}) before answering; see {}",
                    self.log.display()
                )));
            }
            if let Some(record) = self.running().await?.filter(|r| r.pid == pid)
                && self.status_of(&record).await.is_ok()
            {
                // Reaped when it ends, while this process lives.
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                tracing::info!(service = %self.service, pid, "front door started");
                return Ok(record);
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "it did not answer within {START_TIMEOUT:?}; see {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn status_of(&self, record: &FrontDoorRecord) -> Result<Status, frontdoor::ControlError> {
        let answer = frontdoor::control::call(
            std::path::Path::new(&record.control),
            &Request::Status,
            CONTROL_TIMEOUT,
        )
        .await?;
        answer
            .status
            .ok_or_else(|| frontdoor::ControlError::Refused {
                path: record.control.clone(),
                message: "no status in the answer".into(),
            })
    }

    /// What the running front door says of itself.
    pub async fn status(&self) -> Result<Option<Status>, RolloutError> {
        let Some(record) = self.running().await? else {
            return Ok(None);
        };
        Ok(self.status_of(&record).await.ok())
    }

    async fn call(&self, request: &Request, timeout: Duration) -> Option<Answer> {
        let record = self.running().await.ok()??;
        match frontdoor::control::call(std::path::Path::new(&record.control), request, timeout)
            .await
        {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::warn!(service = %self.service, "the front door: {e}");
                None
            }
        }
    }

    /// Asks the front door to re-read its pool from the store now (it does
    /// every second anyway).
    pub async fn sync(&self) {
        let _ = self.call(&Request::Sync, CONTROL_TIMEOUT).await;
    }

    /// Takes `name` out of the pool and waits (at most `timeout`) until its
    /// last request ended; true when it did, or when no front door runs.
    pub async fn drain(&self, name: &str, timeout: Duration) -> bool {
        let request = Request::Drain {
            name: name.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        match self.call(&request, timeout + CONTROL_TIMEOUT).await {
            Some(answer) => answer.drained.unwrap_or(true),
            None => true,
        }
    }

    /// Stops the front door (what is in flight finishes within `grace`)
    /// and waits for its process to end.
    pub async fn stop(&self, grace: Duration) -> Result<bool, RolloutError> {
        let Some(record) = self.running().await? else {
            return Ok(false);
        };
        let request = Request::Stop {
            grace_ms: grace.as_millis() as u64,
        };
        let _ = frontdoor::control::call(
            std::path::Path::new(&record.control),
            &request,
            CONTROL_TIMEOUT,
        )
        .await;
        let process = ProcessId {
            pid: record.pid as u32,
            start: record.process_start.clone(),
        };
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        while process.is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if process.is_running() {
            // SAFETY: kill(2) on the process whose identity we just checked.
            unsafe { libc::kill(record.pid as i32, libc::SIGKILL) };
        }
        let (service, host) = (self.service.clone(), self.host.clone());
        self.store
            .write(async |tx| tx.delete_front_door(&service, &host, record.pid).await)
            .await?;
        Ok(true)
    }
}
