//! What the deploy engine reports while it works. The engines it drives
//! (migrate, config, rollout, monitor) report through their own sinks.

use crate::store::{DeployOutcome, StepState};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One pre-deployment check and its outcome.
    Preflight {
        check: String,
        ok: bool,
        detail: String,
    },
    /// The deployment's steps, recorded in the journal.
    Planned {
        id: String,
        environment: String,
        steps: Vec<String>,
        /// Steps already done (a resumed deployment).
        done: usize,
    },
    StepStarted {
        id: String,
        step: String,
    },
    StepFinished {
        id: String,
        step: String,
        state: StepState,
        duration_ms: u64,
        summary: String,
    },
    RollingBack {
        id: String,
        reason: String,
    },
    /// A step's change was undone (or, for migrations, kept on purpose).
    Undone {
        id: String,
        step: String,
        summary: String,
    },
    Finished {
        id: String,
        state: DeployOutcome,
        reason: Option<String>,
        duration_ms: u64,
    },
}
