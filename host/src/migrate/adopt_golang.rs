//! `gantry migrate adopt --from golang-migrate`: take over the history
//! golang-migrate keeps — one row in `schema_migrations` (version, dirty).
//! Every migration up to that version is recorded as applied in
//! `gantry_migrations`. A dirty database is refused with its version (a
//! migration failed half-way there); a version with no file is refused.
//! It never writes to `schema_migrations`.

use super::adopt::{AdoptProblem, AdoptReport};
use super::error::MigrateError;
use super::history::{self, RowState};
use super::runner::Migrator;
use super::source::Body;
use crate::db::Db;

const TABLE: &str = "schema_migrations";

async fn read_row(db: &mut Db) -> Result<Option<(i64, bool)>, MigrateError> {
    let exists = db
        .table_exists(TABLE)
        .await
        .map_err(MigrateError::sql("look for schema_migrations"))?;
    if !exists {
        return Err(MigrateError::NothingToAdopt(TABLE));
    }
    let sql = "SELECT version, dirty FROM schema_migrations ORDER BY version DESC LIMIT 1";
    let read = MigrateError::sql("read schema_migrations");
    match db {
        Db::Postgres(c) => sqlx::query_as(sql)
            .fetch_optional(&mut *c)
            .await
            .map_err(read),
        Db::Sqlite(c) => sqlx::query_as(sql)
            .fetch_optional(&mut *c)
            .await
            .map_err(read),
    }
}

impl Migrator {
    /// Takes over golang-migrate's history. See the module docs.
    pub async fn adopt_golang_migrate(&self, dry_run: bool) -> Result<AdoptReport, MigrateError> {
        self.locked(async |slot| {
            let db = slot.as_mut().expect("connection");
            let Some((version, dirty)) = read_row(db).await? else {
                return Err(MigrateError::NothingToAdopt(TABLE));
            };
            if dirty {
                return Err(MigrateError::Adopt(vec![AdoptProblem::Dirty { version }]));
            }
            if self.set.get(version).is_none() {
                return Err(MigrateError::Adopt(vec![AdoptProblem::MissingFile {
                    version,
                    description: "the version schema_migrations records".into(),
                }]));
            }
            let known = history::known_versions(db)
                .await
                .map_err(MigrateError::sql("read the migration history"))?;
            let upto: Vec<_> = self
                .set
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .collect();
            let (already, todo): (Vec<_>, Vec<_>) =
                upto.into_iter().partition(|m| known.contains(&m.version));
            let report = AdoptReport {
                adopted: todo.iter().map(|m| m.version).collect(),
                already: already.iter().map(|m| m.version).collect(),
                accepted_drift: Vec::new(),
                dry_run,
            };
            if dry_run || todo.is_empty() {
                return Ok(report);
            }
            super::apply::begin(db).await?;
            let actor = format!("golang-migrate (adopted by {})", self.actor);
            let recorded = async {
                for m in &todo {
                    let (up, down) = match &m.body {
                        Body::Sql { up, .. } => (up.text()?, m.down()?),
                        Body::Wasm(_) => ("", None),
                    };
                    let mut record = self.applied_record(m, up, down);
                    record.actor = &actor;
                    record.state = RowState::Applied;
                    history::upsert(db, &record, self.history_key())
                        .await
                        .map_err(MigrateError::sql("record an adopted migration"))?;
                    history::log(
                        db,
                        m.version,
                        "adopt",
                        &self.actor,
                        Some(&format!("from schema_migrations (version {version})")),
                    )
                    .await
                    .map_err(MigrateError::sql("log an adopted migration"))?;
                }
                Ok::<(), MigrateError>(())
            }
            .await;
            super::apply::commit_or_rollback(db, recorded, "commit the adoption").await?;
            Ok(report)
        })
        .await
    }
}
