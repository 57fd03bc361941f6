//! What a service looks like now: its instances (alive, at which
//! revision, healthy by one run of each check), its last rollout, and —
//! when a rollout's owner died mid-way — what is half-done and which
//! command finishes or undoes it.

use super::engine::Rollout;
use super::error::RolloutError;
use super::health::InstanceView;
use crate::nagios;
use crate::store::RolloutState;
use crate::store::{Holder, InstanceRecord, RolloutRecord};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub record: InstanceRecord,
    pub version: String,
    pub alive: bool,
    /// Each check's one run: `OK: …`.
    pub health: Vec<String>,
    pub healthy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub driver: crate::config::DriverKind,
    pub desired: usize,
    pub instances: Vec<InstanceStatus>,
    pub last_rollout: Option<RolloutRecord>,
    /// The last rollout's revisions, by label.
    pub last_from: Option<String>,
    pub last_to: Option<String>,
    /// The owner of a rollout that is running now.
    pub running: Option<Holder>,
    /// A rollout whose owner died before it finished.
    pub interrupted: bool,
    /// What to run next, when something is half-done.
    pub advice: Option<String>,
    /// The last rollout's canary steps, when it had them.
    pub steps: Option<super::steps::Progress>,
    /// How requests are split between revisions now (empty: by count).
    pub weights: std::collections::BTreeMap<String, u32>,
}

impl Rollout {
    /// The service as it is; `check` runs each health check once per instance.
    pub async fn status(&self, check: bool) -> Result<ServiceStatus, RolloutError> {
        let service = self.spec.name.clone();
        let host = (self.spec.config.driver != crate::config::DriverKind::Exec)
            .then_some(self.host.as_str());
        let last = self
            .store
            .read(async |tx| tx.last_rollout(&service, host).await)
            .await?;
        let holder = self.store.lease_holder(&self.lease_name()).await?;
        let running = holder.filter(|h| {
            h.alive && last.as_ref().and_then(|l| l.owner.as_deref()) == Some(h.token.as_str())
        });
        let interrupted = last
            .as_ref()
            .is_some_and(|l| l.state == RolloutState::Running)
            && running.is_none();
        let live = self.driver.live().await?;
        let mut instances = Vec::new();
        for record in live {
            let version = self.label_of(&record.revision).await;
            let alive = self.driver.is_alive(&record);
            let view: InstanceView = self.driver.view(&record, &version);
            let mut health = Vec::new();
            if check && alive {
                for c in self.gate.checks.iter() {
                    let (status, message) = c.run(&view).await;
                    health.push(format!(
                        "{}: {}: {message}",
                        c.name,
                        nagios::status_name(status).to_uppercase()
                    ));
                }
            }
            let healthy = alive
                && health
                    .iter()
                    .all(|h| h.contains(": OK:") || h.contains(": WARNING:"));
            instances.push(InstanceStatus {
                record,
                version,
                alive,
                health,
                healthy,
            });
        }
        let (last_from, last_to) = match &last {
            Some(l) => (
                match &l.from_revision {
                    Some(f) => Some(self.label_of(f).await),
                    None => None,
                },
                Some(self.label_of(&l.to_revision).await),
            ),
            None => (None, None),
        };
        let steps = last
            .as_ref()
            .and_then(|l| l.progress.as_deref())
            .and_then(super::steps::Progress::parse);
        let weights = {
            let host = self.host.clone();
            let service = service.clone();
            self.store
                .read(async |tx| tx.traffic_weights(&service, &host).await)
                .await?
        };
        let stepping = steps.as_ref().filter(|p| interrupted && p.under_way());
        let advice = interrupted.then(|| {
            if let Some(p) = stepping {
                let step = p.step + 1;
                let weight = p.steps.get(p.step).map(|s| s.weight).unwrap_or(0);
                return format!(
                    "rollout #{} to {} was interrupted at canary step {step} ({weight}% of requests, \
                     still split so): `gantry rollout {service} --to {}` resumes the step, \
                     `gantry rollout abort {service}` takes the canary out",
                    last.as_ref().map(|l| l.id).unwrap_or_default(),
                    last_to.as_deref().unwrap_or("?"),
                    last_to.as_deref().unwrap_or("?"),
                );
            }
            let at_to = instances
                .iter()
                .filter(|i| Some(&i.record.revision) == last.as_ref().map(|l| &l.to_revision))
                .count();
            format!(
                "rollout #{} to {} was interrupted with {at_to} of {} instances at {}: \
                 `gantry rollout {service} --to {}` finishes it, `gantry rollout {service} --to {}` undoes it",
                last.as_ref().map(|l| l.id).unwrap_or_default(),
                last_to.as_deref().unwrap_or("?"),
                self.driver.desired(),
                last_to.as_deref().unwrap_or("?"),
                last_to.as_deref().unwrap_or("?"),
                last_from.as_deref().unwrap_or("the previous revision"),
            )
        });
        Ok(ServiceStatus {
            service,
            driver: self.spec.config.driver,
            desired: self.driver.desired(),
            instances,
            last_rollout: last,
            last_from,
            last_to,
            running,
            interrupted,
            advice,
            steps,
            weights,
        })
    }
}
