//! The deployments as `gantry status` shows them: the newest of each
//! environment with its steps, and for one that stopped half-way, what is
//! half-done and which command finishes or undoes it.

use super::engine::lease_name;
use crate::store::{DeploymentRecord, StepRecord, Store, StoreError};
use crate::store::{DeploymentState, StepState};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub record: DeploymentRecord,
    pub steps: Vec<StepRecord>,
    /// Its gantry runs it now.
    pub running: bool,
    /// Unfinished and its gantry is gone.
    pub interrupted: bool,
    pub advice: Option<String>,
}

/// The newest deployment of each environment.
pub async fn latest(store: &Store) -> Result<Vec<DeploymentView>, StoreError> {
    let records = store.read(async |tx| tx.latest_deployments().await).await?;
    let mut views = Vec::with_capacity(records.len());
    for record in records {
        views.push(view(store, record).await?);
    }
    Ok(views)
}

/// The deployment whose config step made `backup`, if one did.
pub async fn made_backup(store: &Store, backup: &str) -> Result<Option<String>, StoreError> {
    let steps = store.read(async |tx| tx.config_steps().await).await?;
    Ok(steps.into_iter().find_map(|(deployment, detail)| {
        serde_json::from_str::<serde_json::Value>(&detail)
            .is_ok_and(|d| d["backup_id"] == backup)
            .then_some(deployment)
    }))
}

pub async fn find(store: &Store, id: &str) -> Result<Option<DeploymentView>, StoreError> {
    match store.read(async |tx| tx.deployment(id).await).await? {
        Some(record) => Ok(Some(view(store, record).await?)),
        None => Ok(None),
    }
}

async fn view(store: &Store, record: DeploymentRecord) -> Result<DeploymentView, StoreError> {
    let steps = store
        .read(async |tx| tx.deployment_steps(&record.id).await)
        .await?;
    let unfinished = record.state.is_unfinished();
    let running = unfinished && {
        let holder = store.lease_holder(&lease_name(&record.environment)).await?;
        holder.is_some_and(|h| h.alive && Some(&h.token) == record.owner.as_ref())
    };
    let interrupted = unfinished && !running;
    let advice = interrupted.then(|| {
        let half: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Running || s.state == StepState::Failed)
            .map(|s| s.name.clone())
            .collect();
        let done: Vec<String> = steps
            .iter()
            .filter(|s| s.state == StepState::Done)
            .map(|s| s.name.clone())
            .collect();
        let what = if record.state == DeploymentState::RollingBack {
            "it stopped while rolling back".to_string()
        } else {
            format!(
                "done: {}; stopped in: {}",
                if done.is_empty() { "nothing".into() } else { done.join(", ") },
                if half.is_empty() { "between steps".into() } else { half.join(", ") },
            )
        };
        format!(
            "{what}. Finish it: gantry deploy --environment {env} --resume {id}; or undo it: gantry rollback --deployment {id}",
            env = record.environment,
            id = record.id
        )
    });
    Ok(DeploymentView {
        record,
        steps,
        running,
        interrupted,
        advice,
    })
}
