//! `gantry rollout SERVICE [--to REVISION] [--dry-run]`, `rollout status
//! [SERVICE]`, `rollout undo SERVICE`, and a canary's `rollout promote |
//! abort | pause | resume SERVICE`.

use super::Context;
use crate::error::{CliResult, Exit};
use crate::report::table;
use crate::rollout::steps::{Control, Controlled, Progress};
use crate::rollout::{RolloutReport, ServiceStatus, Target, build, short_id};
use crate::store::{RolloutOutcome, RolloutState};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: Option<RolloutCommand>,
    /// The service to roll (a key of `services` in the deployment config)
    service: Option<String>,
    /// Roll to this recorded revision (label or id) instead of the one
    /// the configuration describes now
    #[arg(long, value_name = "REVISION")]
    to: Option<String>,
    /// Print the plan; change nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Instances, their revisions and health, the last rollout; exit 1 if one was interrupted
    Status {
        /// One service [default: every configured service]
        service: Option<String>,
        /// Skip running the health checks
        #[arg(long)]
        no_checks: bool,
    },
    /// Roll back to the revision before the last successful rollout
    Undo {
        service: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Skip the rest of the canary step under way (its analysis must not
    /// have failed)
    Promote { service: String },
    /// Take the canary out now: its weight to 0, its instances stopped
    Abort { service: String },
    /// Hold the canary step under way (its analysis still aborts on failure)
    Pause { service: String },
    /// Let a paused canary step go on
    Resume { service: String },
}

pub async fn run(ctx: &Context, args: RolloutArgs) -> CliResult {
    match (args.command, args.service) {
        (Some(RolloutCommand::Status { service, no_checks }), _) => {
            status(ctx, service, !no_checks).await
        }
        (Some(RolloutCommand::Undo { service, dry_run }), _) => {
            roll(ctx, &service, Target::Undo, dry_run).await
        }
        (Some(RolloutCommand::Promote { service }), _) => {
            control(ctx, &service, Control::Promote).await
        }
        (Some(RolloutCommand::Abort { service }), _) => {
            control(ctx, &service, Control::Abort).await
        }
        (Some(RolloutCommand::Pause { service }), _) => {
            control(ctx, &service, Control::Pause).await
        }
        (Some(RolloutCommand::Resume { service }), _) => {
            control(ctx, &service, Control::Resume).await
        }
        (None, Some(service)) => {
            let target = args.to.map(Target::Named).unwrap_or(Target::Current);
            roll(ctx, &service, target, args.dry_run).await
        }
        (None, None) => Err(crate::Failure::usage(anyhow::anyhow!(
            "name the service to roll (`gantry rollout SERVICE`), or use `gantry rollout status`"
        ))),
    }
}

/// The service's rollout, reporting to the command's output.
fn rollout_of(ctx: &Context, service: &str) -> CliResult<crate::rollout::Rollout> {
    let registry = ctx.registry()?;
    Ok(build::rollout(
        &ctx.settings,
        &ctx.store,
        &registry,
        service,
        ctx.out.sink(),
    )?)
}

async fn roll(ctx: &Context, service: &str, target: Target, dry_run: bool) -> CliResult {
    let report = rollout_of(ctx, service)?.run(&target, dry_run).await?;
    print_report(ctx, &report)?;
    Ok(Exit::Success)
}

async fn control(ctx: &Context, service: &str, op: Control) -> CliResult {
    let done = rollout_of(ctx, service)?.control(op).await?;
    if ctx.out.is_json() {
        ctx.out.json(&done)?;
        return Ok(Exit::Success);
    }
    match done {
        Controlled::Requested { rollout_id, op } => ctx.out.text(format!(
            "{service}: `{op}` left for rollout #{rollout_id}; it acts at its next look"
        ))?,
        Controlled::Aborted { report } => print_report(ctx, &report)?,
    }
    Ok(Exit::Success)
}

fn print_report(ctx: &Context, report: &RolloutReport) -> CliResult<()> {
    if ctx.out.is_json() {
        ctx.out.json(report)?;
        return Ok(());
    }
    let line = match report.state {
        RolloutOutcome::Planned => format!(
            "dry run: {} would move to {} (keeping {} instance(s) already there); nothing changed",
            report.service, report.to, report.kept
        ),
        RolloutOutcome::Unchanged => format!(
            "{}: every instance already runs {}; nothing to do",
            report.service, report.to
        ),
        _ => format!(
            "{}: rolled {} instance(s) from {} to {} in {:.1} s (rollout #{})",
            report.service,
            report.replaced,
            report.from.as_deref().unwrap_or("nothing"),
            report.to,
            report.duration_ms as f64 / 1000.0,
            report.rollout_id.unwrap_or_default()
        ),
    };
    ctx.out.text(line)?;
    Ok(())
}

async fn status(ctx: &Context, service: Option<String>, check: bool) -> CliResult {
    let names: Vec<String> = match service {
        Some(name) => vec![name],
        None => ctx
            .settings
            .config
            .config
            .services
            .keys()
            .cloned()
            .collect(),
    };
    let registry = ctx.registry()?;
    let mut all: Vec<ServiceStatus> = Vec::new();
    for name in &names {
        all.push(build::service_status(&ctx.settings, &ctx.store, &registry, name, check).await?);
    }
    let interrupted = all.iter().any(|s| s.interrupted);
    if ctx.out.is_json() {
        ctx.out.json(&all)?;
    } else if all.is_empty() {
        ctx.out
            .text("no services are configured (`services` in the deployment config)")?;
    } else {
        for s in &all {
            print_status(ctx, s)?;
        }
    }
    Ok(if interrupted {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// Each canary step (weight, state, verdict) and the analysis table of
/// the newest step that was judged.
fn print_steps(
    ctx: &Context,
    p: &Progress,
    weights: &std::collections::BTreeMap<String, u32>,
) -> CliResult<()> {
    let mut text = format!(
        "  canary {} against baseline {}{}{}",
        short_id(&p.canary),
        short_id(&p.baseline),
        if p.paused { " (paused)" } else { "" },
        p.outcome
            .as_deref()
            .map(|o| format!(": {o}"))
            .unwrap_or_default()
    );
    if !weights.is_empty() {
        let split: Vec<String> = weights
            .iter()
            .map(|(r, w)| format!("{} {w}%", short_id(r)))
            .collect();
        text.push_str(&format!("\n  requests now: {}", split.join(", ")));
    }
    ctx.out.text(text)?;
    let rows: Vec<Vec<String>> = p
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            vec![
                format!("  {}", i + 1),
                format!("{}%", step.weight),
                format!("{:.0} s", step.pause_seconds),
                step.analysis.clone().unwrap_or_else(|| "-".into()),
                p.step_state(i).into(),
                step.verdict
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                step.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    ctx.out.text(table(
        &[
            "  STEP", "WEIGHT", "PAUSE", "ANALYSIS", "STATE", "VERDICT", "NOTE",
        ],
        &rows,
    ))?;
    if let Some(step) = p.steps.iter().rev().find(|s| !s.table.is_empty()) {
        let rows: Vec<Vec<String>> = step
            .table
            .iter()
            .map(|r| {
                vec![
                    format!("  {}", r.metric),
                    r.shown(r.baseline, r.baseline_n),
                    r.shown(r.canary, r.canary_n),
                    r.p.map(|p| format!("{p:.2e}"))
                        .unwrap_or_else(|| "-".into()),
                    r.verdict.as_str().into(),
                    r.why.clone(),
                ]
            })
            .collect();
        ctx.out.text(table(
            &["  METRIC", "BASELINE", "CANARY", "P", "VERDICT", "WHY"],
            &rows,
        ))?;
    }
    Ok(())
}

pub fn print_status(ctx: &Context, s: &ServiceStatus) -> CliResult<()> {
    let mut text = format!(
        "{} ({:?} driver): {} of {} instance(s) running",
        s.service,
        s.driver,
        s.instances.iter().filter(|i| i.alive).count(),
        s.desired
    )
    .to_lowercase();
    if let Some(holder) = &s.running {
        text.push_str(&format!("\n  a rollout is running: {holder}"));
    }
    if let Some(last) = &s.last_rollout {
        text.push_str(&format!(
            "\n  last rollout #{}: {} → {}: {}{}",
            last.id,
            s.last_from.as_deref().unwrap_or("nothing"),
            s.last_to.as_deref().unwrap_or("?"),
            if s.interrupted {
                RolloutState::Interrupted
            } else {
                last.state
            },
            last.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(advice) = &s.advice {
        text.push_str(&format!("\n  {advice}"));
    }
    ctx.out.text(text)?;
    if let Some(steps) = &s.steps {
        print_steps(ctx, steps, &s.weights)?;
    }
    if !s.instances.is_empty() {
        let rows: Vec<Vec<String>> = s
            .instances
            .iter()
            .map(|i| {
                vec![
                    format!("  {}", i.record.name),
                    i.record.host.clone(),
                    i.version.clone(),
                    i.record
                        .pid
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    i.record.health_address.clone(),
                    if !i.alive {
                        "gone".into()
                    } else if i.health.is_empty() {
                        i.record.state.to_string()
                    } else if i.healthy {
                        "healthy".into()
                    } else {
                        format!("unhealthy: {}", i.health.join("; "))
                    },
                ]
            })
            .collect();
        ctx.out.text(table(
            &[
                "  INSTANCE",
                "HOST",
                "VERSION",
                "PID",
                "CHECKED AT",
                "STATE",
            ],
            &rows,
        ))?;
    }
    Ok(())
}
