//! Canary steps (`services.NAME.rollout.steps`): the new revision takes a
//! share of requests through the front door (its weight), holds it for
//! the step's pause while its analysis compares what its users get with
//! what the baseline's get, and goes on to the next step — or is aborted:
//! its weight set to 0 at once, its instances stopped, the verdict and the
//! figures that decided it recorded, and `RolloutAborted` raised through
//! the receivers.
//!
//! Where a rollout stands (the step, when it started, each look's table)
//! is the rollout record's `progress`, and the weights are the store's, so
//! a gantry killed mid-step leaves the front door splitting as it was; the
//! next `gantry rollout` to the same revision resumes the step at its
//! weight with its analysis window, never jumping ahead. An operator's
//! `promote`, `abort`, `pause`, `resume` is left in the record's `control`
//! and taken at the next look.

use super::analysis::{Figures, MetricRow, Verdict, judge, summary};
use super::engine::Rollout;
use super::events::Event;
use super::spec::Revision;
use crate::clock::now_ms;
use crate::config::StepConfig;
use crate::config::analysis::{AUTH_DEFAULT, AnalysisConfig, Inconclusive, auth_default};
use crate::store::{InstanceRecord, Lease, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a rollout with steps stands (the rollout record's `progress`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The revision serving the rest (its id).
    pub baseline: String,
    /// The revision being tried (its id).
    pub canary: String,
    /// The step under way (an index into `steps`).
    pub step: usize,
    #[serde(default)]
    pub paused: bool,
    pub steps: Vec<StepState>,
    /// How it ended: `promoted`, or why it was aborted.
    #[serde(default)]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub weight: u32,
    pub pause_seconds: f64,
    pub analysis: Option<String>,
    #[serde(default)]
    pub started_ms: Option<i64>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// The last look's table.
    #[serde(default)]
    pub table: Vec<MetricRow>,
    /// Looks taken (past the planned number, a held step tests at a
    /// falling level: `divisor`).
    #[serde(default)]
    pub looks: u64,
    #[serde(default)]
    pub note: Option<String>,
}

impl Progress {
    pub fn new(baseline: &str, canary: &str, steps: &[StepConfig]) -> Progress {
        Progress {
            baseline: baseline.to_string(),
            canary: canary.to_string(),
            step: 0,
            paused: false,
            steps: steps
                .iter()
                .map(|s| StepState {
                    weight: s.weight,
                    pause_seconds: s.pause_seconds,
                    analysis: s.analysis.clone(),
                    started_ms: None,
                    finished_ms: None,
                    verdict: None,
                    table: Vec::new(),
                    looks: 0,
                    note: None,
                })
                .collect(),
            outcome: None,
        }
    }

    /// Step `i`'s state for a table: done, under way, stopped (cut short
    /// before it finished), waiting.
    pub fn step_state(&self, i: usize) -> &'static str {
        let step = &self.steps[i];
        match (step.started_ms, step.finished_ms) {
            (_, Some(_)) => "done",
            (Some(_), None) if i == self.step && self.outcome.is_none() => "under way",
            (Some(_), None) => "stopped",
            _ => "waiting",
        }
    }

    pub fn parse(text: &str) -> Option<Progress> {
        serde_json::from_str(text).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("json")
    }

    /// Still splitting traffic: a step below 100 % under way.
    pub fn under_way(&self) -> bool {
        self.outcome.is_none() && self.steps.get(self.step).is_some_and(|s| s.weight < 100)
    }
}

/// The analysis `name` names: one under `analyses`, or the built-in.
pub fn template(analyses: &BTreeMap<String, AnalysisConfig>, name: &str) -> Option<AnalysisConfig> {
    analyses
        .get(name)
        .cloned()
        .or_else(|| (name == AUTH_DEFAULT).then(auth_default))
}

/// Why a step ended the rollout.
pub(super) struct Abort {
    pub step: usize,
    pub reason: String,
    /// The lease was lost (then: taken over by another live gantry, which
    /// owns the service now; touch nothing).
    pub lease_lost: bool,
}

/// An operator's request, left in the rollout record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Promote,
    Abort,
    Pause,
    Resume,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Promote => "promote",
            Control::Abort => "abort",
            Control::Pause => "pause",
            Control::Resume => "resume",
        }
    }

    pub fn parse(text: &str) -> Option<Control> {
        [
            Control::Promote,
            Control::Abort,
            Control::Pause,
            Control::Resume,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// What a look divides the level by: the planned looks (Bonferroni over
/// them), then — a held step looking on — `taken² / planned`, whose levels
/// add up to at most the level again however long it is held.
pub fn divisor(planned: u64, taken: u64) -> u64 {
    let planned = planned.max(1);
    if taken <= planned {
        planned
    } else {
        taken.saturating_mul(taken) / planned
    }
}

fn secs(s: f64) -> Duration {
    crate::clock::seconds(s)
}

impl Rollout {
    /// The split of requests between revisions; empty: by instance count.
    pub(super) async fn set_weights(&self, weights: &[(&str, u32)]) -> Result<(), StoreError> {
        let map: BTreeMap<String, u32> = weights.iter().map(|(r, w)| (r.to_string(), *w)).collect();
        let (service, host) = (self.spec.name.clone(), self.host.clone());
        self.store
            .write(async |tx| tx.set_traffic_weights(&service, &host, &map).await)
            .await?;
        self.driver.sync_traffic().await;
        Ok(())
    }

    pub(super) async fn save_progress(
        &self,
        rollout_id: i64,
        progress: &Progress,
    ) -> Result<(), StoreError> {
        let json = progress.to_json();
        self.store
            .write(async |tx| tx.save_rollout_progress(rollout_id, &json).await)
            .await
    }

    /// Runs the steps below 100 % from `progress.step` on; `canaries` are
    /// the new revision's gated instances (a resumed rollout's, or none).
    pub(super) async fn run_steps(
        &self,
        to: &Revision,
        canaries: &mut Vec<InstanceRecord>,
        rollout_id: i64,
        lease: &Lease,
        progress: &mut Progress,
        resumed: bool,
    ) -> Result<(), Abort> {
        let rules = &self.spec.config.rollout;
        let interval = secs(rules.analysis_interval_seconds);
        let desired = self.driver.desired() as u64;
        let total = progress.steps.len();
        let mut resumed = resumed;
        while progress.step < total && progress.steps[progress.step].weight < 100 {
            let i = progress.step;
            let abort = |reason: String| Abort {
                step: i,
                reason,
                lease_lost: false,
            };
            let lost = |e: crate::store::LeaseError| Abort {
                step: i,
                reason: e.to_string(),
                lease_lost: true,
            };
            let store_failed = |e: StoreError| Abort {
                step: i,
                reason: format!("the state store failed: {e}"),
                lease_lost: false,
            };
            let weight = progress.steps[i].weight;
            // The weights first: a canary admitted below takes only its share.
            self.set_weights(&[(&progress.baseline, 100 - weight), (&to.id, weight)])
                .await
                .map_err(store_failed)?;
            let started_ms = *progress.steps[i].started_ms.get_or_insert_with(now_ms);
            self.save_progress(rollout_id, progress)
                .await
                .map_err(store_failed)?;
            self.emit(Event::Step {
                service: self.spec.name.clone(),
                step: i,
                of: total,
                weight,
                resumed,
            });
            resumed = false;
            // Capacity for its share: at least one instance.
            let want = (desired * u64::from(weight))
                .div_ceil(100)
                .clamp(1, desired) as usize;
            while canaries.len() < want {
                lease.ensure_held().await.map_err(lost)?;
                match self
                    .replace_one(None, to, rollout_id, self.rules.max_update)
                    .await
                {
                    Ok(new) => canaries.push(new),
                    Err((reason, _)) => return Err(abort(reason)),
                }
            }
            let step = rules.steps.get(i);
            let analysis = match progress.steps[i].analysis.as_deref() {
                None => None,
                Some(name) => match template(&self.analyses, name) {
                    Some(found) => Some(found),
                    // A resumed step whose analysis left the config.
                    None => {
                        return Err(abort(format!(
                            "step {}'s analysis {name:?} is no longer configured",
                            i + 1
                        )));
                    }
                },
            };
            let pause = secs(progress.steps[i].pause_seconds);
            let deadline = step
                .and_then(|s| s.deadline_seconds)
                .map(secs)
                .unwrap_or_else(|| (pause * 2).max(pause + Duration::from_secs(60)));
            let inconclusive = step
                .and_then(|s| s.inconclusive)
                .or(analysis.as_ref().map(|a| a.inconclusive))
                .unwrap_or_default();
            let looks = (deadline.as_secs_f64() / interval.as_secs_f64())
                .ceil()
                .max(1.0) as u64;
            let mut last_verdict = None;
            loop {
                lease.ensure_held().await.map_err(lost)?;
                let request = self
                    .store
                    .write(async |tx| tx.take_rollout_control(rollout_id).await)
                    .await
                    .map_err(store_failed)?;
                let mut promoted = false;
                match request.as_deref().and_then(Control::parse) {
                    Some(Control::Abort) => {
                        return Err(abort(
                            "aborted by an operator (gantry rollout abort)".into(),
                        ));
                    }
                    Some(Control::Promote) => promoted = true,
                    Some(Control::Pause) => progress.paused = true,
                    Some(Control::Resume) => progress.paused = false,
                    None => {}
                }
                if let Some(dead) = canaries.iter().find(|c| !self.driver.is_alive(c)) {
                    return Err(abort(format!("{} exited", dead.name)));
                }
                let elapsed = Duration::from_millis((now_ms() - started_ms).max(0) as u64);
                let verdict = match &analysis {
                    None => Verdict::Pass,
                    Some(config) => {
                        progress.steps[i].looks += 1;
                        let taken = progress.steps[i].looks;
                        let (from, upto) = (started_ms / 1000, now_ms() / 1000 - 1);
                        let baseline = Figures::read(&self.store, &progress.baseline, from, upto)
                            .await
                            .map_err(store_failed)?;
                        let canary = Figures::read(&self.store, &to.id, from, upto)
                            .await
                            .map_err(store_failed)?;
                        let (verdict, table) =
                            judge(config, &baseline, &canary, divisor(looks, taken));
                        if last_verdict != Some(verdict) {
                            self.emit(Event::Analysis {
                                service: self.spec.name.clone(),
                                step: i,
                                verdict: verdict.as_str().into(),
                                summary: summary(&table),
                            });
                            last_verdict = Some(verdict);
                        }
                        progress.steps[i].verdict = Some(verdict);
                        progress.steps[i].table = table;
                        verdict
                    }
                };
                self.save_progress(rollout_id, progress)
                    .await
                    .map_err(store_failed)?;
                if verdict == Verdict::Fail {
                    let name = progress.steps[i].analysis.clone().unwrap_or_default();
                    return Err(abort(format!(
                        "analysis {name} failed at step {} ({weight}%): {}",
                        i + 1,
                        summary(&progress.steps[i].table)
                    )));
                }
                if promoted {
                    progress.steps[i].note = Some("promoted by an operator".into());
                    break;
                }
                if !progress.paused && elapsed >= pause {
                    if verdict == Verdict::Pass {
                        break;
                    }
                    if elapsed >= deadline {
                        if inconclusive == Inconclusive::Pass {
                            progress.steps[i].note =
                                Some("inconclusive at its deadline; passed as configured".into());
                            break;
                        }
                        return Err(abort(format!(
                            "analysis inconclusive at step {}'s deadline ({:?}): {}",
                            i + 1,
                            deadline,
                            summary(&progress.steps[i].table)
                        )));
                    }
                }
                tokio::time::sleep(interval).await;
            }
            progress.steps[i].finished_ms = Some(now_ms());
            progress.step += 1;
            self.save_progress(rollout_id, progress)
                .await
                .map_err(store_failed)?;
        }
        Ok(())
    }

    /// Takes the canary out: its weight to 0 at once, the alert raised,
    /// its instances drained and stopped, the weights cleared; the outcome
    /// recorded. Each part is tried whatever the one before did (a store
    /// that failed once may answer the next write); the first error is
    /// returned. Killed anywhere in here, `gantry rollout abort` (or any
    /// rollout back to the baseline) finishes it: the canary's instances
    /// are still recorded at their revision.
    pub(super) async fn abort_canary(
        &self,
        canaries: &[InstanceRecord],
        rollout_id: i64,
        progress: &mut Progress,
        abort: &Abort,
    ) -> Result<(), super::error::RolloutError> {
        let mut first: Result<(), super::error::RolloutError> = Ok(());
        let mut keep = |result: Result<(), super::error::RolloutError>| {
            if first.is_ok() {
                first = result;
            }
        };
        keep(
            self.set_weights(&[(&progress.baseline, 100), (&progress.canary, 0)])
                .await
                .map_err(Into::into),
        );
        progress.outcome = Some(format!("aborted: {}", abort.reason));
        if let Some(step) = progress.steps.get_mut(abort.step) {
            step.finished_ms = Some(now_ms());
            step.verdict.get_or_insert(Verdict::Fail);
        }
        keep(
            self.save_progress(rollout_id, progress)
                .await
                .map_err(Into::into),
        );
        self.emit(Event::Aborted {
            service: self.spec.name.clone(),
            step: abort.step,
            reason: abort.reason.clone(),
        });
        self.raise_aborted(progress, abort).await;
        let mut retired = true;
        for canary in canaries {
            let result = self.driver.retire(canary, None).await;
            retired &= result.is_ok();
            keep(result);
        }
        self.driver.settle().await;
        // A canary that could not be retired still serves: its 0 stays
        // until `rollout abort` finishes the job.
        if retired {
            keep(self.set_weights(&[]).await.map_err(Into::into));
        }
        first
    }

    /// `RolloutAborted`, through the monitor's receivers (queued in the
    /// outbox; whichever monitor runs delivers it).
    async fn raise_aborted(&self, progress: &Progress, abort: &Abort) {
        let Some(lifecycle) = &self.alerts else {
            return;
        };
        let labels = aborted_labels(&self.spec.name);
        let step = progress.steps.get(abort.step);
        let annotations = BTreeMap::from([
            (
                "summary".to_string(),
                format!(
                    "the rollout of {} was aborted at step {} ({}%)",
                    self.spec.name,
                    abort.step + 1,
                    step.map(|s| s.weight).unwrap_or(0)
                ),
            ),
            ("description".to_string(), abort.reason.clone()),
            ("baseline".to_string(), progress.baseline.clone()),
            ("canary".to_string(), progress.canary.clone()),
        ]);
        if let Err(e) = lifecycle.raise(&labels, &annotations, now_ms()).await {
            tracing::warn!(service = %self.spec.name, "cannot raise RolloutAborted: {e}");
        }
    }

    /// A rollout that succeeded ends the service's `RolloutAborted`.
    pub(super) async fn resolve_aborted(&self) {
        if let Some(lifecycle) = &self.alerts
            && let Err(e) = lifecycle
                .resolve_event(&aborted_labels(&self.spec.name), now_ms())
                .await
        {
            tracing::warn!(service = %self.spec.name, "cannot resolve RolloutAborted: {e}");
        }
    }
}

/// What `gantry rollout promote|abort|pause|resume` did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Controlled {
    /// Left for the running rollout, which acts at its next look.
    Requested { rollout_id: i64, op: String },
    /// No gantry runs the rollout: the abort was carried out here.
    Aborted {
        report: super::engine::RolloutReport,
    },
}

impl Rollout {
    /// Leaves `op` for the service's running rollout with steps; an abort
    /// of one whose gantry is gone is carried out here (back to the
    /// baseline, the canary stopped).
    pub async fn control(&self, op: Control) -> Result<Controlled, super::error::RolloutError> {
        let service = self.spec.name.clone();
        let host = self.host.clone();
        let last = self
            .store
            .read(async |tx| tx.last_rollout(&service, Some(&host)).await)
            .await?;
        let progress = last
            .as_ref()
            .and_then(|r| r.progress.as_deref())
            .and_then(Progress::parse)
            .filter(Progress::under_way);
        let Some(last) = last else {
            return Err(super::error::RolloutError::NotStepping { service });
        };
        // An abort also finishes one a killed gantry left half-done: the
        // split cleared or not, canary instances still running.
        let progress = match (progress, op) {
            (Some(p), _) => p,
            (None, Control::Abort) => {
                // Not one that was promoted and succeeded: its canary is
                // the service now.
                let left = last
                    .progress
                    .as_deref()
                    .and_then(Progress::parse)
                    .filter(|p| p.canary != p.baseline)
                    .filter(|_| last.state != crate::store::RolloutState::Succeeded);
                let live = self.driver.live().await?;
                match left {
                    Some(p) if live.iter().any(|i| i.revision == p.canary) => p,
                    _ => return Err(super::error::RolloutError::NotStepping { service }),
                }
            }
            (None, _) => return Err(super::error::RolloutError::NotStepping { service }),
        };
        let holder = self.store.lease_holder(&self.lease_name()).await?;
        let running = last.state == crate::store::RolloutState::Running
            && holder.is_some_and(|h| h.alive && last.owner.as_deref() == Some(h.token.as_str()));
        if running && !progress.under_way() {
            // Promoted, replacing the rest: nothing listens for requests.
            return Err(super::error::RolloutError::NotStepping { service });
        }
        if running {
            let left = self
                .store
                .write(async |tx| tx.request_rollout_control(last.id, op.as_str()).await)
                .await?;
            if !left {
                return Err(super::error::RolloutError::NotStepping { service });
            }
            return Ok(Controlled::Requested {
                rollout_id: last.id,
                op: op.as_str().into(),
            });
        }
        if op != Control::Abort {
            return Err(super::error::RolloutError::NotStepping { service });
        }
        let report = self
            .run(&super::engine::Target::Named(progress.baseline), false)
            .await?;
        Ok(Controlled::Aborted { report })
    }
}

fn aborted_labels(service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("alertname".to_string(), "RolloutAborted".to_string()),
        ("severity".to_string(), "critical".to_string()),
        ("service".to_string(), service.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_knows_when_it_splits_traffic() {
        let steps: Vec<StepConfig> = serde_json::from_value(serde_json::json!([
            {"weight": 5, "pause_seconds": 60, "analysis": "auth-default"},
            {"weight": 100}
        ]))
        .unwrap();
        let mut p = Progress::new("old", "new", &steps);
        assert!(p.under_way());
        assert_eq!(Progress::parse(&p.to_json()), Some(p.clone()));
        p.step = 1;
        assert!(!p.under_way());
        assert!(template(&BTreeMap::new(), "auth-default").is_some());
        assert!(template(&BTreeMap::new(), "nope").is_none());
    }

    #[test]
    fn a_held_step_tests_at_a_falling_level_that_sums_to_at_most_the_level_again() {
        assert_eq!(divisor(60, 1), 60);
        assert_eq!(divisor(60, 60), 60);
        assert_eq!(divisor(60, 120), 240);
        assert_eq!(divisor(0, 1), 1);
        // The levels of an endless hold past the plan add to ≤ 1 × alpha.
        let beyond: f64 = (61..1_000_000u64)
            .map(|k| 1.0 / divisor(60, k) as f64)
            .sum();
        assert!(beyond <= 1.0, "{beyond}");
    }
}
