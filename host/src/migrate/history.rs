//! `gantry_migrations` (one row per migration that ran or is running) and
//! `gantry_migration_log` (every apply, revert, failure and repair, with
//! who and when), in the migrated database itself.

use super::signature::Signed;
use crate::db::{Db, Dialect, params_for};
use crate::on_conn;
use crate::store::InstallationKey;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub const TABLE: &str = "gantry_migrations";

const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS gantry_migrations (
    version        BIGINT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    state          TEXT NOT NULL,
    no_transaction BOOLEAN NOT NULL DEFAULT false,
    applied_at     TIMESTAMPTZ,
    duration_ms    DOUBLE PRECISION,
    applied_by     TEXT,
    up_script      TEXT,
    down_script    TEXT,
    down_no_transaction BOOLEAN NOT NULL DEFAULT false,
    artifact       BYTEA,
    manifest       TEXT,
    progress       BIGINT NOT NULL DEFAULT 0,
    statements     BIGINT,
    error          TEXT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    signature      TEXT
);
CREATE TABLE IF NOT EXISTS gantry_migration_log (
    id      BIGSERIAL PRIMARY KEY,
    version BIGINT NOT NULL,
    action  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    detail  TEXT
);";

const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS gantry_migrations (
    version        INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    state          TEXT NOT NULL,
    no_transaction BOOLEAN NOT NULL DEFAULT 0,
    applied_at     TEXT,
    duration_ms    REAL,
    applied_by     TEXT,
    up_script      TEXT,
    down_script    TEXT,
    down_no_transaction BOOLEAN NOT NULL DEFAULT 0,
    artifact       BLOB,
    manifest       TEXT,
    progress       INTEGER NOT NULL DEFAULT 0,
    statements     INTEGER,
    error          TEXT,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    signature      TEXT
);
CREATE TABLE IF NOT EXISTS gantry_migration_log (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    action  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    detail  TEXT
);";

pub fn ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => POSTGRES_DDL,
        Dialect::Sqlite => SQLITE_DDL,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    Applied,
    Failed,
    InProgress,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Applied => "applied",
            RowState::Failed => "failed",
            RowState::InProgress => "in_progress",
        }
    }

    fn parse(text: &str) -> RowState {
        match text {
            "applied" => RowState::Applied,
            "in_progress" => RowState::InProgress,
            _ => RowState::Failed,
        }
    }
}

/// A history row, without the stored scripts.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub version: i64,
    pub name: String,
    pub kind: String,
    pub checksum: String,
    pub state: RowState,
    pub no_transaction: bool,
    pub applied_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    pub applied_by: Option<String>,
    pub error: Option<String>,
    pub progress: i64,
    pub statements: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RawRow {
    version: i64,
    name: String,
    kind: String,
    checksum: String,
    state: String,
    no_transaction: bool,
    applied_at: Option<DateTime<Utc>>,
    duration_ms: Option<f64>,
    applied_by: Option<String>,
    error: Option<String>,
    progress: i64,
    statements: Option<i64>,
}

impl From<RawRow> for HistoryRow {
    fn from(r: RawRow) -> Self {
        HistoryRow {
            version: r.version,
            name: r.name,
            kind: r.kind,
            checksum: r.checksum,
            state: RowState::parse(&r.state),
            no_transaction: r.no_transaction,
            applied_at: r.applied_at,
            duration_ms: r.duration_ms,
            applied_by: r.applied_by,
            error: r.error,
            progress: r.progress,
            statements: r.statements,
        }
    }
}

const SELECT_ROWS: &str = "SELECT version, name, kind, checksum, state, no_transaction, applied_at, duration_ms, \
     applied_by, error, progress, statements FROM gantry_migrations ORDER BY version";

/// True when both tables are there and signed: what every run but a
/// database's first finds, in one question (the DDL would take a round
/// trip and table locks).
///
/// On PostgreSQL the question is answered from the catalog caches
/// (`to_regclass`, `has_column_privilege`), not by planning a join over
/// the catalog tables: on a fresh connection the join cost the server
/// about 2 ms of a no-op run, these about 0.3 ms. `has_column_privilege`
/// refuses a column that is not there (undefined_column): a history from
/// before signatures, which `create` brings up to date.
pub async fn in_place(db: &mut Db) -> Result<bool, sqlx::Error> {
    let dialect = db.dialect();
    let sql = match dialect {
        Dialect::Postgres => format!(
            "SELECT COALESCE({} AND has_column_privilege({}, 'signature', 'SELECT'), false)",
            present(dialect, "gantry_migration_log"),
            in_current_schema(TABLE),
        ),
        Dialect::Sqlite => format!(
            "SELECT {} AND {}",
            present(dialect, "gantry_migration_log"),
            signed(dialect)
        ),
    };
    match db.flag(&sql).await {
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(UNDEFINED_COLUMN) => {
            Ok(false)
        }
        answer => answer,
    }
}

/// PostgreSQL's SQLSTATE for a column that does not exist.
const UNDEFINED_COLUMN: &str = "42703";

/// `table` in the current schema as a `regclass`, NULL when it is not
/// there (or no schema on the search path exists).
fn in_current_schema(table: &str) -> String {
    format!("to_regclass(quote_ident(current_schema()) || '.{table}')")
}

/// True when `table` is in the current schema: where the DDL makes it (a
/// table of the same name further along the search path is another
/// database's history).
fn present(dialect: Dialect, table: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("({} IS NOT NULL)", in_current_schema(table)),
        Dialect::Sqlite => format!(
            "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{table}')"
        ),
    }
}

/// True when `gantry_migrations` (in the current schema) has its
/// `signature` column. The catalog, not information_schema: that view
/// costs a fresh connection about 5 ms.
fn signed(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = 'gantry_migrations' \
             AND a.attname = 'signature' AND NOT a.attisdropped)"
        }
        Dialect::Sqlite => {
            "EXISTS (SELECT 1 FROM pragma_table_info('gantry_migrations') WHERE name = 'signature')"
        }
    }
}

/// Creates the tables if they are missing (when not `in_place`). A
/// history from before rows were signed gains its `signature` column, and
/// its rows are signed as they stand, in one transaction (they were
/// trusted until now; from here on a change is seen).
pub async fn create(db: &mut Db, key: Option<&InstallationKey>) -> Result<(), sqlx::Error> {
    let ddl = ddl(db.dialect());
    db.batch(ddl).await?;
    let has_signature = format!("SELECT {}", signed(db.dialect()));
    if db.flag(&has_signature).await? {
        return Ok(());
    }
    let begin = match db.dialect() {
        Dialect::Postgres => "BEGIN",
        Dialect::Sqlite => "BEGIN IMMEDIATE",
    };
    db.batch(begin).await?;
    let adopted = async {
        db.batch("ALTER TABLE gantry_migrations ADD COLUMN signature TEXT")
            .await?;
        if let Some(key) = key {
            for version in known_versions(db).await? {
                let stored = stored_down(db, version).await?;
                let name = load_one(db, version)
                    .await?
                    .map(|r| r.name)
                    .unwrap_or_default();
                let signature = stored.signed(version, &name).sign(key);
                set_signature(db, version, &signature).await?;
            }
        }
        db.batch("COMMIT").await
    };
    if let Err(err) = adopted.await {
        let _ = db.batch("ROLLBACK").await;
        return Err(err);
    }
    Ok(())
}

async fn set_signature(db: &mut Db, version: i64, signature: &str) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "UPDATE gantry_migrations SET signature = $1 WHERE version = $2",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql).bind(signature).bind(version).execute(c).await.map(|_| ())?);
    Ok(())
}

/// Makes every commit so far durable on PostgreSQL: one synchronous
/// commit that writes (the row of `version`, applied in this run, rewritten
/// as it is), whose WAL flush covers every commit before it. For a run
/// that ends in an error after commits that did not wait for the disk
/// (`runner::Flush`); best effort — a lost connection has nothing to flush
/// with, and the server's WAL writer flushes within a second anyway.
pub async fn flush(db: &mut Db, version: i64) {
    if db.dialect() != Dialect::Postgres {
        return;
    }
    let sql = format!(
        "BEGIN; SET LOCAL synchronous_commit = on; \
         UPDATE gantry_migrations SET updated_at = updated_at WHERE version = {version}; COMMIT;"
    );
    if let Err(err) = db.batch(&sql).await {
        tracing::warn!("could not flush the run's commits to disk (the server will): {err}");
    }
}

/// True when the history table exists (in the current schema on
/// PostgreSQL).
pub async fn exists(db: &mut Db) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT {}", present(db.dialect(), TABLE));
    db.flag(&sql).await
}

/// Every row, ordered by version; empty when the table does not exist.
/// A simple query (one round trip; text values on PostgreSQL, which sqlx
/// decodes as it does binary ones).
pub async fn load(db: &mut Db) -> Result<Vec<HistoryRow>, sqlx::Error> {
    if !exists(db).await? {
        return Ok(Vec::new());
    }
    load_existing(db).await
}

/// Every row, ordered by version, from a table known to exist.
pub async fn load_existing(db: &mut Db) -> Result<Vec<HistoryRow>, sqlx::Error> {
    load_with(db, SELECT_ROWS).await
}

/// Every row as planning reads it: without when, how long and by whom
/// each was applied (what `status` shows; on PostgreSQL the timestamps'
/// text is most of what a long history costs to send and decode).
pub async fn load_for_plan(db: &mut Db) -> Result<Vec<HistoryRow>, sqlx::Error> {
    // PostgreSQL types a bare NULL as text; SQLite's NULL has no type.
    let [at, ms, by] = match db.dialect() {
        Dialect::Postgres => ["::timestamptz", "::float8", "::text"],
        Dialect::Sqlite => [""; 3],
    };
    let sql = format!(
        "SELECT version, name, kind, checksum, state, no_transaction, NULL{at} AS applied_at, \
         NULL{ms} AS duration_ms, NULL{by} AS applied_by, error, progress, statements \
         FROM gantry_migrations ORDER BY version"
    );
    load_with(db, &sql).await
}

async fn load_with(db: &mut Db, sql: &str) -> Result<Vec<HistoryRow>, sqlx::Error> {
    use sqlx::FromRow;
    let rows = on_conn!(db, c => sqlx::raw_sql(sql)
        .fetch_all(c)
        .await?
        .iter()
        .map(RawRow::from_row)
        .collect::<Result<Vec<_>, _>>()?);
    Ok(rows.into_iter().map(HistoryRow::from).collect())
}

/// Which of `versions` the history records as applied.
pub async fn applied_among(
    db: &mut Db,
    versions: &[i64],
) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
    use sqlx::Row;
    let list: Vec<String> = versions.iter().map(i64::to_string).collect();
    let sql = format!(
        "SELECT version FROM gantry_migrations WHERE state = 'applied' AND version IN ({})",
        list.join(", ")
    );
    Ok(on_conn!(db, c => sqlx::raw_sql(&sql)
        .fetch_all(c)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?))
}

/// The versions the history records; empty when the table does not exist.
pub async fn known_versions(db: &mut Db) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
    Ok(load(db).await?.into_iter().map(|r| r.version).collect())
}

/// One row, read inside the caller's transaction.
pub async fn load_one(db: &mut Db, version: i64) -> Result<Option<HistoryRow>, sqlx::Error> {
    let sql = format!(
        "SELECT version, name, kind, checksum, state, no_transaction, applied_at, duration_ms, \
         applied_by, error, progress, statements FROM gantry_migrations WHERE version = {version}"
    );
    let row: Option<RawRow> = on_conn!(db, c => sqlx::query_as(&sql).fetch_optional(c).await?);
    Ok(row.map(HistoryRow::from))
}

/// What a rollback needs from the stored row.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct StoredDown {
    pub down_script: Option<String>,
    pub down_no_transaction: bool,
    pub artifact: Option<Vec<u8>>,
    pub manifest: Option<String>,
    pub up_script: Option<String>,
    pub signature: Option<String>,
}

impl StoredDown {
    /// What the row's signature covers.
    pub fn signed<'a>(&'a self, version: i64, name: &'a str) -> Signed<'a> {
        Signed {
            version,
            name,
            down_script: self.down_script.as_deref(),
            down_no_transaction: self.down_no_transaction,
            artifact: self.artifact.as_deref(),
            manifest: self.manifest.as_deref(),
        }
    }

    /// Whether the row holds anything a rollback would run.
    pub fn runs_anything(&self) -> bool {
        self.down_script.is_some() || self.artifact.is_some()
    }
}

pub async fn stored_down(db: &mut Db, version: i64) -> Result<StoredDown, sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "SELECT down_script, down_no_transaction, artifact, manifest, up_script, signature FROM gantry_migrations WHERE version = $1",
    )
    .into_owned();
    let row: Option<StoredDown> =
        on_conn!(db, c => sqlx::query_as(&sql).bind(version).fetch_optional(c).await?);
    Ok(row.unwrap_or_default())
}

/// Everything recorded when a migration starts or finishes.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub version: i64,
    pub name: &'a str,
    pub kind: &'a str,
    pub checksum: &'a str,
    pub state: RowState,
    pub no_transaction: bool,
    pub duration_ms: Option<f64>,
    pub actor: &'a str,
    pub up_script: Option<&'a str>,
    pub down_script: Option<&'a str>,
    pub down_no_transaction: bool,
    pub artifact: Option<&'a [u8]>,
    pub manifest: Option<&'a str>,
    pub progress: i64,
    pub statements: Option<i64>,
    pub error: Option<&'a str>,
}

const UPSERT: &str = "INSERT INTO gantry_migrations (version, name, kind, checksum, state, no_transaction, \
     applied_at, duration_ms, applied_by, up_script, down_script, down_no_transaction, artifact, manifest, \
     progress, statements, error, updated_at, signature) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $7, $18) \
     ON CONFLICT (version) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
     checksum = excluded.checksum, state = excluded.state, no_transaction = excluded.no_transaction, \
     applied_at = excluded.applied_at, duration_ms = excluded.duration_ms, applied_by = excluded.applied_by, \
     up_script = excluded.up_script, down_script = excluded.down_script, \
     down_no_transaction = excluded.down_no_transaction, artifact = excluded.artifact, \
     manifest = excluded.manifest, progress = excluded.progress, statements = excluded.statements, \
     error = excluded.error, updated_at = excluded.updated_at, signature = excluded.signature";

impl Record<'_> {
    /// What the row's signature covers.
    pub fn signed(&self) -> Signed<'_> {
        Signed {
            version: self.version,
            name: self.name,
            down_script: self.down_script,
            down_no_transaction: self.down_no_transaction,
            artifact: self.artifact,
            manifest: self.manifest,
        }
    }
}

/// Inserts or replaces the row for `r.version`, signed under `key` (a
/// library migrator without a key leaves it unsigned: its recorded downs
/// are then never run).
pub async fn upsert(
    db: &mut Db,
    r: &Record<'_>,
    key: Option<&InstallationKey>,
) -> Result<(), sqlx::Error> {
    let sql = params_for(db.dialect(), UPSERT).into_owned();
    let now = Utc::now();
    let signature = key.map(|key| r.signed().sign(key));
    on_conn!(db, c => sqlx::query(&sql)
        .bind(r.version)
        .bind(r.name)
        .bind(r.kind)
        .bind(r.checksum)
        .bind(r.state.as_str())
        .bind(r.no_transaction)
        .bind(now)
        .bind(r.duration_ms)
        .bind(r.actor)
        .bind(r.up_script)
        .bind(r.down_script)
        .bind(r.down_no_transaction)
        .bind(r.artifact)
        .bind(r.manifest)
        .bind(r.progress)
        .bind(r.statements)
        .bind(r.error)
        .bind(signature.as_deref())
        .execute(c)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn set_progress(db: &mut Db, version: i64, progress: i64) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "UPDATE gantry_migrations SET progress = $1 WHERE version = $2",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql).bind(progress).bind(version).execute(c).await.map(|_| ())?);
    Ok(())
}

pub async fn set_state(
    db: &mut Db,
    version: i64,
    state: RowState,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "UPDATE gantry_migrations SET state = $1, error = $2, updated_at = $3 WHERE version = $4",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql)
        .bind(state.as_str())
        .bind(error)
        .bind(Utc::now())
        .bind(version)
        .execute(c)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn set_checksum(
    db: &mut Db,
    version: i64,
    checksum: &str,
    up_script: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "UPDATE gantry_migrations SET checksum = $1, up_script = COALESCE($2, up_script), updated_at = $3 WHERE version = $4",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql)
        .bind(checksum)
        .bind(up_script)
        .bind(Utc::now())
        .bind(version)
        .execute(c)
        .await
        .map(|_| ())?);
    Ok(())
}

pub async fn delete(db: &mut Db, version: i64) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "DELETE FROM gantry_migrations WHERE version = $1",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql).bind(version).execute(c).await.map(|_| ())?);
    Ok(())
}

/// Appends to `gantry_migration_log`.
pub async fn log(
    db: &mut Db,
    version: i64,
    action: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sql = params_for(
        db.dialect(),
        "INSERT INTO gantry_migration_log (version, action, actor, at, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .into_owned();
    on_conn!(db, c => sqlx::query(&sql)
        .bind(version)
        .bind(action)
        .bind(actor)
        .bind(Utc::now())
        .bind(detail)
        .execute(c)
        .await
        .map(|_| ())?);
    Ok(())
}

/// A SQL string literal of `text` that no content can break out of:
/// dollar quoting with a tag absent from the text on PostgreSQL, doubled
/// quotes on SQLite (which has no backslash escapes).
pub fn literal(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("'{}'", text.replace('\'', "''")),
        Dialect::Postgres => {
            // The quote ends at the tag's first appearance in the text and
            // the closing tag: that must be the closing tag itself (a text
            // ending in `$g0` would otherwise close early).
            let mut n = 0u32;
            loop {
                let tag = format!("$g{n}$");
                let quoted = format!("{tag}{text}{tag}");
                if quoted[tag.len()..].find(&tag) == Some(text.len()) {
                    return quoted;
                }
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_be_broken_out_of() {
        assert_eq!(literal(Dialect::Sqlite, "it's"), "'it''s'");
        assert_eq!(literal(Dialect::Postgres, "a"), "$g0$a$g0$");
        assert_eq!(literal(Dialect::Postgres, "x $g0$ y"), "$g1$x $g0$ y$g1$");
        // A text ending in a tag's start would close the quote early.
        assert_eq!(literal(Dialect::Postgres, "x$g0"), "$g1$x$g0$g1$");
        assert_eq!(literal(Dialect::Postgres, "x$"), "$g0$x$$g0$");
        for text in ["$g0", "$g", "$", "a$g0$g1", "$g0$$g1$$g2"] {
            let quoted = literal(Dialect::Postgres, text);
            let tag = &quoted[..quoted[1..].find('$').unwrap() + 2];
            let body = &quoted[tag.len()..];
            assert_eq!(body.find(tag), Some(text.len()), "{text} → {quoted}");
        }
    }
}
