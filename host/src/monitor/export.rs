//! The spec's alert log, `deployment_logs/auth_alerts.json`: one JSON
//! object per line for every alert change, appended after the change is
//! committed. An export for people and log shippers; the state store is
//! the record.

use crate::store::AlertRecord;
use std::io::Write;
use std::path::PathBuf;

pub struct AlertLog {
    pub path: PathBuf,
}

impl AlertLog {
    pub fn append(&self, change: &str, alert: &AlertRecord) {
        let line = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "change": change,
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "rule": alert.rule,
            "state": alert.state,
            "severity": alert.severity,
            "value": alert.value,
            "threshold": alert.threshold,
            "labels": serde_json::from_str::<serde_json::Value>(&alert.labels).unwrap_or_default(),
            "acknowledged_by": alert.acked_by,
        });
        let written = (|| {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            writeln!(file, "{line}")
        })();
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), "cannot append to the alert log: {e}");
        }
    }
}
