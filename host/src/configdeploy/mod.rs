//! The config deployer: `gantry config deploy | validate | list-backups |
//! rollback | history`. See ARCHITECTURE.md, "Config deployment".

mod backup;
mod deployer;
mod diff;
mod error;
mod events;
mod guard;
mod history;
pub mod overlay;
pub mod paths;
pub mod render;
mod rollback;
pub mod sops;
mod validate;
mod write;
mod yaml;

pub use deployer::{ConfigDeployer, DeployReport, DeployerSettings};
pub use diff::{FileChange, FileDiff};
pub use error::{ConfigError, Finding, Severity};
pub use events::Event;
pub use guard::lease_name;
pub use history::{BackupInfo, ChangeInfo, FileNow, changes};
pub use rollback::RollbackReport;
pub use validate::{PluginValidators, Validators, builtin_schema};
