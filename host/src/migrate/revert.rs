//! `rollback --target ID`.
//!
//! A rollback reverts every applied migration newer than the target,
//! newest first. Before touching anything it checks that each one has a
//! down (the file's, or the one recorded when it was applied); if any has
//! none, it names them and changes nothing. Each revert runs in one
//! transaction with the deletion of its history row (no-transaction downs
//! statement by statement, like applies).

use super::apply::{db_message, pg_error_line, single_statement_line};
use super::error::MigrateError;
use super::events::{Direction, Event, ms};
use super::history::{self, HistoryRow, RowState, literal};
use super::runner::{Migrator, RunReport, planned_step};
use super::signature::Verdict;
use super::source::{Body, Migration, MigrationId, Script, WasmStep};
use crate::db::split;
use crate::db::{Db, Dialect};
use crate::runtime::Manifest;
use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

/// How one migration will be reverted.
enum Down {
    Sql { script: Script, origin: String },
    Wasm { step: Box<WasmStep>, origin: String },
}

struct Step {
    migration: Migration,
    down: Down,
}

/// What the files and the history offer to revert one row.
enum DownFor {
    Ready(Box<Step>),
    /// No down anywhere.
    None,
    /// Only a recorded down, whose signature does not hold.
    Unverified,
}

impl Migrator {
    /// Reverts every applied migration newer than `target` (`0`: all).
    pub async fn rollback(
        &self,
        target: &MigrationId,
        dry_run: bool,
    ) -> Result<RunReport, MigrateError> {
        if dry_run {
            self.open_history_key(false)?;
            let mut db = self.connection().await?;
            let steps = self.plan_rollback(&mut db, target).await;
            db.close().await;
            return Ok(self.rollback_report(&steps?, true, Vec::new()));
        }
        self.locked(async |slot| {
            let db = slot.as_mut().expect("connection");
            self.prepare_sqlx(db, false)
                .await
                .map_err(MigrateError::sql("look for sqlx's history table"))?;
            let steps = self.plan_rollback(db, target).await?;
            let mut done = Vec::new();
            for step in &steps {
                self.revert_one(slot, step).await?;
                done.push(step.migration.version);
            }
            Ok(self.rollback_report(&steps, false, done))
        })
        .await
    }

    fn rollback_report(&self, steps: &[Step], dry_run: bool, done: Vec<i64>) -> RunReport {
        RunReport {
            direction: Direction::Down,
            dry_run,
            planned: steps
                .iter()
                .map(|s| planned_step(&s.migration, origin(&s.down)))
                .collect(),
            done,
        }
    }

    async fn plan_rollback(
        &self,
        db: &mut Db,
        target: &MigrationId,
    ) -> Result<Vec<Step>, MigrateError> {
        let rows = history::load(db)
            .await
            .map_err(MigrateError::sql("read the migration history"))?;
        let floor = target.version();
        if floor != 0 {
            let applied = rows
                .iter()
                .find(|r| r.version == floor && r.state == RowState::Applied)
                .filter(|r| target.name().is_none_or(|n| n == r.name));
            if applied.is_none() {
                return Err(MigrateError::TargetNotApplied(target.to_string()));
            }
        }
        let mut range: Vec<&HistoryRow> = rows.iter().filter(|r| r.version > floor).collect();
        range.sort_by_key(|r| std::cmp::Reverse(r.version));
        let owned: Vec<HistoryRow> = range.iter().map(|r| (*r).clone()).collect();
        self.check_blocked(&owned)?;

        let mut steps = Vec::new();
        let mut irreversible = Vec::new();
        let mut unverified = Vec::new();
        for row in range {
            let id = format!("{:03}_{}", row.version, row.name);
            match self.down_for(db, row).await? {
                DownFor::Ready(step) => steps.push(*step),
                DownFor::None => irreversible.push(id),
                DownFor::Unverified => unverified.push(id),
            }
        }
        if !unverified.is_empty() {
            return Err(MigrateError::Unverified(unverified));
        }
        if !irreversible.is_empty() {
            return Err(MigrateError::Irreversible(irreversible));
        }
        self.emit(Event::Planned {
            direction: Direction::Down,
            steps: steps
                .iter()
                .map(|s| planned_step(&s.migration, origin(&s.down)))
                .collect(),
        });
        Ok(steps)
    }

    /// The down for an applied row: the file's when the file still matches
    /// what was applied, else the one recorded at apply time.
    async fn down_for(&self, db: &mut Db, row: &HistoryRow) -> Result<DownFor, MigrateError> {
        let file = self
            .set
            .get(row.version)
            .filter(|m| m.checksum == row.checksum);
        if let Some(m) = file {
            let down = match &m.body {
                Body::Sql { .. } => m.down()?.map(|script| Down::Sql {
                    script: script.clone(),
                    origin: format!("file {}", script.path.display()),
                }),
                Body::Wasm(step) => Some(Down::Wasm {
                    step: step.clone(),
                    origin: format!("component {}", step.component_origin),
                }),
            };
            if let Some(down) = down {
                return Ok(DownFor::Ready(Box::new(Step {
                    migration: m.clone(),
                    down,
                })));
            }
        }
        let stored = history::stored_down(db, row.version)
            .await
            .map_err(MigrateError::sql("read the recorded down migration"))?;
        if !stored.runs_anything() {
            return Ok(DownFor::None);
        }
        // A recorded down runs only under a signature that holds.
        let verified = self.history_key().is_some_and(|key| {
            stored
                .signed(row.version, &row.name)
                .verify(key, stored.signature.as_deref())
                == Verdict::Valid
        });
        if !verified {
            return Ok(DownFor::Unverified);
        }
        let recorded = PathBuf::from(format!("<recorded {:03}_{}>", row.version, row.name));
        let down = match (stored.down_script, stored.artifact, stored.manifest) {
            (Some(text), _, _) => Down::Sql {
                script: Script {
                    path: recorded.clone(),
                    text,
                    no_transaction: stored.down_no_transaction,
                },
                origin: "recorded at apply time".into(),
            },
            (None, Some(component), Some(manifest_text)) => {
                let manifest = Manifest::parse(&manifest_text, &recorded)
                    .map_err(super::source::SourceError::from)?;
                Down::Wasm {
                    step: Box::new(WasmStep {
                        manifest,
                        component: Cow::Owned(component),
                        component_origin: recorded.display().to_string(),
                    }),
                    origin: "component recorded at apply time".into(),
                }
            }
            _ => return Ok(DownFor::None),
        };
        let migration = Migration {
            version: row.version,
            name: row.name.clone(),
            body: Body::Sql {
                up: super::source::UpFile::from_text(PathBuf::new(), String::new()),
                down: None,
            },
            checksum: row.checksum.clone(),
            no_transaction: row.no_transaction,
            path: self
                .set
                .get(row.version)
                .map(|m| m.path.clone())
                .unwrap_or(recorded),
        };
        Ok(DownFor::Ready(Box::new(Step { migration, down })))
    }

    async fn revert_one(&self, slot: &mut Option<Db>, step: &Step) -> Result<(), MigrateError> {
        let m = &step.migration;
        self.emit(Event::Started {
            version: m.version,
            id: m.id(),
            direction: Direction::Down,
        });
        let started = Instant::now();
        match &step.down {
            Down::Wasm {
                step: wasm_step, ..
            } => {
                self.revert_wasm(
                    slot,
                    m,
                    wasm_step.component.clone(),
                    &wasm_step.manifest,
                    &wasm_step.component_origin,
                )
                .await?
            }
            Down::Sql { script, .. } => {
                let db = slot.as_mut().expect("connection");
                if script.no_transaction {
                    self.revert_statements(db, m, script).await?;
                } else {
                    self.revert_in_transaction(db, m, script).await?;
                }
            }
        }
        self.emit(Event::Finished {
            version: m.version,
            id: m.id(),
            direction: Direction::Down,
            duration_ms: ms(started.elapsed()),
        });
        Ok(())
    }

    async fn revert_in_transaction(
        &self,
        db: &mut Db,
        m: &Migration,
        script: &Script,
    ) -> Result<(), MigrateError> {
        let dialect = db.dialect();
        let failed = match dialect {
            Dialect::Postgres => {
                let prefix = "BEGIN;\n";
                let batch = format!(
                    "{prefix}{down}\n;\nDELETE FROM gantry_migrations WHERE version = {v};\n\
                     INSERT INTO gantry_migration_log (version, action, actor) VALUES ({v}, 'revert', {actor});\n{sqlx}COMMIT;",
                    down = script.text,
                    v = m.version,
                    actor = literal(dialect, &self.actor),
                    sqlx = if self.sqlx_on() {
                        format!(
                            "DELETE FROM {} WHERE version = {};\n",
                            self.sqlx.table, m.version
                        )
                    } else {
                        String::new()
                    },
                );
                match db.batch(&batch).await {
                    Ok(()) => None,
                    Err(err) => {
                        let _ = db.batch("ROLLBACK").await;
                        Some((
                            pg_error_line(&err, prefix.chars().count(), &script.text),
                            err,
                        ))
                    }
                }
            }
            Dialect::Sqlite => {
                db.batch("BEGIN IMMEDIATE")
                    .await
                    .map_err(MigrateError::sql("take the SQLite write lock"))?;
                let work = async {
                    super::apply::run_statements(db, &script.text).await?;
                    let record = async {
                        history::delete(db, m.version).await?;
                        history::log(db, m.version, "revert", &self.actor, None).await?;
                        if self.sqlx_on() {
                            super::sqlx_history::forget(db, &self.sqlx, m.version).await?;
                        }
                        db.batch("COMMIT").await
                    };
                    record.await.map_err(|err| (None, err))
                };
                match work.await {
                    Ok(()) => None,
                    Err((line, err)) => {
                        let _ = db.batch("ROLLBACK").await;
                        Some((line, err))
                    }
                }
            }
        };
        let Some((line, err)) = failed else {
            return Ok(());
        };
        let line = line.or_else(|| single_statement_line(&script.text));
        let down_file = Migration {
            path: script.path.clone(),
            ..m.clone()
        };
        Err(self
            .record_failure(db, &down_file, "", None, line, &err, Direction::Down)
            .await)
    }

    async fn revert_statements(
        &self,
        db: &mut Db,
        m: &Migration,
        script: &Script,
    ) -> Result<(), MigrateError> {
        let statements = split::split(&script.text);
        let total = statements.len();
        history::set_state(db, m.version, RowState::InProgress, Some("reverting"))
            .await
            .map_err(MigrateError::sql("record the revert as in progress"))?;
        for (index, statement) in statements.iter().enumerate() {
            if let Err(err) = db.batch(statement.text).await {
                let message = format!(
                    "revert statement {} of {total} (line {}): {}",
                    index + 1,
                    statement.line,
                    db_message(&err)
                );
                let _ = history::set_state(db, m.version, RowState::Failed, Some(&message)).await;
                let _ =
                    history::log(db, m.version, "revert-fail", &self.actor, Some(&message)).await;
                return Err(MigrateError::Failed {
                    id: m.id(),
                    path: script.path.clone(),
                    line: Some(statement.line),
                    message,
                });
            }
            self.emit(Event::Statement {
                version: m.version,
                index: index + 1,
                total,
            });
        }
        history::delete(db, m.version)
            .await
            .map_err(MigrateError::sql("forget the reverted migration"))?;
        history::log(db, m.version, "revert", &self.actor, None)
            .await
            .map_err(MigrateError::sql("log the revert"))?;
        if self.sqlx_on() {
            super::sqlx_history::forget(db, &self.sqlx, m.version)
                .await
                .map_err(MigrateError::sql(
                    "forget the migration in _sqlx_migrations",
                ))?;
        }
        Ok(())
    }
}

fn origin(down: &Down) -> String {
    match down {
        Down::Sql { origin, .. } | Down::Wasm { origin, .. } => origin.clone(),
    }
}
