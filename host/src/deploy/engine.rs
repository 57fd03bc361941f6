//! Sequencing a deployment: preflight, then each step journaled — its row
//! committed `running` with what undoing it needs *before* it acts, and
//! `done` with what it did after — under the environment's deploy lease,
//! within the time limit. A failed step (or the time limit) rolls back
//! what was done, newest first: config restored, services rolled back to
//! the revisions they ran, migrations reverted only when the deployment
//! config opts in. A kill at any moment leaves a journal that `gantry
//! status` explains and `deploy --resume` or `rollback --deployment`
//! finishes.

use super::error::DeployError;
use super::events::Event;
use super::plan::{Plan, Step};
use super::steps;
use crate::clock::now_ms;
use crate::store::{DeployOutcome, DeploymentState, StepState};
use crate::store::{DeploymentRecord, Lease, LeaseError, StepRecord};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Instant;

/// What a deployment ended as.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub id: String,
    pub environment: String,
    pub dry_run: bool,
    pub state: DeployOutcome,
    pub reason: Option<String>,
    pub preflight: Vec<super::preflight::Check>,
    pub steps: Vec<StepRecord>,
    pub duration_ms: u64,
    /// The deployment log files written.
    pub report_file: Option<String>,
}

/// A deployment in progress: its journal rows and the lease it holds.
pub(super) struct Run<'a> {
    pub plan: &'a Plan,
    pub record: DeploymentRecord,
    pub steps: Vec<StepRecord>,
    pub lease: Lease,
    pub started: Instant,
}

pub(super) fn lease_name(environment: &str) -> String {
    format!("deploy:{environment}")
}

impl Plan {
    fn emit(&self, event: Event) {
        (self.sinks.deploy)(&event);
    }

    /// Takes the environment's deploy lease, or says who holds it.
    pub(super) async fn take_lease(&self) -> Result<Lease, DeployError> {
        self.store
            .try_lease(
                &lease_name(&self.environment),
                "deploy",
                self.settings.lease_ttl,
            )
            .await
            .map_err(|e| match e {
                LeaseError::Held { holder, .. } => DeployError::Busy {
                    environment: self.environment.clone(),
                    holder,
                },
                other => other.into(),
            })
            .inspect(|_| crate::test_points::point("deploy:leased"))
    }

    /// Runs the deployment: preflight (refused → nothing changed), the
    /// journal, the steps, rollback on failure, the report.
    pub async fn deploy(&self, dry_run: bool) -> Result<DeployReport, DeployError> {
        self.deploy_as(None, dry_run).await
    }

    /// `deploy`, under an id chosen by the caller (a key rotation records
    /// it before the deployment starts).
    pub async fn deploy_as(
        &self,
        id: Option<String>,
        dry_run: bool,
    ) -> Result<DeployReport, DeployError> {
        let started = Instant::now();
        let lease = if dry_run {
            None
        } else {
            Some(self.take_lease().await?)
        };
        let preflight = match self.preflight().await {
            Ok(checks) => checks,
            Err(e) => {
                if let Some(lease) = lease {
                    lease.release().await;
                }
                return Err(e);
            }
        };
        let id = id.unwrap_or_else(new_id);
        let names: Vec<String> = self.steps.iter().map(Step::name).collect();
        let Some(lease) = lease else {
            self.emit(Event::Planned {
                id: id.clone(),
                environment: self.environment.clone(),
                steps: names.clone(),
                done: 0,
            });
            return Ok(DeployReport {
                id,
                environment: self.environment.clone(),
                dry_run: true,
                state: DeployOutcome::Planned,
                reason: None,
                preflight,
                steps: names
                    .iter()
                    .enumerate()
                    .map(|(idx, name)| pending_step("", idx, name))
                    .collect(),
                duration_ms: started.elapsed().as_millis() as u64,
                report_file: None,
            });
        };
        let record = DeploymentRecord {
            id: id.clone(),
            environment: self.environment.clone(),
            state: DeploymentState::Running,
            reason: None,
            actor: self.settings.actor.clone(),
            host: self.settings.host.clone(),
            owner: Some(lease.token().to_string()),
            options: json!({"steps": names, "overrides": self.overrides}).to_string(),
            started_ms: now_ms(),
            finished_ms: None,
        };
        let inserted = self
            .store
            .write(async |tx| tx.insert_deployment(&record, &names).await)
            .await;
        if let Err(e) = inserted {
            lease.release().await;
            return Err(e.into());
        }
        let steps = names
            .iter()
            .enumerate()
            .map(|(idx, name)| pending_step(&id, idx, name))
            .collect();
        let run = Run {
            plan: self,
            record,
            steps,
            lease,
            started,
        };
        run.go(preflight).await
    }

    /// Finishes an interrupted deployment: the steps not done yet (a step
    /// the kill landed in runs again; each is safe to repeat), or the
    /// rollback it was in.
    pub async fn resume(&self, id: &str) -> Result<DeployReport, DeployError> {
        let run = self.reopen(id, "resume").await?;
        run.go(Vec::new()).await
    }

    /// Undoes a deployment (finished or interrupted): config restored,
    /// services rolled back, migrations reverted when opted in.
    pub async fn roll_back(&self, id: &str, why: &str) -> Result<DeployReport, DeployError> {
        let run = self.reopen(id, "roll back").await?;
        run.rollback(why.to_string(), None).await
    }

    /// The journal of `id`, with this process as its owner.
    async fn reopen(&self, id: &str, verb: &str) -> Result<Run<'_>, DeployError> {
        let (record, steps) = self
            .store
            .read(async |tx| {
                let record = tx.deployment(id).await?;
                let steps = tx.deployment_steps(id).await?;
                Ok::<_, DeployError>((record, steps))
            })
            .await?;
        let mut record = record.ok_or_else(|| DeployError::Unknown(id.to_string()))?;
        if record.environment != self.environment {
            return Err(DeployError::NotResumable {
                id: id.into(),
                state: record.state,
                what: format!(
                    "it deploys `{}`, not `{}`",
                    record.environment, self.environment
                ),
            });
        }
        if verb == "resume" && !record.state.is_unfinished() {
            return Err(DeployError::NotResumable {
                id: id.into(),
                state: record.state,
                what: "only an interrupted deployment can be resumed".into(),
            });
        }
        if verb != "resume" && record.state == DeploymentState::RolledBack {
            return Err(DeployError::NotResumable {
                id: id.into(),
                state: record.state,
                what: "it was rolled back already".into(),
            });
        }
        let lease = self.take_lease().await?;
        record.owner = Some(lease.token().to_string());
        let owner = record.owner.clone();
        let written = self
            .store
            .write(async |tx| {
                tx.set_deployment_state(
                    &record.id,
                    record.state,
                    None,
                    owner.as_deref(),
                    record.finished_ms,
                )
                .await
            })
            .await;
        if let Err(e) = written {
            lease.release().await;
            return Err(e.into());
        }
        Ok(Run {
            plan: self,
            record,
            steps,
            lease,
            started: Instant::now(),
        })
    }
}

/// A new deployment id: time and randomness.
pub fn new_id() -> String {
    format!(
        "deploy_{}_{}",
        chrono::Utc::now().format("%Y%m%d_%H%M%S"),
        &crate::identity::token()[..6]
    )
}

fn pending_step(id: &str, idx: usize, name: &str) -> StepRecord {
    StepRecord {
        deployment: id.to_string(),
        idx: idx as i32,
        name: name.to_string(),
        state: StepState::Pending,
        detail: "{}".into(),
        error: None,
        started_ms: None,
        finished_ms: None,
    }
}

impl Run<'_> {
    fn emit(&self, event: Event) {
        (self.plan.sinks.deploy)(&event);
    }

    pub(super) async fn save_step(&self, idx: usize) -> Result<(), DeployError> {
        let step = self.steps[idx].clone();
        self.plan
            .store
            .write(async |tx| tx.save_step(&step).await)
            .await?;
        Ok(())
    }

    async fn set_state(
        &mut self,
        state: DeploymentState,
        reason: Option<&str>,
    ) -> Result<(), DeployError> {
        self.record.state = state;
        if let Some(reason) = reason {
            self.record.reason = Some(reason.to_string());
        }
        let finished = (!state.is_unfinished()).then(now_ms);
        self.record.finished_ms = finished;
        let (id, owner) = (self.record.id.clone(), self.record.owner.clone());
        self.plan
            .store
            .write(async |tx| {
                tx.set_deployment_state(&id, state, reason, owner.as_deref(), finished)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Runs the steps not done yet, then finishes.
    async fn go(
        mut self,
        preflight: Vec<super::preflight::Check>,
    ) -> Result<DeployReport, DeployError> {
        let names: Vec<String> = self.steps.iter().map(|s| s.name.clone()).collect();
        self.emit(Event::Planned {
            id: self.record.id.clone(),
            environment: self.record.environment.clone(),
            steps: names,
            done: self
                .steps
                .iter()
                .filter(|s| s.state == StepState::Done)
                .count(),
        });
        if self.record.state == DeploymentState::RollingBack {
            let reason = self
                .record
                .reason
                .clone()
                .unwrap_or_else(|| "interrupted while rolling back".into());
            return self.rollback(reason, None).await;
        }
        let limit = self.plan.time_limit();
        for idx in 0..self.steps.len() {
            if self.steps[idx].state == StepState::Done {
                continue;
            }
            let remaining = limit.saturating_sub(self.started.elapsed());
            let failure = match tokio::time::timeout(remaining, self.step(idx)).await {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(reason),
                Err(_) => {
                    // The step's future was dropped where it stood; the
                    // leases it held are released in the background, and
                    // the rollback's own steps wait for them.
                    Some(format!(
                        "the deployment exceeded its time limit of {} s (deployment.timeout_seconds)",
                        limit.as_secs()
                    ))
                }
            };
            if let Some(reason) = failure {
                let step = &mut self.steps[idx];
                if step.state != StepState::Failed {
                    step.state = StepState::Failed;
                    step.error = Some(reason.clone());
                    step.finished_ms = Some(now_ms());
                    self.save_step(idx).await?;
                }
                let name = self.steps[idx].name.clone();
                self.emit(Event::StepFinished {
                    id: self.record.id.clone(),
                    step: name.clone(),
                    state: StepState::Failed,
                    duration_ms: step_ms(&self.steps[idx]),
                    summary: reason.clone(),
                });
                return self.rollback(reason, Some(name)).await;
            }
        }
        self.set_state(DeploymentState::Succeeded, None).await?;
        self.finish(preflight).await
    }

    /// One step: journaled `running` with its undo data, run, journaled
    /// `done` with what it did. `Err` is the reason it failed.
    async fn step(&mut self, idx: usize) -> Result<(), String> {
        let name = self.steps[idx].name.clone();
        let step = Step::parse(&name).ok_or_else(|| format!("unknown step `{name}`"))?;
        self.lease
            .ensure_held()
            .await
            .map_err(|e| format!("the deploy lease was lost: {e}"))?;
        let mut detail: Value =
            serde_json::from_str(&self.steps[idx].detail).unwrap_or_else(|_| json!({}));
        steps::before(self.plan, &step, &mut detail)
            .await
            .map_err(|e| format!("{e:#}"))?;
        {
            let record = &mut self.steps[idx];
            record.state = StepState::Running;
            record.detail = detail.to_string();
            record.error = None;
            if record.started_ms.is_none() {
                record.started_ms = Some(now_ms());
            }
            record.finished_ms = None;
        }
        self.save_step(idx).await.map_err(|e| e.to_string())?;
        crate::test_points::point(&format!("deploy:step:{name}"));
        self.emit(Event::StepStarted {
            id: self.record.id.clone(),
            step: name.clone(),
        });
        let outcome = steps::execute(self.plan, &self.record.id, &step, &mut detail).await;
        let record = &mut self.steps[idx];
        record.detail = detail.to_string();
        record.finished_ms = Some(now_ms());
        let result = match outcome {
            Ok(summary) => {
                record.state = StepState::Done;
                detail["summary"] = json!(summary);
                record.detail = detail.to_string();
                Ok(summary)
            }
            Err(reason) => {
                record.state = StepState::Failed;
                record.error = Some(reason.clone());
                Err(reason)
            }
        };
        self.save_step(idx).await.map_err(|e| e.to_string())?;
        let summary = result.clone()?;
        self.emit(Event::StepFinished {
            id: self.record.id.clone(),
            step: name,
            state: StepState::Done,
            duration_ms: step_ms(&self.steps[idx]),
            summary,
        });
        Ok(())
    }

    /// Undoes what the deployment did, in the order that is safe: the
    /// config first (so rolled-back instances read the old files), then
    /// the services newest first, then the migrations (when opted in).
    async fn rollback(
        mut self,
        reason: String,
        failed_step: Option<String>,
    ) -> Result<DeployReport, DeployError> {
        self.emit(Event::RollingBack {
            id: self.record.id.clone(),
            reason: reason.clone(),
        });
        self.set_state(DeploymentState::RollingBack, Some(&reason))
            .await?;
        let touched = |s: &StepRecord| {
            matches!(
                s.state,
                StepState::Done | StepState::Running | StepState::Failed
            )
        };
        let mut order: Vec<usize> = Vec::new();
        order.extend((0..self.steps.len()).filter(|&i| self.steps[i].name == "config"));
        order.extend(
            (0..self.steps.len())
                .rev()
                .filter(|&i| self.steps[i].name.starts_with("rollout:")),
        );
        order.extend((0..self.steps.len()).filter(|&i| self.steps[i].name == "migrate"));
        let mut undo_error = None;
        for idx in order {
            if !touched(&self.steps[idx]) {
                continue;
            }
            let Some(step) = Step::parse(&self.steps[idx].name) else {
                continue;
            };
            let started_ms = self.steps[idx].started_ms;
            let mut detail: Value =
                serde_json::from_str(&self.steps[idx].detail).unwrap_or_else(|_| json!({}));
            match steps::undo(self.plan, &step, &mut detail, started_ms).await {
                Ok((summary, reverted)) => {
                    detail["undo"] = json!(summary);
                    let record = &mut self.steps[idx];
                    record.detail = detail.to_string();
                    if reverted {
                        record.state = StepState::Undone;
                    }
                    self.save_step(idx).await?;
                    self.emit(Event::Undone {
                        id: self.record.id.clone(),
                        step: self.steps[idx].name.clone(),
                        summary,
                    });
                }
                Err(e) => {
                    undo_error = Some(format!("undoing {} failed: {e:#}", self.steps[idx].name));
                    break;
                }
            }
        }
        let state = if undo_error.is_none() {
            DeploymentState::RolledBack
        } else {
            DeploymentState::Failed
        };
        let full_reason = match (&failed_step, &undo_error) {
            (Some(step), None) => format!("{step} failed: {reason}"),
            (Some(step), Some(e)) => format!("{step} failed: {reason}; {e}"),
            (None, None) => reason,
            (None, Some(e)) => format!("{reason}; {e}"),
        };
        self.set_state(state, Some(&full_reason)).await?;
        self.finish(Vec::new()).await
    }

    /// Releases the lease, writes the logs, reports.
    async fn finish(
        self,
        preflight: Vec<super::preflight::Check>,
    ) -> Result<DeployReport, DeployError> {
        let duration_ms = self.started.elapsed().as_millis() as u64;
        self.emit(Event::Finished {
            id: self.record.id.clone(),
            state: self.record.state.outcome(),
            reason: self.record.reason.clone(),
            duration_ms,
        });
        let report_file = super::logs::write(self.plan, &self.record, &self.steps)
            .map_err(|e| tracing::warn!("deployment log: {e}"))
            .ok();
        self.lease.release().await;
        Ok(DeployReport {
            id: self.record.id,
            environment: self.record.environment,
            dry_run: false,
            state: self.record.state.outcome(),
            reason: self.record.reason,
            preflight,
            steps: self.steps,
            duration_ms,
            report_file,
        })
    }
}

fn step_ms(step: &StepRecord) -> u64 {
    step.duration_ms().unwrap_or(0)
}
