//! gantry's own state: config backups and changes, leases (and, as gantry
//! grows, deployments, alerts and the outbox), in SQLite
//! (`.gantry/state.db` by default) or PostgreSQL when `state.url` says so.
//!
//! One `Store` (a pool) is shared by every engine in a process. Every
//! change is committed before the side effect it records counts as done.
//! Secrets never reach this store: it holds names, checksums and sizes,
//! not contents.

mod alerts;
mod canary;
mod config;
mod deployments;
mod error;
mod installation_key;
mod keys;
mod lease;
mod pool;
pub use gantry_runtime::private;
mod records;
pub mod schema;
mod services;
mod states;

pub use alerts::{AlertRecord, OutboxRecord, SilenceRecord};
pub use deployments::{DeploymentRecord, StepRecord};
pub use error::{StoreError, query_failed};
pub use installation_key::InstallationKey;
pub use keys::RotationRecord;
pub use lease::{Holder, Lease, LeaseError, LeaseWatch};
pub use pool::{Store, Tx};
pub use records::{BackupFile, BackupRecord, ChangeFile, ChangeKind, ChangeRecord};
pub use services::{FrontDoorRecord, InstanceRecord, RevisionRecord, RolloutRecord};
pub use states::{
    AlertState, ChangeState, DeployOutcome, DeploymentState, InstanceState, NoticeState,
    RolloutOutcome, RolloutState, RotationState, StepState, UnknownState,
};
