//! What the config deployer reports while it works.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Rendered and validated; `findings` counts non-error findings.
    Rendered {
        environment: String,
        files: Vec<String>,
        findings: usize,
    },
    /// Another process holds the config directory; waiting for it.
    Waiting {
        config_dir: String,
        holder: String,
    },
    /// The directory is ours; `changed` files differ from what is deployed.
    Locked {
        config_dir: String,
        changed: Vec<String>,
    },
    BackedUp {
        backup_id: String,
        files: usize,
    },
    /// The change is recorded `in_progress` before any file is touched.
    Recorded {
        change_id: i64,
    },
    /// One file replaced (or removed), `index` of `total`.
    Wrote {
        name: String,
        index: usize,
        total: usize,
    },
    Completed {
        change_id: i64,
    },
    /// Older changes whose process died were marked interrupted.
    Superseded {
        changes: u64,
    },
    /// Backups removed by retention.
    Pruned {
        backup_ids: Vec<String>,
    },
}
