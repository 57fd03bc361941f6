//! The rollout engine's records: revisions (what a service runs, as
//! configured, secrets as references), instances (what runs where, with
//! its pid and addresses) and rollouts (from, to, state, reason, owner).
//! Times are milliseconds since the epoch.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use crate::{exec_tx, on_tx};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RevisionRecord {
    pub service: String,
    pub id: String,
    pub label: String,
    /// The spec as JSON (references, never resolved secrets).
    pub spec: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq)]
pub struct InstanceRecord {
    pub service: String,
    pub host: String,
    pub name: String,
    pub driver: String,
    pub revision: String,
    pub pid: Option<i64>,
    pub process_start: Option<String>,
    /// Where it serves (the shared address for supervised instances).
    pub address: String,
    /// Where its health checks look.
    pub health_address: String,
    /// `starting`, `healthy`, `failed`, `stopping`, `stopped`.
    pub state: String,
    pub rollout_id: Option<i64>,
    pub started_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RolloutRecord {
    pub id: i64,
    pub service: String,
    pub host: String,
    pub from_revision: Option<String>,
    pub to_revision: String,
    /// `running`, `succeeded`, `failed`, `rolled_back`, `interrupted`.
    pub state: String,
    pub reason: Option<String>,
    pub actor: String,
    #[serde(skip)]
    pub owner: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

const INSTANCE_COLUMNS: &str = "service, host, name, driver, revision, pid, process_start, address, \
                                health_address, state, rollout_id, started_ms, updated_ms";
const ROLLOUT_COLUMNS: &str = "id, service, host, from_revision, to_revision, state, reason, actor, \
                               owner, started_ms, finished_ms";

impl Tx {
    /// Records a revision unless it is known already.
    pub async fn save_revision(&mut self, r: &RevisionRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_revisions (service, id, label, spec, created_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service, id) DO NOTHING",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&r.service)
            .bind(&r.id)
            .bind(&r.label)
            .bind(&r.spec)
            .bind(r.created_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a revision"))
    }

    pub async fn revisions(&mut self, service: &str) -> Result<Vec<RevisionRecord>, StoreError> {
        let sql = self
            .sql(
                "SELECT service, id, label, spec, created_ms FROM gantry_revisions \
                 WHERE service = $1 ORDER BY created_ms, id",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(service).fetch_all(c).await)
            .map_err(fail("read revisions"))
    }

    /// Inserts or replaces an instance's row.
    pub async fn save_instance(&mut self, i: &InstanceRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_instances ({INSTANCE_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (service, host, name) DO UPDATE SET driver = excluded.driver, \
                 revision = excluded.revision, pid = excluded.pid, process_start = excluded.process_start, \
                 address = excluded.address, health_address = excluded.health_address, \
                 state = excluded.state, rollout_id = excluded.rollout_id, \
                 started_ms = excluded.started_ms, updated_ms = excluded.updated_ms"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&i.service)
            .bind(&i.host)
            .bind(&i.name)
            .bind(&i.driver)
            .bind(&i.revision)
            .bind(i.pid)
            .bind(&i.process_start)
            .bind(&i.address)
            .bind(&i.health_address)
            .bind(&i.state)
            .bind(i.rollout_id)
            .bind(i.started_ms)
            .bind(i.updated_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record an instance"))
    }

    pub async fn delete_instance(
        &mut self,
        service: &str,
        host: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql("DELETE FROM gantry_instances WHERE service = $1 AND host = $2 AND name = $3")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(service).bind(host).bind(name).execute(c).await)
            .map(|_| ())
            .map_err(fail("forget an instance"))
    }

    /// Every instance of `service` (every service when `None`).
    pub async fn instances(
        &mut self,
        service: Option<&str>,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM gantry_instances \
                 WHERE ($1 IS NULL OR service = $1) ORDER BY service, host, name"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(service).fetch_all(c).await)
            .map_err(fail("read instances"))
    }

    /// Records a rollout as started; returns its id.
    pub async fn start_rollout(&mut self, r: &RolloutRecord) -> Result<i64, StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_rollouts (service, host, from_revision, to_revision, state, reason, \
                 actor, owner, started_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql)
            .bind(&r.service)
            .bind(&r.host)
            .bind(&r.from_revision)
            .bind(&r.to_revision)
            .bind(&r.state)
            .bind(&r.reason)
            .bind(&r.actor)
            .bind(&r.owner)
            .bind(r.started_ms)
            .fetch_one(c)
            .await)
        .map_err(fail("record a rollout"))
    }

    pub async fn finish_rollout(
        &mut self,
        id: i64,
        state: &str,
        reason: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql("UPDATE gantry_rollouts SET state = $1, reason = $2, finished_ms = $3 WHERE id = $4")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(state)
            .bind(reason)
            .bind(finished_ms)
            .bind(id)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record the end of a rollout"))
    }

    /// Rollouts of `service` (every service when `None`), oldest first.
    pub async fn rollouts(
        &mut self,
        service: Option<&str>,
    ) -> Result<Vec<RolloutRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM gantry_rollouts \
                 WHERE ($1 IS NULL OR service = $1) ORDER BY id"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(service).fetch_all(c).await)
            .map_err(fail("read rollouts"))
    }
}
