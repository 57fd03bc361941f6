//! What canary steps keep in the store: the traffic weights a front door
//! splits requests by (per service and host, per revision), the
//! per-revision seconds that monitors and front doors publish (what an
//! analysis reads, from any process, after any restart), and a rollout's
//! progress and the operator's requests to it.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use crate::{exec_tx, on_tx};
use std::collections::BTreeMap;

impl Tx {
    /// Makes `weights` the service's split on `host` (empty: none, every
    /// instance counts the same).
    pub async fn set_traffic_weights(
        &mut self,
        service: &str,
        host: &str,
        weights: &BTreeMap<String, u32>,
    ) -> Result<(), StoreError> {
        let clear = self
            .sql("DELETE FROM gantry_traffic_weights WHERE service = $1 AND host = $2")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&clear).bind(service).bind(host).execute(c).await)
            .map_err(fail("clear traffic weights"))?;
        let insert = self
            .sql(
                "INSERT INTO gantry_traffic_weights (service, host, revision, weight) \
                 VALUES ($1, $2, $3, $4)",
            )
            .into_owned();
        for (revision, weight) in weights {
            exec_tx!(self, c => sqlx::query(&insert)
                .bind(service)
                .bind(host)
                .bind(revision)
                .bind(i64::from(*weight))
                .execute(c)
                .await)
            .map_err(fail("record traffic weights"))?;
        }
        Ok(())
    }

    /// The service's split on `host`: revision → weight.
    pub async fn traffic_weights(
        &mut self,
        service: &str,
        host: &str,
    ) -> Result<BTreeMap<String, u32>, StoreError> {
        let sql = self
            .sql(
                "SELECT revision, weight FROM gantry_traffic_weights \
                 WHERE service = $1 AND host = $2",
            )
            .into_owned();
        let rows: Vec<(String, i64)> = on_tx!(self, c => sqlx::query_as(&sql)
            .bind(service)
            .bind(host)
            .fetch_all(c)
            .await)
        .map_err(fail("read traffic weights"))?;
        Ok(rows
            .into_iter()
            .map(|(r, w)| (r, w.clamp(0, i64::from(u32::MAX)) as u32))
            .collect())
    }

    /// Publishes seconds of revisions as `node` saw them (`source`: `auth`
    /// from a monitor, `http` from a front door): (revision, second, data).
    pub async fn publish_revision_seconds(
        &mut self,
        source: &str,
        node: &str,
        seconds: &[(String, i64, String)],
    ) -> Result<(), StoreError> {
        for (revision, second, data) in seconds {
            self.publish_revision_second(source, node, revision, *second, data)
                .await?;
        }
        Ok(())
    }

    async fn publish_revision_second(
        &mut self,
        source: &str,
        node: &str,
        revision: &str,
        second: i64,
        data: &str,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_revision_seconds (source, node, revision, second, data) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (revision, second, source, node) DO UPDATE SET data = excluded.data",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(source)
            .bind(node)
            .bind(revision)
            .bind(second)
            .bind(data)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("publish revision metrics"))
    }

    /// Every node's seconds of `revision` in `[from, to]`: (source,
    /// second, data), by second.
    pub async fn revision_seconds(
        &mut self,
        revision: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        let sql = self
            .sql(
                "SELECT source, second, data FROM gantry_revision_seconds \
                 WHERE revision = $1 AND second >= $2 AND second <= $3 ORDER BY second",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql)
            .bind(revision)
            .bind(from)
            .bind(to)
            .fetch_all(c)
            .await)
        .map_err(fail("read revision metrics"))
    }

    /// Forgets per-revision seconds older than `before`.
    pub async fn prune_revision_seconds(&mut self, before: i64) -> Result<(), StoreError> {
        let sql = self
            .sql("DELETE FROM gantry_revision_seconds WHERE second < $1")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(before).execute(c).await)
            .map(|_| ())
            .map_err(fail("prune revision metrics"))
    }

    /// Records where rollout `id` stands (its steps' JSON).
    pub async fn save_rollout_progress(
        &mut self,
        id: i64,
        progress: &str,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql("UPDATE gantry_rollouts SET progress = $1 WHERE id = $2")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(progress).bind(id).execute(c).await)
            .map(|_| ())
            .map_err(fail("record a rollout's progress"))
    }

    /// Leaves `op` for rollout `id` to take, while it runs; an `abort`
    /// not yet taken is never overwritten. False when nothing was left.
    pub async fn request_rollout_control(&mut self, id: i64, op: &str) -> Result<bool, StoreError> {
        let sql = self
            .sql(
                "UPDATE gantry_rollouts SET control = $1 WHERE id = $2 AND state = 'running' \
                 AND (control IS NULL OR control <> 'abort')",
            )
            .into_owned();
        let done = exec_tx!(self, c => sqlx::query(&sql).bind(op).bind(id).execute(c).await)
            .map_err(fail("leave a request for a rollout"))?;
        if done > 0 || op != "abort" {
            return Ok(done > 0);
        }
        // An abort already waiting counts as left — while the rollout runs.
        let again = self
            .sql("UPDATE gantry_rollouts SET control = 'abort' WHERE id = $1 AND state = 'running'")
            .into_owned();
        let done = exec_tx!(self, c => sqlx::query(&again).bind(id).execute(c).await)
            .map_err(fail("leave a request for a rollout"))?;
        Ok(done > 0)
    }

    /// Takes (reads and clears) the request left for rollout `id`.
    pub async fn take_rollout_control(&mut self, id: i64) -> Result<Option<String>, StoreError> {
        let read = self
            .sql("SELECT control FROM gantry_rollouts WHERE id = $1")
            .into_owned();
        let found: Option<Option<String>> = on_tx!(self, c => sqlx::query_scalar(&read)
            .bind(id)
            .fetch_optional(c)
            .await)
        .map_err(fail("read a rollout's requests"))?;
        let Some(op) = found.flatten() else {
            return Ok(None);
        };
        let clear = self
            .sql("UPDATE gantry_rollouts SET control = NULL WHERE id = $1")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&clear).bind(id).execute(c).await)
            .map_err(fail("take a rollout's request"))?;
        Ok(Some(op))
    }
}
