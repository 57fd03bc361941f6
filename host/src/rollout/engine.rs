//! `Rollout`: replaces a service's instances with those of a target
//! revision, `max_parallel` at a time, each replacement gated on its health
//! checks before the instance it replaces is retired — so healthy old
//! instances stay until their replacements are healthy. On a failure
//! (a gate that fails `rollback_threshold_failures` times, the progress
//! deadline, the overall time limit) it rolls back to the revision the
//! instances ran before, the same way.
//!
//! Ownership is a lease (`rollout:<host>:<service>` for supervised
//! services, `rollout:<service>` for exec ones); the rollout and every
//! instance are recorded in the state store before they count, so a kill
//! at any moment leaves a record that `gantry rollout status` explains and
//! the next `gantry rollout` finishes (instances already at the target are
//! kept) or `gantry rollout undo` reverses.

use super::driver::Driver;
use super::error::RolloutError;
use super::events::Event;
use super::health::{Gate, GateOutcome};
use super::spec::{Revision, ServiceSpec};
use super::steps::{Abort, Progress};
use crate::clock::now_ms;
use crate::config::DriverKind;
use crate::config::analysis::AnalysisConfig;
use crate::events::Sink;
use crate::store::{InstanceRecord, Lease, LeaseError, RolloutRecord, Store};
use crate::store::{InstanceState, RolloutOutcome, RolloutState};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to roll to.
#[derive(Debug, Clone)]
pub enum Target {
    /// The revision the configuration describes now.
    Current,
    /// A recorded revision, by label or id (prefix).
    Named(String),
    /// The stable revision before the last successful rollout.
    Undo,
}

/// The rollout rules, as durations.
#[derive(Debug, Clone)]
pub struct Rules {
    pub max_parallel: usize,
    pub progress_deadline: Duration,
    pub rollback_threshold_failures: u32,
    pub max_update: Duration,
    pub auto_revert: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub service: String,
    pub rollout_id: Option<i64>,
    pub dry_run: bool,
    pub from: Option<String>,
    pub to: String,
    pub state: RolloutOutcome,
    pub replaced: usize,
    pub kept: usize,
    pub duration_ms: u64,
    pub instances: Vec<InstanceRecord>,
}

pub struct Rollout {
    pub(super) store: Store,
    pub(super) spec: ServiceSpec,
    pub(super) driver: Arc<dyn Driver>,
    pub(super) gate: Gate,
    pub(super) rules: Rules,
    pub(super) host: String,
    pub(super) actor: String,
    pub(super) lease_ttl: Duration,
    pub(super) sink: Sink<Event>,
    /// Canary analyses by name (`analyses` in the config).
    pub(super) analyses: std::collections::BTreeMap<String, AnalysisConfig>,
    /// Where `RolloutAborted` goes (the monitor's receivers), when the
    /// monitoring settings are good.
    pub(super) alerts: Option<crate::monitor::lifecycle::Lifecycle>,
}

/// One replacement: the instance it replaces (if any).
struct Unit {
    old: Option<InstanceRecord>,
}

enum Failure {
    /// The rollout failed for `reason`.
    Failed { reason: String },
}

impl Rollout {
    /// Adds checks every instance must pass, beside the configured ones.
    pub fn add_checks(&mut self, extra: Vec<Arc<super::health::HealthCheck>>) {
        self.gate.checks.extend(extra);
    }

    pub(super) fn emit(&self, event: Event) {
        (self.sink)(&event);
    }

    fn service(&self) -> &str {
        &self.spec.name
    }

    /// Records that `instance` passed its gate, then has the driver send
    /// it traffic (the record first: the front door follows the store).
    async fn mark_healthy(&self, instance: &InstanceRecord) -> Result<(), RolloutError> {
        let mut healthy = instance.clone();
        healthy.state = InstanceState::Healthy;
        healthy.updated_ms = now_ms();
        self.store
            .write(async |tx| tx.save_instance(&healthy).await)
            .await?;
        self.driver.admit(&healthy).await;
        Ok(())
    }

    pub(super) fn lease_name(&self) -> String {
        match self.spec.config.driver {
            DriverKind::Supervised => format!("rollout:{}:{}", self.host, self.service()),
            DriverKind::Exec => format!("rollout:{}", self.service()),
        }
    }

    /// The revision `target` names, recorded in the store.
    pub async fn resolve(&self, target: &Target) -> Result<Revision, RolloutError> {
        let service = self.service().to_string();
        let revision = match target {
            Target::Current => Revision::current(&self.spec)?,
            Target::Named(wanted) => {
                let known = self
                    .store
                    .read(async |tx| tx.revisions(&service).await)
                    .await?;
                let current = Revision::current(&self.spec)?;
                if &current.label == wanted || current.id.starts_with(wanted.as_str()) {
                    current
                } else {
                    let found = known
                        .iter()
                        .rev()
                        .find(|r| &r.label == wanted || r.id.starts_with(wanted.as_str()))
                        .ok_or_else(|| RolloutError::UnknownRevision {
                            service: service.clone(),
                            wanted: wanted.clone(),
                            known: known
                                .iter()
                                .map(|r| format!("{} ({})", r.label, &r.id[..7]))
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?;
                    Revision::from_record(found)?
                }
            }
            Target::Undo => {
                let rollouts = self
                    .store
                    .read(async |tx| tx.rollouts(Some(&service)).await)
                    .await?;
                let from = rollouts
                    .iter()
                    .rev()
                    .filter(|r| r.host == self.host || self.spec.config.driver == DriverKind::Exec)
                    .find(|r| r.state == RolloutState::Succeeded)
                    .and_then(|r| r.from_revision.clone())
                    .ok_or_else(|| RolloutError::NothingToUndo {
                        service: service.clone(),
                    })?;
                let known = self
                    .store
                    .read(async |tx| tx.revisions(&service).await)
                    .await?;
                let record =
                    known
                        .iter()
                        .find(|r| r.id == from)
                        .ok_or_else(|| RolloutError::Corrupt {
                            what: format!("rollout history of {service}"),
                            detail: format!("revision {from} is not recorded"),
                        })?;
                Revision::from_record(record)?
            }
        };
        let record = revision.record(&service, now_ms());
        self.store
            .write(async |tx| tx.save_revision(&record).await)
            .await?;
        Ok(revision)
    }

    pub(super) async fn label_of(&self, revision_id: &str) -> String {
        let service = self.service().to_string();
        self.store
            .read(async |tx| tx.revisions(&service).await)
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|r| r.id == revision_id))
            .map(|r| r.label)
            .unwrap_or_else(|| {
                if revision_id.is_empty() {
                    "unknown".into()
                } else {
                    revision_id.chars().take(7).collect()
                }
            })
    }

    async fn revision_by_id(&self, id: &str) -> Result<Option<Revision>, RolloutError> {
        let service = self.service().to_string();
        let known = self
            .store
            .read(async |tx| tx.revisions(&service).await)
            .await?;
        known
            .iter()
            .find(|r| r.id == id)
            .map(Revision::from_record)
            .transpose()
    }

    /// Waits while another live process runs a rollout of the service
    /// (a supervisor replacing a dead instance, say), for at most the
    /// progress deadline; then the caller's own rollout takes the lease.
    pub async fn wait_idle(&self) -> Result<(), RolloutError> {
        let deadline = Instant::now() + self.rules.progress_deadline;
        loop {
            match self.store.lease_holder(&self.lease_name()).await? {
                Some(holder) if holder.alive && Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The revision most live instances run (its id), if any run.
    pub async fn current_revision(&self) -> Result<Option<String>, RolloutError> {
        Ok(most_common(&self.driver.live().await?))
    }

    /// Stops every instance (SIGTERM, then SIGKILL after the grace period)
    /// under the service's rollout lease: what undoing a first deployment
    /// means. The number stopped.
    pub async fn stop_all(&self) -> Result<usize, RolloutError> {
        let lease = self
            .store
            .try_lease(&self.lease_name(), "stop", self.lease_ttl)
            .await
            .map_err(|e| match e {
                LeaseError::Held { holder, .. } => RolloutError::Failed {
                    service: self.service().to_string(),
                    to: "nothing".into(),
                    reason: format!("a rollout of it is running: {holder}"),
                    outcome: "nothing was changed".into(),
                },
                other => other.into(),
            })?;
        let result = async {
            self.settle_interrupted(&lease).await?;
            self.reap().await?;
            let live = self.driver.live().await?;
            for instance in &live {
                lease.ensure_held().await?;
                // The driver says `stopping` (once) as it retires it.
                self.driver.retire(instance, None).await?;
            }
            self.driver.settle().await;
            // Nothing left to serve: the front door lets go of the address.
            self.driver.stop_front_door().await?;
            Ok(live.len())
        }
        .await;
        lease.release().await;
        result
    }

    /// Rolls the service to `target`.
    pub async fn run(&self, target: &Target, dry_run: bool) -> Result<RolloutReport, RolloutError> {
        let started = Instant::now();
        let to = self.resolve(target).await?;
        let lease = if dry_run {
            None
        } else {
            let lease = self
                .store
                .try_lease(&self.lease_name(), "rollout", self.lease_ttl)
                .await
                .map_err(|e| match e {
                    LeaseError::Held { holder, .. } => RolloutError::Failed {
                        service: self.service().to_string(),
                        to: to.label.clone(),
                        reason: format!("another rollout of it is running: {holder}"),
                        outcome: "nothing was changed".into(),
                    },
                    other => other.into(),
                })?;
            Some(lease)
        };
        let result = self.run_held(&to, lease.as_ref(), dry_run, started).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    }

    async fn run_held(
        &self,
        to: &Revision,
        lease: Option<&Lease>,
        dry_run: bool,
        started: Instant,
    ) -> Result<RolloutReport, RolloutError> {
        let service = self.service().to_string();
        if let Some(lease) = lease {
            self.settle_interrupted(lease).await?;
        }
        if !dry_run {
            self.reap().await?;
            self.driver.check_addresses().await?;
            // The service's address is the front door's: it runs before
            // anything else happens (a killed one is back now).
            self.driver.ensure_front_door().await?;
        }
        // A killed rollout to this revision that was splitting traffic is
        // resumed at its step; weights another rollout left are undone.
        let last = if dry_run {
            None
        } else {
            let (service, host) = (service.clone(), self.host.clone());
            self.store
                .read(async |tx| tx.last_rollout(&service, Some(&host)).await)
                .await?
        };
        let resume = self.resumable(to, last.as_ref());
        // Going back to the revision a cut-short canary step favoured (an
        // abort or undo after a kill) is a recovery: no steps of its own.
        let (recovering, stale) = if !dry_run && resume.is_none() {
            self.stale_weights(to, last.as_ref()).await?
        } else {
            (false, false)
        };
        let live = self.driver.live().await?;
        let desired = self.driver.desired();
        // Only an instance at the target that passed its gate is kept; one
        // a killed rollout left in its gate is replaced like an old one.
        let (mut keep, mut old): (Vec<_>, Vec<_>) = live
            .into_iter()
            .partition(|i| i.revision == to.id && i.state == InstanceState::Healthy);
        // More at the target than wanted (a killed rollout): the extras go.
        while keep.len() > desired {
            old.push(keep.pop().expect("non-empty"));
        }
        let need = desired - keep.len();
        let before: Vec<InstanceRecord> = old
            .iter()
            .filter(|i| i.revision != to.id)
            .cloned()
            .collect();
        let from_id = most_common(&before)
            .or_else(|| keep.first().map(|i| i.revision.clone()))
            .or_else(|| most_common(&old));
        let from = match &from_id {
            Some(id) if id != &to.id => Some(self.label_of(id).await),
            _ => None,
        };
        self.emit(Event::Planned {
            service: service.clone(),
            from: from.clone(),
            to: to.label.clone(),
            replace: need,
            keep: keep.len(),
            max_parallel: self.rules.max_parallel as u32,
        });
        let mut report = RolloutReport {
            service: service.clone(),
            rollout_id: None,
            dry_run,
            from: from.clone(),
            to: to.label.clone(),
            state: if dry_run {
                RolloutOutcome::Planned
            } else {
                RolloutOutcome::Unchanged
            },
            replaced: 0,
            kept: keep.len(),
            duration_ms: 0,
            instances: Vec::new(),
        };
        if dry_run || (need == 0 && old.is_empty()) {
            // Retirements a killed rollout left (reaped above) end first.
            self.driver.settle().await;
            if stale {
                self.set_weights(&[]).await?;
            }
            report.instances = keep;
            report.duration_ms = started.elapsed().as_millis() as u64;
            if !dry_run {
                self.emit(Event::Finished {
                    service,
                    state: RolloutOutcome::Unchanged,
                    revision: to.label.clone(),
                    duration_ms: report.duration_ms,
                });
            }
            return Ok(report);
        }
        let lease = lease.expect("not a dry run");
        let record = RolloutRecord {
            id: 0,
            service: service.clone(),
            host: self.host.clone(),
            from_revision: from_id.clone().filter(|id| id != &to.id),
            to_revision: to.id.clone(),
            state: RolloutState::Running,
            reason: None,
            actor: self.actor.clone(),
            owner: Some(lease.token().to_string()),
            started_ms: now_ms(),
            finished_ms: None,
            progress: None,
            control: None,
        };
        let mut progress = match (&resume, &from_id) {
            (Some(progress), _) => Some(progress.clone()),
            (None, Some(from))
                if self.canary_steps() && !recovering && from != &to.id && !old.is_empty() =>
            {
                Some(Progress::new(from, &to.id, &self.spec.config.rollout.steps))
            }
            _ => None,
        };
        // Weights a killed rollout left go before a rollout without steps
        // starts anything (one with steps sets its own at once).
        if stale && progress.is_none() && !recovering {
            self.set_weights(&[]).await?;
        }
        let mut record = record;
        record.progress = progress.as_ref().map(Progress::to_json);
        let rollout_id = self
            .store
            .write(async |tx| tx.start_rollout(&record).await)
            .await?;
        report.rollout_id = Some(rollout_id);

        // Canary steps first: the new revision takes its share, judged.
        let (keep, old, need) = match progress.as_mut() {
            Some(progress) if progress.under_way() => {
                let mut canaries = std::mem::take(&mut keep);
                let stepped = self
                    .run_steps(
                        to,
                        &mut canaries,
                        rollout_id,
                        lease,
                        progress,
                        resume.is_some(),
                    )
                    .await;
                if let Err(mut abort) = stepped {
                    // A lease merely lost (no one else took it) still
                    // takes the canary out.
                    abort.lease_lost = abort.lease_lost && self.taken_over(lease.token()).await;
                    return self
                        .aborted(canaries, rollout_id, progress, abort, to, started)
                        .await;
                }
                // The last step: every instance at the target, in turn.
                self.set_weights(&[]).await?;
                progress.outcome = Some("promoted".into());
                self.save_progress(rollout_id, progress).await?;
                let need = desired.saturating_sub(canaries.len());
                // Surplus canaries (a resumed rollout's) are not expected;
                // the baseline's instances are what is replaced.
                (canaries, old, need)
            }
            _ => (keep, old, need),
        };
        report.kept = keep.len();

        // Each of `need` replacements retires one old instance (while there
        // are old ones); old instances left over are retired at the end.
        let units: Vec<Unit> = (0..need)
            .map(|i| Unit {
                old: old.get(i).cloned(),
            })
            .collect();
        let leftover: Vec<InstanceRecord> = old.iter().skip(need).cloned().collect();
        let mut done: Vec<InstanceRecord> = Vec::new();
        let outcome = self
            .replace_all(units, to, rollout_id, lease, started, &mut done)
            .await;
        let outcome = match outcome {
            Ok(()) => {
                let mut retired = Ok(());
                for extra in &leftover {
                    if let Err(e) = lease.ensure_held().await {
                        retired = Err(Failure::Failed {
                            reason: e.to_string(),
                        });
                        break;
                    }
                    if let Err(e) = self.driver.retire(extra, None).await {
                        retired = Err(Failure::Failed {
                            reason: e.to_string(),
                        });
                        break;
                    }
                }
                retired
            }
            Err(failure) => Err(failure),
        };
        // Retired instances finish draining (or are killed) before the end.
        self.driver.settle().await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(()) => {
                self.store
                    .write(async |tx| {
                        tx.finish_rollout(rollout_id, RolloutState::Succeeded, None, now_ms())
                            .await
                    })
                    .await?;
                // A recovery's {baseline: 100} goes; every other split
                // was cleared before the instances were replaced.
                if recovering {
                    self.set_weights(&[]).await?;
                }
                if progress.is_some() {
                    self.resolve_aborted().await;
                }
                self.emit(Event::Finished {
                    service: service.clone(),
                    state: RolloutOutcome::Succeeded,
                    revision: to.label.clone(),
                    duration_ms,
                });
                report.state = RolloutOutcome::Succeeded;
                report.replaced = done.len();
                report.duration_ms = duration_ms;
                report.instances = self.driver.live().await?;
                Ok(report)
            }
            Err(Failure::Failed { reason }) => {
                let outcome = self
                    .roll_back(&done, from_id.as_deref(), to, &reason, rollout_id, lease)
                    .await;
                self.driver.settle().await;
                let (state, outcome_text) = match &outcome {
                    Ok(Some(label)) => (
                        RolloutOutcome::RolledBack,
                        format!("rolled back to {label}"),
                    ),
                    Ok(None) => (
                        RolloutOutcome::Failed,
                        "the old instances were left as they were (nothing to roll back to)"
                            .to_string(),
                    ),
                    Err(e) => (
                        RolloutOutcome::Failed,
                        format!("rolling back failed too: {e}"),
                    ),
                };
                self.ended_badly(rollout_id, state, reason, outcome_text, to, started)
                    .await
            }
        }
    }

    /// Replaces every unit, `max_parallel` at a time; a failed unit is
    /// tried again until `rollback_threshold_failures` failures. `done`
    /// collects what stands at the target (healthy replacements, and failed
    /// ones that stay where they are), for a rollback.
    async fn replace_all(
        &self,
        units: Vec<Unit>,
        to: &Revision,
        rollout_id: i64,
        lease: &Lease,
        started: Instant,
        done: &mut Vec<InstanceRecord>,
    ) -> Result<(), Failure> {
        let total = units.len();
        let mut queue: std::collections::VecDeque<Unit> = units.into();
        let mut failures = 0u32;
        let mut healthy = 0usize;
        let mut last_progress = Instant::now();
        while !queue.is_empty() {
            if started.elapsed() >= self.rules.max_update {
                return Err(Failure::Failed {
                    reason: format!(
                        "the update took longer than max_update_time ({:?})",
                        self.rules.max_update
                    ),
                });
            }
            if last_progress.elapsed() >= self.rules.progress_deadline {
                return Err(Failure::Failed {
                    reason: format!(
                        "no instance became healthy within progress_deadline ({:?})",
                        self.rules.progress_deadline
                    ),
                });
            }
            lease.ensure_held().await.map_err(|e| Failure::Failed {
                reason: e.to_string(),
            })?;
            let take = self.rules.max_parallel.min(queue.len());
            let batch: Vec<Unit> = queue.drain(..take).collect();
            let remaining = self.rules.max_update.saturating_sub(started.elapsed());
            let results = futures_util::future::join_all(
                batch
                    .iter()
                    .map(|unit| self.replace_one(unit.old.as_ref(), to, rollout_id, remaining)),
            )
            .await;
            let mut failed = None;
            for (unit, result) in batch.into_iter().zip(results) {
                match result {
                    Ok(new) => {
                        done.retain(|d| !(d.name == new.name && d.host == new.host));
                        done.push(new);
                        healthy += 1;
                        last_progress = Instant::now();
                        if healthy == 1 {
                            crate::test_points::point("rollout:replaced-one");
                        }
                    }
                    Err((reason, still_there)) => {
                        failures += 1;
                        if let Some(instance) = still_there {
                            done.retain(|d| !(d.name == instance.name && d.host == instance.host));
                            done.push(instance);
                        }
                        queue.push_back(unit);
                        failed = Some(reason);
                    }
                }
            }
            self.emit(Event::Progress {
                service: self.service().to_string(),
                done: healthy,
                total,
            });
            if let Some(reason) = failed {
                if failures >= self.rules.rollback_threshold_failures {
                    return Err(Failure::Failed { reason });
                }
                tracing::warn!(
                    service = self.service(),
                    "{}; trying again ({failures} of {} failures allowed)",
                    crate::escape::one_line(&reason),
                    self.rules.rollback_threshold_failures
                );
            }
        }
        Ok(())
    }

    /// Brings up one replacement and gates it; on success retires `old`.
    /// On failure: the reason, and the replacement if it is still there.
    pub(super) async fn replace_one(
        &self,
        old: Option<&InstanceRecord>,
        to: &Revision,
        rollout_id: i64,
        remaining: Duration,
    ) -> Result<InstanceRecord, (String, Option<InstanceRecord>)> {
        let new = self
            .driver
            .bring_up(old, to, rollout_id)
            .await
            .map_err(|e| (e.to_string(), None))?;
        let view = self.driver.view(&new, &to.label);
        let gate = Gate {
            checks: self.gate.checks.clone(),
            min_healthy: self.gate.min_healthy,
            deadline: self.gate.deadline.min(remaining),
            interval: self.gate.interval,
        };
        let clamped = gate.deadline < self.gate.deadline;
        let waited = Instant::now();
        let driver = Arc::clone(&self.driver);
        let probe = new.clone();
        match gate.wait(&view, &move || driver.is_alive(&probe)).await {
            GateOutcome::Healthy { after } => {
                self.emit(Event::Healthy {
                    service: self.service().to_string(),
                    instance: new.name.clone(),
                    after_ms: after.as_millis() as u64,
                });
                let _ = self.mark_healthy(&new).await;
                if let Some(old) = old
                    && let Err(e) = self.driver.retire(old, Some(&new)).await
                {
                    return Err((e.to_string(), None));
                }
                Ok(new)
            }
            GateOutcome::Failed { reason } => {
                let reason = if clamped && waited.elapsed() >= gate.deadline {
                    format!(
                        "the update took longer than max_update_time ({:?}) while {} was starting",
                        self.rules.max_update, new.name
                    )
                } else {
                    format!("{}: {reason}", new.name)
                };
                self.emit(Event::Unhealthy {
                    service: self.service().to_string(),
                    instance: new.name.clone(),
                    reason: reason.clone(),
                });
                let still_there = match self.driver.discard(&new).await {
                    Ok(true) => {
                        let mut failed = new.clone();
                        failed.state = InstanceState::Failed;
                        Some(failed)
                    }
                    _ => None,
                };
                Err((reason, still_there))
            }
        }
    }

    /// Refuses when a public address of the service is taken by something
    /// that is not its own front door or instances (exit 2).
    pub async fn check_addresses(&self) -> Result<(), RolloutError> {
        self.driver.check_addresses().await
    }

    /// Starts the service's front door when it has one and it is not
    /// running (`gantry up` checks this on every tick); true when started.
    pub async fn ensure_front_door(&self) -> Result<bool, RolloutError> {
        self.driver.ensure_front_door().await
    }

    /// Stops processes of the service no record knows, saying so.
    async fn reap(&self) -> Result<(), RolloutError> {
        let stopped = self.driver.reap_orphans().await?;
        if !stopped.is_empty() {
            self.emit(Event::Reaped {
                service: self.service().to_string(),
                processes: stopped,
            });
        }
        Ok(())
    }

    /// Moves every instance not at `from` back to it: what this rollout
    /// replaced, and whatever else stands elsewhere (an instance a killed
    /// rollout left behind), whoever started it.
    async fn roll_back(
        &self,
        at_target: &[InstanceRecord],
        from: Option<&str>,
        to: &Revision,
        reason: &str,
        rollout_id: i64,
        lease: &Lease,
    ) -> Result<Option<String>, RolloutError> {
        let mut at_target = at_target.to_vec();
        if let Some(from) = from {
            for other in self.driver.live().await? {
                let known = at_target
                    .iter()
                    .any(|d| d.name == other.name && d.host == other.host);
                if other.revision != from && !known {
                    at_target.push(other);
                }
            }
        }
        let at_target = at_target.as_slice();
        let Some(from) = from.filter(|f| *f != to.id && !f.is_empty()) else {
            // Nothing ran before: stop what this rollout started.
            for instance in at_target {
                if instance.state != InstanceState::Failed {
                    self.driver.discard(instance).await?;
                }
            }
            return Ok(None);
        };
        if !self.rules.auto_revert {
            return Ok(None);
        }
        let Some(revision) = self.revision_by_id(from).await? else {
            return Ok(None);
        };
        self.emit(Event::RollingBack {
            service: self.service().to_string(),
            to: revision.label.clone(),
            reason: reason.to_string(),
        });
        for instance in at_target {
            lease.ensure_held().await?;
            let old = (self.spec.config.driver == DriverKind::Exec).then_some(instance);
            let replacement = self.driver.bring_up(old, &revision, rollout_id).await?;
            let view = self.driver.view(&replacement, &revision.label);
            let driver = Arc::clone(&self.driver);
            let probe = replacement.clone();
            match self
                .gate
                .wait(&view, &move || driver.is_alive(&probe))
                .await
            {
                GateOutcome::Healthy { .. } => {
                    let _ = self.mark_healthy(&replacement).await;
                    self.driver.retire(instance, Some(&replacement)).await?;
                }
                GateOutcome::Failed { reason } => {
                    return Err(RolloutError::Spawn {
                        service: self.service().to_string(),
                        detail: format!(
                            "{} at {} did not become healthy either: {reason}",
                            replacement.name, revision.label
                        ),
                    });
                }
            }
        }
        Ok(Some(revision.label))
    }

    /// Whether this service rolls in canary steps.
    fn canary_steps(&self) -> bool {
        self.spec
            .config
            .rollout
            .steps
            .first()
            .is_some_and(|s| s.weight < 100)
    }

    /// The progress of `last` (this host's newest rollout of the service),
    /// when it went to `to` and was cut short (interrupted) while splitting
    /// traffic.
    fn resumable(&self, to: &Revision, last: Option<&RolloutRecord>) -> Option<Progress> {
        if !self.canary_steps() {
            return None;
        }
        last.filter(|r| r.to_revision == to.id && r.state == RolloutState::Interrupted)
            .and_then(|r| r.progress.as_deref().and_then(Progress::parse))
            .filter(|p| p.canary == to.id && p.under_way())
    }

    /// Weights a killed rollout left: (whether this rollout goes back to
    /// the baseline of the canary that set them — an abort or undo after a
    /// kill, whose weights become the baseline's 100 % and every other
    /// revision's 0 at once; whether any weights were left at all). Others
    /// stay until the plan knows whether this rollout sets its own.
    async fn stale_weights(
        &self,
        to: &Revision,
        last: Option<&RolloutRecord>,
    ) -> Result<(bool, bool), RolloutError> {
        if self.spec.config.driver != DriverKind::Supervised {
            return Ok((false, false));
        }
        let (service, host) = (self.service().to_string(), self.host.clone());
        let weights = self
            .store
            .read(async |tx| tx.traffic_weights(&service, &host).await)
            .await?;
        if weights.is_empty() {
            return Ok((false, false));
        }
        let baseline = last
            .and_then(|r| r.progress.as_deref())
            .and_then(Progress::parse)
            .map(|p| p.baseline);
        if baseline.as_deref() == Some(to.id.as_str()) {
            let others: Vec<(&str, u32)> = weights
                .keys()
                .filter(|r| **r != to.id)
                .map(|r| (r.as_str(), 0))
                .chain([(to.id.as_str(), 100)])
                .collect();
            self.set_weights(&others).await?;
            return Ok((true, true));
        }
        Ok((false, true))
    }

    /// Whether another live gantry holds the service's lease now.
    async fn taken_over(&self, ours: &str) -> bool {
        self.store
            .lease_holder(&self.lease_name())
            .await
            .ok()
            .flatten()
            .is_some_and(|h| h.alive && h.token != ours)
    }

    /// Ends a rollout whose canary step failed: the canary out, recorded
    /// as rolled back with the verdict, the error returned.
    async fn aborted(
        &self,
        canaries: Vec<InstanceRecord>,
        rollout_id: i64,
        progress: &mut Progress,
        abort: Abort,
        to: &Revision,
        started: Instant,
    ) -> Result<RolloutReport, RolloutError> {
        let service = self.service().to_string();
        if abort.lease_lost {
            // Another gantry holds the service now: nothing here is ours.
            return Err(RolloutError::Failed {
                service,
                to: to.label.clone(),
                reason: abort.reason,
                outcome: "left to the gantry that holds the service now".into(),
            });
        }
        let baseline = self.label_of(&progress.baseline).await;
        let undone = self
            .abort_canary(&canaries, rollout_id, progress, &abort)
            .await;
        let outcome = match &undone {
            Ok(()) => format!("the canary was stopped; {baseline} serves every request"),
            Err(e) => format!("stopping the canary failed: {e}"),
        };
        let state = if undone.is_ok() {
            RolloutOutcome::RolledBack
        } else {
            RolloutOutcome::Failed
        };
        self.ended_badly(rollout_id, state, abort.reason, outcome, to, started)
            .await
    }

    /// Records a rollout that did not reach its target (why, and what
    /// became of it), says so, and returns the error.
    async fn ended_badly(
        &self,
        rollout_id: i64,
        state: RolloutOutcome,
        reason: String,
        outcome: String,
        to: &Revision,
        started: Instant,
    ) -> Result<RolloutReport, RolloutError> {
        let full = format!("{reason}; {outcome}");
        self.store
            .write(async |tx| {
                tx.finish_rollout(rollout_id, state.record(), Some(&full), now_ms())
                    .await
            })
            .await?;
        self.emit(Event::Finished {
            service: self.service().to_string(),
            state,
            revision: to.label.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        Err(RolloutError::Failed {
            service: self.service().to_string(),
            to: to.label.clone(),
            reason,
            outcome,
        })
    }

    /// A `running` rollout of this service whose owner's lease is gone was
    /// interrupted; we hold the lease now, so it is ours to settle.
    async fn settle_interrupted(&self, lease: &Lease) -> Result<(), RolloutError> {
        let service = self.service().to_string();
        let rollouts = self
            .store
            .read(async |tx| tx.rollouts(Some(&service)).await)
            .await?;
        for r in rollouts
            .iter()
            .filter(|r| {
                r.state == RolloutState::Running && r.owner.as_deref() != Some(lease.token())
            })
            .filter(|r| r.host == self.host || self.spec.config.driver == DriverKind::Exec)
        {
            let note =
                "interrupted: its gantry stopped before it finished; superseded by a later rollout";
            self.store
                .write(async |tx| {
                    tx.finish_rollout(r.id, RolloutState::Interrupted, Some(note), now_ms())
                        .await
                })
                .await?;
        }
        Ok(())
    }
}

/// The revision most of `instances` run.
fn most_common(instances: &[InstanceRecord]) -> Option<String> {
    let mut counts = std::collections::BTreeMap::new();
    for i in instances.iter().filter(|i| !i.revision.is_empty()) {
        *counts.entry(i.revision.clone()).or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(r, _)| r)
}
