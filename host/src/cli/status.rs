//! `gantry status`: what the state store says, and anything running or
//! unfinished. Exit 0 when nothing is interrupted, 1 when a change was.

use super::Context;
use super::configs::print_history;
use crate::configdeploy::changes;
use crate::error::{CliResult, Exit};

pub async fn run(ctx: &Context) -> CliResult {
    let target = &ctx.settings.state;
    let all = changes(&ctx.store, &ctx.settings.host).await?;
    let running: Vec<_> = all.iter().filter(|c| c.is_running()).cloned().collect();
    let interrupted: Vec<_> = all.iter().filter(|c| c.is_interrupted()).cloned().collect();
    let last: Vec<_> = all.last().cloned().into_iter().collect();
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "state_store": target.to_string(),
            "host": ctx.settings.host,
            "last_config_change": last.first(),
            "running": running,
            "interrupted": interrupted,
        }))?;
    } else {
        ctx.out.text(format!("state store: {target}"))?;
        if !running.is_empty() {
            ctx.out
                .text(format!("{} config change(s) running:", running.len()))?;
            print_history(ctx, &running)?;
        }
        if interrupted.is_empty() {
            ctx.out.text("nothing interrupted")?;
            if running.is_empty() && !last.is_empty() {
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
}
