//! JWT key sets as gantry manages them once a rotation has run: per
//! environment, the keys with their kids, algorithms, statuses and
//! *references* to their material (`${file:…}`, `${env:…}`) — never the
//! material itself — and the rotations, phase by phase.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use super::states::RotationState;
use crate::{exec_tx, on_tx};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RotationRecord {
    pub id: String,
    pub environment: String,
    /// 1 add (verify-only), 2 promote (signing), 3 retire the old key.
    pub phase: i32,
    #[sqlx(try_from = "String")]
    pub state: RotationState,
    pub old_kid: String,
    pub new_kid: String,
    /// sha256 of the new key's material, first 16 hex digits.
    pub fingerprint: String,
    /// JSON: the key set (references only) the running phase deploys.
    pub target: String,
    pub deployment: Option<String>,
    pub reason: Option<String>,
    pub next_after_ms: Option<i64>,
    pub started_ms: i64,
    pub updated_ms: i64,
}

const ROTATION_COLUMNS: &str = "id, environment, phase, state, old_kid, new_kid, fingerprint, \
                                target, deployment, reason, next_after_ms, started_ms, updated_ms";

impl Tx {
    /// The key set gantry manages for `environment` (JSON), if any.
    pub async fn key_set(&mut self, environment: &str) -> Result<Option<String>, StoreError> {
        let sql = self
            .sql("SELECT keys FROM gantry_key_sets WHERE environment = $1")
            .into_owned();
        on_tx!(self, c => sqlx::query_scalar(&sql).bind(environment).fetch_optional(c).await)
            .map_err(fail("read a key set"))
    }

    pub async fn save_key_set(
        &mut self,
        environment: &str,
        keys: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "INSERT INTO gantry_key_sets (environment, keys, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (environment) DO UPDATE SET keys = excluded.keys, updated_ms = excluded.updated_ms",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(environment).bind(keys).bind(now_ms).execute(c).await)
            .map(|_| ())
            .map_err(fail("record a key set"))
    }

    pub async fn save_rotation(&mut self, r: &RotationRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_key_rotations ({ROTATION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, state = excluded.state, \
                 target = excluded.target, deployment = excluded.deployment, reason = excluded.reason, \
                 next_after_ms = excluded.next_after_ms, updated_ms = excluded.updated_ms"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&r.id)
            .bind(&r.environment)
            .bind(r.phase)
            .bind(r.state.as_str())
            .bind(&r.old_kid)
            .bind(&r.new_kid)
            .bind(&r.fingerprint)
            .bind(&r.target)
            .bind(&r.deployment)
            .bind(&r.reason)
            .bind(r.next_after_ms)
            .bind(r.started_ms)
            .bind(r.updated_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a key rotation"))
    }

    /// Forgets a rotation that never deployed anything (refused before
    /// its first deployment).
    pub async fn delete_rotation(&mut self, id: &str) -> Result<(), StoreError> {
        let sql = self
            .sql("DELETE FROM gantry_key_rotations WHERE id = $1")
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql).bind(id).execute(c).await)
            .map(|_| ())
            .map_err(fail("forget a key rotation"))
    }

    /// The newest rotation of `environment` (all environments when `None`).
    pub async fn latest_rotations(
        &mut self,
        environment: Option<&str>,
    ) -> Result<Vec<RotationRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {ROTATION_COLUMNS} FROM gantry_key_rotations r WHERE ($1 IS NULL OR environment = $1) \
                 AND started_ms = (SELECT MAX(started_ms) FROM gantry_key_rotations x WHERE x.environment = r.environment) \
                 ORDER BY environment"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(environment).fetch_all(c).await)
            .map_err(fail("read key rotations"))
    }
}
