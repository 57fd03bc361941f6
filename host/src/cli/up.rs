//! `gantry up [--environment development]`: deploy (or finish an
//! interrupted deployment), then keep hosting — the supervised instances
//! (one that dies is replaced), the monitor and its alert delivery with
//! hot reload, and the API with a page of what runs at `/` — until Ctrl-C
//! or SIGTERM, which stops everything gracefully: the API, the monitor
//! (flushed), then every instance (drained). Exit 0 then; 1 when the
//! deployment failed (it was rolled back, and nothing is left running
//! that was not before).

use super::Context;
use super::deploy::{print, sinks};
use crate::api;
use crate::deploy::Plan;
use crate::error::{CliResult, Exit, Failure};
use clap::Args;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The environment to deploy and host
    #[arg(long, short = 'e', default_value = "development")]
    environment: String,
    /// Address for the API and the status page [default: monitoring.api.listen]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// How often instances are checked for one that died.
const SUPERVISE_EVERY: Duration = Duration::from_secs(2);

pub async fn run(ctx: &Context, args: UpArgs) -> CliResult {
    let registry = Arc::new(ctx.registry()?);
    let plan = Plan::with_defaults(
        &ctx.settings,
        &ctx.store,
        Arc::clone(&registry),
        &args.environment,
        sinks(ctx),
        true,
    )?;
    let unfinished = crate::deploy::latest(&ctx.store)
        .await?
        .into_iter()
        .find(|d| d.record.environment == args.environment && d.interrupted)
        .map(|d| d.record.id);
    let mut plan = crate::deploy::prepare(plan, unfinished.as_deref()).await?;
    let served = super::monitor::start(ctx, Arc::clone(&registry), args.listen, false).await?;
    let router = served.guard.wrap(served.router);
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(served.listener, router, async move {
        let _ = api_stopped.await;
    }));
    let address = served.address;
    ctx.out.note(format!(
        "gantry up: status page and API on http://{address}/"
    ));

    // Deploy, or finish what a killed gantry left half-done.
    let deployed = match &unfinished {
        Some(id) => {
            ctx.out
                .note(format!("finishing interrupted deployment {id}"));
            plan.resume(id).await
        }
        None => plan.deploy(false).await,
    };
    let outcome = match deployed {
        Ok(report) => print(ctx, &report),
        Err(e) => Err(Failure::from(e)),
    };
    let hosting = matches!(outcome, Ok(Exit::Success));
    if hosting {
        ctx.out.note(format!(
            "gantry up: hosting {} ({}); the console at http://{address}/; Ctrl-C or SIGTERM stops",
            args.environment,
            plan.services.join(", ")
        ));
        let stop = crate::cli::termination();
        tokio::pin!(stop);
        let mut rotation_said = None;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(SUPERVISE_EVERY) => {
                    supervise(ctx, &plan).await;
                    finish_rotation(ctx, &mut plan, &mut rotation_said).await;
                }
            }
        }
        ctx.out.note("gantry up: stopping");
    }
    let _ = stop_api.send(());
    let _ = server.await;
    if let Some((_, handle)) = served.monitor {
        handle.stop().await;
    }
    if hosting {
        for service in plan.services.iter().rev() {
            match plan.rollout(service) {
                Ok(rollout) => match rollout.stop_all().await {
                    Ok(n) => ctx.out.note(format!("{service}: {n} instance(s) stopped")),
                    Err(e) => ctx.out.note(format!("{service}: could not stop: {e}")),
                },
                Err(e) => ctx.out.note(format!("{service}: {e}")),
            }
        }
    }
    outcome
}

/// Runs a key rotation's next phase once it may run (phase 3 after the
/// old key's tokens have expired; a phase a kill cut short). What it has
/// to say is said once: a rotation another gantry is running is noted on
/// the first tick that finds it, not on every tick (`said` remembers).
async fn finish_rotation(ctx: &Context, plan: &mut Plan, said: &mut Option<String>) {
    if !plan.rotation_due().await.unwrap_or(false) {
        *said = None;
        return;
    }
    let options = crate::deploy::RotateOptions {
        finish: true,
        ..Default::default()
    };
    let line = match plan.rotate(options).await {
        Ok(r) => format!("key rotation {}: phase {} {}", r.id, r.phase, r.state),
        Err(e) => format!("key rotation: {e}"),
    };
    if said.as_deref() != Some(line.as_str()) {
        ctx.out.note(line.clone());
        *said = Some(line);
    }
}

/// Replaces instances that died, unless a rollout of the service runs.
async fn supervise(ctx: &Context, plan: &Plan) {
    for service in &plan.services {
        let Ok(rollout) = plan.rollout(service) else {
            continue;
        };
        match rollout.ensure_front_door().await {
            Ok(true) => ctx
                .out
                .note(format!("{service}: front door was not running; started it")),
            Ok(false) => {}
            Err(e) => ctx
                .out
                .note(format!("{service}: could not start its front door: {e}")),
        }
        let Ok(status) = rollout.status(false).await else {
            continue;
        };
        let alive = status.instances.iter().filter(|i| i.alive).count();
        if alive >= status.desired || status.running.is_some() {
            continue;
        }
        ctx.out.note(format!(
            "{service}: {alive} of {} instance(s) running; replacing the missing",
            status.desired
        ));
        if let Err(e) = rollout.run(&crate::rollout::Target::Current, false).await {
            ctx.out.note(format!("{service}: could not replace: {e}"));
        }
    }
}
