//! Command-line parsing and dispatch. One file per subcommand group; no
//! business logic here: commands parse, call the engines, and print.

mod configs;
mod migrate;
mod output;
mod plugin;
mod status;

use crate::config::{self, LoadedConfig};
use crate::error::{CliResult, Exit};
use crate::runtime::{Registry, Runtime, RuntimeSettings};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

pub use output::Output;

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
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v, -vv)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy configuration files with backups; list, roll back, history
    #[command(subcommand)]
    Config(configs::ConfigCommand),
    /// What gantry has done and whether anything was left unfinished
    Status,
    /// Apply database migrations (see also: status, rollback, repair)
    Migrate(migrate::MigrateArgs),
    /// List, inspect, test and scaffold plugins
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
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

pub fn run(cli: Cli) -> CliResult<Exit> {
    let ctx = Context::new(cli.global)?;
    match cli.command {
        Command::Config(cmd) => configs::run(&ctx, cmd),
        Command::Status => status::run(&ctx),
        Command::Migrate(args) => migrate::run(&ctx, args),
        Command::Plugin(cmd) => plugin::run(&ctx, cmd),
    }
}

/// What every command may need, built lazily from the global options.
pub struct Context {
    pub global: GlobalArgs,
    pub config: LoadedConfig,
    pub out: Output,
}

impl Context {
    pub fn new(global: GlobalArgs) -> CliResult<Context> {
        let path = config::locate(global.config.as_deref());
        let config = config::load(path.as_deref())?;
        let out = Output::new(global.json);
        Ok(Context {
            global,
            config,
            out,
        })
    }

    pub fn runtime_settings(&self) -> RuntimeSettings {
        let plugins = &self.config.config.plugins;
        let mut settings = RuntimeSettings::default();
        if let Some(dir) = &plugins.cache_dir {
            settings.cache_dir = Some(self.config.resolve(dir));
        }
        if let Some(mib) = plugins.cache_max_mib {
            settings.cache_max_bytes = mib << 20;
        }
        if let Some(mib) = plugins.max_memory_mib {
            settings.engine.max_memory_bytes = (mib << 20) as usize;
        }
        settings
    }

    pub fn runtime(&self) -> CliResult<Runtime> {
        Runtime::new(self.runtime_settings()).map_err(crate::Failure::failed)
    }

    /// `--plugin-dir`, else the config's `plugins.dir`, else `.gantry/plugins`.
    pub fn plugin_dir(&self) -> PathBuf {
        if let Some(dir) = &self.global.plugin_dir {
            return dir.clone();
        }
        match &self.config.config.plugins.dir {
            Some(dir) => self.config.resolve(dir),
            None => PathBuf::from(".gantry/plugins"),
        }
    }

    pub fn registry(&self, runtime: &Runtime) -> Registry {
        Registry::load(
            runtime,
            Some(&self.plugin_dir()),
            &self.config.config.plugins.pins,
        )
    }
}
