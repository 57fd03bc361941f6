//! The full deployment of an environment — preflight, migrations, config,
//! rolling service updates, health verification, a canary, monitoring —
//! journaled step by step in the state store, under one lease per
//! environment, with a time limit and automatic rollback. See
//! ARCHITECTURE.md, "Deployments".

mod engine;
mod error;
mod events;
mod generate;
mod keys;
mod logs;
mod plan;
mod preflight;
mod rotate;
mod status;
mod steps;

pub use engine::{DeployReport, new_id};
pub use error::DeployError;
pub use events::Event;
pub use keys::{Key, KeySet};
pub use plan::{Plan, Sinks, Step};
pub use preflight::Check;
pub use rotate::{KeyStatus, KeyView, RotateOptions, RotationReport, prepare, rotations};
pub use status::{DeploymentView, find, latest, made_backup};
