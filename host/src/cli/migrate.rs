//! `gantry migrate [status | rollback | repair]`: parse, build a
//! `Migrator`, report its events, print its results.

use super::Context;
use crate::error::{CliResult, Exit, Failure};
use crate::migrate::{
    ApplyOptions, Direction, MigrationId, Migrator, RepairAction, RunReport, Status, Summary,
};
use crate::report::{Mode, table};
use crate::settings::Flags;
use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    #[command(subcommand)]
    command: Option<MigrateCommand>,
    /// Apply up to and including this migration (version or name)
    #[arg(long, value_name = "ID")]
    target: Option<String>,
    /// Print the plan; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Apply pending migrations older than the newest applied one
    #[arg(long)]
    allow_out_of_order: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Database to migrate [default: the config's `database`, else sqlite://.gantry/auth.db]
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Migrations: a directory of dialect folders or of the files themselves
    /// [default: the config's `migrations.dir`, else ./migrations, else the built-in auth schema]
    #[arg(long, global = true, value_name = "DIR")]
    migrations_dir: Option<PathBuf>,
    /// Give up waiting for another runner's lock after this many seconds
    #[arg(long, global = true, default_value_t = 120, value_name = "SECS")]
    lock_timeout: u64,
    /// Who to record as doing this [default: $GANTRY_ACTOR, else user@host]
    #[arg(long, global = true)]
    actor: Option<String>,
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// One row per migration. Exit 0 up to date, 3 pending, 1 needs attention
    Status,
    /// Revert every applied migration newer than --target (0: all)
    Rollback {
        #[arg(long, value_name = "ID")]
        target: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Take over the history another tool wrote (never altering it)
    Adopt {
        #[arg(long, value_enum)]
        from: AdoptFrom,
        /// Record migrations whose files changed since they were applied
        #[arg(long)]
        accept_drift: bool,
        /// Check and report; record nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Get out of a failed, interrupted or drifted state
    Repair {
        action: RepairAction,
        id: String,
        /// Why, for the log
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AdoptFrom {
    /// `_sqlx_migrations`, as sqlx-cli and `sqlx::migrate!` write it
    Sqlx,
    /// golang-migrate's `schema_migrations` (version, dirty)
    GolangMigrate,
}

impl MigrateArgs {
    /// The flags that feed the resolved settings.
    pub fn fill(&self, flags: &mut Flags) {
        flags.database_url = self.db.database_url.clone();
        flags.migrations_dir = self.db.migrations_dir.clone();
        flags.actor = self.db.actor.clone();
    }
}

pub async fn run(ctx: &Context, args: MigrateArgs) -> CliResult {
    let migrator = migrator(ctx, &args.db).await?;
    let id = |text: &str| MigrationId::parse(text).map_err(|e| Failure::usage(anyhow!(e)));
    match args.command {
        None => {
            let options = ApplyOptions {
                target: args.target.as_deref().map(id).transpose()?,
                dry_run: args.dry_run,
                allow_out_of_order: args.allow_out_of_order,
            };
            let report = migrator.migrate(&options).await?;
            finish(ctx, &migrator, &report)
        }
        Some(MigrateCommand::Status) => {
            let status = migrator.status().await?;
            print_status(ctx, &migrator, &status)?;
            Ok(match status.summary() {
                Summary::UpToDate => Exit::Success,
                Summary::Pending => Exit::Inconclusive,
                Summary::Attention => Exit::Failed,
            })
        }
        Some(MigrateCommand::Rollback { target, dry_run }) => {
            let report = migrator.rollback(&id(&target)?, dry_run).await?;
            finish(ctx, &migrator, &report)
        }
        Some(MigrateCommand::Adopt {
            from,
            accept_drift,
            dry_run,
        }) => {
            let report = match from {
                AdoptFrom::Sqlx => migrator.adopt_sqlx(accept_drift, dry_run).await?,
                AdoptFrom::GolangMigrate => migrator.adopt_golang_migrate(dry_run).await?,
            };
            if ctx.out.is_json() {
                ctx.out.json(&report)?;
            } else {
                for drift in &report.accepted_drift {
                    ctx.out.text(format!("accepted: {drift}"))?;
                }
                let verb = if dry_run { "would adopt" } else { "adopted" };
                let table = match from {
                    AdoptFrom::Sqlx => "_sqlx_migrations",
                    AdoptFrom::GolangMigrate => "schema_migrations",
                };
                ctx.out.text(format!(
                    "{verb} {} migrations from {table} ({} already recorded); {table} is unchanged",
                    report.adopted.len(),
                    report.already.len()
                ))?;
            }
            Ok(Exit::Success)
        }
        Some(MigrateCommand::Repair {
            action,
            id: text,
            note,
        }) => {
            let target = id(&text)?;
            migrator.repair(action, &target, note.as_deref()).await?;
            if ctx.out.is_json() {
                ctx.out
                    .json(&serde_json::json!({"repaired": text, "action": action.as_str()}))?;
            } else {
                ctx.out
                    .text(format!("{}: {text} recorded", action.as_str()))?;
            }
            Ok(Exit::Success)
        }
    }
}

async fn migrator(ctx: &Context, args: &DbArgs) -> CliResult<Migrator> {
    let settings = &ctx.settings;
    let (source, sqlx) =
        crate::migrate::sqlx_source_for(settings).map_err(|e| Failure::usage(anyhow!(e)))?;
    // The folder index lives beside the compile cache.
    let index = settings
        .cache_dir
        .as_ref()
        .map(|dir| dir.join("migration-index"));
    let migrator = Migrator::open_indexed(settings.database()?, source, index)
        .await?
        .with_history_key(settings.backup_dir())
        .with_sqlx_config(sqlx)
        .with_lock_timeout(Duration::from_secs(args.lock_timeout))
        .with_runtime_settings(settings.runtime()?)
        .with_actor(settings.actor.clone())
        .with_sqlx_history(settings.config.config.migrations.sqlx_history.into())
        .with_sink(ctx.out.sink());
    Ok(migrator)
}

fn finish(ctx: &Context, migrator: &Migrator, report: &RunReport) -> CliResult {
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "database": migrator.target().to_string(),
            "dialect": migrator.target().dialect(),
            "migrations": migrator.source().to_string(),
            "report": report,
        }))?;
    } else if ctx.out.mode() != Mode::Quiet {
        let verb = match (report.direction, report.dry_run) {
            (_, true) => "dry run: nothing changed".to_string(),
            (Direction::Up, false) => {
                format!("applied {} on {}", report.done.len(), migrator.target())
            }
            (Direction::Down, false) => {
                format!("reverted {} on {}", report.done.len(), migrator.target())
            }
        };
        ctx.out.text(verb)?;
    }
    Ok(Exit::Success)
}

fn print_status(ctx: &Context, migrator: &Migrator, status: &Status) -> CliResult<()> {
    let summary = status.summary();
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "database": migrator.target().to_string(),
            "dialect": migrator.target().dialect(),
            "migrations_source": migrator.source().to_string(),
            "summary": summary,
            "migrations": status.rows,
            "runner": status.runner,
        }))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = status
        .rows
        .iter()
        .map(|r| {
            let mut state = r.state.as_str().to_string();
            if let Some(p) = &r.progress
                && p.done < p.total
            {
                state.push_str(&format!(" ({}/{} statements)", p.done, p.total));
            }
            vec![
                format!("{:03}", r.version),
                r.name.clone(),
                state,
                r.applied_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "-".into()),
                r.duration_ms
                    .map(|d| format!("{d:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
                if r.no_transaction {
                    "no".into()
                } else {
                    "yes".into()
                },
                r.kind.clone(),
            ]
        })
        .collect();
    let mut text = format!(
        "database: {}\nmigrations: {}\n",
        migrator.target(),
        migrator.source()
    );
    if let Some(runner) = &status.runner {
        text.push_str(&format!("running now: {runner}\n"));
    }
    text.push_str(&table(
        &[
            "VERSION",
            "NAME",
            "STATE",
            "APPLIED AT",
            "DURATION",
            "TX",
            "KIND",
        ],
        &rows,
    ));
    for r in status.rows.iter().filter(|r| r.error.is_some()) {
        text.push_str(&format!(
            "\n{}: {}",
            r.id,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    for r in &status.rows {
        use crate::migrate::signature::Verdict;
        let why = match r.recorded {
            Some(Verdict::Invalid) => {
                "fails its signature (changed since it was recorded, or signed by another installation)"
            }
            Some(Verdict::Unsigned) => "is unsigned (recorded without the installation key)",
            _ => continue,
        };
        text.push_str(&format!(
            "\n{}: the down recorded for it {why}; gantry will not run it",
            r.id
        ));
    }
    let pending = status
        .rows
        .iter()
        .filter(|r| r.state == crate::migrate::State::Pending)
        .count();
    text.push_str(&match summary {
        Summary::UpToDate => "\nup to date".to_string(),
        Summary::Pending => format!("\n{pending} pending"),
        Summary::Attention => "\nneeds attention: see `gantry migrate repair --help`".to_string(),
    });
    ctx.out.text(text)?;
    Ok(())
}
