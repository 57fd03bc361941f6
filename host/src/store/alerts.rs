//! The monitor's records: alerts (with acknowledgements), silences, the
//! notification outbox, when each group last reached each receiver, and
//! the per-second metric aggregates monitors publish for their leader.
//! Times are milliseconds since the epoch; label maps are JSON.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use super::states::{AlertState, NoticeState};
use crate::db::Dialect;
use crate::{exec_tx, on_tx};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct AlertRecord {
    pub id: String,
    pub fingerprint: String,
    pub rule: String,
    #[sqlx(try_from = "String")]
    pub state: AlertState,
    pub severity: String,
    /// JSON object (shown as one).
    #[serde(serialize_with = "as_object")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub labels: String,
    /// JSON object (shown as one).
    #[serde(serialize_with = "as_object")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub annotations: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub started_ms: i64,
    pub firing_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub updated_ms: i64,
    pub acked_by: Option<String>,
    pub ack_comment: Option<String>,
    pub ack_ms: Option<i64>,
    pub ack_expires_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SilenceRecord {
    pub id: String,
    /// JSON object: label → value, all must match (shown as one).
    #[serde(serialize_with = "as_object")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub matchers: String,
    pub comment: Option<String>,
    pub created_by: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxRecord {
    pub id: i64,
    pub receiver: String,
    pub group_key: String,
    /// JSON list of alert ids.
    pub alert_ids: String,
    /// `notify`, `repeat`, `test`, `handover`.
    pub kind: String,
    pub idempotency_key: String,
    #[sqlx(try_from = "String")]
    pub state: NoticeState,
    pub attempts: i32,
    pub deliver_at_ms: i64,
    pub next_attempt_ms: i64,
    pub claimed_by: Option<String>,
    pub claimed_until_ms: Option<i64>,
    /// The notification as first built (JSON), frozen for every retry.
    pub payload: Option<String>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
}

/// A label map kept as JSON text, shown as the object it is.
fn as_object<S: serde::Serializer>(json: &str, s: S) -> Result<S::Ok, S::Error> {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(json).unwrap_or_default();
    serde::Serialize::serialize(&map, s)
}

const ALERT_COLUMNS: &str = "id, fingerprint, rule, state, severity, labels, annotations, value, \
    threshold, started_ms, firing_ms, resolved_ms, updated_ms, acked_by, ack_comment, ack_ms, ack_expires_ms";
const OUTBOX_COLUMNS: &str = "id, receiver, group_key, alert_ids, kind, idempotency_key, state, \
    attempts, deliver_at_ms, next_attempt_ms, claimed_by, claimed_until_ms, payload, last_error, \
    created_ms, delivered_ms";

impl Tx {
    pub async fn save_alert(&mut self, a: &AlertRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO UPDATE SET \
                 state = excluded.state, severity = excluded.severity, labels = excluded.labels, \
                 annotations = excluded.annotations, value = excluded.value, threshold = excluded.threshold, \
                 firing_ms = excluded.firing_ms, resolved_ms = excluded.resolved_ms, \
                 updated_ms = excluded.updated_ms, acked_by = excluded.acked_by, \
                 ack_comment = excluded.ack_comment, ack_ms = excluded.ack_ms, \
                 ack_expires_ms = excluded.ack_expires_ms"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&a.id)
            .bind(&a.fingerprint)
            .bind(&a.rule)
            .bind(a.state.as_str())
            .bind(&a.severity)
            .bind(&a.labels)
            .bind(&a.annotations)
            .bind(a.value)
            .bind(a.threshold)
            .bind(a.started_ms)
            .bind(a.firing_ms)
            .bind(a.resolved_ms)
            .bind(a.updated_ms)
            .bind(&a.acked_by)
            .bind(&a.ack_comment)
            .bind(a.ack_ms)
            .bind(a.ack_expires_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record an alert"))
    }

    /// Alerts, newest first; only those in `states` when given.
    pub async fn alerts(
        &mut self,
        states: &[AlertState],
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            format!(
                "WHERE state IN ({})",
                states
                    .iter()
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM gantry_alerts {filter} ORDER BY started_ms DESC, id DESC LIMIT {limit}"
        );
        on_tx!(self, c => sqlx::query_as(&sql).fetch_all(c).await).map_err(fail("read alerts"))
    }

    pub async fn alert(&mut self, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        let sql = self
            .sql(&format!("SELECT {ALERT_COLUMNS} FROM gantry_alerts WHERE id = $1 OR fingerprint = $1 ORDER BY started_ms DESC LIMIT 1"))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
            .map_err(fail("read an alert"))
    }

    pub async fn alerts_by_ids(&mut self, ids: &[String]) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            let sql = self
                .sql(&format!(
                    "SELECT {ALERT_COLUMNS} FROM gantry_alerts WHERE id = $1"
                ))
                .into_owned();
            let found: Option<AlertRecord> =
                on_tx!(self, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
                    .map_err(fail("read an alert"))?;
            out.extend(found);
        }
        Ok(out)
    }

    pub async fn save_silence(&mut self, s: &SilenceRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_silences (id, matchers, comment, created_by, starts_ms, ends_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET ends_ms = excluded.ends_ms",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&s.id)
            .bind(&s.matchers)
            .bind(&s.comment)
            .bind(&s.created_by)
            .bind(s.starts_ms)
            .bind(s.ends_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a silence"))
    }

    pub async fn silences(&mut self) -> Result<Vec<SilenceRecord>, StoreError> {
        let sql = "SELECT id, matchers, comment, created_by, starts_ms, ends_ms FROM gantry_silences ORDER BY starts_ms";
        on_tx!(self, c => sqlx::query_as(sql).fetch_all(c).await).map_err(fail("read silences"))
    }

    /// Silences that end after `ms` (those still active at `ms`, or begun
    /// later), oldest first; expired ones are never read again.
    pub async fn silences_ending_after(
        &mut self,
        ms: i64,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        let sql = self
            .sql(
                "SELECT id, matchers, comment, created_by, starts_ms, ends_ms FROM gantry_silences \
                 WHERE ends_ms > $1 ORDER BY starts_ms LIMIT 10000",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(ms).fetch_all(c).await)
            .map_err(fail("read silences"))
    }

    /// Adds `alert_id` to the group's notice still waiting to be sent, or
    /// queues a new one due at `deliver_at_ms`; returns the row's id.
    pub async fn queue_notice(
        &mut self,
        receiver: &str,
        group_key: &str,
        alert_id: &str,
        kind: &str,
        deliver_at_ms: i64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let find = self
            .sql(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM gantry_outbox WHERE receiver = $1 AND group_key = $2 \
                 AND state = 'pending' AND claimed_by IS NULL AND payload IS NULL ORDER BY id DESC LIMIT 1"
            ))
            .into_owned();
        let waiting: Option<OutboxRecord> = on_tx!(self, c => sqlx::query_as(&find)
            .bind(receiver)
            .bind(group_key)
            .fetch_optional(c)
            .await)
        .map_err(fail("read the outbox"))?;
        if let Some(row) = waiting {
            let mut ids: Vec<String> = serde_json::from_str(&row.alert_ids).unwrap_or_default();
            if !ids.iter().any(|i| i == alert_id) {
                ids.push(alert_id.to_string());
            }
            let update = self
                .sql("UPDATE gantry_outbox SET alert_ids = $1 WHERE id = $2")
                .into_owned();
            exec_tx!(self, c => sqlx::query(&update)
                .bind(serde_json::to_string(&ids).expect("json"))
                .bind(row.id)
                .execute(c)
                .await)
            .map_err(fail("add to a queued notice"))?;
            return Ok(row.id);
        }
        self.insert_notice(
            receiver,
            group_key,
            &[alert_id.to_string()],
            kind,
            deliver_at_ms,
            now_ms,
            None,
        )
        .await
    }

    #[expect(clippy::too_many_arguments, reason = "one row's columns")]
    pub async fn insert_notice(
        &mut self,
        receiver: &str,
        group_key: &str,
        alert_ids: &[String],
        kind: &str,
        deliver_at_ms: i64,
        now_ms: i64,
        payload: Option<&str>,
    ) -> Result<i64, StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_outbox (receiver, group_key, alert_ids, kind, idempotency_key, state, \
                 attempts, deliver_at_ms, next_attempt_ms, payload, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7, $8) RETURNING id",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql)
            .bind(receiver)
            .bind(group_key)
            .bind(serde_json::to_string(alert_ids).expect("json"))
            .bind(kind)
            .bind(crate::identity::token())
            .bind(deliver_at_ms)
            .bind(payload)
            .bind(now_ms)
            .fetch_one(c)
            .await)
        .map_err(fail("queue a notice"))
    }

    /// Claims up to `limit` due notices for `owner` until `until_ms`
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so monitors never claim the
    /// same row; SQLite: one writer at a time anyway).
    pub async fn claim_notices(
        &mut self,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let lock = match self.dialect() {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = self
            .sql(&format!(
                "UPDATE gantry_outbox SET state = 'delivering', claimed_by = $1, claimed_until_ms = $2 \
                 WHERE id IN (SELECT id FROM gantry_outbox WHERE state IN ('pending', 'delivering') \
                 AND next_attempt_ms <= $3 AND (claimed_until_ms IS NULL OR claimed_until_ms < $3) \
                 ORDER BY id LIMIT {limit} {lock}) RETURNING {OUTBOX_COLUMNS}"
            ))
            .into_owned();
        let mut rows: Vec<OutboxRecord> = on_tx!(self, c => sqlx::query_as(&sql)
            .bind(owner)
            .bind(until_ms)
            .bind(now_ms)
            .fetch_all(c)
            .await)
        .map_err(fail("claim notices"))?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Who holds claims on notices now (claims not yet expired).
    pub async fn claim_owners(&mut self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let sql = self
            .sql(
                "SELECT DISTINCT claimed_by FROM gantry_outbox WHERE state = 'delivering' \
                 AND claimed_by IS NOT NULL AND claimed_until_ms >= $1",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql).bind(now_ms).fetch_all(c).await)
            .map_err(fail("read the outbox's claims"))
    }

    /// Gives `owner`'s claims back (its process is gone): its notices are
    /// due again at once; how many.
    pub async fn release_claims(&mut self, owner: &str) -> Result<u64, StoreError> {
        let sql = self
            .sql(
                "UPDATE gantry_outbox SET state = 'pending', claimed_by = NULL, claimed_until_ms = NULL \
                 WHERE claimed_by = $1 AND state = 'delivering'",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(owner).execute(c).await)
            .map_err(fail("release a dead monitor's claims"))
    }

    /// Ends a claimed notice: `state`, and when retried the next attempt.
    #[expect(clippy::too_many_arguments, reason = "one row's columns")]
    pub async fn settle_notice(
        &mut self,
        id: i64,
        owner: &str,
        state: NoticeState,
        attempts: i32,
        next_attempt_ms: i64,
        last_error: Option<&str>,
        payload: Option<&str>,
        delivered_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let sql = self
            .sql(
                "UPDATE gantry_outbox SET state = $1, attempts = $2, next_attempt_ms = $3, last_error = $4, \
                 payload = COALESCE(payload, $5), delivered_ms = $6, claimed_by = NULL, claimed_until_ms = NULL \
                 WHERE id = $7 AND claimed_by = $8",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(state.as_str())
            .bind(attempts)
            .bind(next_attempt_ms)
            .bind(last_error)
            .bind(payload)
            .bind(delivered_ms)
            .bind(id)
            .bind(owner)
            .execute(c)
            .await)
        .map(|n| n == 1)
        .map_err(fail("record a delivery"))
    }

    /// Notices, newest first (`receiver` only, when given).
    pub async fn notices(
        &mut self,
        receiver: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM gantry_outbox WHERE ($1 IS NULL OR receiver = $1) ORDER BY id DESC LIMIT {limit}"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(receiver).fetch_all(c).await)
            .map_err(fail("read the outbox"))
    }

    /// A group's notices to every receiver, newest first.
    pub async fn notices_of_group(
        &mut self,
        group_key: &str,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM gantry_outbox WHERE group_key = $1 ORDER BY id DESC LIMIT {limit}"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(group_key).fetch_all(c).await)
            .map_err(fail("read the outbox"))
    }

    /// Notices not yet delivered or given up.
    pub async fn outbox_depth(&mut self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM gantry_outbox WHERE state IN ('pending', 'delivering')";
        on_tx!(self, c => sqlx::query_scalar(sql).fetch_one(c).await)
            .map_err(fail("count the outbox"))
    }

    pub async fn last_sent(
        &mut self,
        receiver: &str,
        group_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        let sql = self
            .sql("SELECT last_sent_ms FROM gantry_notify_groups WHERE receiver = $1 AND group_key = $2")
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql).bind(receiver).bind(group_key).fetch_optional(c).await)
            .map_err(fail("read a group"))
    }

    pub async fn set_last_sent(
        &mut self,
        receiver: &str,
        group_key: &str,
        ms: i64,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_notify_groups (receiver, group_key, last_sent_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (receiver, group_key) DO UPDATE SET last_sent_ms = excluded.last_sent_ms",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(receiver).bind(group_key).bind(ms).execute(c).await)
            .map(|_| ())
            .map_err(fail("record a group's notice"))
    }

    /// True when a notice for the group is waiting or being delivered.
    pub async fn notice_waiting(
        &mut self,
        receiver: &str,
        group_key: &str,
    ) -> Result<bool, StoreError> {
        let sql = self
            .sql(
                "SELECT COUNT(*) FROM gantry_outbox WHERE receiver = $1 AND group_key = $2 \
                 AND state IN ('pending', 'delivering')",
            )
            .into_owned();
        let n: i64 = on_tx!(self, c => sqlx::query_scalar(&sql).bind(receiver).bind(group_key).fetch_one(c).await)
            .map_err(fail("read the outbox"))?;
        Ok(n > 0)
    }

    /// Publishes one second of a monitor's aggregates.
    pub async fn publish_second(
        &mut self,
        node: &str,
        second: i64,
        data: &str,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_metric_seconds (node, second, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (node, second) DO UPDATE SET data = excluded.data",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(node).bind(second).bind(data).execute(c).await)
            .map(|_| ())
            .map_err(fail("publish metrics"))
    }

    /// Other monitors' seconds from `since` on: (node, second, data).
    pub async fn published_seconds(
        &mut self,
        except_node: &str,
        since: i64,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        let sql = self
            .sql("SELECT node, second, data FROM gantry_metric_seconds WHERE node <> $1 AND second >= $2 ORDER BY second")
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(except_node).bind(since).fetch_all(c).await)
            .map_err(fail("read published metrics"))
    }

    /// Forgets seconds older than `before` (kept: 16 minutes).
    pub async fn prune_seconds(&mut self, before: i64) -> Result<(), StoreError> {
        let sql = self
            .sql("DELETE FROM gantry_metric_seconds WHERE second < $1")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(before).execute(c).await)
            .map(|_| ())
            .map_err(fail("prune published metrics"))
    }
}
