//! The rollout engine's records: revisions (what a service runs, as
//! configured, secrets as references), instances (what runs where, with
//! its pid and addresses) and rollouts (from, to, state, reason, owner).
//! Times are milliseconds since the epoch.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use super::states::{InstanceState, RolloutState};
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
    #[sqlx(try_from = "String")]
    pub state: InstanceState,
    pub rollout_id: Option<i64>,
    pub started_ms: i64,
    pub updated_ms: i64,
    /// A unique id, recorded before the process starts and carried in its
    /// environment (`GANTRY_INSTANCE_ID`), so a process no record knows
    /// can be found. Absent for instances started before ids.
    pub instance_id: Option<String>,
}

/// A service's front door on a host: the process, its control socket, the
/// public addresses and at which of its fds it holds them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FrontDoorRecord {
    pub service: String,
    pub host: String,
    pub pid: i64,
    pub process_start: String,
    pub control: String,
    /// The public addresses, comma-separated.
    pub listen: String,
    /// The fds it holds them at, comma-separated, for a successor.
    pub listen_fds: String,
    pub mode: String,
    /// Which gantry binary it runs (version, size, mtime).
    pub binary_id: String,
    pub started_ms: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RolloutRecord {
    pub id: i64,
    pub service: String,
    pub host: String,
    pub from_revision: Option<String>,
    pub to_revision: String,
    #[sqlx(try_from = "String")]
    pub state: RolloutState,
    pub reason: Option<String>,
    pub actor: String,
    #[serde(skip)]
    pub owner: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Canary steps: where the rollout stands (JSON, `rollout::steps`).
    #[serde(skip)]
    pub progress: Option<String>,
    /// An operator's request to a running rollout (`promote`, `abort`,
    /// `pause`, `resume`), taken by its owner.
    #[serde(skip)]
    pub control: Option<String>,
}

const INSTANCE_COLUMNS: &str = "service, host, name, driver, revision, pid, process_start, address, \
                                health_address, state, rollout_id, started_ms, updated_ms, instance_id";
const FRONT_DOOR_COLUMNS: &str = "service, host, pid, process_start, control, listen, listen_fds, mode, \
                                  binary_id, started_ms";
const ROLLOUT_COLUMNS: &str = "id, service, host, from_revision, to_revision, state, reason, actor, \
                               owner, started_ms, finished_ms, progress, control";

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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (service, host, name) DO UPDATE SET driver = excluded.driver, \
                 revision = excluded.revision, pid = excluded.pid, process_start = excluded.process_start, \
                 address = excluded.address, health_address = excluded.health_address, \
                 state = excluded.state, rollout_id = excluded.rollout_id, \
                 started_ms = excluded.started_ms, updated_ms = excluded.updated_ms, \
                 instance_id = excluded.instance_id"
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
            .bind(i.state.as_str())
            .bind(i.rollout_id)
            .bind(i.started_ms)
            .bind(i.updated_ms)
            .bind(&i.instance_id)
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

    /// The next instance number of `service` on `host`: one more than any
    /// ever handed out, so a name is never reused.
    pub async fn next_instance_number(
        &mut self,
        service: &str,
        host: &str,
        at_least: i64,
    ) -> Result<i64, StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_instance_names (service, host, next) VALUES ($1, $2, $3) \
                 ON CONFLICT (service, host) DO UPDATE SET next = \
                 CASE WHEN gantry_instance_names.next + 1 > excluded.next \
                 THEN gantry_instance_names.next + 1 ELSE excluded.next END \
                 RETURNING next",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql)
            .bind(service)
            .bind(host)
            .bind(at_least)
            .fetch_one(c)
            .await)
        .map_err(fail("number an instance"))
    }

    pub async fn save_front_door(&mut self, f: &FrontDoorRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_front_doors ({FRONT_DOOR_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (service, host) DO UPDATE SET pid = excluded.pid, \
                 process_start = excluded.process_start, control = excluded.control, \
                 listen = excluded.listen, listen_fds = excluded.listen_fds, mode = excluded.mode, \
                 binary_id = excluded.binary_id, started_ms = excluded.started_ms"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&f.service)
            .bind(&f.host)
            .bind(f.pid)
            .bind(&f.process_start)
            .bind(&f.control)
            .bind(&f.listen)
            .bind(&f.listen_fds)
            .bind(&f.mode)
            .bind(&f.binary_id)
            .bind(f.started_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a front door"))
    }

    pub async fn front_door(
        &mut self,
        service: &str,
        host: &str,
    ) -> Result<Option<FrontDoorRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {FRONT_DOOR_COLUMNS} FROM gantry_front_doors WHERE service = $1 AND host = $2"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(service).bind(host).fetch_optional(c).await)
            .map_err(fail("read a front door"))
    }

    /// Forgets the front door `pid` ran (not one a successor recorded since).
    pub async fn delete_front_door(
        &mut self,
        service: &str,
        host: &str,
        pid: i64,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql("DELETE FROM gantry_front_doors WHERE service = $1 AND host = $2 AND pid = $3")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(service).bind(host).bind(pid).execute(c).await)
            .map(|_| ())
            .map_err(fail("forget a front door"))
    }

    /// Records a rollout as started; returns its id.
    pub async fn start_rollout(&mut self, r: &RolloutRecord) -> Result<i64, StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_rollouts (service, host, from_revision, to_revision, state, reason, \
                 actor, owner, started_ms, progress) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 RETURNING id",
            )
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql)
            .bind(&r.service)
            .bind(&r.host)
            .bind(&r.from_revision)
            .bind(&r.to_revision)
            .bind(r.state.as_str())
            .bind(&r.reason)
            .bind(&r.actor)
            .bind(&r.owner)
            .bind(r.started_ms)
            .bind(&r.progress)
            .fetch_one(c)
            .await)
        .map_err(fail("record a rollout"))
    }

    pub async fn finish_rollout(
        &mut self,
        id: i64,
        state: RolloutState,
        reason: Option<&str>,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql("UPDATE gantry_rollouts SET state = $1, reason = $2, finished_ms = $3 WHERE id = $4")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(state.as_str())
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

    /// A service's newest rollout (by `host` only, when given).
    pub async fn last_rollout(
        &mut self,
        service: &str,
        host: Option<&str>,
    ) -> Result<Option<RolloutRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM gantry_rollouts \
                 WHERE service = $1 AND ($2 IS NULL OR host = $2) ORDER BY id DESC LIMIT 1"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(service).bind(host).fetch_optional(c).await)
            .map_err(fail("read rollouts"))
    }
}
