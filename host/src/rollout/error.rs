//! Why a rollout stopped.

use crate::config::ConfigError as ConfigFileError;
use crate::runtime::registry::RegistryError;
use crate::secrets::SecretError;
use crate::store::{LeaseError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The configuration is wrong; nothing was touched.
    #[error("{key}: {message}")]
    Config { key: String, message: String },

    #[error("no service `{name}` in the deployment config (services: {known})")]
    UnknownService { name: String, known: String },

    #[error("no revision `{wanted}` of {service} (known: {known})")]
    UnknownRevision {
        service: String,
        wanted: String,
        known: String,
    },

    #[error("{service}: nothing to undo: no earlier stable revision is recorded")]
    NothingToUndo { service: String },

    #[error(
        "{service}: no rollout of it is splitting traffic in steps now (`gantry rollout status {service}`)"
    )]
    NotStepping { service: String },

    #[error("health check `{check}` of {service}: {source}")]
    Check {
        service: String,
        check: String,
        #[source]
        source: RegistryError,
    },

    #[error("{key}: {source}")]
    Secret {
        key: String,
        #[source]
        source: SecretError,
    },

    /// The rollout failed and was rolled back (or stopped) as the reason says.
    #[error("rollout of {service} to {to} failed: {reason}; {outcome}")]
    Failed {
        service: String,
        to: String,
        reason: String,
        outcome: String,
    },

    #[error("{service}: cannot start an instance: {detail}")]
    Spawn { service: String, detail: String },

    #[error("{service}: the front door: {detail}")]
    FrontDoor { service: String, detail: String },

    #[error(
        "{service}: {address} is taken by something that is not its front door or one of its instances ({detail}); nothing was changed"
    )]
    AddressTaken {
        service: String,
        address: String,
        detail: String,
    },

    #[error("{service}: cannot take the listening socket {address}: {detail}")]
    Socket {
        service: String,
        address: String,
        detail: String,
    },

    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the state store holds a corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },

    #[error(transparent)]
    Lease(#[from] LeaseError),

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
}
