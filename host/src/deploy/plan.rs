//! What a deployment of an environment consists of, built from the
//! resolved settings and checked before anything runs: the migrator, the
//! config deployer with its validators, the services to roll (their
//! configs checked), the monitor's settings, and the steps in order.

use super::error::DeployError;
use super::events::Event;
use crate::configdeploy::{ConfigDeployer, DeployerSettings, Validators};
use crate::events::{Sink, discard};
use crate::migrate::Migrator;
use crate::monitor::MonitorSettings;
use crate::rollout::{Rollout, build};
use crate::runtime::Registry;
use crate::settings::Settings;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One step of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Migrate,
    Config,
    Rollout(String),
    Verify,
    Canary,
    Monitoring,
}

impl Step {
    pub fn name(&self) -> String {
        match self {
            Step::Migrate => "migrate".into(),
            Step::Config => "config".into(),
            Step::Rollout(service) => format!("rollout:{service}"),
            Step::Verify => "verify".into(),
            Step::Canary => "canary".into(),
            Step::Monitoring => "monitoring".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Some(match name {
            "migrate" => Step::Migrate,
            "config" => Step::Config,
            "verify" => Step::Verify,
            "canary" => Step::Canary,
            "monitoring" => Step::Monitoring,
            other => Step::Rollout(other.strip_prefix("rollout:")?.to_string()),
        })
    }
}

/// Where each engine's events go.
#[derive(Clone)]
pub struct Sinks {
    pub deploy: Sink<Event>,
    pub migrate: Sink<crate::migrate::Event>,
    pub config: Sink<crate::configdeploy::Event>,
    pub rollout: Sink<crate::rollout::Event>,
    pub monitor: Sink<crate::monitor::Event>,
}

impl Default for Sinks {
    fn default() -> Self {
        Sinks {
            deploy: discard(),
            migrate: discard(),
            config: discard(),
            rollout: discard(),
            monitor: discard(),
        }
    }
}

/// Everything a deployment of one environment uses.
pub struct Plan {
    pub settings: Settings,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub environment: String,
    pub migrator: Migrator,
    pub deployer: ConfigDeployer,
    /// The base config files rendered for the environment.
    pub sources: Vec<PathBuf>,
    pub services: Vec<String>,
    pub monitor: Option<MonitorSettings>,
    pub steps: Vec<Step>,
    pub sinks: Sinks,
    /// Keys merged over `environments.<ENV>` when config renders (a key
    /// set a rotation manages): references only, never material.
    pub overrides: serde_json::Map<String, serde_json::Value>,
}

fn config_error(key: &str, message: impl std::fmt::Display) -> DeployError {
    DeployError::Config {
        key: key.into(),
        message: message.to_string(),
    }
}

impl Plan {
    /// Builds and checks the plan; a bad setting is an error naming its key.
    pub fn new(
        settings: &Settings,
        store: &Store,
        registry: Arc<Registry>,
        environment: &str,
        sinks: Sinks,
    ) -> Result<Plan, DeployError> {
        Plan::with_defaults(settings, store, registry, environment, sinks, false)
    }

    /// Like `new`; `development_default` lets `gantry up --environment
    /// development` run on the built-in defaults when there is no config.
    pub fn with_defaults(
        settings: &Settings,
        store: &Store,
        registry: Arc<Registry>,
        environment: &str,
        sinks: Sinks,
        development_default: bool,
    ) -> Result<Plan, DeployError> {
        let config = &settings.config.config;
        if settings.config.path.is_none() && !(development_default && environment == "development")
        {
            let here = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| ".".into());
            return Err(DeployError::Refused {
                check: "environment".into(),
                reason: format!(
                    "there is no deployment config to deploy `{environment}` from: gantry looked for \
                     deployment_config.json and deployment_config.toml in {here} (give one with --config \
                     or GANTRY_CONFIG)"
                ),
            });
        }
        if settings.config.path.is_some() && !config.environments.contains_key(environment) {
            let known = config.environments.keys().cloned().collect::<Vec<_>>();
            return Err(DeployError::Refused {
                check: "environment".into(),
                reason: format!(
                    "`{environment}` is not one of `environments` in {} ({})",
                    settings.config.name(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        let deployment = &config.deployment;
        let (source, sqlx) =
            crate::migrate::sqlx_source_for(settings).map_err(|e| config_error("migrations", e))?;
        let database = settings
            .database()
            .map_err(|e| config_error("database", e))?;
        let migrator = Migrator::new(database, source)?
            .with_history_key(settings.backup_dir())
            .with_lock_timeout(Duration::from_secs(120))
            .with_runtime(Arc::clone(registry.runtime()))
            .with_actor(settings.actor.clone())
            .with_sqlx_history(config.migrations.sqlx_history.into())
            .with_sqlx_config(sqlx)
            .with_sink(sinks.migrate.clone());
        let deployer = build_deployer(settings, store, &registry, &sinks, &Default::default())?;
        let mut sources = Vec::new();
        for (i, file) in deployment.config_files.iter().enumerate() {
            let path = settings.resolve_path(file);
            if !path.is_file() {
                return Err(config_error(
                    &format!("config_files[{i}]"),
                    format!("{} is not a file", path.display()),
                ));
            }
            sources.push(path);
        }
        let services: Vec<String> = match &deployment.services {
            Some(names) => names.clone(),
            None => config.services.keys().cloned().collect(),
        };
        for (i, name) in services.iter().enumerate() {
            if !config.services.contains_key(name) {
                return Err(config_error(
                    &format!("services[{i}]"),
                    format!("`{name}` is not a service in `services`"),
                ));
            }
        }
        let plan_rollout = |service: &str| {
            build::rollout(settings, store, &registry, service, sinks.rollout.clone())
        };
        for service in &services {
            plan_rollout(service)?;
        }
        if let Some(canary) = &deployment.canary {
            let plugin = registry
                .plugin(&canary.plugin)
                .map_err(|e| config_error("canary.plugin", e))?;
            if plugin.kind() != crate::runtime::PluginKind::HealthCheck {
                return Err(config_error(
                    "canary.plugin",
                    format!(
                        "`{}` is a {} plugin, not a health check",
                        canary.plugin,
                        plugin.kind()
                    ),
                ));
            }
            let service = canary.service.as_ref().or(services.first());
            match service {
                Some(s) if config.services.contains_key(s) => {}
                Some(s) => {
                    return Err(config_error(
                        "canary.service",
                        format!("`{s}` is not a service"),
                    ));
                }
                None => return Err(config_error("canary", "there is no service to check")),
            }
        }
        if !(deployment.verify_seconds >= 0.0 && deployment.verify_interval_seconds > 0.0) {
            return Err(config_error(
                "verify_seconds",
                "must be ≥ 0, with verify_interval_seconds > 0",
            ));
        }
        let monitor = if config.monitoring.enabled {
            let monitor = MonitorSettings::from_settings(settings)?;
            crate::monitor::check_plugins(&monitor.receivers, &registry, &monitor.secrets_base)
                .map_err(crate::monitor::MonitorError::from)?;
            Some(monitor)
        } else {
            None
        };
        let mut steps = vec![Step::Migrate];
        if !sources.is_empty() {
            steps.push(Step::Config);
        }
        steps.extend(services.iter().cloned().map(Step::Rollout));
        if !services.is_empty() {
            steps.push(Step::Verify);
        }
        if deployment.canary.is_some() {
            steps.push(Step::Canary);
        }
        if monitor.is_some() {
            steps.push(Step::Monitoring);
        }
        Ok(Plan {
            settings: settings.clone(),
            store: store.clone(),
            registry,
            environment: environment.to_string(),
            migrator,
            deployer,
            sources,
            services,
            monitor,
            steps,
            sinks,
            overrides: Default::default(),
        })
    }

    /// The same plan rendering config with `overrides` merged over the
    /// environment's values.
    pub fn with_overrides(
        mut self,
        overrides: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Plan, DeployError> {
        self.set_overrides(overrides)?;
        Ok(self)
    }

    pub fn set_overrides(
        &mut self,
        overrides: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), DeployError> {
        self.deployer = build_deployer(
            &self.settings,
            &self.store,
            &self.registry,
            &self.sinks,
            &overrides,
        )?;
        self.overrides = overrides;
        Ok(())
    }

    /// A rollout of `service`, reporting to the rollout sink.
    pub fn rollout(&self, service: &str) -> Result<Rollout, DeployError> {
        Ok(build::rollout(
            &self.settings,
            &self.store,
            &self.registry,
            service,
            self.sinks.rollout.clone(),
        )?)
    }

    /// The deployment's time limit.
    pub fn time_limit(&self) -> Duration {
        Duration::from_secs(
            self.settings
                .config
                .config
                .deployment
                .timeout_seconds
                .max(1),
        )
    }
}

fn build_deployer(
    settings: &Settings,
    store: &Store,
    registry: &Registry,
    sinks: &Sinks,
    overrides: &serde_json::Map<String, serde_json::Value>,
) -> Result<ConfigDeployer, DeployError> {
    let validators =
        Validators::from_settings(settings, Some(registry)).map_err(|e| DeployError::Config {
            key: "config_deploy.validators".into(),
            message: format!("{e:#}"),
        })?;
    let mut deployer_settings = DeployerSettings::from_settings(settings, None);
    deployer_settings.extra = overrides.clone();
    Ok(
        ConfigDeployer::new(deployer_settings, validators, store.clone())
            .with_sink(sinks.config.clone()),
    )
}
