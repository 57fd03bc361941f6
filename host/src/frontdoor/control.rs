//! How gantry commands talk to a running front door: a Unix socket (0600,
//! in a 0700 directory) taking one JSON request per line and giving one
//! JSON answer per line.
//!
//! - `{"op": "status"}` → pid, mode, listen addresses, the pool;
//! - `{"op": "sync"}` → the pool re-read from the state store now;
//! - `{"op": "set", "members": [...], "weights": {...}}` → the serving set;
//! - `{"op": "drain", "name": "auth-3", "timeout_ms": 30000}` → out of the
//!   pool, answered once its last request ended (or the time is up);
//! - `{"op": "stop", "grace_ms": 30000}` → stop accepting, finish what is
//!   in flight, exit.
//!
//! Never acts on a request that does not parse; answers `{"ok": false,
//! "error": …}` instead.

use super::pool::{Member, PoolStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Re-read the pool from the state store now.
    Sync,
    Set {
        members: Vec<Member>,
        #[serde(default)]
        weights: BTreeMap<String, u32>,
    },
    Drain {
        name: String,
        timeout_ms: u64,
    },
    Stop {
        grace_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub service: String,
    pub mode: String,
    pub listen: Vec<String>,
    pub pool: PoolStatus,
    /// The gantry binary it runs (its sha256), to tell when to upgrade it.
    pub binary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// For `drain`: whether the instance went idle in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<bool>,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer {
            ok: true,
            error: None,
            status: None,
            drained: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            error: Some(message.into()),
            ..Answer::ok()
        }
    }
}

/// Why a front door did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the front door at {path} does not answer: {source}")]
    Unreachable {
        path: String,
        source: std::io::Error,
    },
    #[error("the front door at {path} did not answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("the front door at {path} refused: {message}")]
    Refused { path: String, message: String },
}

/// Sends one request and reads its answer, within `timeout`.
pub async fn call(
    path: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Answer, ControlError> {
    let shown = path.display().to_string();
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(path).await?;
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line).await?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader.read_line(&mut answer).await?;
        serde_json::from_str::<Answer>(&answer).map_err(std::io::Error::other)
    };
    let answer = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            path: shown.clone(),
            timeout,
        })?
        .map_err(|source| ControlError::Unreachable {
            path: shown.clone(),
            source,
        })?;
    if !answer.ok {
        return Err(ControlError::Refused {
            path: shown,
            message: answer.error.unwrap_or_default(),
        });
    }
    Ok(answer)
}

/// Serves the control socket at `path` (made 0600), handing each request
/// to `handle`.
pub async fn serve<H, F>(path: &Path, handle: H) -> std::io::Result<()>
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Answer> + Send,
{
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let handle = handle.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => handle(request).await,
                    Err(e) => Answer::error(format!("cannot read the request: {e}")),
                };
                let mut out = serde_json::to_vec(&answer).unwrap_or_default();
                out.push(b'\n');
                if write.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_and_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fd.sock");
        let served = path.clone();
        tokio::spawn(async move {
            serve(&served, |request| async move {
                match request {
                    Request::Drain { name, .. } if name == "auth-1" => Answer {
                        drained: Some(true),
                        ..Answer::ok()
                    },
                    _ => Answer::error("no such instance"),
                }
            })
            .await
        });
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let drain = Request::Drain {
            name: "auth-1".into(),
            timeout_ms: 10,
        };
        let answer = call(&path, &drain, Duration::from_secs(1)).await.unwrap();
        assert_eq!(answer.drained, Some(true));
        let other = Request::Drain {
            name: "auth-9".into(),
            timeout_ms: 10,
        };
        let refused = call(&path, &other, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("no such instance"),
            "{refused}"
        );
    }
}
