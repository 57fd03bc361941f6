//! The alert lifecycle in the state store: pending → firing → resolved,
//! each transition committed together with the notices it causes — one per
//! receiver that takes the alert, queued in the outbox in the same
//! transaction, grouped as Alertmanager groups (`group_by`; a new group
//! waits `group_wait`, a changed one `group_interval` after its last
//! notice) — and repeats every `repeat_interval` while a group fires,
//! unless every firing alert in it is acknowledged or silenced.

use super::evaluator::Transition;
use super::notice::{acked, labels_of, silenced};
use super::receivers::Receiver;
use super::rules::Rule;
use crate::store::AlertState;
use crate::store::{AlertRecord, Store, StoreError, Tx};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

pub struct Lifecycle {
    pub store: Store,
    pub receivers: Vec<Receiver>,
    pub group_by: Vec<String>,
    pub timing: Timing,
}

/// What one applied transition changed, for events and the alert log.
#[derive(Debug, Clone)]
pub struct Applied {
    pub alert: AlertRecord,
    pub event: AlertState,
    pub queued: Vec<String>,
}

pub fn labels_for(rule: &Rule) -> BTreeMap<String, String> {
    let mut labels = rule.labels.clone();
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("severity".into(), rule.severity.clone());
    labels
}

pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let text = serde_json::to_string(labels).expect("json");
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// Alertmanager's group key for the root route: `{}:{alertname="X",…}`
/// over the `group_by` labels the alert has, sorted by name.
pub fn group_key(group_by: &[String], labels: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = group_by
        .iter()
        .filter(|k| labels.contains_key(*k))
        .collect();
    names.sort();
    names.dedup();
    let parts: Vec<String> = names
        .iter()
        .map(|k| format!("{k}={}", go_quote(&labels[*k])))
        .collect();
    format!("{{}}:{{{}}}", parts.join(", "))
}

/// A string as Go's `strconv.Quote` writes it (Alertmanager's label
/// values in a group key).
fn go_quote(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn annotations_for(rule: &Rule, value: Option<f64>) -> BTreeMap<String, String> {
    let mut annotations = rule.annotations.clone();
    let value_text = value
        .map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "no data".into());
    annotations.entry("summary".into()).or_insert_with(|| {
        format!(
            "{} {} {}",
            rule.metric.name(),
            rule.op.symbol(),
            rule.threshold
        )
    });
    annotations.entry("description".into()).or_insert_with(|| {
        format!(
            "{} is {value_text} over the last {:?} ({} {} {})",
            rule.metric.name(),
            rule.window,
            rule.metric.name(),
            rule.op.symbol(),
            rule.threshold
        )
    });
    annotations
}

/// An alert that starts now: firing, nothing acknowledged, no value.
fn new_alert(
    fp: &str,
    rule: &str,
    severity: &str,
    labels: &BTreeMap<String, String>,
    now_ms: i64,
) -> AlertRecord {
    AlertRecord {
        id: format!("{fp}-{now_ms}"),
        fingerprint: fp.to_string(),
        rule: rule.to_string(),
        state: AlertState::Firing,
        severity: severity.to_string(),
        labels: serde_json::to_string(labels).expect("json"),
        annotations: String::new(),
        value: None,
        threshold: None,
        started_ms: now_ms,
        firing_ms: None,
        resolved_ms: None,
        updated_ms: now_ms,
        acked_by: None,
        ack_comment: None,
        ack_ms: None,
        ack_expires_ms: None,
    }
}

impl Lifecycle {
    /// Applies one evaluation's transitions at `now_ms` in one
    /// transaction, so alerts of a group that change together (all
    /// resolving at once, say) are queued into one notice before any
    /// delivery can take it.
    pub async fn apply(
        &self,
        transitions: &[(&Rule, &Transition)],
        now_ms: i64,
    ) -> Result<Vec<Applied>, StoreError> {
        if transitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.store.begin(true).await?;
        let result = async {
            let mut applied = Vec::new();
            for (rule, transition) in transitions {
                let labels = labels_for(rule);
                let fp = fingerprint(&labels);
                if let Some(a) = self
                    .apply_in(&mut tx, rule, transition, &labels, &fp, now_ms)
                    .await?
                {
                    applied.push(a);
                }
            }
            Ok(applied)
        }
        .await;
        tx.settle(result, "commit alert changes").await
    }

    async fn current(&self, tx: &mut Tx, fp: &str) -> Result<Option<AlertRecord>, StoreError> {
        let open = tx.alerts(AlertState::OPEN, 1000).await?;
        Ok(open.into_iter().find(|a| a.fingerprint == fp))
    }

    async fn apply_in(
        &self,
        tx: &mut Tx,
        rule: &Rule,
        transition: &Transition,
        labels: &BTreeMap<String, String>,
        fp: &str,
        now_ms: i64,
    ) -> Result<Option<Applied>, StoreError> {
        let current = self.current(tx, fp).await?;
        let fresh = |state: AlertState, value: Option<f64>| AlertRecord {
            state,
            annotations: serde_json::to_string(&annotations_for(rule, value)).expect("json"),
            value,
            threshold: Some(rule.threshold),
            ..new_alert(fp, &rule.name, &rule.severity, labels, now_ms)
        };
        match transition {
            Transition::Pending { value, .. } => {
                if current.is_some() {
                    return Ok(None);
                }
                let alert = fresh(AlertState::Pending, *value);
                tx.save_alert(&alert).await?;
                Ok(Some(Applied {
                    alert,
                    event: AlertState::Pending,
                    queued: Vec::new(),
                }))
            }
            Transition::Cancelled { .. } => {
                let Some(mut alert) = current.filter(|a| a.state == AlertState::Pending) else {
                    return Ok(None);
                };
                alert.state = AlertState::Cancelled;
                alert.updated_ms = now_ms;
                tx.save_alert(&alert).await?;
                Ok(Some(Applied {
                    alert,
                    event: AlertState::Cancelled,
                    queued: Vec::new(),
                }))
            }
            Transition::Firing { value, .. } => {
                let mut alert = match current {
                    Some(a) if a.state == AlertState::Firing => return Ok(None),
                    Some(a) => a,
                    None => fresh(AlertState::Pending, *value),
                };
                alert.state = AlertState::Firing;
                alert.value = *value;
                alert.annotations =
                    serde_json::to_string(&annotations_for(rule, *value)).expect("json");
                alert.firing_ms = Some(now_ms);
                alert.updated_ms = now_ms;
                tx.save_alert(&alert).await?;
                let queued = self.queue(tx, &alert, labels, false, now_ms).await?;
                Ok(Some(Applied {
                    alert,
                    event: AlertState::Firing,
                    queued,
                }))
            }
            Transition::Resolved { value, .. } => {
                let Some(mut alert) = current.filter(|a| a.state == AlertState::Firing) else {
                    return Ok(None);
                };
                alert.state = AlertState::Resolved;
                alert.value = *value;
                alert.resolved_ms = Some(now_ms);
                alert.updated_ms = now_ms;
                // An acknowledgement ends with the alert.
                alert.acked_by = None;
                alert.ack_comment = None;
                alert.ack_ms = None;
                alert.ack_expires_ms = None;
                tx.save_alert(&alert).await?;
                let queued = self.queue(tx, &alert, labels, true, now_ms).await?;
                Ok(Some(Applied {
                    alert,
                    event: AlertState::Resolved,
                    queued,
                }))
            }
        }
    }

    /// Raises an alert no rule evaluates — an event that happened (a
    /// canary aborted): firing at once with `labels` (`alertname` and
    /// `severity` among them) and queued to every receiver that takes it,
    /// through the same grouping as any alert. An open alert with the same
    /// labels is updated and notified again. `resolve_event` ends it.
    pub async fn raise(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Applied, StoreError> {
        let fp = fingerprint(labels);
        let mut tx = self.store.begin(true).await?;
        let result = async {
            let mut alert = match self.current(&mut tx, &fp).await? {
                Some(open) => open,
                None => {
                    let mut fresh = new_alert(
                        &fp,
                        labels.get("alertname").map_or("", String::as_str),
                        labels.get("severity").map_or("", String::as_str),
                        labels,
                        now_ms,
                    );
                    fresh.firing_ms = Some(now_ms);
                    fresh
                }
            };
            alert.state = AlertState::Firing;
            alert.annotations = serde_json::to_string(annotations).expect("json");
            alert.updated_ms = now_ms;
            tx.save_alert(&alert).await?;
            let queued = self.queue(&mut tx, &alert, labels, false, now_ms).await?;
            Ok(Applied {
                alert,
                event: AlertState::Firing,
                queued,
            })
        }
        .await;
        tx.settle(result, "raise an alert").await
    }

    /// Resolves the open alert with `labels` (raised by `raise`), if any,
    /// notifying the receivers that take resolutions.
    pub async fn resolve_event(
        &self,
        labels: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<Option<Applied>, StoreError> {
        let fp = fingerprint(labels);
        let mut tx = self.store.begin(true).await?;
        let result = async {
            let Some(mut alert) = self.current(&mut tx, &fp).await? else {
                return Ok(None);
            };
            alert.state = AlertState::Resolved;
            alert.resolved_ms = Some(now_ms);
            alert.updated_ms = now_ms;
            tx.save_alert(&alert).await?;
            let queued = self.queue(&mut tx, &alert, labels, true, now_ms).await?;
            Ok(Some(Applied {
                alert,
                event: AlertState::Resolved,
                queued,
            }))
        }
        .await;
        tx.settle(result, "resolve an alert").await
    }

    /// Queues `alert` to every receiver that takes it.
    async fn queue(
        &self,
        tx: &mut Tx,
        alert: &AlertRecord,
        labels: &BTreeMap<String, String>,
        resolved: bool,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let group = group_key(&self.group_by, labels);
        let mut queued = Vec::new();
        for receiver in self.receivers.iter().filter(|r| r.takes(labels)) {
            if resolved && !receiver.send_resolved {
                continue;
            }
            let deliver_at = match tx.last_sent(&receiver.name, &group).await? {
                None => now_ms + self.timing.group_wait.as_millis() as i64,
                Some(last) => now_ms.max(last + self.timing.group_interval.as_millis() as i64),
            };
            tx.queue_notice(
                &receiver.name,
                &group,
                &alert.id,
                "notify",
                deliver_at,
                now_ms,
            )
            .await?;
            queued.push(receiver.name.clone());
        }
        Ok(queued)
    }

    /// Queues a repeat for every group still firing whose last notice is
    /// older than `repeat_interval`, unless all its firing alerts are
    /// acknowledged or silenced; returns how many.
    pub async fn repeat(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut tx = self.store.begin(true).await?;
        let result = async {
            let firing = tx.alerts(&[AlertState::Firing], 10_000).await?;
            let silences = tx.silences_ending_after(now_ms).await?;
            let mut groups: BTreeMap<(String, String), Vec<AlertRecord>> = BTreeMap::new();
            for alert in firing {
                let labels = labels_of(&alert.labels);
                if acked(&alert, now_ms) || silenced(&silences, &labels, now_ms) {
                    continue;
                }
                let group = group_key(&self.group_by, &labels);
                for receiver in self.receivers.iter().filter(|r| r.takes(&labels)) {
                    groups
                        .entry((receiver.name.clone(), group.clone()))
                        .or_default()
                        .push(alert.clone());
                }
            }
            let mut count = 0;
            for ((receiver, group), alerts) in groups {
                let due = match tx.last_sent(&receiver, &group).await? {
                    Some(last) => last + self.timing.repeat_interval.as_millis() as i64 <= now_ms,
                    None => false,
                };
                if !due || tx.notice_waiting(&receiver, &group).await? {
                    continue;
                }
                let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
                tx.insert_notice(&receiver, &group, &ids, "repeat", now_ms, now_ms, None)
                    .await?;
                count += 1;
            }
            Ok::<_, StoreError>(count)
        }
        .await;
        tx.settle(result, "commit repeats").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_key_is_alertmanagers() {
        let labels: BTreeMap<String, String> = [
            ("alertname", "LoginsFailing"),
            ("severity", "critical"),
            ("team", "id \"core\""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let by = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            group_key(&by(&["severity", "alertname"]), &labels),
            r#"{}:{alertname="LoginsFailing", severity="critical"}"#
        );
        assert_eq!(
            group_key(&by(&["team", "missing"]), &labels),
            r#"{}:{team="id \"core\""}"#
        );
        assert_eq!(group_key(&[], &labels), "{}:{}");
    }
}
