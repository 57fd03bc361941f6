//! `gantry rotate jwt-key --environment ENV [--key REF] [--kid KID]
//! [--alg ALG] [--finish] [--dry-run] [--status]`: the three-phase key
//! rotation (see `deploy::rotate`). Keys are named by kid and fingerprint
//! only.

use super::Context;
use super::deploy::{plan, print};
use crate::deploy::{KeyStatus, RotateOptions, RotationReport, prepare};
use crate::error::{CliResult, Exit};
use crate::store::RotationState;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Rotate the JWT signing key without logging anyone out
    JwtKey(JwtKeyArgs),
}

#[derive(Debug, Args)]
pub struct JwtKeyArgs {
    #[arg(long, short = 'e', default_value = "development")]
    environment: String,
    /// The new key, as a reference you have updated: ${env:NAME} or
    /// ${file:PATH} [default: 32 random bytes written 0600 under .gantry/keys/]
    #[arg(long, value_name = "REF")]
    key: Option<String>,
    /// The new key's id [default: ENV-YYYYMMDDHHMMSS]
    #[arg(long)]
    kid: Option<String>,
    /// The new key's algorithm: HS256, EdDSA, ES256 or RS256 [default: the
    /// signing key's]
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// Show the key set (kids, algorithms, statuses, fingerprints) and the
    /// rotation under way; change nothing
    #[arg(long, conflicts_with_all = ["key", "kid", "alg", "finish", "dry_run"])]
    status: bool,
    /// Remove the old key (phase 3), once its tokens have expired
    #[arg(long, conflicts_with_all = ["key", "kid", "alg", "dry_run"])]
    finish: bool,
    /// Print the phases; change nothing
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: &Context, cmd: RotateCommand) -> CliResult {
    let RotateCommand::JwtKey(args) = cmd;
    let mut plan = prepare(plan(ctx, &args.environment)?, None).await?;
    if args.status {
        let status = plan.key_status().await?;
        return show_status(ctx, &status);
    }
    let report = plan
        .rotate(RotateOptions {
            key: args.key,
            kid: args.kid,
            alg: args.alg,
            finish: args.finish,
            dry_run: args.dry_run,
        })
        .await?;
    show(ctx, &report)
}

fn show(ctx: &Context, report: &RotationReport) -> CliResult {
    if ctx.out.is_json() {
        ctx.out.json(report)?;
    } else {
        for deployment in &report.deployments {
            print(ctx, deployment)?;
        }
        let line = match report.state {
            RotationState::Planned => format!(
                "dry run: rotate {} from `{}` to `{}`: {}; nothing changed",
                report.environment,
                report.old_kid,
                report.new_kid,
                report.reason.as_deref().unwrap_or_default()
            ),
            RotationState::Waiting if report.phase == 1 => format!(
                "{}: `{}` (fingerprint {}) is published and verifies; it signs after {}, once JWKS caches hold it — `gantry rotate jwt-key -e {}` (or `gantry up`) goes on",
                report.environment,
                report.new_kid,
                report.fingerprint,
                report.next_after.as_deref().unwrap_or("-"),
                report.environment,
            ),
            RotationState::Waiting => format!(
                "{}: `{}` (fingerprint {}) signs, `{}` verifies only; it is removed after {} — `gantry rotate jwt-key -e {} --finish` (or `gantry up`){}",
                report.environment,
                report.new_kid,
                report.fingerprint,
                report.old_kid,
                report.next_after.as_deref().unwrap_or("-"),
                report.environment,
                report
                    .reason
                    .as_deref()
                    .map(|r| format!("; {r}"))
                    .unwrap_or_default()
            ),
            RotationState::Done => format!(
                "{}: rotation {} done: only `{}` (fingerprint {}) remains",
                report.environment, report.id, report.new_kid, report.fingerprint
            ),
            other => format!(
                "{}: rotation {} {other} at phase {}: {}",
                report.environment,
                report.id,
                report.phase,
                report.reason.as_deref().unwrap_or("-")
            ),
        };
        ctx.out.text(line)?;
    }
    Ok(if report.state.is_success() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn show_status(ctx: &Context, status: &KeyStatus) -> CliResult {
    if ctx.out.is_json() {
        ctx.out.json(status)?;
        return Ok(Exit::Success);
    }
    ctx.out.text(format!(
        "{}: the key set{}",
        status.environment,
        if status.deployed {
            " as gantry last deployed it"
        } else {
            " in the deployment config"
        }
    ))?;
    for key in &status.keys {
        ctx.out.text(format!(
            "  {:<24} {:<6} {:<8} fingerprint {}",
            key.kid, key.alg, key.status, key.fingerprint
        ))?;
    }
    let line = match &status.rotation {
        None => "no rotation yet".to_string(),
        Some(r) if r.state == RotationState::Waiting && r.phase == 1 => format!(
            "rotation {}: `{}` published; phase 2 (it signs) after {} (JWKS caches)",
            r.id,
            r.new_kid,
            r.next_after.as_deref().unwrap_or("-")
        ),
        Some(r) if r.state == RotationState::Waiting => format!(
            "rotation {}: `{}` signs; phase 3 (remove `{}`) due after {}",
            r.id,
            r.new_kid,
            r.old_kid,
            r.next_after.as_deref().unwrap_or("-")
        ),
        Some(r) => format!(
            "rotation {} from `{}` to `{}`: {} (phase {})",
            r.id, r.old_kid, r.new_kid, r.state, r.phase
        ),
    };
    ctx.out.text(line)?;
    Ok(Exit::Success)
}
