//! `gantry status`: what the state store says — the newest deployment of
//! each environment with its steps, the services' instances, open alerts,
//! config changes — and anything running or unfinished, with the command
//! that finishes or undoes it. Exit 0 when nothing is interrupted, 1 when
//! something is.

use super::Context;
use super::configs::print_history;
use crate::configdeploy::changes;
use crate::deploy::DeploymentView;
use crate::error::{CliResult, Exit};
use crate::report::table;
use crate::rollout::ServiceStatus;
use crate::store::{AlertState, RotationState, StepState};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Run each instance's health checks once and show the results
    #[arg(long)]
    check: bool,
}

pub async fn run(ctx: &Context, args: StatusArgs) -> CliResult {
    let target = &ctx.settings.state;
    let deployments = crate::deploy::latest(&ctx.store).await?;
    let all = changes(&ctx.store, &ctx.settings.host).await?;
    let running: Vec<_> = all.iter().filter(|c| c.is_running()).cloned().collect();
    let interrupted: Vec<_> = all.iter().filter(|c| c.is_interrupted()).cloned().collect();
    let last: Vec<_> = all.last().cloned().into_iter().collect();
    let services = services(ctx, args.check).await;
    let alerts = ctx
        .store
        .read(async |tx| tx.alerts(AlertState::OPEN, 1000).await)
        .await?;
    let rotations = crate::deploy::rotations(&ctx.store).await?;
    let deploy_interrupted = deployments.iter().any(|d| d.interrupted);
    let rollout_interrupted = services.iter().any(|s| s.interrupted);
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "state_store": target.to_string(),
            "host": ctx.settings.host,
            "deployments": deployments,
            "key_rotations": rotations,
            "services": services,
            "alerts": alerts,
            "last_config_change": last.first(),
            "running": running,
            "interrupted": interrupted,
        }))?;
    } else {
        ctx.out.text(format!("state store: {target}"))?;
        for d in &deployments {
            print_deployment(ctx, d)?;
        }
        for r in &rotations {
            let next = crate::clock::when(r.next_after_ms);
            let what = match r.state {
                RotationState::Waiting if r.phase == 1 => format!(
                    "phase 1 of 3 done: `{}` is published and verifies; phase 2 (it signs) runs after {}, once JWKS caches hold it — gantry rotate jwt-key -e {}, or gantry up",
                    r.new_kid, next, r.environment
                ),
                RotationState::Waiting => format!(
                    "phase 2 of 3 done: `{}` signs, `{}` verifies only; phase 3 (remove `{}`) may run after {} — gantry rotate jwt-key -e {} --finish, or gantry up",
                    r.new_kid, r.old_kid, r.old_kid, next, r.environment
                ),
                RotationState::Running => format!(
                    "phase {} of 3 did not finish (deployment {}); gantry rotate jwt-key -e {} resumes it",
                    r.phase,
                    r.deployment.as_deref().unwrap_or("-"),
                    r.environment
                ),
                RotationState::Done => format!("done: only `{}` remains", r.new_kid),
                other => format!(
                    "{other} at phase {}: {}",
                    r.phase,
                    r.reason.as_deref().unwrap_or("-")
                ),
            };
            ctx.out.text(format!(
                "key rotation {} of {} (`{}` → `{}`, fingerprint {}): {what}",
                r.id, r.environment, r.old_kid, r.new_kid, r.fingerprint
            ))?;
        }
        for s in &services {
            let alive = s.instances.iter().filter(|i| i.alive).count();
            let versions: std::collections::BTreeSet<&str> = s
                .instances
                .iter()
                .filter(|i| i.alive)
                .map(|i| i.version.as_str())
                .collect();
            let versions = if versions.is_empty() {
                String::new()
            } else {
                format!(" ({})", versions.into_iter().collect::<Vec<_>>().join(", "))
            };
            ctx.out.text(format!(
                "service {}: {alive} of {} instance(s) running{versions}{}",
                s.service,
                s.desired,
                s.advice
                    .as_deref()
                    .map(|a| format!("; {a}"))
                    .unwrap_or_default()
            ))?;
            let rows: Vec<Vec<String>> = s
                .instances
                .iter()
                .map(|i| {
                    vec![
                        format!("  {}", i.record.name),
                        i.version.clone(),
                        i.record.pid.map(|p| p.to_string()).unwrap_or_default(),
                        if !i.alive {
                            "gone".into()
                        } else if args.check {
                            if i.healthy {
                                "healthy (checked now)".into()
                            } else {
                                format!("UNHEALTHY: {}", i.health.join("; "))
                            }
                        } else {
                            format!("{} (last gate; --check runs the checks)", i.record.state)
                        },
                    ]
                })
                .collect();
            if !rows.is_empty() {
                ctx.out
                    .text(table(&["  INSTANCE", "VERSION", "PID", "HEALTH"], &rows))?;
            }
        }
        let firing = alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .count();
        if !alerts.is_empty() {
            ctx.out.text(format!(
                "alerts: {firing} firing, {} pending (gantry alerts list)",
                alerts.len() - firing
            ))?;
        }
        if !running.is_empty() {
            ctx.out
                .text(format!("{} config change(s) running:", running.len()))?;
            print_history(ctx, &running)?;
        }
        if interrupted.is_empty() && !deploy_interrupted && !rollout_interrupted {
            ctx.out.text("nothing interrupted")?;
            if running.is_empty() && !last.is_empty() && deployments.is_empty() {
                ctx.out.text("last config change:")?;
                print_history(ctx, &last)?;
            }
        } else if !interrupted.is_empty() {
            ctx.out.text(format!(
                "{} interrupted config change(s):",
                interrupted.len()
            ))?;
            print_history(ctx, &interrupted)?;
        }
    }
    Ok(
        if interrupted.is_empty() && !deploy_interrupted && !rollout_interrupted {
            Exit::Success
        } else {
            Exit::Failed
        },
    )
}

/// Every configured service as it runs (no health checks: status is quick).
async fn services(ctx: &Context, check: bool) -> Vec<ServiceStatus> {
    let names: Vec<String> = ctx
        .settings
        .config
        .config
        .services
        .keys()
        .cloned()
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(registry) = ctx.registry() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names {
        if let Ok(status) = crate::rollout::build::service_status(
            &ctx.settings,
            &ctx.store,
            &registry,
            &name,
            check,
        )
        .await
        {
            out.push(status);
        }
    }
    out
}

fn print_deployment(ctx: &Context, d: &DeploymentView) -> CliResult<()> {
    let r = &d.record;
    let state = if d.interrupted {
        format!("INTERRUPTED ({})", r.state)
    } else {
        r.state.to_string()
    };
    ctx.out.text(format!(
        "deployment {} of {}: {state}, by {} on {}{}",
        r.id,
        r.environment,
        r.actor,
        r.host,
        r.reason
            .as_deref()
            .map(|x| format!(" — {x}"))
            .unwrap_or_default()
    ))?;
    for step in &d.steps {
        let detail: serde_json::Value = serde_json::from_str(&step.detail).unwrap_or_default();
        match step.name.as_str() {
            "migrate" if step.state != StepState::Pending => {
                let applied: Vec<String> = detail["applied"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.to_string()).collect())
                    .unwrap_or_default();
                ctx.out.text(format!(
                    "  migrations: {} before it; applied by it: {}",
                    detail["before"]
                        .as_i64()
                        .map(|v| format!("up to version {v}"))
                        .unwrap_or_else(|| "none".into()),
                    if applied.is_empty() {
                        "none".into()
                    } else {
                        applied.join(", ")
                    }
                ))?;
            }
            "config" if step.state != StepState::Pending => {
                ctx.out.text(format!(
                    "  config: change #{} (backup before it: {}){}",
                    detail["change_id"]
                        .as_i64()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    detail["backup_id"].as_str().unwrap_or("-"),
                    if step.state == StepState::Undone {
                        ", undone"
                    } else {
                        ""
                    }
                ))?;
            }
            _ => {}
        }
    }
    let rows: Vec<Vec<String>> = d
        .steps
        .iter()
        .map(|s| {
            vec![
                format!("  {}", s.name),
                s.state.to_string(),
                s.took(),
                s.what_happened(),
            ]
        })
        .collect();
    ctx.out
        .text(table(&["  STEP", "STATE", "TOOK", "WHAT HAPPENED"], &rows))?;
    if let Some(advice) = &d.advice {
        ctx.out.text(advice.clone())?;
    }
    Ok(())
}
