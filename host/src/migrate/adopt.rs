//! `gantry migrate adopt --from sqlx`: take over a history that sqlx wrote.
//!
//! Reads `_sqlx_migrations` (version, description, success, checksum,
//! installed_on, execution_time) and records those migrations as applied
//! in `gantry_migrations`, after checking that each has its file and that
//! sqlx's own checksum (SHA-384 of the file's bytes) still matches. Every
//! problem is reported per file; nothing is recorded unless all rows check
//! out (or `--accept-drift` accepts checksum differences). It never writes
//! to `_sqlx_migrations`, so a team can go back to sqlx.

use super::error::MigrateError;
use super::history::{self, RowState};
use super::runner::Migrator;
use super::source::Body;
use crate::db::{Db, Dialect};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone)]
struct SqlxRow {
    version: i64,
    description: String,
    success: bool,
    checksum: Vec<u8>,
    installed_on: Option<DateTime<Utc>>,
    execution_time_ns: i64,
}

/// What is wrong with one sqlx row.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AdoptProblem {
    /// sqlx recorded it as failed (a dirty database).
    Failed { version: i64, description: String },
    /// No file for a version sqlx applied.
    MissingFile { version: i64, description: String },
    /// golang-migrate's `schema_migrations` is dirty: a migration failed
    /// half-way.
    Dirty { version: i64 },
    /// The file changed since sqlx applied it.
    ChecksumMismatch {
        version: i64,
        path: PathBuf,
        sqlx_checksum: String,
        file_checksum: String,
    },
}

impl std::fmt::Display for AdoptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdoptProblem::Failed {
                version,
                description,
            } => {
                write!(
                    f,
                    "{version} ({description}): sqlx recorded it as failed; fix the database first"
                )
            }
            AdoptProblem::MissingFile {
                version,
                description,
            } => {
                write!(
                    f,
                    "{version} ({description}): applied by sqlx, but no file has this version"
                )
            }
            AdoptProblem::Dirty { version } => write!(
                f,
                "schema_migrations is dirty at version {version}: that migration failed half-way; \
                 repair the database, mark it clean (`migrate force`), then adopt"
            ),
            AdoptProblem::ChecksumMismatch {
                path,
                sqlx_checksum,
                file_checksum,
                ..
            } => write!(
                f,
                "{}: changed since sqlx applied it (sqlx sha384 {sqlx_checksum}, file sha384 {file_checksum})",
                path.display()
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdoptReport {
    /// Versions recorded by this run.
    pub adopted: Vec<i64>,
    /// Versions gantry had already recorded.
    pub already: Vec<i64>,
    /// Checksum differences accepted with `--accept-drift`.
    pub accepted_drift: Vec<AdoptProblem>,
    pub dry_run: bool,
}

impl Migrator {
    /// Takes over sqlx's history. See the module docs.
    pub async fn adopt_sqlx(
        &self,
        accept_drift: bool,
        dry_run: bool,
    ) -> Result<AdoptReport, MigrateError> {
        self.locked(async |slot| {
            let db = slot.as_mut().expect("connection");
            let rows = read_sqlx(db, &self.sqlx.table).await?;
            let mut problems = Vec::new();
            let mut drift = Vec::new();
            for row in &rows {
                if !row.success {
                    problems.push(AdoptProblem::Failed {
                        version: row.version,
                        description: row.description.clone(),
                    });
                    continue;
                }
                let Some(m) = self.set.get(row.version) else {
                    problems.push(AdoptProblem::MissingFile {
                        version: row.version,
                        description: row.description.clone(),
                    });
                    continue;
                };
                let Body::Sql { up, .. } = &m.body else {
                    problems.push(AdoptProblem::MissingFile {
                        version: row.version,
                        description: row.description.clone(),
                    });
                    continue;
                };
                let file_checksum = self.sqlx.checksum(up.text()?);
                if file_checksum != row.checksum {
                    drift.push(AdoptProblem::ChecksumMismatch {
                        version: row.version,
                        path: m.path.clone(),
                        sqlx_checksum: hex::encode(&row.checksum),
                        file_checksum: hex::encode(&file_checksum),
                    });
                }
            }
            if !accept_drift {
                problems.append(&mut drift);
            }
            if !problems.is_empty() {
                return Err(MigrateError::Adopt(problems));
            }

            let known = history::known_versions(db)
                .await
                .map_err(MigrateError::sql("read the migration history"))?;
            let (already, todo): (Vec<&SqlxRow>, Vec<&SqlxRow>) =
                rows.iter().partition(|r| known.contains(&r.version));
            let report = AdoptReport {
                adopted: todo.iter().map(|r| r.version).collect(),
                already: already.iter().map(|r| r.version).collect(),
                accepted_drift: drift,
                dry_run,
            };
            if dry_run || todo.is_empty() {
                return Ok(report);
            }
            let begin = match db.dialect() {
                Dialect::Postgres => "BEGIN",
                Dialect::Sqlite => "BEGIN IMMEDIATE",
            };
            db.batch(begin)
                .await
                .map_err(MigrateError::sql("begin the adoption"))?;
            let recorded = self.record_adopted(db, &todo).await;
            super::apply::commit_or_rollback(db, recorded, "commit the adoption").await?;
            Ok(report)
        })
        .await
    }

    async fn record_adopted(&self, db: &mut Db, rows: &[&SqlxRow]) -> Result<(), MigrateError> {
        let actor = format!("sqlx (adopted by {})", self.actor);
        for row in rows {
            let m = self.set.get(row.version).expect("checked above");
            let Body::Sql { up, .. } = &m.body else {
                unreachable!("checked above")
            };
            let mut record = self.applied_record(m, up.text()?, m.down()?);
            record.actor = &actor;
            record.state = RowState::Applied;
            record.duration_ms = Some(row.execution_time_ns as f64 / 1e6);
            history::upsert(db, &record, self.history_key())
                .await
                .map_err(MigrateError::sql("record an adopted migration"))?;
            if let Some(at) = row.installed_on {
                set_applied_at(db, row.version, at).await?;
            }
            let detail = format!("from _sqlx_migrations: {}", row.description);
            history::log(db, row.version, "adopt", &self.actor, Some(&detail))
                .await
                .map_err(MigrateError::sql("log an adopted migration"))?;
        }
        Ok(())
    }
}

async fn set_applied_at(db: &mut Db, version: i64, at: DateTime<Utc>) -> Result<(), MigrateError> {
    let sql = crate::db::params_for(
        db.dialect(),
        "UPDATE gantry_migrations SET applied_at = $1 WHERE version = $2",
    )
    .into_owned();
    crate::on_conn!(db, c => sqlx::query(&sql).bind(at).bind(version).execute(c).await.map(|_| ()))
        .map_err(MigrateError::sql("record when sqlx applied it"))
}

/// version, description, success, checksum, installed_on, execution_time
type RawRow<At> = (i64, String, bool, Vec<u8>, At, i64);

async fn read_sqlx(db: &mut Db, table: &str) -> Result<Vec<SqlxRow>, MigrateError> {
    let exists = super::sqlx_history::table_exists(db, table)
        .await
        .map_err(MigrateError::sql(format!("look for {table}")))?;
    if !exists {
        return Err(MigrateError::NothingToAdopt(
            if table == super::sqlx_history::TABLE {
                "_sqlx_migrations"
            } else {
                "the history table sqlx.toml names"
            },
        ));
    }
    let read = MigrateError::sql(format!("read {table}"));
    // The dialects differ only in how installed_on comes back.
    let rows: Vec<RawRow<Option<DateTime<Utc>>>> = match db {
        Db::Postgres(c) => {
            let sql = format!(
                "SELECT version, description, success, checksum, installed_on, execution_time FROM {table} ORDER BY version"
            );
            let rows: Vec<RawRow<DateTime<Utc>>> =
                sqlx::query_as(&sql).fetch_all(c).await.map_err(read)?;
            rows.into_iter()
                .map(|(v, d, s, c, at, ns)| (v, d, s, c, Some(at), ns))
                .collect()
        }
        Db::Sqlite(c) => {
            let sql = format!(
                "SELECT version, description, success, checksum, CAST(installed_on AS TEXT), execution_time FROM {table} ORDER BY version"
            );
            let rows: Vec<RawRow<String>> =
                sqlx::query_as(&sql).fetch_all(c).await.map_err(read)?;
            rows.into_iter()
                .map(|(v, d, s, c, at, ns)| {
                    let at = NaiveDateTime::parse_from_str(&at, "%Y-%m-%d %H:%M:%S")
                        .ok()
                        .map(|t| t.and_utc());
                    (v, d, s, c, at, ns)
                })
                .collect()
        }
    };
    Ok(rows
        .into_iter()
        .map(
            |(version, description, success, checksum, installed_on, execution_time_ns)| SqlxRow {
                version,
                description,
                success,
                checksum,
                installed_on,
                execution_time_ns,
            },
        )
        .collect())
}
