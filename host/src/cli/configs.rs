//! `gantry config deploy | validate | list-backups | rollback | history`.

use super::Context;
use crate::configdeploy::{
    BackupInfo, ChangeInfo, ConfigDeployer, DeployerSettings, FileChange, FileDiff, Finding,
    Severity, Validators,
};
use crate::error::{CliResult, Exit, Failure};
use crate::report::table;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Render, validate, back up and write config files for an environment
    Deploy {
        #[command(flatten)]
        files: FileArgs,
        /// Print the diff (secrets masked) and the findings; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Render and validate; write nothing. Exit 2 on any error finding
    Validate {
        #[command(flatten)]
        files: FileArgs,
    },
    /// Every backup: id, time, environment, files, size, who made it, whether it verifies
    ListBackups {
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Restore the files of a backup (after verifying it and backing up the present)
    Rollback {
        #[arg(long, value_name = "ID")]
        backup_id: String,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Every deploy and rollback; an interrupted one says where each file stands
    History {
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// A base config file (JSON or TOML); repeat to deploy several as one change
    #[arg(long = "config-file", value_name = "FILE", required = true)]
    config_files: Vec<PathBuf>,
    /// The environment whose `environments.<ENV>` values are merged in
    #[arg(long)]
    environment: String,
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// Where config files are deployed [default: the config's `config_dir`, else ./config]
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
}

pub async fn run(ctx: &Context, cmd: ConfigCommand) -> CliResult {
    match cmd {
        ConfigCommand::Deploy { files, dry_run } => {
            let deployer = deployer(ctx, &files.dir, true)?;
            let report = deployer
                .deploy(&files.config_files, &files.environment, dry_run)
                .await?;
            if ctx.out.is_json() {
                ctx.out.json(&report)?;
                return Ok(Exit::Success);
            }
            print_findings(ctx, &report.findings)?;
            print_files(ctx, &report.files, dry_run)?;
            let summary = if dry_run {
                "dry run: nothing changed".to_string()
            } else if report.change_id.is_none() {
                "nothing to change: every file is already as rendered".to_string()
            } else {
                format!(
                    "deployed {} file(s) to {} for {} (change #{}, backup {})",
                    report
                        .files
                        .iter()
                        .filter(|f| f.change != FileChange::Unchanged)
                        .count(),
                    deployer.settings().config_dir.display(),
                    report.environment,
                    report.change_id.unwrap_or_default(),
                    report.backup_id.as_deref().unwrap_or("-"),
                )
            };
            ctx.out.text(summary)?;
            Ok(Exit::Success)
        }
        ConfigCommand::Validate { files } => {
            let deployer = deployer(ctx, &files.dir, true)?;
            let (rendered, findings) = deployer
                .render(&files.config_files, &files.environment)
                .await?;
            if ctx.out.is_json() {
                ctx.out.json(&serde_json::json!({
                    "environment": files.environment,
                    "files": rendered.iter().map(|r| &r.name).collect::<Vec<_>>(),
                    "findings": findings,
                    "valid": true,
                }))?;
            } else {
                print_findings(ctx, &findings)?;
                ctx.out.text(format!(
                    "valid for {}: {}",
                    files.environment,
                    rendered
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
            }
            Ok(Exit::Success)
        }
        ConfigCommand::ListBackups { dir } => {
            let backups = deployer(ctx, &dir, false)?.backups().await?;
            if ctx.out.is_json() {
                ctx.out.json(&backups)?;
            } else {
                print_backups(ctx, &backups)?;
            }
            Ok(Exit::Success)
        }
        ConfigCommand::Rollback {
            backup_id,
            dry_run,
            dir,
        } => {
            let deployer = deployer(ctx, &dir, false)?;
            let report = deployer.rollback(&backup_id, dry_run).await?;
            if ctx.out.is_json() {
                ctx.out.json(&report)?;
            } else {
                print_files(ctx, &report.files, false)?;
                ctx.out.text(if dry_run {
                    format!("dry run: would restore {backup_id}; nothing changed")
                } else {
                    format!(
                        "restored {backup_id} (change #{}; the state before is backup {})",
                        report.change_id.unwrap_or_default(),
                        report.backup_id.as_deref().unwrap_or("-")
                    )
                })?;
            }
            Ok(Exit::Success)
        }
        ConfigCommand::History { dir } => {
            let history = deployer(ctx, &dir, false)?.history().await?;
            if ctx.out.is_json() {
                ctx.out.json(&history)?;
            } else {
                print_history(ctx, &history)?;
            }
            Ok(Exit::Success)
        }
    }
}

/// The deployer on the shared store; validators (and so the plugin
/// runtime) only for commands that validate.
fn deployer(ctx: &Context, dir: &DirArgs, with_validators: bool) -> CliResult<ConfigDeployer> {
    let settings = DeployerSettings::from_settings(&ctx.settings, dir.config_dir.as_deref());
    let registry = if with_validators
        && !ctx
            .settings
            .config
            .config
            .config_deploy
            .validators
            .is_empty()
    {
        Some(ctx.registry()?)
    } else {
        None
    };
    let validators =
        Validators::from_settings(&ctx.settings, registry.as_ref()).map_err(Failure::usage)?;
    Ok(ConfigDeployer::new(settings, validators, ctx.store.clone()).with_sink(ctx.out.sink()))
}

fn print_findings(ctx: &Context, findings: &[Finding]) -> CliResult<()> {
    for f in findings.iter().filter(|f| f.severity != Severity::Error) {
        ctx.out.text(f.to_string())?;
    }
    Ok(())
}

fn print_files(ctx: &Context, files: &[FileDiff], with_diff: bool) -> CliResult<()> {
    for f in files {
        let change = match f.change {
            FileChange::Added => "new",
            FileChange::Changed => "changed",
            FileChange::Unchanged => "unchanged",
            FileChange::Removed => "removed",
        };
        let secret = if f.holds_secrets {
            " (holds secrets: mode 0600)"
        } else {
            ""
        };
        ctx.out.text(format!("  {}: {change}{secret}", f.name))?;
        if with_diff && !f.diff.is_empty() {
            ctx.out.text(f.diff.trim_end())?;
        }
    }
    Ok(())
}

fn print_backups(ctx: &Context, backups: &[BackupInfo]) -> CliResult<()> {
    let rows: Vec<Vec<String>> = backups
        .iter()
        .map(|b| {
            vec![
                b.record.id.clone(),
                b.record
                    .created_at
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string(),
                b.record.environment.clone(),
                b.record
                    .files
                    .iter()
                    .map(|f| {
                        if f.existed {
                            f.name.clone()
                        } else {
                            format!("{} (absent)", f.name)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("{} B", b.record.total_size),
                b.made_by.clone().unwrap_or_else(|| "-".into()),
                match b.verifies {
                    Some(true) => "yes".into(),
                    Some(false) => format!("NO: {}", b.problems.join("; ")),
                    None => format!("(on {})", b.record.host),
                },
            ]
        })
        .collect();
    ctx.out.text(table(
        &[
            "ID",
            "TAKEN",
            "ENVIRONMENT",
            "FILES",
            "SIZE",
            "MADE BY",
            "VERIFIES",
        ],
        &rows,
    ))?;
    Ok(())
}

pub fn print_history(ctx: &Context, history: &[ChangeInfo]) -> CliResult<()> {
    if history.is_empty() {
        ctx.out.text("no config changes recorded")?;
    }
    for c in history {
        let r = &c.record;
        let mut line = format!(
            "#{} {} {} {} in {} by {} at {}",
            r.id,
            r.kind.as_str(),
            r.state.as_str(),
            r.environment,
            r.config_dir,
            r.actor,
            r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        if let Some(from) = &r.restored_from {
            line.push_str(&format!(", restoring {from}"));
        }
        if let Some(backup) = &r.backup_id {
            line.push_str(&format!(", backup {backup}"));
        }
        if let Some(error) = &r.error {
            line.push_str(&format!("\n    error: {error}"));
        }
        if let Some(holder) = &c.running {
            line.push_str(&format!("\n    running: {holder}"));
        } else if c.is_interrupted() && c.files_now.is_none() {
            line.push_str(&format!(
                "\n    interrupted on host {}; its files are there: run `gantry status` on it",
                r.host
            ));
        }
        if let (Some(now), true) = (&c.files_now, c.is_interrupted()) {
            line.push_str("\n    interrupted; files now:");
            for (name, state) in now {
                let what = match state {
                    crate::configdeploy::FileNow::New => "new (as this change wrote it)",
                    crate::configdeploy::FileNow::Old => "old (as before this change)",
                    crate::configdeploy::FileNow::Other => "changed since",
                };
                line.push_str(&format!("\n      {name}: {what}"));
            }
            if let Some(backup) = &r.backup_id {
                line.push_str(&format!(
                    "\n    undo with `gantry config rollback --backup-id {backup}`, or deploy again"
                ));
            }
        }
        ctx.out.text(line)?;
    }
    Ok(())
}
