use crate::configdeploy::ConfigError;
use crate::migrate::MigrateError;
use crate::monitor::MonitorError;
use crate::rollout::RolloutError;
use crate::store::{DeploymentState, Holder, LeaseError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A pre-deployment check failed: nothing was changed.
    #[error("deployment refused: {check}: {reason}; nothing was changed")]
    Refused { check: String, reason: String },
    #[error(
        "another deployment of `{environment}` is running: {holder}; nothing was changed (wait for it, or check `gantry status`)"
    )]
    Busy {
        environment: String,
        holder: Box<Holder>,
    },
    #[error("`deployment.{key}`: {message}")]
    Config { key: String, message: String },
    #[error("no deployment `{0}` (see `gantry status`)")]
    Unknown(String),
    #[error("deployment {id} is {state}: {what}")]
    NotResumable {
        id: String,
        state: DeploymentState,
        what: String,
    },
    #[error("no deployment made backup `{0}`, and it is not a config backup gantry knows")]
    UnknownBackup(String),
    /// A key rotation's phase did not run: what stopped it, and which.
    #[error("key rotation {rotation}, phase {phase}: {source}")]
    Phase {
        rotation: String,
        phase: i32,
        source: Box<DeployError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    ConfigDeploy(#[from] ConfigError),
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
}
