//! Settings, resolved once per process: the command line's flags, the
//! environment and the deployment config become one typed `Settings`
//! (ripgrep's low-level args → high-level args). Engines take their own
//! typed settings, built from this, and never read flags or the
//! environment themselves.
//!
//! Resolving reads the config file and the environment; it never connects,
//! writes, or resolves a secret that no command has asked for yet.

use crate::config::{self, ConfigError, LoadedConfig};
use crate::db::DbTarget;
use crate::identity;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod runtime;

/// What the command line says, before anything is resolved. Values that
/// clap reads from the environment (`GANTRY_CONFIG`, `DATABASE_URL`, …)
/// arrive here already.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub state_url: Option<String>,
    pub plugin_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub migrations_dir: Option<PathBuf>,
    pub actor: Option<String>,
}

/// The environment variables gantry reads, looked up once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub cache_dir: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// Where cargo builds plugin crates (`CARGO_TARGET_DIR`).
    pub cargo_target_dir: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Env {
        let path = |name| std::env::var_os(name).map(PathBuf::from);
        Env {
            cache_dir: path("GANTRY_CACHE_DIR"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
            home: path("HOME"),
            cargo_target_dir: path("CARGO_TARGET_DIR"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{source_name}: {message}")]
    Invalid {
        /// The file or flag at fault.
        source_name: String,
        message: String,
    },
}

/// Everything a gantry process needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The deployment config as read (built-in defaults when there is none).
    pub config: LoadedConfig,
    /// gantry's state store.
    pub state: DbTarget,
    /// Directory of user plugins.
    pub plugin_dir: PathBuf,
    /// Compile cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Where gantry keeps its own files (`.gantry/` beside the config).
    pub layout: crate::layout::Layout,
    /// Who is recorded as doing things.
    pub actor: String,
    /// This host's name, recorded with every change.
    pub host: String,
    /// Life of a lease between heartbeats.
    pub lease_ttl: Duration,
    /// Where cargo builds plugin crates, for `plugin test DIR`.
    pub cargo_target_dir: Option<PathBuf>,
    database_url: Option<String>,
    migrations_dir: Option<PathBuf>,
}

impl Settings {
    pub fn resolve(flags: Flags, env: &Env) -> Result<Settings, SettingsError> {
        let path = config::locate(flags.config.as_deref());
        let config = config::load(path.as_deref())?;
        let c = &config.config;
        // Every path the config names, and every default, is relative to
        // the config file's directory (flags: to where gantry runs).
        let layout = crate::layout::Layout::beside(&config.resolve(Path::new(".")));
        let state_url = match (&flags.state_url, &c.state.url) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => format!("sqlite://{}", layout.state_db().display()),
        };
        let state = DbTarget::parse(&state_url).map_err(|message| SettingsError::Invalid {
            source_name: if flags.state_url.is_some() {
                "--state-url".into()
            } else {
                config.name() + ": `state.url`"
            },
            message,
        })?;
        let plugin_dir = match (&flags.plugin_dir, &c.plugins.dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => config.resolve(dir),
            (None, None) => layout.plugins(),
        };
        let cache_dir = match &c.plugins.cache_dir {
            Some(dir) => Some(config.resolve(dir)),
            None => env.cache_dir.clone().or_else(|| {
                env.xdg_cache_home
                    .clone()
                    .or_else(|| env.home.as_ref().map(|h| h.join(".cache")))
                    .map(|base| base.join("gantry").join("plugins"))
            }),
        };
        let migrations_dir = match (&flags.migrations_dir, &c.migrations.dir) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(dir)) => Some(config.resolve(dir)),
            (None, None) => Some(config.resolve(Path::new("migrations"))).filter(|d| d.is_dir()),
        };
        Ok(Settings {
            state,
            layout,
            plugin_dir,
            cache_dir,
            actor: flags.actor.clone().unwrap_or_else(identity::actor),
            host: identity::host(),
            lease_ttl: Duration::from_secs(c.state.lease_seconds.max(1)),
            // Absolute against where gantry runs, so the cargo gantry starts
            // in a plugin folder and gantry's own lookup agree on it.
            cargo_target_dir: env
                .cargo_target_dir
                .as_deref()
                .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())),
            database_url: flags.database_url.clone(),
            migrations_dir,
            config,
        })
    }

    /// A path from the config, relative to the config file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.config.resolve(path)
    }

    /// `environments.<name>`, an overlay file's path resolved.
    pub fn environment(&self, name: &str) -> Option<crate::config::Environment> {
        use crate::config::Environment;
        Some(match self.config.config.environments.get(name)? {
            Environment::File(path) => Environment::File(self.resolve_path(path)),
            values => values.clone(),
        })
    }

    /// Config backups (`deployment.backup_dir`), absolute; the
    /// installation key lives there too.
    pub fn backup_dir(&self) -> PathBuf {
        let dir = self.resolve_path(&self.config.config.deployment.backup_dir);
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Where `${file:…}` references are relative to.
    pub fn secrets_base(&self) -> PathBuf {
        self.config.resolve(Path::new("."))
    }

    /// Migrations directory: `--migrations-dir`, the config's
    /// `migrations.dir`, `./migrations` when present; `None` means the auth
    /// schema built into the binary.
    pub fn migrations_dir(&self) -> Option<&Path> {
        self.migrations_dir.as_deref()
    }

    /// The auth database: `--database-url` / `DATABASE_URL`, else the
    /// config's `database` (its password resolved now), else the embedded
    /// default `sqlite://.gantry/auth.db`.
    pub fn database(&self) -> Result<DbTarget, SettingsError> {
        let invalid = |source_name: String, message: String| SettingsError::Invalid {
            source_name,
            message,
        };
        if let Some(url) = &self.database_url {
            return DbTarget::parse(url).map_err(|e| invalid("--database-url".into(), e));
        }
        let Some(section) = &self.config.config.database else {
            // Beside the deployment config, as the state store is.
            let path = self.layout.auth_db();
            return DbTarget::parse(&format!("sqlite://{}", path.display()))
                .map_err(|e| invalid("the default database".into(), e));
        };
        let base = self.secrets_base();
        let name = self.config.name();
        let password = match &section.password {
            Some(p) => Some(
                crate::secrets::resolve(p, &base)
                    .map_err(|e| invalid(name.clone(), format!("`database.password`: {e}")))?,
            ),
            None => None,
        };
        let mut section = section.clone();
        if let Some(url) = &section.url {
            section.url = Some(
                crate::secrets::resolve(url, &base)
                    .map_err(|e| invalid(name.clone(), format!("`database.url`: {e}")))?,
            );
        }
        section
            .target(password.as_deref())
            .map_err(|e| invalid(name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cargo runs in the plugin folder, gantry looks where it runs: a
    /// relative `CARGO_TARGET_DIR` is made absolute once, so both agree.
    #[test]
    fn a_relative_cargo_target_dir_is_made_absolute_where_gantry_runs() {
        let env = Env {
            cargo_target_dir: Some(PathBuf::from("plugin-target")),
            ..Env::default()
        };
        let settings = Settings::resolve(Flags::default(), &env).unwrap();
        assert_eq!(
            settings.cargo_target_dir,
            Some(std::env::current_dir().unwrap().join("plugin-target"))
        );
    }
}
