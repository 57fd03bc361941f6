//! `gantry deploy --environment ENV [--dry-run] [--resume ID]` and
//! `gantry rollback --backup-id ID | --deployment ID`: build the plan,
//! hand its events to the reporter, print the summary. Exit 0 deployed
//! (or rolled back on request), 1 failed and rolled back, 2 refused.

use super::Context;
use crate::deploy::{DeployError, DeployReport, Plan, Sinks};
use crate::error::{CliResult, Exit};
use crate::store::DeployOutcome;
use clap::Args;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment (a key of `environments` in the deployment config)
    #[arg(long, short = 'e', default_value = "development")]
    pub environment: String,
    /// Run the preflight checks and print the plan; change nothing
    #[arg(long, conflicts_with = "resume")]
    pub dry_run: bool,
    /// Finish an interrupted deployment (see `gantry status`)
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RollbackArgs {
    /// Roll back the deployment that made this config backup (or, for a
    /// backup no deployment made, restore it and roll the services)
    #[arg(long, value_name = "ID")]
    pub backup_id: Option<String>,
    /// Roll back this deployment (finished or interrupted)
    #[arg(long, value_name = "ID")]
    pub deployment: Option<String>,
}

pub fn sinks(ctx: &Context) -> Sinks {
    Sinks {
        deploy: ctx.out.sink(),
        migrate: ctx.out.sink(),
        config: ctx.out.sink(),
        rollout: ctx.out.sink(),
        monitor: ctx.out.sink(),
    }
}

pub fn plan(ctx: &Context, environment: &str) -> CliResult<Plan> {
    let registry = Arc::new(ctx.registry()?);
    Ok(Plan::new(
        &ctx.settings,
        &ctx.store,
        registry,
        environment,
        sinks(ctx),
    )?)
}

pub async fn deploy(ctx: &Context, args: DeployArgs) -> CliResult {
    let environment = match &args.resume {
        Some(id) => {
            crate::deploy::find(&ctx.store, id)
                .await?
                .ok_or_else(|| DeployError::Unknown(id.clone()))?
                .record
                .environment
        }
        None => args.environment.clone(),
    };
    let plan = crate::deploy::prepare(plan(ctx, &environment)?, args.resume.as_deref()).await?;
    let report = match &args.resume {
        Some(id) => plan.resume(id).await?,
        None => plan.deploy(args.dry_run).await?,
    };
    print(ctx, &report)
}

pub async fn rollback(ctx: &Context, args: RollbackArgs) -> CliResult {
    let id = match (&args.deployment, &args.backup_id) {
        (Some(id), _) => id.clone(),
        (None, Some(backup)) => match crate::deploy::made_backup(&ctx.store, backup).await? {
            Some(id) => id,
            None => return restore_backup(ctx, backup).await,
        },
        (None, None) => unreachable!("clap requires one"),
    };
    let view = crate::deploy::find(&ctx.store, &id)
        .await?
        .ok_or_else(|| DeployError::Unknown(id.clone()))?;
    let plan = plan(ctx, &view.record.environment)?;
    let why = format!("rolled back on request by {}", ctx.settings.actor);
    let report = plan.roll_back(&id, &why).await?;
    print(ctx, &report)?;
    Ok(if report.state == DeployOutcome::RolledBack {
        Exit::Success
    } else {
        Exit::Failed
    })
}

/// A config backup no deployment made: restore it, roll the services
/// that read config files to what the restored files describe.
async fn restore_backup(ctx: &Context, backup: &str) -> CliResult {
    let deployer = crate::configdeploy::ConfigDeployer::new(
        crate::configdeploy::DeployerSettings::from_settings(&ctx.settings, None),
        crate::configdeploy::Validators {
            schemas_dir: None,
            plugins: None,
        },
        ctx.store.clone(),
    );
    let environment = deployer
        .backups()
        .await?
        .into_iter()
        .find(|b| b.record.id == backup)
        .map(|b| b.record.environment)
        .ok_or_else(|| DeployError::UnknownBackup(backup.to_string()))?;
    let plan = plan(ctx, &environment)?;
    let restored = plan.deployer.rollback(backup, false).await?;
    ctx.out.text(format!(
        "config restored from backup {backup} ({} file(s)); migrations are not touched",
        restored.files.len()
    ))?;
    for service in &plan.services {
        if ctx.settings.config.config.services[service]
            .config_files
            .is_empty()
        {
            continue;
        }
        let report = plan
            .rollout(service)?
            .run(&crate::rollout::Target::Current, false)
            .await?;
        ctx.out.text(format!(
            "{service}: at {} ({} instance(s) replaced)",
            report.to, report.replaced
        ))?;
    }
    Ok(Exit::Success)
}

pub fn print(ctx: &Context, report: &DeployReport) -> CliResult {
    ctx.out.finish();
    if ctx.out.is_json() {
        ctx.out.json(report)?;
    } else {
        if report.dry_run {
            ctx.out.text(format!(
                "dry run of {}: preflight passed; would run {}; nothing changed",
                report.environment,
                report
                    .steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ))?;
            return Ok(Exit::Success);
        }
        let rows: Vec<Vec<String>> = report
            .steps
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.state.to_string(),
                    s.took(),
                    s.what_happened(),
                ]
            })
            .collect();
        ctx.out.text(crate::report::table(
            &["STEP", "STATE", "TOOK", "WHAT HAPPENED"],
            &rows,
        ))?;
        let line = match report.state {
            DeployOutcome::Succeeded => format!(
                "deployed {} in {:.1} s (deployment {})",
                report.environment,
                report.duration_ms as f64 / 1000.0,
                report.id
            ),
            DeployOutcome::RolledBack => format!(
                "deployment {} rolled back: {}",
                report.id,
                report.reason.as_deref().unwrap_or("-")
            ),
            other => format!(
                "deployment {} {other}: {}",
                report.id,
                report.reason.as_deref().unwrap_or("-")
            ),
        };
        ctx.out.text(line)?;
        if let Some(file) = &report.report_file {
            ctx.out.text(format!("report: {file}"))?;
        }
    }
    Ok(if report.state.is_success() {
        Exit::Success
    } else {
        Exit::Failed
    })
}
