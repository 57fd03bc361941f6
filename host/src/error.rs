//! The one user-facing error — a message chain and the exit code it earns —
//! and the one table that maps every module's error type to an exit code.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed (rolled back where that applies); unreachable services; a plugin that trapped, timed out or ran out of memory |
//! | 2 | bad usage or bad input; nothing changed |
//! | 3 | inconclusive (a check answered unknown; migrations pending) |
//!
//! Every `From<…> for Failure` lives here, so the table can be read whole.

use crate::config::ConfigError as ConfigFileError;
use crate::configdeploy::ConfigError;
use crate::db::DbError;
use crate::deploy::DeployError;
use crate::migrate::MigrateError;
use crate::monitor::MonitorError;
use crate::rollout::RolloutError;
use crate::runtime::registry::RegistryError;
use crate::runtime::{LoadError, ManifestError, PluginError};
use crate::settings::SettingsError;
use crate::store::{LeaseError, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    Usage = 2,
    Inconclusive = 3,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad usage or input: exit 2.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    /// The operation failed: exit 1.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit: Exit::Failed,
            error: error.into(),
        }
    }

    fn with(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit,
            error: error.into(),
        }
    }

    /// True when the cause is a closed stdout (e.g. `gantry … | head`).
    pub fn is_broken_pipe(&self) -> bool {
        self.error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        })
    }
}

pub type CliResult<T = Exit> = Result<T, Failure>;

// ---- the table -------------------------------------------------------

/// Reaching a database: a refusal of what the operator gave is bad input;
/// a database that cannot be reached is a failed operation.
pub fn db_exit(err: &DbError) -> Exit {
    match err {
        DbError::Auth { .. } | DbError::NoSuchDatabase { .. } | DbError::BadUrl { .. } => {
            Exit::Usage
        }
        DbError::Unreachable { .. } | DbError::Other { .. } => Exit::Failed,
    }
}

pub fn store_exit(err: &StoreError) -> Exit {
    match err {
        StoreError::Connect(db) => db_exit(db),
        StoreError::TooNew { .. } => Exit::Usage,
        StoreError::Sql { .. } | StoreError::Query { .. } | StoreError::Schema { .. } => {
            Exit::Failed
        }
    }
}

pub fn plugin_exit(err: &PluginError) -> Exit {
    match err {
        PluginError::WrongKind { .. }
        | PluginError::UnknownSetting { .. }
        | PluginError::MissingSetting { .. } => Exit::Usage,
        PluginError::Timeout { .. }
        | PluginError::OutOfMemory { .. }
        | PluginError::Trap { .. }
        | PluginError::Busy(_)
        | PluginError::Host { .. }
        | PluginError::Confinement { .. } => Exit::Failed,
    }
}

pub fn config_exit(err: &ConfigError) -> Exit {
    match err {
        ConfigError::Store(e) => store_exit(e),
        ConfigError::Overlay { source, .. } => config_exit(source),
        ConfigError::Validator { failed: true, .. }
        | ConfigError::Locked { .. }
        | ConfigError::LeaseLost(_)
        | ConfigError::Write { .. }
        | ConfigError::Io { .. } => Exit::Failed,
        ConfigError::Validator { failed: false, .. }
        | ConfigError::Syntax { .. }
        | ConfigError::Read { .. }
        | ConfigError::UnknownEnvironment { .. }
        | ConfigError::Secret { .. }
        | ConfigError::UnsafePath { .. }
        | ConfigError::Sops { .. }
        | ConfigError::BadBackupId(_)
        | ConfigError::UnknownBackup { .. }
        | ConfigError::DuplicateName { .. }
        | ConfigError::Invalid(_)
        | ConfigError::Tampered { .. } => Exit::Usage,
    }
}

pub fn migrate_exit(err: &MigrateError) -> Exit {
    match err {
        MigrateError::Db(db) => db_exit(db),
        MigrateError::Source(_)
        | MigrateError::Drift(_)
        | MigrateError::OutOfOrder { .. }
        | MigrateError::UnknownTarget(_)
        | MigrateError::TargetNotApplied(_)
        | MigrateError::Irreversible(_)
        | MigrateError::Repair { .. }
        | MigrateError::Adopt(_)
        | MigrateError::Pin { .. }
        | MigrateError::NothingToAdopt(_) => Exit::Usage,
        MigrateError::Sql { .. }
        | MigrateError::Blocked(_)
        | MigrateError::Failed { .. }
        | MigrateError::Plugin { .. }
        | MigrateError::Key(_)
        | MigrateError::Unverified(_)
        | MigrateError::LockTimeout { .. } => Exit::Failed,
    }
}

pub fn lease_exit(err: &LeaseError) -> Exit {
    match err {
        LeaseError::Store(e) => store_exit(e),
        LeaseError::Held { .. } | LeaseError::Lost { .. } => Exit::Failed,
    }
}

pub fn rollout_exit(err: &RolloutError) -> Exit {
    match err {
        RolloutError::Config { .. }
        | RolloutError::UnknownService { .. }
        | RolloutError::UnknownRevision { .. }
        | RolloutError::NothingToUndo { .. }
        | RolloutError::NotStepping { .. }
        | RolloutError::Check { .. }
        | RolloutError::Secret { .. }
        | RolloutError::AddressTaken { .. }
        | RolloutError::ConfigFile(_) => Exit::Usage,
        RolloutError::Store(e) => store_exit(e),
        RolloutError::Lease(e) => lease_exit(e),
        RolloutError::Failed { .. }
        | RolloutError::Spawn { .. }
        | RolloutError::Socket { .. }
        | RolloutError::FrontDoor { .. }
        | RolloutError::Io { .. }
        | RolloutError::Corrupt { .. } => Exit::Failed,
    }
}

pub fn monitor_exit(err: &MonitorError) -> Exit {
    match err {
        MonitorError::Store(e) => store_exit(e),
        MonitorError::Rule(_)
        | MonitorError::Receiver(_)
        | MonitorError::Config { .. }
        | MonitorError::UnknownAlert(_) => Exit::Usage,
    }
}

/// A deployment: refused before anything changed is bad input (exit 2);
/// what fails while it runs is a failed operation.
pub fn deploy_exit(err: &DeployError) -> Exit {
    match err {
        DeployError::Refused { .. }
        | DeployError::Busy { .. }
        | DeployError::Config { .. }
        | DeployError::Unknown(_)
        | DeployError::NotResumable { .. }
        | DeployError::UnknownBackup(_) => Exit::Usage,
        DeployError::Phase { source, .. } => deploy_exit(source),
        DeployError::Store(e) => store_exit(e),
        DeployError::Lease(e) => lease_exit(e),
        DeployError::Migrate(e) => migrate_exit(e),
        DeployError::ConfigDeploy(e) => config_exit(e),
        DeployError::Rollout(e) => rollout_exit(e),
        DeployError::Monitor(e) => monitor_exit(e),
    }
}

macro_rules! exit_table {
    ($($ty:ty => $exit:expr;)*) => {$(
        impl From<$ty> for Failure {
            fn from(err: $ty) -> Self {
                let exit: fn(&$ty) -> Exit = $exit;
                Failure::with(exit(&err), err)
            }
        }
    )*};
}

exit_table! {
    ConfigFileError => |_| Exit::Usage;
    SettingsError => |_| Exit::Usage;
    ManifestError => |_| Exit::Usage;
    LoadError => |_| Exit::Usage;
    RegistryError => |_| Exit::Usage;
    PluginError => plugin_exit;
    ConfigError => config_exit;
    MigrateError => migrate_exit;
    StoreError => store_exit;
    LeaseError => lease_exit;
    DbError => db_exit;
    RolloutError => rollout_exit;
    MonitorError => monitor_exit;
    DeployError => deploy_exit;
    std::io::Error => |_| Exit::Failed;
}
