//! `auth-service`: a small, real auth service on the schema gantry's
//! migrations create. gantry deploys its config, rolls its instances with
//! socket handoff and watches its auth events; the README's quick start,
//! the rollout tests and key rotation all run it.
//!
//!   auth-service [--config config/auth.json] [--database-url URL] [--listen ADDR] [--version V]
//!   auth-service add-user --username NAME --password-env VAR [--tenant T]

mod config;
mod db;
mod events;
mod faults;
mod keys;
mod metrics;
mod routes;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "auth-service", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The deployed auth config
    #[arg(
        long,
        env = "AUTH_SERVICE_CONFIG",
        default_value = "config/auth.json",
        global = true
    )]
    config: PathBuf,
    /// The auth database (gantry's migrations create its schema)
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://.gantry/auth.db",
        global = true
    )]
    database_url: String,
    /// Address to bind when no listener is handed over with LISTEN_FDS
    #[arg(long, env = "AUTH_SERVICE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The version (revision) this instance reports on /healthz
    #[arg(long = "version", env = "AUTH_SERVICE_VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// This instance's name, in metrics and events
    #[arg(long, env = "AUTH_SERVICE_INSTANCE", default_value = "auth-0")]
    instance: String,
    /// How long to keep answering (with Connection: close) after SIGTERM
    #[arg(long, env = "AUTH_SERVICE_DRAIN_MS", default_value_t = 1000)]
    drain_ms: u64,
    /// Faults on purpose (tests): unready, crash-after=SECS, slow=MS, fail-login[=RATE]
    #[arg(long, env = "AUTH_SERVICE_FAULT", default_value = "")]
    fault: String,
    /// Create this user at start when it does not exist (the password from
    /// $AUTH_SERVICE_PASSWORD): a demo or canary account
    #[arg(long, env = "AUTH_SERVICE_BOOTSTRAP_USER")]
    bootstrap_user: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a user (an argon2id hash of the password is stored)
    AddUser {
        #[arg(long)]
        username: String,
        /// Environment variable holding the password (never a flag: it would show in `ps`)
        #[arg(long, default_value = "AUTH_SERVICE_PASSWORD")]
        password_env: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Hash with argon2id's least cost (8 KiB, one pass): an account
        /// for load tests that log in hundreds of times a second; never
        /// for a real user
        #[arg(long)]
        weak_hash_for_load_tests: bool,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTH_SERVICE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        match &cli.command {
            Some(Command::AddUser {
                username,
                password_env,
                tenant,
                weak_hash_for_load_tests,
            }) => {
                add_user(
                    &cli,
                    username,
                    password_env,
                    tenant,
                    *weak_hash_for_load_tests,
                )
                .await
            }
            None => run(&cli).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-service: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// An argon2id hash of the password in `$password_env` (at the least
/// cost when `weak`).
fn hash_password(password_env: &str, weak: bool) -> anyhow::Result<String> {
    use argon2::PasswordHasher;
    let password = std::env::var(password_env)
        .map_err(|_| anyhow::anyhow!("set the password in ${password_env}"))?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt =
        argon2::password_hash::SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hasher = if weak {
        let params = argon2::Params::new(8, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    } else {
        argon2::Argon2::default()
    };
    Ok(hasher
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

fn new_user_id() -> anyhow::Result<String> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id)?;
    Ok(format!("u-{}", hex::encode(id)))
}

async fn add_user(
    cli: &Cli,
    username: &str,
    password_env: &str,
    tenant: &str,
    weak: bool,
) -> anyhow::Result<()> {
    let hash = hash_password(password_env, weak)?;
    let db = db::Db::connect(&cli.database_url).await?;
    db.add_user(&new_user_id()?, username, &hash, tenant)
        .await?;
    println!("user {username} created in tenant {tenant}");
    Ok(())
}

/// `--bootstrap-user`: created unless it exists (several instances may
/// start at once: a lost race to insert is fine).
async fn bootstrap_user(db: &db::Db, username: &str) -> anyhow::Result<()> {
    if db.user(username).await?.is_some() {
        return Ok(());
    }
    let hash = hash_password("AUTH_SERVICE_PASSWORD", false)?;
    if let Err(e) = db
        .add_user(&new_user_id()?, username, &hash, "default")
        .await
        && db.user(username).await?.is_none()
    {
        return Err(e);
    }
    tracing::info!(username, "bootstrap user created");
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let faults = faults::Faults::parse(&cli.fault)?;
    let config = config::AuthConfig::read(&cli.config)?;
    let keys = keys::KeySet::from_config(&config)?;
    let db = db::Db::connect(&cli.database_url).await?;
    if let Some(user) = &cli.bootstrap_user {
        bootstrap_user(&db, user).await?;
    }
    let events = match &config.monitor {
        Some(m) => events::Reporter::start(m.url.clone(), m.token.clone()),
        None => events::Reporter::disabled(),
    };
    let draining = Arc::new(AtomicBool::new(false));
    let app = Arc::new(routes::App {
        db,
        limiter: routes::Limiter::new(
            config
                .rate_limiting_enabled
                .then_some(config.rate_limit_per_minute),
        ),
        keys,
        faults: faults.clone(),
        metrics: metrics::Metrics::default(),
        events,
        version: cli.version.clone(),
        instance: cli.instance.clone(),
        token_seconds: config
            .token_expiry_seconds
            .unwrap_or(config.token_expiry_minutes * 60),
        refresh_days: config.refresh_token_expiry_days,
        draining: Arc::clone(&draining),
        started: Instant::now(),
    });
    let (listeners, handed_over) = serve::listeners(&cli.listen).await?;
    for listener in &listeners {
        tracing::info!(
            instance = %cli.instance,
            version = %cli.version,
            address = %listener.local_addr()?,
            handed_over,
            "serving"
        );
    }
    if let Some(after) = faults.crash_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            tracing::error!("crashing on purpose (fault crash-after)");
            std::process::exit(70);
        });
    }
    serve::serve(
        listeners,
        routes::router(app),
        draining,
        Duration::from_millis(cli.drain_ms),
        serve::termination(),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}
