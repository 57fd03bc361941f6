//! What the rollout engine reports while it works.

use crate::store::RolloutOutcome;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Processes of the service that no record knew were stopped.
    Reaped {
        service: String,
        processes: Vec<String>,
    },
    /// What will happen: `replace` instances move from → to.
    Planned {
        service: String,
        from: Option<String>,
        to: String,
        replace: usize,
        keep: usize,
        max_parallel: u32,
    },
    /// An instance is being started (supervised) or restarted (exec).
    Starting {
        service: String,
        instance: String,
        revision: String,
    },
    Started {
        service: String,
        instance: String,
        pid: Option<i64>,
        health_address: String,
    },
    /// Its checks passed for the whole `min_healthy_time`.
    Healthy {
        service: String,
        instance: String,
        after_ms: u64,
    },
    Unhealthy {
        service: String,
        instance: String,
        reason: String,
    },
    Stopping {
        service: String,
        instance: String,
        revision: String,
    },
    Stopped {
        service: String,
        instance: String,
        forced: bool,
        /// From SIGTERM to its exit: how long it drained.
        after_ms: u64,
    },
    /// `done` of `total` instances replaced.
    Progress {
        service: String,
        done: usize,
        total: usize,
    },
    RollingBack {
        service: String,
        to: String,
        reason: String,
    },
    /// A canary step began: the new revision takes `weight` % of requests.
    Step {
        service: String,
        step: usize,
        of: usize,
        weight: u32,
        resumed: bool,
    },
    /// A look at a step's analysis whose verdict changed.
    Analysis {
        service: String,
        step: usize,
        verdict: String,
        summary: String,
    },
    /// The canary was taken out of traffic and its instances stopped.
    Aborted {
        service: String,
        step: usize,
        reason: String,
    },
    Finished {
        service: String,
        state: RolloutOutcome,
        revision: String,
        duration_ms: u64,
    },
}
