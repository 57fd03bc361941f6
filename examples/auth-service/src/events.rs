//! Auth events to gantry's monitor: kept in a bounded queue and POSTed in
//! batches (JSON array) to `monitor.url` with the bearer token. A slow or
//! absent monitor never slows a login: past the bound, events are counted
//! as dropped, not queued.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize)]
pub struct AuthEvent {
    pub kind: &'static str,
    pub success: bool,
    pub response_time_ms: f64,
    pub instance: String,
}

pub struct Reporter {
    tx: Option<mpsc::Sender<AuthEvent>>,
    pub dropped: AtomicU64,
}

impl Reporter {
    pub fn disabled() -> Reporter {
        Reporter {
            tx: None,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn start(url: String, token: Option<String>) -> Reporter {
        let (tx, mut rx) = mpsc::channel::<AuthEvent>(10_000);
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client");
            let mut batch = Vec::new();
            loop {
                let more = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
                match more {
                    Ok(Some(event)) => {
                        batch.push(event);
                        if batch.len() < 500 {
                            continue;
                        }
                    }
                    Ok(None) if batch.is_empty() => return,
                    Ok(None) | Err(_) => {}
                }
                if batch.is_empty() {
                    continue;
                }
                let mut request = client.post(&url).json(&batch);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!("the monitor answered {}", r.status()),
                    Err(e) => tracing::warn!("cannot reach the monitor: {e}"),
                }
                batch.clear();
            }
        });
        Reporter {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn record(&self, event: AuthEvent) {
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
