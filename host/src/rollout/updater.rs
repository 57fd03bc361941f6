//! `ZeroDowntimeUpdater`: the library face of rollouts, after the original
//! `zero_downtime_updater.py` — `add_health_check`, `rolling_restart`,
//! `update_configuration` (deploy config files through the config
//! deployer, then roll the services that read them) and `update_context`,
//! a scope that undoes everything done inside it (config restored from its
//! backup, services rolled back to what they ran) when its body fails,
//! panics or runs past its deadline.

use super::build;
use super::engine::{RolloutReport, Target};
use super::error::RolloutError;
use super::events::Event;
use super::health::HealthCheck;
use crate::configdeploy::{ConfigDeployer, ConfigError, DeployerSettings, Validators};
use crate::events::{Sink, discard};
use crate::runtime::Registry;
use crate::settings::Settings;
use crate::store::Store;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The body failed; what it did was undone (or the undo failed too).
    #[error("update `{name}` failed: {reason}; {undo}")]
    Failed {
        name: String,
        reason: String,
        undo: String,
    },
}

pub struct ZeroDowntimeUpdater {
    settings: Settings,
    store: Store,
    registry: Arc<Registry>,
    checks: Mutex<HashMap<String, Vec<Arc<HealthCheck>>>>,
    sink: Sink<Event>,
}

/// What one `update_context` did, to undo it.
enum Done {
    Config {
        backup_id: String,
    },
    Rolled {
        service: String,
        from: Option<String>,
    },
}

/// The scope `update_context` hands its body.
pub struct UpdateContext<'a> {
    updater: &'a ZeroDowntimeUpdater,
    done: Vec<Done>,
}

impl ZeroDowntimeUpdater {
    pub fn new(settings: Settings, store: Store, registry: Arc<Registry>) -> Self {
        ZeroDowntimeUpdater {
            settings,
            store,
            registry,
            checks: Mutex::new(HashMap::new()),
            sink: discard(),
        }
    }

    /// Receives every rollout event.
    pub fn with_sink(mut self, sink: Sink<Event>) -> Self {
        self.sink = sink;
        self
    }

    /// Adds a check every instance of `service` must pass, beside the
    /// configured ones: a plugin or a Rust closure (`HealthCheck::closure`).
    pub fn add_health_check(&self, service: &str, check: HealthCheck) {
        self.checks
            .lock()
            .expect("checks")
            .entry(service.to_string())
            .or_default()
            .push(Arc::new(check));
    }

    async fn roll(&self, service: &str, target: Target) -> Result<RolloutReport, RolloutError> {
        let mut rollout = build::rollout(
            &self.settings,
            &self.store,
            &self.registry,
            service,
            self.sink.clone(),
        )?;
        let extra = self
            .checks
            .lock()
            .expect("checks")
            .get(service)
            .cloned()
            .unwrap_or_default();
        if !extra.is_empty() {
            rollout.add_checks(extra);
        }
        rollout.run(&target, false).await
    }

    /// Rolls each service to the revision its configuration describes.
    pub async fn rolling_restart(
        &self,
        services: &[&str],
    ) -> Result<Vec<RolloutReport>, RolloutError> {
        let mut reports = Vec::new();
        for service in services {
            reports.push(self.roll(service, Target::Current).await?);
        }
        Ok(reports)
    }

    /// Runs `body` in a scope: when it returns an error, panics or passes
    /// `deadline`, every config deployment and rollout done through the
    /// scope is undone, newest first.
    pub async fn update_context<T>(
        &self,
        name: &str,
        deadline: Duration,
        body: impl AsyncFnOnce(&mut UpdateContext<'_>) -> anyhow::Result<T>,
    ) -> Result<T, UpdateError> {
        let mut ctx = UpdateContext {
            updater: self,
            done: Vec::new(),
        };
        let outcome = {
            let run = std::panic::AssertUnwindSafe(body(&mut ctx)).catch_unwind();
            match tokio::time::timeout(deadline, run).await {
                Ok(Ok(Ok(value))) => return Ok(value),
                Ok(Ok(Err(e))) => format!("{e:#}"),
                Ok(Err(panic)) => format!(
                    "it panicked: {}",
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".into())
                ),
                Err(_) => format!("it ran past its deadline of {deadline:?}"),
            }
        };
        let undo = match ctx.undo().await {
            Ok(0) => "nothing was changed".to_string(),
            Ok(n) => format!("{n} change(s) undone"),
            Err(e) => format!("undoing failed too: {e}"),
        };
        Err(UpdateError::Failed {
            name: name.to_string(),
            reason: outcome,
            undo,
        })
    }

    fn deployer(&self) -> ConfigDeployer {
        ConfigDeployer::new(
            DeployerSettings::from_settings(&self.settings, None),
            Validators {
                schemas_dir: None,
                plugins: None,
            },
            self.store.clone(),
        )
    }

    /// The services that read any of `files` (by name in `config_dir`).
    fn readers(&self, files: &[String]) -> Vec<String> {
        self.settings
            .config
            .config
            .services
            .iter()
            .filter(|(_, s)| s.config_files.iter().any(|f| files.contains(f)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

impl UpdateContext<'_> {
    /// Deploys `sources` for `environment`, then rolls every service that
    /// reads one of the deployed files. Both are undone if the scope fails.
    pub async fn update_configuration(
        &mut self,
        sources: &[PathBuf],
        environment: &str,
    ) -> Result<Vec<RolloutReport>, UpdateError> {
        let deployer = self.updater.deployer();
        let report = deployer.deploy(sources, environment, false).await?;
        if let Some(backup_id) = &report.backup_id {
            self.done.push(Done::Config {
                backup_id: backup_id.clone(),
            });
        }
        let changed: Vec<String> = report
            .files
            .iter()
            .filter(|f| f.change != crate::configdeploy::FileChange::Unchanged)
            .map(|f| f.name.clone())
            .collect();
        let mut rolled = Vec::new();
        for service in self.updater.readers(&changed) {
            rolled.push(self.rolling_restart(&service).await?);
        }
        Ok(rolled)
    }

    /// Rolls one service to its configured revision; undone if the scope fails.
    pub async fn rolling_restart(&mut self, service: &str) -> Result<RolloutReport, UpdateError> {
        let report = self.updater.roll(service, Target::Current).await?;
        if report.state == crate::store::RolloutOutcome::Succeeded {
            self.done.push(Done::Rolled {
                service: service.to_string(),
                from: report.from.clone(),
            });
        }
        Ok(report)
    }

    /// Undoes what the scope did, newest first; how many steps.
    async fn undo(&mut self) -> Result<usize, UpdateError> {
        let mut count = 0;
        while let Some(step) = self.done.pop() {
            match step {
                Done::Config { backup_id } => {
                    self.updater.deployer().rollback(&backup_id, false).await?;
                }
                Done::Rolled { service, from } => {
                    let target = match from {
                        Some(label) => Target::Named(label),
                        None => continue,
                    };
                    self.updater.roll(&service, target).await?;
                }
            }
            count += 1;
        }
        Ok(count)
    }
}
