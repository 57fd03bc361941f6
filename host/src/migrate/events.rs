//! What the runner reports while it works; reporters decide how to show it.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub version: i64,
    pub id: String,
    pub kind: &'static str,
    pub no_transaction: bool,
    /// Where a down step's script comes from (`file …` or `recorded at apply time`).
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Another runner holds the migration lock.
    LockWaiting {
        holder_pid: Option<i32>,
        waited_ms: u64,
    },
    LockAcquired {
        waited_ms: u64,
    },
    Planned {
        direction: Direction,
        steps: Vec<PlannedStep>,
    },
    Started {
        version: i64,
        id: String,
        direction: Direction,
    },
    /// A statement of a no-transaction migration finished.
    Statement {
        version: i64,
        index: usize,
        total: usize,
    },
    Finished {
        version: i64,
        id: String,
        direction: Direction,
        duration_ms: f64,
    },
    /// Another runner applied it first (SQLite, no global lock).
    Skipped {
        version: i64,
        id: String,
    },
    Warning {
        message: String,
    },
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Receives events; `Migrator::with_sink` installs one.
pub type Sink = crate::events::Sink<Event>;
