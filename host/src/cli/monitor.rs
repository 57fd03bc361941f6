//! `gantry monitor`: the API, the rule evaluator (while this process
//! leads), the delivery worker and plugin hot reload, until SIGTERM or
//! Ctrl-C — then it stops taking events, flushes, and exits 0.

use super::Context;
use crate::api::{self, Api};
use crate::error::{CliResult, Exit, Failure};
use crate::monitor::{AuthMonitor, MonitorError, MonitorSettings};
use anyhow::anyhow;
use clap::Args;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Address for the API [default: monitoring.api.listen, 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub async fn run(ctx: &Context, args: MonitorArgs) -> CliResult {
    let settings = MonitorSettings::from_settings(&ctx.settings)?;
    let registry = Arc::new(ctx.registry()?);
    crate::monitor::check_plugins(&settings.receivers, &registry).map_err(MonitorError::from)?;
    let api_config = &ctx.settings.config.config.monitoring.api;
    let token = api_config
        .token
        .as_deref()
        .map(|t| crate::secrets::resolve(t, &ctx.settings.secrets_base()))
        .transpose()
        .map_err(|e| Failure::usage(anyhow!("`monitoring.api.token`: {e}")))?;
    let listen = args.listen.unwrap_or_else(|| api_config.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Failure::failed(anyhow!("cannot listen on {listen}: {e}")))?;
    let address = listener.local_addr().map_err(Failure::failed)?;
    let monitor = Arc::new(
        AuthMonitor::new(settings, ctx.store.clone(), registry)
            .with_api(format!("http://{address}"))
            .with_sink(ctx.out.sink()),
    );
    let handle = monitor.start();
    ctx.out.note(format!(
        "gantry monitor on http://{address} (node {})",
        monitor.node()
    ));
    let router = api::router(
        Api {
            monitor: Arc::clone(&monitor),
            token,
        },
        api_config.max_body_bytes,
    );
    api::serve(listener, router, crate::cli::termination())
        .await
        .map_err(Failure::failed)?;
    handle.stop().await;
    Ok(Exit::Success)
}
