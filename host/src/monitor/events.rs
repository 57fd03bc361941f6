//! What the monitor reports while it runs.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        node: String,
        api: Option<String>,
        rules: usize,
        receivers: Vec<String>,
    },
    /// This monitor now leads rule evaluation (or lost the lead).
    Leading {
        node: String,
        leading: bool,
    },
    /// An alert changed: `pending`, `firing`, `resolved`, `cancelled`.
    Alert {
        change: String,
        id: String,
        name: String,
        value: Option<f64>,
        queued_for: Vec<String>,
    },
    Delivered {
        receiver: String,
        notice: i64,
        alerts: usize,
        status: String,
        attempts: i32,
    },
    DeliveryFailed {
        receiver: String,
        notice: i64,
        error: String,
        retry_in_ms: Option<u64>,
    },
    /// A notifier plugin's new version is serving.
    Reloaded {
        plugin: String,
        generation: u64,
    },
    /// A new version failed to load; the last good one keeps serving.
    ReloadRefused {
        plugin: String,
        error: String,
    },
    Stopped {
        node: String,
    },
}
