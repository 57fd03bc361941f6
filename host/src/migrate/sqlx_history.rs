//! Keeping sqlx's own history, `_sqlx_migrations`, in step with gantry's,
//! so a service that runs `sqlx::migrate!().run(&pool)` at start-up finds
//! nothing pending after `gantry migrate`, and exactly the migrations up
//! to X after `gantry migrate rollback --target X`.
//!
//! On when `migrations.sqlx_history` is true; off when false; by default
//! (auto) on when the migrations folder is in sqlx's form (the files
//! themselves, all SQL, no dialect folders) or the database already has
//! `_sqlx_migrations`. The table is created as sqlx 0.8 creates it, before
//! the first migration runs (so a migration may edit it), and each applied
//! migration's row — sqlx's description, SHA-384 checksum of the file,
//! execution time in nanoseconds — is written in the same transaction as
//! gantry's own history row (a no-transaction migration's when it
//! completes); a revert deletes it with gantry's row.

use super::runner::Migrator;
use super::source::{Body, Migration, Source};
use crate::db::{Db, Dialect};
use sha2::{Digest, Sha384};

/// `migrations.sqlx_history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlxHistory {
    #[default]
    Auto,
    On,
    Off,
}

impl From<Option<bool>> for SqlxHistory {
    fn from(setting: Option<bool>) -> Self {
        match setting {
            None => SqlxHistory::Auto,
            Some(true) => SqlxHistory::On,
            Some(false) => SqlxHistory::Off,
        }
    }
}

pub const TABLE: &str = "_sqlx_migrations";

/// What gantry reads of sqlx 0.9's `sqlx.toml` (`[migrate]`): the history
/// table's name (may be schema-qualified), the migrations folder, and the
/// characters left out of checksums. Other keys are sqlx's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlxConfig {
    pub table: String,
    pub migrations_dir: Option<std::path::PathBuf>,
    pub ignored_chars: std::collections::BTreeSet<char>,
    /// The file it came from.
    pub path: Option<std::path::PathBuf>,
}

impl Default for SqlxConfig {
    fn default() -> Self {
        SqlxConfig {
            table: TABLE.into(),
            migrations_dir: None,
            ignored_chars: Default::default(),
            path: None,
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct SqlxToml {
    #[serde(default)]
    migrate: SqlxMigrate,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct SqlxMigrate {
    table_name: Option<String>,
    migrations_dir: Option<String>,
    #[serde(default)]
    ignored_chars: std::collections::BTreeSet<char>,
}

impl SqlxConfig {
    /// The first `sqlx.toml` in `dirs` (its `migrations-dir` taken
    /// relative to it), else the defaults. A file that does not parse is
    /// an error naming it.
    pub fn find(dirs: &[&std::path::Path]) -> Result<SqlxConfig, String> {
        for dir in dirs {
            let path = dir.join("sqlx.toml");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let parsed: SqlxToml =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let m = parsed.migrate;
            return Ok(SqlxConfig {
                table: m.table_name.unwrap_or_else(|| TABLE.into()),
                migrations_dir: m.migrations_dir.map(|d| dir.join(d)),
                ignored_chars: m.ignored_chars,
                path: Some(path),
            });
        }
        Ok(SqlxConfig::default())
    }

    /// sqlx's checksum of a migration's text: SHA-384, the ignored
    /// characters left out.
    pub fn checksum(&self, text: &str) -> Vec<u8> {
        if self.ignored_chars.is_empty() {
            return checksum(text);
        }
        let kept: String = text
            .chars()
            .filter(|c| !self.ignored_chars.contains(c))
            .collect();
        checksum(&kept)
    }
}

/// sqlx 0.8's own DDL for its history table, per dialect.
fn create_table(dialect: Dialect, table: &str) -> String {
    let (at, blob) = match dialect {
        Dialect::Postgres => ("TIMESTAMPTZ NOT NULL DEFAULT now()", "BYTEA"),
        Dialect::Sqlite => ("TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP", "BLOB"),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on {at},
    success BOOLEAN NOT NULL,
    checksum {blob} NOT NULL,
    execution_time BIGINT NOT NULL
)"
    )
}

/// True when `table` (as sqlx.toml names it: maybe schema-qualified or
/// quoted) exists.
pub async fn table_exists(db: &mut Db, table: &str) -> Result<bool, sqlx::Error> {
    match db {
        Db::Postgres(_) => {
            let name = super::history::literal(db.dialect(), table);
            db.flag(&format!("SELECT to_regclass({name}) IS NOT NULL"))
                .await
        }
        Db::Sqlite(_) => db.table_exists(table.trim_matches('"')).await,
    }
}

/// The description sqlx derives from `NNN_some_name.sql`: `some name`.
pub fn description(name: &str) -> String {
    name.replace('_', " ")
}

/// sqlx's checksum: SHA-384 of the file's text as read.
pub fn checksum(text: &str) -> Vec<u8> {
    Sha384::digest(text.as_bytes()).to_vec()
}

/// For PostgreSQL's one-round-trip batch: the row, timed like gantry's
/// (by the step's clock; `installed_on` the step's own time, where the
/// column's `now()` would be its query's arrival), as an INSERT without
/// its terminator (it runs inside a WITH).
pub fn pg_insert(config: &SqlxConfig, m: &Migration, up: &str) -> String {
    format!(
        "INSERT INTO {table} (version, description, installed_on, success, checksum, execution_time) \
         VALUES ({v}, {desc}, clock_timestamp(), TRUE, decode('{sum}', 'hex'), ({ms} * 1000000)::bigint) \
         ON CONFLICT (version) DO UPDATE SET description = excluded.description, success = TRUE, \
         checksum = excluded.checksum, execution_time = excluded.execution_time",
        table = config.table,
        v = m.version,
        desc = super::history::literal(Dialect::Postgres, &description(&m.name)),
        sum = hex::encode(config.checksum(up)),
        ms = super::apply::PG_STEP_MS,
    )
}

/// Writes `m`'s row (inside the caller's transaction, if any); `up`, its
/// script (none for a WASM step: sqlx knows no other kind).
pub async fn record(
    db: &mut Db,
    config: &SqlxConfig,
    m: &Migration,
    up: Option<&str>,
    execution_ns: i64,
) -> Result<(), sqlx::Error> {
    let Some(up) = up else {
        return Ok(());
    };
    let sql = format!(
        "INSERT INTO {} (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, $4) ON CONFLICT (version) DO UPDATE SET \
         description = excluded.description, success = TRUE, checksum = excluded.checksum, \
         execution_time = excluded.execution_time",
        config.table
    );
    let sql = sql.as_str();
    let (desc, sum) = (description(&m.name), config.checksum(up));
    match db {
        Db::Postgres(c) => {
            sqlx::query(sql)
                .bind(m.version)
                .bind(&desc)
                .bind(&sum)
                .bind(execution_ns)
                .execute(&mut *c)
                .await?;
        }
        Db::Sqlite(c) => {
            sqlx::query(sql)
                .bind(m.version)
                .bind(&desc)
                .bind(&sum)
                .bind(execution_ns)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Records the file's current checksum for `version` (a repair that
/// accepts an edited file).
pub async fn set_checksum(
    db: &mut Db,
    config: &SqlxConfig,
    version: i64,
    up: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE {} SET checksum = $1 WHERE version = $2",
        config.table
    );
    let sum = config.checksum(up);
    match db {
        Db::Postgres(c) => {
            sqlx::query(&sql)
                .bind(&sum)
                .bind(version)
                .execute(&mut *c)
                .await?;
        }
        Db::Sqlite(c) => {
            sqlx::query(&sql)
                .bind(&sum)
                .bind(version)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Deletes `version`'s row (a revert).
pub async fn forget(db: &mut Db, config: &SqlxConfig, version: i64) -> Result<(), sqlx::Error> {
    db.batch(&format!(
        "DELETE FROM {} WHERE version = {version}",
        config.table
    ))
    .await
}

impl Migrator {
    /// Decides, under the runner's lock, whether sqlx's history is kept
    /// this run; `create` (applying) makes its table when it is, else
    /// (reverting) it is kept only when the table is there.
    pub(super) async fn prepare_sqlx(&self, db: &mut Db, create: bool) -> Result<(), sqlx::Error> {
        let exists = table_exists(db, &self.sqlx.table).await?;
        let on = match self.sqlx_mode {
            SqlxHistory::Off => false,
            SqlxHistory::On => create || exists,
            SqlxHistory::Auto => exists || (create && self.folder_is_sqlx()),
        };
        if on && !exists {
            db.batch(&create_table(db.dialect(), &self.sqlx.table))
                .await?;
        }
        self.sqlx_on.store(on, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// True when this run keeps `_sqlx_migrations` in step.
    pub(super) fn sqlx_on(&self) -> bool {
        self.sqlx_on.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The files themselves in one folder, all SQL: sqlx's layout.
    fn folder_is_sqlx(&self) -> bool {
        let Source::Dir(dir) = &self.source else {
            return false;
        };
        !dir.join("postgres").is_dir()
            && !dir.join("sqlite").is_dir()
            && !self.set.migrations.is_empty()
            && self
                .set
                .migrations
                .iter()
                .all(|m| matches!(m.body, Body::Sql { .. }))
    }
}

/// The migrations source and sqlx.toml's settings for `settings`: an
/// `sqlx.toml` is looked for in the migrations folder, its parent (a
/// crate's root) and beside the deployment config; its `migrations-dir`
/// is the source when gantry is given none. A bad sqlx.toml is an error
/// naming it.
pub fn source_for(settings: &crate::settings::Settings) -> Result<(Source, SqlxConfig), String> {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if let Some(dir) = settings.migrations_dir() {
        dirs.push(dir.to_path_buf());
        if let Some(parent) = dir.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs.push(settings.resolve_path(std::path::Path::new(".")));
    let refs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    let config = SqlxConfig::find(&refs)?;
    let source = match (settings.migrations_dir(), &config.migrations_dir) {
        (Some(dir), _) => Source::Dir(dir.to_path_buf()),
        (None, Some(dir)) => Source::Dir(dir.clone()),
        (None, None) => Source::Builtin,
    };
    Ok((source, config))
}
