//! Building a `Rollout` from the resolved settings: the service's config
//! checked (contradictions refused with the key path), its health checks
//! looked up in the registry (health-check plugins only), its driver
//! chosen. Nothing is started or touched here.

use super::driver::Driver;
use super::engine::{Rollout, Rules};
use super::error::RolloutError;
use super::events::Event;
use super::exec::Exec;
use super::health::{Gate, HealthCheck};
use super::spec::ServiceSpec;
use super::supervised::Supervised;
use crate::config::DriverKind;
use crate::events::Sink;
use crate::runtime::{PluginKind, Registry};
use crate::settings::Settings;
use crate::store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn secs(s: f64) -> Duration {
    crate::clock::seconds(s)
}

/// The service `name` as configured, checked.
pub fn service_spec(settings: &Settings, name: &str) -> Result<ServiceSpec, RolloutError> {
    let services = &settings.config.config.services;
    let config = services
        .get(name)
        .ok_or_else(|| RolloutError::UnknownService {
            name: name.to_string(),
            known: if services.is_empty() {
                "none configured".into()
            } else {
                services.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })?
        .clone();
    config
        .check(name)
        .map_err(|(key, message)| RolloutError::Config {
            key: format!("{}: `{key}`", settings.config.name()),
            message,
        })?;
    check_steps(settings, name, &config)?;
    let base_dir = settings.resolve_path(Path::new("."));
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let config_dir = settings.resolve_path(&settings.config.config.config_dir);
    Ok(ServiceSpec {
        name: name.to_string(),
        config,
        config_dir: std::path::absolute(&config_dir).unwrap_or(config_dir),
        log_dir: settings.layout.logs(),
        base_dir,
    })
}

/// Every analysis under `analyses`, and each step's analysis found.
fn check_steps(
    settings: &Settings,
    name: &str,
    config: &crate::config::ServiceConfig,
) -> Result<(), RolloutError> {
    let refused = |key: String, message: String| RolloutError::Config {
        key: format!("{}: `{key}`", settings.config.name()),
        message,
    };
    let analyses = &settings.config.config.analyses;
    for (analysis, template) in analyses {
        template
            .check(analysis)
            .map_err(|(key, message)| refused(key, message))?;
    }
    for (i, step) in config.rollout.steps.iter().enumerate() {
        if let Some(analysis) = &step.analysis
            && super::steps::template(analyses, analysis).is_none()
        {
            return Err(refused(
                format!("services.{name}.rollout.steps[{i}].analysis"),
                format!(
                    "no analysis {analysis:?} (auth-default{})",
                    analyses
                        .keys()
                        .map(|k| format!(", {k}"))
                        .collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// What tells this installation's processes from another's on the same
/// host: the first 12 hex digits of its state store's URL's sha256.
pub fn installation(settings: &Settings) -> String {
    use sha2::Digest;
    let url = settings.state.url();
    // A SQLite store is its file, wherever the command ran from.
    let identity = match url.strip_prefix("sqlite://") {
        Some(path) => {
            let path = path.split('?').next().unwrap_or(path);
            std::path::absolute(path)
                .map(|p| format!("sqlite://{}", p.display()))
                .unwrap_or_else(|_| url.to_string())
        }
        None => url.to_string(),
    };
    let digest = sha2::Sha256::digest(identity.as_bytes());
    hex::encode(&digest[..6])
}

/// The service's front door on this host, when its traffic goes through one.
pub fn front_door(
    settings: &Settings,
    store: &Store,
    spec: &ServiceSpec,
) -> Option<super::front::Front> {
    (spec.config.driver == DriverKind::Supervised
        && spec.config.traffic == crate::config::Traffic::FrontDoor)
        .then(|| super::front::Front {
            store: store.clone(),
            service: spec.name.clone(),
            host: settings.host.clone(),
            launcher: super::front::Launcher::from_settings(settings),
            log: spec.log_dir.join(&spec.name).join("front-door.log"),
        })
}

/// The health checks of `spec`, as plugins from `registry`.
pub fn health_checks(
    spec: &ServiceSpec,
    registry: &Registry,
) -> Result<Vec<HealthCheck>, RolloutError> {
    spec.config
        .health_checks
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let failed = |source| RolloutError::Check {
                service: spec.name.clone(),
                check: check.plugin.clone(),
                source,
            };
            let plugin = registry.plugin(&check.plugin).map_err(failed)?;
            if plugin.kind() != PluginKind::HealthCheck {
                return Err(RolloutError::Config {
                    key: format!("services.{}.health_checks[{i}].plugin", spec.name),
                    message: format!(
                        "`{}` is a {} plugin; a health check must be a health-check plugin",
                        check.plugin,
                        plugin.kind()
                    ),
                });
            }
            // Secret references (a canary's password) resolve now, once.
            let mut check = check.clone();
            for (key, value) in check.settings.iter_mut() {
                *value = crate::secrets::resolve(value, &spec.base_dir).map_err(|e| {
                    RolloutError::Secret {
                        key: format!("services.{}.health_checks[{i}].settings.{key}", spec.name),
                        source: e,
                    }
                })?;
            }
            Ok(HealthCheck::plugin(
                Arc::clone(registry.runtime()),
                plugin,
                &check,
                &spec.base_dir,
            ))
        })
        .collect()
}

/// A rollout of service `name`, ready to run.
pub fn rollout(
    settings: &Settings,
    store: &Store,
    registry: &Registry,
    name: &str,
    sink: Sink<Event>,
) -> Result<Rollout, RolloutError> {
    let spec = service_spec(settings, name)?;
    let checks = health_checks(&spec, registry)?;
    let r = &spec.config.rollout;
    let driver: Arc<dyn Driver> = match spec.config.driver {
        DriverKind::Supervised => Arc::new(Supervised::new(
            store.clone(),
            spec.clone(),
            settings.host.clone(),
            secs(r.grace_period_seconds),
            sink.clone(),
            front_door(settings, store, &spec),
            installation(settings),
        )),
        DriverKind::Exec => Arc::new(Exec::new(store.clone(), spec.clone(), sink.clone())),
    };
    Ok(Rollout {
        store: store.clone(),
        gate: Gate {
            checks: checks.into_iter().map(Arc::new).collect(),
            min_healthy: secs(r.min_healthy_time_seconds),
            deadline: secs(r.healthy_deadline_seconds),
            interval: secs(r.health_check_interval_seconds),
        },
        rules: Rules {
            max_parallel: r.max_parallel as usize,
            progress_deadline: secs(r.progress_deadline_seconds),
            rollback_threshold_failures: r.rollback_threshold_failures,
            max_update: secs(r.max_update_time_minutes * 60.0),
            auto_revert: r.auto_revert,
        },
        driver,
        spec,
        host: settings.host.clone(),
        actor: settings.actor.clone(),
        lease_ttl: settings.lease_ttl,
        sink,
        analyses: settings.config.config.analyses.clone(),
        alerts: crate::monitor::MonitorSettings::from_settings(settings)
            .ok()
            .map(|m| crate::monitor::lifecycle::Lifecycle {
                store: store.clone(),
                receivers: m.receivers,
                group_by: m.group_by,
                timing: m.timing,
            }),
    })
}

/// `service` as it runs now (`check`: each health check run once per
/// instance), without reporting events.
pub async fn service_status(
    settings: &Settings,
    store: &Store,
    registry: &Registry,
    service: &str,
    check: bool,
) -> Result<super::status::ServiceStatus, RolloutError> {
    rollout(settings, store, registry, service, crate::events::discard())?
        .status(check)
        .await
}
