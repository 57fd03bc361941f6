//! The config deployer: `gantry config deploy | validate | list-backups |
//! rollback | history`. See ARCHITECTURE.md, "Config deployment".

mod backup;
mod deployer;
mod error;
mod lock;
pub mod paths;
pub mod render;
mod validate;
mod write;

pub use deployer::{
    BackupInfo, ChangeInfo, ConfigDeployer, DeployReport, DeployerSettings, FileChange, FileDiff,
    FileNow, RollbackReport, with_files_now,
};
pub use error::{ConfigError, Finding, Severity};
pub use validate::{PluginValidators, Validators, builtin_schema};
