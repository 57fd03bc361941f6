//! Zero-downtime rollouts: supervised instances with socket handoff, an
//! exec driver for everything else, health gates from plugins, automatic
//! rollback. See ARCHITECTURE.md, "Rollouts".

pub mod analysis;
pub mod build;
mod driver;
mod engine;
mod error;
mod events;
mod exec;
pub mod front;
mod health;
pub mod sockets;
mod spec;
mod status;
pub mod steps;
mod supervised;
mod updater;

pub use driver::Driver;
pub use engine::{Rollout, RolloutReport, Rules, Target};
pub use error::RolloutError;
pub use events::Event;
pub use exec::Exec;
pub use health::{CheckFn, Gate, GateOutcome, HealthCheck, InstanceView, Probe};
pub use spec::{Revision, RevisionSpec, ServiceSpec, short_id};
pub use status::{InstanceStatus, ServiceStatus};
pub use supervised::Supervised;
pub use updater::{UpdateContext, UpdateError, ZeroDowntimeUpdater};
