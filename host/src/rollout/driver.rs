//! What a rollout needs from whatever runs the instances: the live ones,
//! a replacement brought up at a revision, the old one retired once its
//! replacement is healthy, and a failed replacement discarded.
//!
//! `supervised`: a replacement is a new process beside the old one
//! (surge); retiring is SIGTERM, then SIGKILL after the grace period.
//! `exec`: a replacement is the same instance restarted in place by the
//! operator's command; retiring puts it back in its load balancer.

use super::error::RolloutError;
use super::health::InstanceView;
use super::spec::Revision;
use crate::store::InstanceRecord;

#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// The instances that run now (their processes checked where gantry
    /// can see them; dead ones forgotten).
    async fn live(&self) -> Result<Vec<InstanceRecord>, RolloutError>;

    /// How many instances the service should have.
    fn desired(&self) -> usize;

    /// Brings up `old`'s replacement (or a new instance) at `revision`.
    async fn bring_up(
        &self,
        old: Option<&InstanceRecord>,
        revision: &Revision,
        rollout_id: i64,
    ) -> Result<InstanceRecord, RolloutError>;

    /// Retires `old`, whose replacement `new` is healthy. It may finish in
    /// the background (an instance draining its connections); `settle`
    /// waits for every retirement to end.
    async fn retire(
        &self,
        old: &InstanceRecord,
        new: Option<&InstanceRecord>,
    ) -> Result<(), RolloutError>;

    /// Waits until every retirement started so far has ended.
    async fn settle(&self) {}

    /// A replacement that failed its gate. True when it is still there, at
    /// the failed revision, and must be rolled back in place (exec).
    async fn discard(&self, failed: &InstanceRecord) -> Result<bool, RolloutError>;

    /// `healthy` passed its gate and is recorded so: send it traffic (the
    /// supervised driver's front door); the exec driver's balancer is
    /// the operator's `undrain` command, run when the old one retires.
    async fn admit(&self, _healthy: &InstanceRecord) {}

    /// The split of requests between revisions changed in the store: make
    /// whatever routes requests follow it now.
    async fn sync_traffic(&self) {}

    fn is_alive(&self, instance: &InstanceRecord) -> bool;

    /// Finds processes of the service that no record owns and stops them
    /// (or adopts one recorded before its pid was); names what it stopped.
    async fn reap_orphans(&self) -> Result<Vec<String>, RolloutError> {
        Ok(Vec::new())
    }

    /// Refuses (naming the address) when a public address is taken by
    /// something that is not this service's front door or instances.
    async fn check_addresses(&self) -> Result<(), RolloutError> {
        Ok(())
    }

    /// Starts (or upgrades) the service's front door when it has one and it
    /// is not running on this binary; true when it started one.
    async fn ensure_front_door(&self) -> Result<bool, RolloutError> {
        Ok(false)
    }

    /// Stops the service's front door, if it has one (all its instances
    /// are gone).
    async fn stop_front_door(&self) -> Result<(), RolloutError> {
        Ok(())
    }

    fn view(&self, instance: &InstanceRecord, revision_label: &str) -> InstanceView;
}
