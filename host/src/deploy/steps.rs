//! Each step's three parts: `before` (what undoing it will need, recorded
//! in the journal before it acts), `execute`, and `undo`. Every step is
//! safe to run again after a kill: migrations apply what is pending, the
//! config deployer writes what differs, a rollout keeps what is already
//! replaced.

use super::plan::{Plan, Step};
use crate::configdeploy::{ChangeInfo, FileChange, changes};
use crate::migrate::{ApplyOptions, MigrationId, State as MigrationState};
use crate::rollout::{HealthCheck, InstanceView, Target};
use crate::store::{ChangeKind, RolloutOutcome};
use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records, before `step` acts, what undoing it needs. Kept from an
/// earlier attempt when there is one (the first "before" is the truth).
pub async fn before(plan: &Plan, step: &Step, detail: &mut Value) -> anyhow::Result<()> {
    match step {
        Step::Migrate if detail.get("before").is_none() => {
            let status = plan.migrator.status().await?;
            let last = status
                .rows
                .iter()
                .filter(|r| r.state != MigrationState::Pending)
                .map(|r| r.version)
                .max();
            detail["before"] = json!(last);
            detail["applied_before"] = json!(
                status
                    .rows
                    .iter()
                    .filter(|r| r.state != MigrationState::Pending)
                    .count()
            );
        }
        Step::Rollout(service) if detail.get("from").is_none() => {
            let from = plan.rollout(service)?.current_revision().await?;
            detail["from"] = json!(from);
        }
        _ => {}
    }
    Ok(())
}

/// Runs `step`; a one-line summary, or the reason it failed.
pub async fn execute(
    plan: &Plan,
    deployment: &str,
    step: &Step,
    detail: &mut Value,
) -> Result<String, String> {
    let result = match step {
        Step::Migrate => migrate(plan, detail).await,
        Step::Config => config(plan, detail).await,
        Step::Rollout(service) => rollout(plan, service, detail).await,
        Step::Verify => verify(plan).await,
        Step::Canary => canary(plan).await,
        Step::Monitoring => monitoring(plan, deployment, detail).await,
    };
    result.map_err(|e| format!("{e:#}"))
}

async fn migrate(plan: &Plan, detail: &mut Value) -> anyhow::Result<String> {
    let report = plan.migrator.migrate(&ApplyOptions::default()).await?;
    let mut applied: Vec<i64> = detail["applied"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    applied.extend(&report.done);
    detail["applied"] = json!(applied);
    Ok(if report.done.is_empty() {
        format!("{}: up to date", plan.migrator.target())
    } else {
        format!(
            "applied {} migration(s) on {}",
            report.done.len(),
            plan.migrator.target()
        )
    })
}

async fn config(plan: &Plan, detail: &mut Value) -> anyhow::Result<String> {
    let report = plan
        .deployer
        .deploy(&plan.sources, &plan.environment, false)
        .await?;
    let changed: Vec<String> = report
        .files
        .iter()
        .filter(|f| f.change != FileChange::Unchanged)
        .map(|f| f.name.clone())
        .collect();
    // The first backup is the state before the deployment: an earlier
    // attempt's (killed half-way) is kept.
    if detail.get("backup_id").is_none_or(Value::is_null) {
        detail["backup_id"] = json!(report.backup_id);
    }
    detail["change_id"] = json!(report.change_id);
    detail["changed"] = json!(changed);
    Ok(if changed.is_empty() {
        "every file already as rendered".into()
    } else {
        format!(
            "deployed {} (backup {})",
            changed.join(", "),
            report.backup_id.as_deref().unwrap_or("-")
        )
    })
}

async fn rollout(plan: &Plan, service: &str, detail: &mut Value) -> anyhow::Result<String> {
    let rollout = plan.rollout(service)?;
    rollout.wait_idle().await?;
    let report = rollout.run(&Target::Current, false).await?;
    detail["to"] = json!(report.to);
    detail["replaced"] = json!(report.replaced);
    Ok(match report.state {
        RolloutOutcome::Unchanged => format!("{service}: already at {}", report.to),
        _ => format!(
            "{service}: {} instance(s) from {} to {}",
            report.replaced,
            report.from.as_deref().unwrap_or("nothing"),
            report.to
        ),
    })
}

/// Every instance's checks, run for `verify_seconds`; one instance
/// failing `verify_failures` rounds in a row (or missing) fails the step.
async fn verify(plan: &Plan) -> anyhow::Result<String> {
    let settings = &plan.settings.config.config.deployment;
    let until = Instant::now() + crate::clock::seconds(settings.verify_seconds);
    let interval = crate::clock::seconds(settings.verify_interval_seconds);
    let threshold = settings.verify_failures.max(1);
    let mut failures: BTreeMap<String, (u32, String)> = BTreeMap::new();
    let mut rounds = 0;
    let healthy = loop {
        rounds += 1;
        let mut healthy = 0;
        for service in &plan.services {
            let status = plan.rollout(service)?.status(true).await?;
            let alive: Vec<_> = status.instances.iter().filter(|i| i.alive).collect();
            let missing = format!("{service} (instances)");
            if alive.len() < status.desired {
                let entry = failures.entry(missing).or_default();
                entry.0 += 1;
                entry.1 = format!("{} of {} instances run", alive.len(), status.desired);
            } else {
                failures.remove(&missing);
            }
            for instance in alive {
                let key = format!("{service}/{}", instance.record.name);
                if instance.healthy {
                    healthy += 1;
                    failures.remove(&key);
                } else {
                    let entry = failures.entry(key).or_default();
                    entry.0 += 1;
                    entry.1 = instance.health.join("; ");
                }
            }
        }
        if let Some((what, (n, why))) = failures.iter().find(|(_, (n, _))| *n >= threshold) {
            return Err(anyhow!(
                "{what} failed its health checks {n} time(s) in a row: {why}"
            ));
        }
        if Instant::now() >= until {
            break healthy;
        }
        tokio::time::sleep(interval).await;
    };
    if let Some((what, (_, why))) = failures.iter().next() {
        return Err(anyhow!(
            "{what} was still failing its health checks at the end of verification: {why}"
        ));
    }
    Ok(format!(
        "{healthy} instance(s) healthy over {rounds} round(s)"
    ))
}

/// The canary: a check plugin run against the service's public address.
async fn canary(plan: &Plan) -> anyhow::Result<String> {
    let config = &plan.settings.config.config.deployment;
    let canary = config.canary.as_ref().context("no canary configured")?;
    let service = canary
        .service
        .clone()
        .or_else(|| plan.services.first().cloned())
        .context("no service to check")?;
    let status = plan.rollout(&service)?.status(false).await?;
    let instance = status
        .instances
        .iter()
        .find(|i| i.alive)
        .with_context(|| format!("{service} has no instance running"))?;
    let view = InstanceView {
        service: service.clone(),
        name: "canary".into(),
        host: plan.settings.host.clone(),
        address: instance.record.address.clone(),
        health_address: instance.record.address.clone(),
        version: instance.version.clone(),
    };
    let base = plan.settings.secrets_base();
    let mut check_config = canary.as_check();
    for value in check_config.settings.values_mut() {
        *value = crate::secrets::resolve(value, &base)
            .map_err(|e| anyhow!("`deployment.canary.settings`: {e}"))?;
    }
    let plugin = plan.registry.plugin(&canary.plugin)?;
    let check = HealthCheck::plugin(
        Arc::clone(plan.registry.runtime()),
        plugin,
        &check_config,
        &plan.settings.resolve_path(std::path::Path::new(".")),
    );
    let mut last = String::new();
    for attempt in 0..canary.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (status, message) = check.run(&view).await;
        if matches!(
            status,
            crate::bindings::types::HealthStatus::Ok
                | crate::bindings::types::HealthStatus::Warning
        ) {
            return Ok(format!("{} on {}: {message}", canary.plugin, view.address));
        }
        last = format!("{status:?}: {message}");
    }
    Err(anyhow!(
        "the canary ({} on {}) failed {} time(s): {last}",
        canary.plugin,
        view.address,
        canary.attempts.max(1)
    ))
}

/// Monitoring: a test notice to each receiver, and whether a monitor is
/// taking events. A notice no receiver took fails the step: alerts that
/// reach nobody are not a deployment that is done.
async fn monitoring(plan: &Plan, deployment: &str, detail: &mut Value) -> anyhow::Result<String> {
    let Some(settings) = plan.monitor.clone() else {
        return Ok("monitoring is disabled".into());
    };
    let config = &plan.settings.config.config;
    let mut notices = serde_json::Map::new();
    let mut failed = 0;
    if config.deployment.test_alerts {
        let monitor = crate::monitor::AuthMonitor::new(
            settings,
            plan.store.clone(),
            Arc::clone(&plan.registry),
        )
        .with_sink(plan.sinks.monitor.clone());
        for (receiver, outcome) in monitor.send_test_notices(deployment).await {
            let text = match outcome {
                Ok(()) => "delivered".to_string(),
                Err(e) => {
                    failed += 1;
                    format!("failed: {e}")
                }
            };
            notices.insert(receiver, json!(text));
        }
    }
    let listen = &config.monitoring.api.listen;
    let running = if listen.ends_with(":0") {
        None
    } else {
        let url = format!("http://{listen}/healthz");
        let mut request = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(1));
        if let Some(token) = config
            .monitoring
            .api
            .token
            .as_deref()
            .and_then(|t| crate::secrets::resolve(t, &plan.settings.secrets_base()).ok())
        {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await;
        Some(answer.is_ok_and(|a| a.status().is_success()))
    };
    detail["test_notices"] = Value::Object(notices.clone());
    detail["monitor"] = json!(match running {
        Some(true) => format!("taking events at http://{listen}"),
        Some(false) | None =>
            "no monitor is running: start `gantry monitor`, or use `gantry up`".to_string(),
    });
    if failed > 0 {
        let which: Vec<String> = notices
            .iter()
            .filter(|(_, v)| v.as_str().is_some_and(|t| t.starts_with("failed")))
            .map(|(name, v)| format!("{name}: {}", v.as_str().unwrap_or_default()))
            .collect();
        return Err(anyhow!(
            "{failed} test notice(s) reached no receiver ({}); fix the receiver (gantry's own inbox is served by `gantry up`), or set deployment.test_alerts = false",
            which.join("; ")
        ));
    }
    Ok(format!(
        "{} test notice(s) delivered{}; {}",
        notices.len() - failed,
        if failed > 0 {
            format!(", {failed} FAILED")
        } else {
            String::new()
        },
        detail["monitor"].as_str().unwrap_or_default()
    ))
}

/// Undoes `step`: a summary, and whether the change was reverted (false
/// when there was nothing to revert or it is kept on purpose).
pub async fn undo(
    plan: &Plan,
    step: &Step,
    detail: &mut Value,
    started_ms: Option<i64>,
) -> anyhow::Result<(String, bool)> {
    match step {
        Step::Config => {
            let backup = match detail["backup_id"].as_str() {
                Some(id) => Some(id.to_string()),
                // Killed before the deployer answered: its change, made
                // after the step started, names the backup.
                None => find_backup(plan, started_ms.unwrap_or(0)).await?,
            };
            let Some(backup) = backup else {
                return Ok(("no config file was changed".into(), false));
            };
            let report = plan.deployer.rollback(&backup, false).await?;
            Ok((
                format!(
                    "config restored from backup {backup} ({} file(s))",
                    report.files.len()
                ),
                true,
            ))
        }
        Step::Rollout(service) => {
            let rollout = plan.rollout(service)?;
            rollout.wait_idle().await?;
            match detail["from"].as_str() {
                Some(from) => {
                    let report = rollout.run(&Target::Named(from.to_string()), false).await?;
                    Ok((
                        format!(
                            "{service} back at {} ({} replaced)",
                            report.to, report.replaced
                        ),
                        true,
                    ))
                }
                None => {
                    let stopped = rollout.stop_all().await?;
                    Ok((
                        format!("{service} had no instance before: {stopped} stopped"),
                        true,
                    ))
                }
            }
        }
        Step::Migrate => {
            let before = detail["before"].as_i64().unwrap_or(0);
            if !plan.settings.config.config.deployment.rollback_migrations {
                let status = plan.migrator.status().await?;
                let newer: Vec<String> = status
                    .rows
                    .iter()
                    .filter(|r| r.version > before && r.state != MigrationState::Pending)
                    .map(|r| r.id.clone())
                    .collect();
                return Ok((
                    if newer.is_empty() {
                        "no migration was applied".into()
                    } else {
                        format!(
                            "migrations kept (deployment.rollback_migrations is off; a down migration can destroy data): {}",
                            newer.join(", ")
                        )
                    },
                    false,
                ));
            }
            let report = plan
                .migrator
                .rollback(&MigrationId::Version(before), false)
                .await?;
            Ok((
                format!("reverted {} migration(s)", report.done.len()),
                !report.done.is_empty(),
            ))
        }
        Step::Verify | Step::Canary | Step::Monitoring => Ok(("nothing to undo".into(), false)),
    }
}

/// The backup of this host's first config deployment of the environment
/// made after `since_ms`.
async fn find_backup(plan: &Plan, since_ms: i64) -> anyhow::Result<Option<String>> {
    let all: Vec<ChangeInfo> = changes(&plan.store, &plan.settings.host).await?;
    Ok(all
        .into_iter()
        .filter(|c| {
            c.record.kind == ChangeKind::Deploy
                && c.record.environment == plan.environment
                && c.record.started_at.timestamp_millis() >= since_ms
        })
        .find_map(|c| c.record.backup_id))
}
