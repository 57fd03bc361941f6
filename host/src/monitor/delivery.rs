//! The delivery worker: claims due notices from the outbox (several
//! monitors may run it: claims never overlap), builds each notice once and
//! freezes it in its row, and hands it to the receiver's notifier plugin —
//! the plugin's current version, so a reload never loses a notice. A
//! delivered notice is recorded before the next is taken; a refused one is
//! retried with exponential backoff and jitter, or after the receiver's
//! Retry-After; one that is never taken within `max_age` goes to the
//! receiver's fallback (or is recorded dead). A crash between a
//! receiver's 2xx and the commit can cause one duplicate, which carries the
//! same idempotency key.

use super::events::Event;
use super::lifecycle::group_key;
use super::node::Node;
use super::notice::{AlertDoc, NotificationDoc, labels_of};
use super::receivers::Receiver;
use crate::bindings::types::DeliveryError;
use crate::clock::now_ms;
use crate::config::DeliveryConfig;
use crate::events::Sink;
use crate::runtime::{CallOptions, Registry};
use crate::store::{AlertState, NoticeState};
use crate::store::{OutboxRecord, Store, StoreError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deliveries by receiver and result, for `/metrics`.
#[derive(Default)]
pub struct DeliveryCounters {
    pub by_receiver: Mutex<BTreeMap<(String, &'static str), u64>>,
    pub plugin_calls: AtomicU64,
}

impl DeliveryCounters {
    fn count(&self, receiver: &str, result: &'static str) {
        *self
            .by_receiver
            .lock()
            .expect("counters")
            .entry((receiver.to_string(), result))
            .or_insert(0) += 1;
    }
}

pub struct Delivery {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub receivers: Vec<Receiver>,
    pub group_by: Vec<String>,
    pub external_url: String,
    pub config: DeliveryConfig,
    /// This worker's name in claims.
    pub node: String,
    pub secrets_base: PathBuf,
    pub sink: Sink<Event>,
    pub counters: Arc<DeliveryCounters>,
}

enum Outcome {
    Delivered,
    Retry {
        error: String,
        after: Option<Duration>,
    },
    Permanent(String),
}

impl Delivery {
    /// Sends a test notice — marked `test`, a synthetic info alert named
    /// `GantryTestNotice` — to `receiver` now, outside the outbox: proof
    /// that the receiver's plugin, settings and destination work. A
    /// refusal or failure is returned as its reason; nothing is retried.
    pub async fn send_test(&self, receiver: &Receiver, reference: &str) -> Result<(), String> {
        let now = chrono::Utc::now();
        let labels: BTreeMap<String, String> = [
            ("alertname".to_string(), "GantryTestNotice".to_string()),
            ("severity".to_string(), "info".to_string()),
            ("test".to_string(), "true".to_string()),
        ]
        .into();
        let annotations: BTreeMap<String, String> = [(
            "summary".to_string(),
            format!("gantry test notice ({reference}): the alert path to this receiver works"),
        )]
        .into();
        let key = format!("test:{}:{reference}", receiver.name);
        let doc = NotificationDoc {
            receiver: receiver.name.clone(),
            status: "firing".into(),
            group_key: key.clone(),
            group_labels: [("alertname".to_string(), "GantryTestNotice".to_string())].into(),
            common_labels: labels.clone(),
            common_annotations: annotations.clone(),
            external_url: self.external_url.clone(),
            alerts: vec![AlertDoc {
                id: key.clone(),
                fingerprint: key.clone(),
                status: "firing".into(),
                labels,
                annotations,
                starts_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ends_at: None,
                generator_url: self.external_url.clone(),
                name: "GantryTestNotice".into(),
                severity: "info".into(),
                value: None,
                threshold: None,
                acknowledged_by: None,
            }],
            truncated_alerts: 0,
            idempotency_key: key,
            test: true,
        };
        match self.call(receiver, &doc).await {
            Outcome::Delivered => {
                self.counters.count(&receiver.name, "test");
                Ok(())
            }
            Outcome::Retry { error, .. } | Outcome::Permanent(error) => Err(error),
        }
    }

    /// Claims and delivers what is due; how many notices it handled.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let claim_ms = 60_000;
        let mut tx = self.store.begin(true).await?;
        let claimed = async {
            // A monitor on this host that died mid-delivery frees its
            // claims at once; one elsewhere frees them at expiry.
            for owner in tx.claim_owners(now).await? {
                if owner != self.node && Node::parse(&owner).is_some_and(|n| n.is_dead_here()) {
                    let n = tx.release_claims(&owner).await?;
                    tracing::info!("released {n} notice(s) claimed by {owner}, which is gone");
                }
            }
            let claimed = tx
                .claim_notices(&self.node, now, now + claim_ms, 16)
                .await?;
            // A notice counts as sent from the moment it is taken: the
            // group's next one waits `group_interval` from here, even
            // while this one is still being delivered.
            for row in &claimed {
                tx.set_last_sent(&row.receiver, &row.group_key, now).await?;
            }
            Ok::<_, StoreError>(claimed)
        }
        .await;
        let claimed = tx.settle(claimed, "commit a claim").await?;
        let n = claimed.len();
        for row in claimed {
            if let Err(e) = self.deliver(row).await {
                tracing::error!("delivery: {e}");
            }
        }
        Ok(n)
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let base = self.config.initial_backoff_seconds.max(0.01) * 2f64.powi(attempts.min(30));
        let capped = base.min(self.config.max_backoff_seconds.max(0.01));
        // ±20 % jitter, so retries from many notices do not land together.
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        let jitter = 0.8 + 0.4 * (byte[0] as f64 / 255.0);
        crate::clock::seconds(capped * jitter)
    }

    async fn build(
        &self,
        row: &OutboxRecord,
        now: i64,
    ) -> Result<Option<NotificationDoc>, StoreError> {
        if let Some(payload) = &row.payload
            && let Ok(doc) = serde_json::from_str::<NotificationDoc>(payload)
        {
            return Ok(Some(doc));
        }
        let ids: Vec<String> = serde_json::from_str(&row.alert_ids).unwrap_or_default();
        let receiver = self.receivers.iter().find(|r| r.name == row.receiver);
        let group_by = self.group_by.clone();
        let group = row.group_key.clone();
        let (alerts, silences) = self
            .store
            .read(async |tx| {
                let mut alerts = tx.alerts_by_ids(&ids).await?;
                // The group's other firing alerts belong in the notice too.
                for other in tx.alerts(&[AlertState::Firing], 10_000).await? {
                    let labels = labels_of(&other.labels);
                    let same_group = group_key(&group_by, &labels) == group;
                    let taken = receiver.is_none_or(|r| r.takes(&labels));
                    if same_group && taken && !alerts.iter().any(|a| a.id == other.id) {
                        alerts.push(other);
                    }
                }
                Ok::<_, StoreError>((alerts, tx.silences_ending_after(now).await?))
            })
            .await?;
        let group_labels: BTreeMap<String, String> = alerts
            .first()
            .map(|a| {
                let labels = labels_of(&a.labels);
                self.group_by
                    .iter()
                    .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(NotificationDoc::build(
            &row.receiver,
            &row.group_key,
            group_labels,
            &alerts,
            &silences,
            &self.external_url,
            &row.idempotency_key,
            now,
        ))
    }

    async fn deliver(&self, row: OutboxRecord) -> Result<(), StoreError> {
        let now = now_ms();
        let Some(doc) = self.build(&row, now).await? else {
            self.settle(&row, NoticeState::Skipped, row.attempts, None, None, None)
                .await?;
            return Ok(());
        };
        let payload = serde_json::to_string(&doc).expect("json");
        let Some(receiver) = self
            .receivers
            .iter()
            .find(|r| r.name == row.receiver)
            .cloned()
        else {
            let why = format!("no receiver named {} is configured", row.receiver);
            self.settle(
                &row,
                NoticeState::Dead,
                row.attempts,
                Some(&why),
                Some(&payload),
                None,
            )
            .await?;
            return Ok(());
        };
        let max_age = (self.config.max_age_seconds * 1000.0) as i64;
        if now - row.created_ms > max_age {
            return self
                .give_up(
                    &row,
                    &receiver,
                    &payload,
                    "not delivered within max_age_seconds",
                )
                .await;
        }
        let outcome = self.call(&receiver, &doc).await;
        let attempts = row.attempts + 1;
        match outcome {
            Outcome::Delivered => {
                // The group's last-sent time was recorded when the notice
                // was taken (`tick`).
                let delivered = self
                    .store
                    .write(async |tx| {
                        tx.settle_notice(
                            row.id,
                            &self.node,
                            NoticeState::Delivered,
                            attempts,
                            now,
                            None,
                            Some(&payload),
                            Some(now_ms()),
                        )
                        .await
                    })
                    .await?;
                self.counters.count(&row.receiver, "delivered");
                if delivered {
                    (self.sink)(&Event::Delivered {
                        receiver: row.receiver.clone(),
                        notice: row.id,
                        alerts: doc.alerts.len(),
                        status: doc.status.clone(),
                        attempts,
                    });
                }
            }
            Outcome::Retry { error, after } => {
                self.counters.count(&row.receiver, "retry");
                let wait = after.unwrap_or_else(|| self.backoff(row.attempts));
                let next = now + wait.as_millis() as i64;
                self.settle(
                    &row,
                    NoticeState::Pending,
                    attempts,
                    Some(&error),
                    Some(&payload),
                    Some(next),
                )
                .await?;
                (self.sink)(&Event::DeliveryFailed {
                    receiver: row.receiver.clone(),
                    notice: row.id,
                    error,
                    retry_in_ms: Some(wait.as_millis() as u64),
                });
            }
            Outcome::Permanent(error) => {
                self.counters.count(&row.receiver, "refused");
                return self.give_up(&row, &receiver, &payload, &error).await;
            }
        }
        Ok(())
    }

    /// The notice goes to the fallback receiver, or is recorded dead.
    async fn give_up(
        &self,
        row: &OutboxRecord,
        receiver: &Receiver,
        payload: &str,
        why: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let ids: Vec<String> = serde_json::from_str(&row.alert_ids).unwrap_or_default();
        let fallback = receiver.fallback.clone();
        self.store
            .write(async |tx| {
                match &fallback {
                    Some(f) => {
                        tx.settle_notice(
                            row.id,
                            &self.node,
                            NoticeState::HandedOver,
                            row.attempts,
                            now,
                            Some(why),
                            Some(payload),
                            None,
                        )
                        .await?;
                        tx.insert_notice(f, &row.group_key, &ids, "handover", now, now, None)
                            .await?;
                    }
                    None => {
                        tx.settle_notice(
                            row.id,
                            &self.node,
                            NoticeState::Dead,
                            row.attempts,
                            now,
                            Some(why),
                            Some(payload),
                            None,
                        )
                        .await?;
                    }
                }
                Ok::<_, StoreError>(())
            })
            .await?;
        (self.sink)(&Event::DeliveryFailed {
            receiver: row.receiver.clone(),
            notice: row.id,
            error: match &fallback {
                Some(f) => format!("{why}; handed over to {f}"),
                None => format!("{why}; given up"),
            },
            retry_in_ms: None,
        });
        Ok(())
    }

    async fn settle(
        &self,
        row: &OutboxRecord,
        state: NoticeState,
        attempts: i32,
        error: Option<&str>,
        payload: Option<&str>,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let next = next.unwrap_or(row.next_attempt_ms);
        self.store
            .write(async |tx| {
                tx.settle_notice(
                    row.id, &self.node, state, attempts, next, error, payload, None,
                )
                .await
            })
            .await?;
        Ok(())
    }

    async fn call(&self, receiver: &Receiver, doc: &NotificationDoc) -> Outcome {
        let plugin = match self.registry.plugin(&receiver.plugin) {
            Ok(plugin) => plugin,
            Err(e) => {
                return Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                };
            }
        };
        // A configuration's error (a reference that no longer resolves,
        // settings the plugin's new version refuses, a destination the
        // policy refuses) is retried with backoff: the operator can mend
        // it, and past `max_age` the notice goes to the fallback.
        let mut settings = Vec::new();
        for (k, v) in &receiver.settings {
            match crate::secrets::resolve(v, &self.secrets_base) {
                Ok(v) => settings.push((k.clone(), v)),
                Err(e) => {
                    return Outcome::Retry {
                        error: format!("{}.settings.{k}: {e}", receiver.key),
                        after: None,
                    };
                }
            }
        }
        let settings = match plugin.settings(settings) {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Retry {
                    error: format!("{}.settings: {e}", receiver.key),
                    after: None,
                };
            }
        };
        let runtime = Arc::clone(self.registry.runtime());
        let options = CallOptions {
            ca_file: receiver.ca_file.clone(),
            ..Default::default()
        };
        let notification = doc.to_wit();
        self.counters.plugin_calls.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::task::spawn_blocking(move || {
            runtime.notify_with(&plugin, &settings, &notification, &options)
        })
        .await;
        match outcome {
            Ok(outcome) => match outcome.result {
                Ok(Ok(())) => Outcome::Delivered,
                Ok(Err(DeliveryError::Retry(r))) => Outcome::Retry {
                    error: r.reason,
                    after: r.retry_after_seconds.map(|s| Duration::from_secs(s.into())),
                },
                // Refused by the grants or the address policy: the
                // configuration's error, not the receiver's answer.
                Ok(Err(DeliveryError::Permanent(why))) if !outcome.report.denials.is_empty() => {
                    Outcome::Retry {
                        error: format!("{why} ({})", outcome.report.denials.join("; ")),
                        after: None,
                    }
                }
                Ok(Err(DeliveryError::Permanent(why))) => Outcome::Permanent(why),
                // A plugin that traps or times out may work on the next try
                // (or after a reload).
                Err(e) => Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                },
            },
            Err(e) => Outcome::Retry {
                error: format!("the delivery's thread: {e}"),
                after: None,
            },
        }
    }
}
