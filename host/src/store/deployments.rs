//! The deploy journal: a row per deployment (environment, state, reason,
//! who, the lease token it runs under, its options) and a row per step
//! (state, what undoing it needs, the error), each committed before and
//! after the side effect it records. Times are milliseconds since the
//! epoch.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use super::states::{DeploymentState, StepState};
use crate::{exec_tx, on_tx};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeploymentRecord {
    pub id: String,
    pub environment: String,
    #[sqlx(try_from = "String")]
    pub state: DeploymentState,
    pub reason: Option<String>,
    pub actor: String,
    pub host: String,
    #[serde(skip)]
    pub owner: Option<String>,
    /// JSON: the options it was started with (dry run never recorded).
    pub options: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StepRecord {
    pub deployment: String,
    pub idx: i32,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub state: StepState,
    /// JSON: what the step did and what undoing it needs.
    pub detail: String,
    pub error: Option<String>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

impl StepRecord {
    /// What happened, in a line: its error, else what undoing it did, else
    /// its summary.
    pub fn what_happened(&self) -> String {
        let detail: serde_json::Value = serde_json::from_str(&self.detail).unwrap_or_default();
        self.error
            .clone()
            .or_else(|| detail["undo"].as_str().map(String::from))
            .or_else(|| detail["summary"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub fn duration_ms(&self) -> Option<u64> {
        match (self.started_ms, self.finished_ms) {
            (Some(s), Some(f)) => Some((f - s).max(0) as u64),
            _ => None,
        }
    }

    /// `1.5 s`, or `-` for a step that has not run.
    pub fn took(&self) -> String {
        self.duration_ms()
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into())
    }
}

const DEPLOYMENT_COLUMNS: &str =
    "id, environment, state, reason, actor, host, owner, options, started_ms, finished_ms";
const STEP_COLUMNS: &str = "deployment, idx, name, state, detail, error, started_ms, finished_ms";

impl Tx {
    /// Records a new deployment with its steps, all `pending`.
    pub async fn insert_deployment(
        &mut self,
        d: &DeploymentRecord,
        steps: &[String],
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_deployments ({DEPLOYMENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&d.id)
            .bind(&d.environment)
            .bind(d.state.as_str())
            .bind(&d.reason)
            .bind(&d.actor)
            .bind(&d.host)
            .bind(&d.owner)
            .bind(&d.options)
            .bind(d.started_ms)
            .bind(d.finished_ms)
            .execute(c)
            .await)
        .map_err(fail("record a deployment"))?;
        for (idx, name) in steps.iter().enumerate() {
            self.save_step(&StepRecord {
                deployment: d.id.clone(),
                idx: idx as i32,
                name: name.clone(),
                state: StepState::Pending,
                detail: "{}".into(),
                error: None,
                started_ms: None,
                finished_ms: None,
            })
            .await?;
        }
        Ok(())
    }

    /// Moves a deployment to `state` (with its reason, its new owner).
    pub async fn set_deployment_state(
        &mut self,
        id: &str,
        state: DeploymentState,
        reason: Option<&str>,
        owner: Option<&str>,
        finished_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let sql = self
            .sql(
                "UPDATE gantry_deployments SET state = $2, reason = COALESCE($3, reason), \
                 owner = $4, finished_ms = $5 WHERE id = $1",
            )
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(id)
            .bind(state.as_str())
            .bind(reason)
            .bind(owner)
            .bind(finished_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("update a deployment"))
    }

    pub async fn save_step(&mut self, s: &StepRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_deployment_steps ({STEP_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (deployment, idx) DO UPDATE SET state = excluded.state, \
                 detail = excluded.detail, error = excluded.error, \
                 started_ms = excluded.started_ms, finished_ms = excluded.finished_ms"
            ))
            .into_owned();
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&s.deployment)
            .bind(s.idx)
            .bind(&s.name)
            .bind(s.state.as_str())
            .bind(&s.detail)
            .bind(&s.error)
            .bind(s.started_ms)
            .bind(s.finished_ms)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a deployment step"))
    }

    pub async fn deployment(&mut self, id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM gantry_deployments WHERE id = $1"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(id).fetch_optional(c).await)
            .map_err(fail("read a deployment"))
    }

    pub async fn deployment_steps(&mut self, id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {STEP_COLUMNS} FROM gantry_deployment_steps WHERE deployment = $1 ORDER BY idx"
            ))
            .into_owned();
        on_tx!(self, c => sqlx::query_as(&sql).bind(id).fetch_all(c).await)
            .map_err(fail("read deployment steps"))
    }

    /// The newest deployment of each environment.
    pub async fn latest_deployments(&mut self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM gantry_deployments WHERE seq IN \
             (SELECT MAX(seq) FROM gantry_deployments GROUP BY environment) ORDER BY environment"
        );
        on_tx!(self, c => sqlx::query_as(&sql).fetch_all(c).await).map_err(fail("read deployments"))
    }

    /// Deployments not finished (running, or stopped half-way), oldest first.
    pub async fn unfinished_deployments(&mut self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM gantry_deployments \
             WHERE state IN ('running', 'rolling_back') ORDER BY seq"
        );
        on_tx!(self, c => sqlx::query_as(&sql).fetch_all(c).await).map_err(fail("read deployments"))
    }

    /// Every deployment's config step: (deployment, detail), newest first.
    pub async fn config_steps(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let sql = "SELECT s.deployment, s.detail FROM gantry_deployment_steps s \
                   JOIN gantry_deployments d ON d.id = s.deployment \
                   WHERE s.name = 'config' ORDER BY d.seq DESC";
        on_tx!(self, c => sqlx::query_as(sql).fetch_all(c).await)
            .map_err(fail("read deployments' config steps"))
    }
}
