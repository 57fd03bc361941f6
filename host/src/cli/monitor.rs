//! `gantry monitor`: the API, the rule evaluator (while this process
//! leads), the delivery worker and plugin hot reload, until SIGTERM or
//! Ctrl-C — then it stops taking events, flushes, and exits 0.

use super::Context;
use crate::api::guard::Guard;
use crate::api::{self, Api};
use crate::error::{CliResult, Exit, Failure};
use crate::monitor::{AuthMonitor, MonitorError, MonitorHandle, MonitorSettings};
use crate::runtime::Registry;
use anyhow::anyhow;
use axum::Router;
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Address for the API [default: monitoring.api.listen, 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// A started monitor and its API router, with the listener bound.
pub struct Served {
    pub monitor: Option<(Arc<AuthMonitor>, MonitorHandle)>,
    pub listener: tokio::net::TcpListener,
    pub address: SocketAddr,
    pub router: Router,
    /// Host, content type and token checks for every route.
    pub guard: Guard,
}

/// Binds the API, starts the monitor (when monitoring is enabled, or
/// `required`) and builds the router.
pub async fn start(
    ctx: &Context,
    registry: Arc<Registry>,
    listen: Option<String>,
    required: bool,
) -> CliResult<Served> {
    let config = &ctx.settings.config.config.monitoring;
    let api_config = &config.api;
    let listen = listen.unwrap_or_else(|| api_config.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| Failure::failed(anyhow!("cannot listen on {listen}: {e}")))?;
    let address = listener.local_addr().map_err(Failure::failed)?;
    let token = api_config
        .token
        .as_deref()
        .map(|t| crate::secrets::resolve(t, &ctx.settings.secrets_base()))
        .transpose()
        .map_err(|e| Failure::usage(anyhow!("`monitoring.api.token`: {e}")))?;
    let guard = Guard::new(token, address, api_config.hosts.clone());
    let console = |monitor: Option<Arc<AuthMonitor>>| {
        api::console::router(api::console::Console {
            settings: Arc::new(ctx.settings.clone()),
            store: ctx.store.clone(),
            registry: Arc::clone(&registry),
            monitor,
            inbox: Arc::default(),
        })
    };
    if !config.enabled && !required {
        let (router, doc) = api::with_description(console(None), api_config.max_body_bytes);
        return Ok(Served {
            monitor: None,
            listener,
            address,
            router,
            guard: guard.knowing(&doc),
        });
    }
    let mut settings = MonitorSettings::from_settings(&ctx.settings)?;
    if config.external_url.is_none() {
        // Links in notices lead to this API as bound (`--listen`, port 0).
        settings.external_url = format!("http://{address}");
    }
    crate::monitor::check_plugins(&settings.receivers, &registry, &settings.secrets_base)
        .map_err(MonitorError::from)?;
    let monitor = Arc::new(
        AuthMonitor::new(settings, ctx.store.clone(), Arc::clone(&registry))
            .with_api(format!("http://{address}"))
            .with_sink(ctx.out.sink()),
    );
    let handle = monitor.start();
    let router = api::router(Api {
        monitor: Arc::clone(&monitor),
    })
    .merge(console(Some(Arc::clone(&monitor))));
    let (router, doc) = api::with_description(router, api_config.max_body_bytes);
    let guard = guard.knowing(&doc);
    Ok(Served {
        monitor: Some((monitor, handle)),
        listener,
        address,
        router,
        guard,
    })
}

pub async fn run(ctx: &Context, args: MonitorArgs) -> CliResult {
    let registry = Arc::new(ctx.registry()?);
    let served = start(ctx, registry, args.listen, true).await?;
    let (monitor, handle) = served.monitor.expect("required");
    ctx.out.note(format!(
        "gantry monitor on http://{} (node {})",
        served.address,
        monitor.node()
    ));
    let router = served.guard.wrap(served.router);
    api::serve(served.listener, router, crate::cli::termination())
        .await
        .map_err(Failure::failed)?;
    handle.stop().await;
    Ok(Exit::Success)
}
