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

/// sqlx 0.8's own DDL for its history table, per dialect.
fn create_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)"
        }
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)"
        }
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

/// The up script of an SQL migration (sqlx knows no other kind).
fn up_text(m: &Migration) -> Option<&str> {
    match &m.body {
        Body::Sql { up, .. } => Some(up),
        Body::Wasm(_) => None,
    }
}

/// For PostgreSQL's one-round-trip batch: the row, timed like gantry's.
pub fn pg_insert(m: &Migration) -> String {
    let Some(up) = up_text(m) else {
        return String::new();
    };
    format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({v}, {desc}, TRUE, decode('{sum}', 'hex'), \
         (EXTRACT(EPOCH FROM clock_timestamp() - statement_timestamp()) * 1000000000)::bigint) \
         ON CONFLICT (version) DO UPDATE SET description = excluded.description, success = TRUE, \
         checksum = excluded.checksum, execution_time = excluded.execution_time;\n",
        v = m.version,
        desc = super::history::literal(Dialect::Postgres, &description(&m.name)),
        sum = hex::encode(checksum(up)),
    )
}

/// Writes `m`'s row (inside the caller's transaction, if any).
pub async fn record(db: &mut Db, m: &Migration, execution_ns: i64) -> Result<(), sqlx::Error> {
    let Some(up) = up_text(m) else {
        return Ok(());
    };
    let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES ($1, $2, TRUE, $3, $4) ON CONFLICT (version) DO UPDATE SET \
               description = excluded.description, success = TRUE, checksum = excluded.checksum, \
               execution_time = excluded.execution_time";
    let (desc, sum) = (description(&m.name), checksum(up));
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

/// Deletes `version`'s row (a revert).
pub async fn forget(db: &mut Db, version: i64) -> Result<(), sqlx::Error> {
    db.batch(&format!(
        "DELETE FROM _sqlx_migrations WHERE version = {version}"
    ))
    .await
}

impl Migrator {
    /// Decides, under the runner's lock, whether sqlx's history is kept
    /// this run; `create` (applying) makes its table when it is, else
    /// (reverting) it is kept only when the table is there.
    pub(super) async fn prepare_sqlx(&self, db: &mut Db, create: bool) -> Result<(), sqlx::Error> {
        let exists = db.table_exists(TABLE).await?;
        let on = match self.sqlx_mode {
            SqlxHistory::Off => false,
            SqlxHistory::On => create || exists,
            SqlxHistory::Auto => exists || (create && self.folder_is_sqlx()),
        };
        if on && !exists {
            db.batch(create_table(db.dialect())).await?;
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
            && self.set.migrations.iter().all(|m| up_text(m).is_some())
    }
}
