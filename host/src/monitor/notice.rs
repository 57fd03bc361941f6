//! A notification as the outbox keeps it: built once from the alerts of a
//! group (silenced ones left out), frozen as JSON in the outbox row so
//! every retry — in this process or after a restart — sends the very same
//! notice with the same idempotency key, and turned into the contract's
//! `notification` record for the notifier plugin.

use crate::bindings::types::{self as wit, AlertState, Kv};
use crate::store::{AlertRecord, SilenceRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bound on the alerts one notice carries (the rest are counted).
pub const MAX_ALERTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDoc {
    pub id: String,
    pub fingerprint: String,
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub generator_url: String,
    pub name: String,
    pub severity: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDoc {
    pub receiver: String,
    pub status: String,
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: String,
    pub alerts: Vec<AlertDoc>,
    pub truncated_alerts: u32,
    pub idempotency_key: String,
    pub test: bool,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn labels_of(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// True when a silence active at `now_ms` covers `labels`.
pub fn silenced(
    silences: &[SilenceRecord],
    labels: &BTreeMap<String, String>,
    now_ms: i64,
) -> bool {
    silences.iter().any(|s| {
        s.starts_ms <= now_ms
            && now_ms < s.ends_ms
            && labels_of(&s.matchers)
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    })
}

/// Acknowledged, and the acknowledgement has not expired.
pub fn acked(alert: &AlertRecord, now_ms: i64) -> bool {
    alert.acked_by.is_some() && alert.ack_expires_ms.is_none_or(|e| e > now_ms)
}

impl AlertDoc {
    pub fn of(a: &AlertRecord, external_url: &str, now_ms: i64) -> AlertDoc {
        let labels = labels_of(&a.labels);
        AlertDoc {
            id: a.id.clone(),
            fingerprint: a.fingerprint.clone(),
            status: if a.state == crate::store::AlertState::Resolved {
                "resolved"
            } else {
                "firing"
            }
            .into(),
            name: labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| a.rule.clone()),
            labels,
            annotations: labels_of(&a.annotations),
            starts_at: rfc3339(a.firing_ms.unwrap_or(a.started_ms)),
            ends_at: a.resolved_ms.map(rfc3339),
            generator_url: format!("{}/alerts/{}", external_url.trim_end_matches('/'), a.id),
            severity: a.severity.clone(),
            value: a.value,
            threshold: a.threshold,
            acknowledged_by: if acked(a, now_ms) {
                a.acked_by.clone()
            } else {
                None
            },
        }
    }
}

/// Labels (or annotations) every alert shares.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some(first) = maps.first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| maps.iter().all(|m| m.get(*k) == Some(v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl NotificationDoc {
    /// The notice for `alerts` of one group; `None` when nothing is left
    /// to say (all silenced).
    #[expect(clippy::too_many_arguments, reason = "the notice's header fields")]
    pub fn build(
        receiver: &str,
        group_key: &str,
        group_labels: BTreeMap<String, String>,
        alerts: &[AlertRecord],
        silences: &[SilenceRecord],
        external_url: &str,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Option<NotificationDoc> {
        let mut docs: Vec<AlertDoc> = alerts
            .iter()
            .filter(|a| !silenced(silences, &labels_of(&a.labels), now_ms))
            .map(|a| AlertDoc::of(a, external_url, now_ms))
            .collect();
        if docs.is_empty() {
            return None;
        }
        // Firing first, then by start.
        docs.sort_by(|a, b| a.status.cmp(&b.status).then(a.starts_at.cmp(&b.starts_at)));
        let firing = docs.iter().any(|d| d.status == "firing");
        let truncated = docs.len().saturating_sub(MAX_ALERTS) as u32;
        docs.truncate(MAX_ALERTS);
        let label_maps: Vec<&BTreeMap<String, String>> = docs.iter().map(|d| &d.labels).collect();
        let annotation_maps: Vec<&BTreeMap<String, String>> =
            docs.iter().map(|d| &d.annotations).collect();
        Some(NotificationDoc {
            receiver: receiver.to_string(),
            status: if firing { "firing" } else { "resolved" }.into(),
            group_key: group_key.to_string(),
            group_labels,
            common_labels: common(&label_maps),
            common_annotations: common(&annotation_maps),
            external_url: external_url.to_string(),
            alerts: docs,
            truncated_alerts: truncated,
            idempotency_key: idempotency_key.to_string(),
            test: false,
        })
    }

    /// The contract's record.
    pub fn to_wit(&self) -> wit::Notification {
        let kv = |m: &BTreeMap<String, String>| -> Vec<Kv> {
            m.iter()
                .map(|(k, v)| Kv {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect()
        };
        let state = |s: &str| {
            if s == "resolved" {
                AlertState::Resolved
            } else {
                AlertState::Firing
            }
        };
        let severity = |s: &str| match s {
            "critical" => wit::Severity::Critical,
            "info" => wit::Severity::Info,
            _ => wit::Severity::Warning,
        };
        wit::Notification {
            receiver: self.receiver.clone(),
            status: state(&self.status),
            group_key: self.group_key.clone(),
            group_labels: kv(&self.group_labels),
            common_labels: kv(&self.common_labels),
            common_annotations: kv(&self.common_annotations),
            external_url: self.external_url.clone(),
            alerts: self
                .alerts
                .iter()
                .map(|a| wit::Alert {
                    fingerprint: a.fingerprint.clone(),
                    status: state(&a.status),
                    labels: kv(&a.labels),
                    annotations: kv(&a.annotations),
                    starts_at: a.starts_at.clone(),
                    ends_at: a.ends_at.clone(),
                    generator_url: a.generator_url.clone(),
                    name: a.name.clone(),
                    severity: severity(&a.severity),
                    summary: a.annotations.get("summary").cloned().unwrap_or_default(),
                    description: a
                        .annotations
                        .get("description")
                        .cloned()
                        .unwrap_or_default(),
                    value: a.value,
                    threshold: a.threshold,
                    acknowledged_by: a.acknowledged_by.clone(),
                })
                .collect(),
            truncated_alerts: self.truncated_alerts,
            idempotency_key: self.idempotency_key.clone(),
            test: self.test,
        }
    }
}
