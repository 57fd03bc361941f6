//! Command-line parsing and dispatch. One file per subcommand group; no
//! business logic here: commands parse, call the engines, and hand what
//! they return to the reporter.

mod alerts;
mod configs;
mod deploy;
pub mod frontdoor;
mod migrate;
mod monitor;
mod plugin;
mod plugin_test;
mod rollout;
mod rotate;
mod status;
mod up;

use crate::error::{CliResult, Exit};
use crate::report::Reporter;
use crate::runtime::{Registry, Runtime};
use crate::settings::{Env, Flags, Settings};
use crate::store::Store;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Deploys and watches an authentication service; everything custom is a
/// sandboxed WebAssembly plugin.
#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Deployment config (JSON or TOML) [default: ./deployment_config.json if present]
    #[arg(long, global = true, env = "GANTRY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// gantry's state store: sqlite://PATH or postgres://URL
    #[arg(long, global = true, env = "GANTRY_STATE_URL", value_name = "URL")]
    pub state_url: Option<String>,
    /// Directory of user plugins [default: .gantry/plugins]
    #[arg(long, global = true, env = "GANTRY_PLUGIN_DIR", value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Print machine-readable JSON: one object per line (events, then the result)
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v, -vv)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and results
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy configuration files with backups; list, roll back, history
    #[command(subcommand)]
    Config(configs::ConfigCommand),
    /// Deploy an environment: preflight, migrations, config, rolling updates, checks; rolled back on failure
    Deploy(deploy::DeployArgs),
    /// Roll a deployment back: config restored, services rolled back (migrations only when opted in)
    Rollback(deploy::RollbackArgs),
    /// What gantry has done and whether anything is running or unfinished
    Status(status::StatusArgs),
    /// Apply database migrations (see also: status, rollback, repair)
    Migrate(migrate::MigrateArgs),
    /// List, inspect, test and scaffold plugins
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Replace a service's instances without dropping a request (see also: status, undo)
    Rollout(rollout::RolloutArgs),
    /// Watch auth events: the API, rules, alerts and their delivery, until stopped
    Monitor(monitor::MonitorArgs),
    /// List, show, acknowledge and silence alerts
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Rotate secrets without downtime: `gantry rotate jwt-key`
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// Deploy, then keep hosting: instances, monitor, alerts, status page at / — until Ctrl-C
    Up(up::UpArgs),
    /// A supervised service's front door (gantry starts it): run, status
    #[command(subcommand)]
    FrontDoor(frontdoor::FrontDoorCommand),
}

/// Logs go to stderr; `RUST_LOG` / `GANTRY_LOG` override the level.
pub fn init_logging(cli: &Cli) {
    let default = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,gantry=debug",
        (false, _) => "debug",
    };
    let filter = std::env::var("GANTRY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Runs one command on the process's tokio runtime; the state store is
/// closed on every path.
pub async fn run(cli: Cli) -> CliResult<Exit> {
    let ctx = Context::new(&cli)?;
    let result = match cli.command {
        Command::Config(cmd) => configs::run(&ctx, cmd).await,
        Command::Deploy(args) => deploy::deploy(&ctx, args).await,
        Command::Rollback(args) => deploy::rollback(&ctx, args).await,
        Command::Status(args) => status::run(&ctx, args).await,
        Command::Migrate(args) => migrate::run(&ctx, args).await,
        Command::Plugin(cmd) => plugin::run(&ctx, cmd).await,
        Command::Rollout(args) => rollout::run(&ctx, args).await,
        Command::Monitor(args) => monitor::run(&ctx, args).await,
        Command::Alerts(cmd) => alerts::run(&ctx, cmd).await,
        Command::Up(args) => up::run(&ctx, args).await,
        Command::Rotate(cmd) => rotate::run(&ctx, cmd).await,
        Command::FrontDoor(cmd) => frontdoor::run(&ctx, cmd).await,
    };
    ctx.out.finish();
    ctx.store.close().await;
    result
}

/// What every command may need: the settings, the reporter, the state
/// store (connected on first use) and the plugin runtime (built on first
/// use).
pub struct Context {
    pub settings: Settings,
    pub out: Arc<Reporter>,
    pub store: Store,
    runtime: OnceLock<Arc<Runtime>>,
}

impl Context {
    pub fn new(cli: &Cli) -> CliResult<Context> {
        let global = &cli.global;
        let mut flags = Flags {
            config: global.config.clone(),
            state_url: global.state_url.clone(),
            plugin_dir: global.plugin_dir.clone(),
            ..Flags::default()
        };
        if let Command::Migrate(args) = &cli.command {
            args.fill(&mut flags);
        }
        let settings = Settings::resolve(flags, &Env::from_process())?;
        let store = Store::lazy(&settings.state);
        Ok(Context {
            out: Reporter::new(global.json, global.quiet),
            store,
            settings,
            runtime: OnceLock::new(),
        })
    }

    /// The plugin runtime, built once.
    pub fn runtime(&self) -> CliResult<Arc<Runtime>> {
        if let Some(rt) = self.runtime.get() {
            return Ok(Arc::clone(rt));
        }
        let rt = Runtime::new(self.settings.runtime()?).map_err(crate::Failure::failed)?;
        Ok(Arc::clone(self.runtime.get_or_init(|| Arc::new(rt))))
    }

    /// The built-ins and the plugin directory.
    pub fn registry(&self) -> CliResult<Registry> {
        Ok(Registry::new(
            self.runtime()?,
            Some(&self.settings.plugin_dir),
            self.settings.config.config.plugins.pins.clone(),
        )
        .with_cargo_target_dir(self.settings.cargo_target_dir.clone()))
    }
}
