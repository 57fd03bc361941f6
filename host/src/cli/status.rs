//! `gantry status`: what the state store says, and anything unfinished.
//! Exit 0 when nothing is unfinished, 1 when a change was interrupted.

use super::Context;
use super::configs::{print_history, state_target};
use crate::configdeploy::with_files_now;
use crate::error::{CliResult, Exit, Failure};
use crate::store::{ChangeState, Store};

pub fn run(ctx: &Context) -> CliResult {
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::failed)?;
    io.block_on(async {
        let target = state_target(ctx)?;
        let changes = Store::with(&target, async |store| store.changes().await)
            .await
            .map_err(Failure::failed)?;
        let interrupted: Vec<_> = changes
            .iter()
            .filter(|c| c.state == ChangeState::InProgress)
            .cloned()
            .map(with_files_now)
            .collect();
        let last: Vec<_> = changes
            .last()
            .cloned()
            .map(with_files_now)
            .into_iter()
            .collect();
        if ctx.out.is_json() {
            ctx.out.json(&serde_json::json!({
                "state_store": target.to_string(),
                "last_config_change": last.first(),
                "interrupted": interrupted,
            }))?;
        } else {
            ctx.out.text(format!("state store: {target}"))?;
            if interrupted.is_empty() {
                ctx.out.text("nothing unfinished")?;
                if !last.is_empty() {
                    ctx.out.text("last config change:")?;
                    print_history(ctx, &last)?;
                }
            } else {
                ctx.out.text(format!(
                    "{} interrupted config change(s):",
                    interrupted.len()
                ))?;
                print_history(ctx, &interrupted)?;
            }
        }
        Ok(if interrupted.is_empty() {
            Exit::Success
        } else {
            Exit::Failed
        })
    })
}
