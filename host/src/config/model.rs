//! The shape of the deployment config. Every table denies unknown keys,
//! so a misspelt key is an error naming its path, never silently ignored.
//!
//! Spec keys (`database`, `config_dir`, `monitoring`, `environments`) keep
//! the original tools' names and meaning; gantry's own live beside them.

use super::monitoring::MonitoringConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// The auth database that `gantry migrate` migrates.
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    /// Where rendered config files are deployed.
    #[serde(default = "default_config_dir")]
    pub config_dir: PathBuf,
    #[serde(default)]
    pub deployment: DeploymentSettings,
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Per-environment values merged over the base config files: written
    /// here, or the path of an overlay file holding them.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// gantry's own state store.
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub migrations: MigrationsConfig,
    /// How config files are validated and deployed.
    #[serde(default)]
    pub config_deploy: ConfigDeployConfig,
    /// The services gantry runs or restarts, their checks and rollouts.
    #[serde(default)]
    pub services: BTreeMap<String, super::services::ServiceConfig>,
    /// How gantry opens encrypted configuration.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Canary analyses rollout steps run, by name (`auth-default` is
    /// built in).
    #[serde(default)]
    pub analyses: BTreeMap<String, super::analysis::AnalysisConfig>,
}

/// `environments.<ENV>`: an object of values, or the path (relative to
/// the deployment config) of an overlay file holding them — JSON, TOML,
/// YAML or dotenv, SOPS-encrypted or not.
#[derive(Debug, Clone, PartialEq)]
pub enum Environment {
    Values(serde_json::Map<String, serde_json::Value>),
    File(PathBuf),
}

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(values) => Ok(Environment::Values(values)),
            serde_json::Value::String(path) if !path.trim().is_empty() => {
                Ok(Environment::File(PathBuf::from(path)))
            }
            _ => Err(serde::de::Error::custom(
                "expected an object of values or the path of an overlay file",
            )),
        }
    }
}

impl Environment {
    /// The values written in the deployment config; none for a file.
    pub fn values(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        match self {
            Environment::Values(values) => Some(values),
            Environment::File(_) => None,
        }
    }
}

/// `secrets`: what opens SOPS-encrypted config files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// An age identity (`AGE-SECRET-KEY-…` lines) as a reference:
    /// `${file:…}` or `${env:…}`; beside `SOPS_AGE_KEY_FILE` and
    /// `SOPS_AGE_KEY`.
    pub age_identity: Option<String>,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        DeploymentConfig {
            database: None,
            config_dir: default_config_dir(),
            deployment: DeploymentSettings::default(),
            monitoring: MonitoringConfig::default(),
            environments: BTreeMap::new(),
            state: StateConfig::default(),
            plugins: PluginsConfig::default(),
            migrations: MigrationsConfig::default(),
            config_deploy: ConfigDeployConfig::default(),
            services: BTreeMap::new(),
            secrets: SecretsConfig::default(),
            analyses: BTreeMap::new(),
        }
    }
}

fn default_config_dir() -> PathBuf {
    PathBuf::from("config")
}

/// The spec's `database` section (PostgreSQL), or a `url`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    /// `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub sslmode: Option<String>,
    /// A CA certificate file (PEM) to trust for this server, beside the
    /// platform's trust store.
    pub sslrootcert: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSettings {
    /// Where deployment logs are written (the spec's `deployment_logs/`).
    #[serde(default = "default_log_dir")]
    pub log_dir: PathBuf,
    /// Where config backups are kept.
    #[serde(default = "default_backup_dir")]
    pub backup_dir: PathBuf,
    /// Backups kept per config directory (the last good one always is).
    #[serde(default = "default_max_backups")]
    pub max_backups: u32,
    /// Overall time limit of a deployment, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The base config files `gantry deploy` renders for the environment
    /// and deploys to `config_dir` (relative to the deployment config).
    #[serde(default)]
    pub config_files: Vec<PathBuf>,
    /// The services `gantry deploy` rolls, in order [default: every one].
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Revert the deployment's migrations when it is rolled back. Off by
    /// default: a down migration can destroy data.
    #[serde(default)]
    pub rollback_migrations: bool,
    /// Health verification after the rollouts: every instance's checks
    /// are run for this long…
    #[serde(default = "default_verify_seconds")]
    pub verify_seconds: f64,
    /// …every this often…
    #[serde(default = "default_verify_interval")]
    pub verify_interval_seconds: f64,
    /// …and this many failed rounds in a row for one instance roll the
    /// deployment back.
    #[serde(default = "default_verify_failures")]
    pub verify_failures: u32,
    /// A check run once against each service's public address after the
    /// rollouts: the canary login that proves authentication works.
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
    /// Send a test notice (marked as a test) to every alert receiver.
    #[serde(default = "yes")]
    pub test_alerts: bool,
}

/// `deployment.canary`: a health-check plugin run against a service's
/// public address (`{address}` in its settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The service it checks [default: the first one rolled].
    #[serde(default)]
    pub service: Option<String>,
    pub plugin: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default = "default_canary_timeout")]
    pub timeout_seconds: f64,
    /// Tries before the canary counts as failed (1 s apart).
    #[serde(default = "default_canary_attempts")]
    pub attempts: u32,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_canary_timeout() -> f64 {
    10.0
}
fn default_canary_attempts() -> u32 {
    3
}

impl CanaryConfig {
    /// As a health check of the service.
    pub fn as_check(&self) -> super::services::HealthCheckConfig {
        serde_json::from_value(serde_json::json!({
            "name": "canary",
            "plugin": self.plugin,
            "settings": self.settings,
            "timeout_seconds": self.timeout_seconds,
            "ca_file": self.ca_file,
        }))
        .expect("a health check config")
    }
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

fn yes() -> bool {
    true
}
fn default_verify_seconds() -> f64 {
    5.0
}
fn default_verify_interval() -> f64 {
    1.0
}
fn default_verify_failures() -> u32 {
    3
}
fn default_log_dir() -> PathBuf {
    PathBuf::from("deployment_logs")
}
fn default_backup_dir() -> PathBuf {
    PathBuf::from(".gantry/backups")
}
fn default_max_backups() -> u32 {
    20
}
fn default_timeout_seconds() -> u64 {
    1800
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://…` (default `.gantry/state.db`) or `postgres://…`.
    pub url: Option<String>,
    /// Seconds a lease lives between heartbeats: how long a silent host's
    /// work stays "running" before it counts as interrupted.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            lease_seconds: default_lease_seconds(),
        }
    }
}

fn default_lease_seconds() -> u64 {
    15
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory of user plugins (`NAME.wasm` + `NAME.toml`).
    pub dir: Option<PathBuf>,
    /// Compile cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Compile cache bound, in MiB.
    pub cache_max_mib: Option<u64>,
    /// sha256 a plugin must have to load, by plugin name.
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    /// The operator's narrower grants and limits, by plugin name.
    #[serde(default)]
    pub grants: BTreeMap<String, crate::runtime::narrow::OperatorGrant>,
    /// The most memory any plugin may ask for, in MiB.
    pub max_memory_mib: Option<u64>,
    /// Operator limits per capability (`http`, `log`, …), checked when the
    /// plugin runtime is built.
    pub capabilities: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsConfig {
    /// Directory of migrations (dialect folders, or the files themselves).
    pub dir: Option<PathBuf>,
    /// Keep sqlx's `_sqlx_migrations` in step: true, false, or (absent)
    /// when the folder is in sqlx's form or the database has the table.
    #[serde(default)]
    pub sqlx_history: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDeployConfig {
    /// Config-validator plugins run on every rendered file.
    #[serde(default = "default_validators")]
    pub validators: Vec<String>,
    /// Operator JSON Schemas: `<stem>.schema.json` validates `<stem>.json`.
    pub schemas_dir: Option<PathBuf>,
    /// Seconds to wait for another deployment's lock.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_seconds: u64,
}

impl Default for ConfigDeployConfig {
    fn default() -> Self {
        ConfigDeployConfig {
            validators: default_validators(),
            schemas_dir: None,
            lock_timeout_seconds: default_lock_timeout(),
        }
    }
}

fn default_validators() -> Vec<String> {
    vec!["auth-config-validator".to_string()]
}

fn default_lock_timeout() -> u64 {
    30
}
