//! Applying one migration.
//!
//! - Transactional SQL on PostgreSQL: one round trip — `BEGIN`, the
//!   script, the history row and the log row, `COMMIT` — sent as one simple
//!   query, so a migration costs one commit and one round trip; only the
//!   run's last commit waits for the disk (`runner::Flush`).
//! - Transactional SQL on SQLite: `BEGIN IMMEDIATE`, re-read the history
//!   row under the write lock (another runner may have applied it), run,
//!   record, commit.
//! - `no-transaction` SQL: the row is written `in_progress` first, each
//!   statement runs on its own with progress recorded, then `applied`; a
//!   crash leaves `in_progress` for `status` to show and `repair` to clear.
//! - WASM steps: see `wasm.rs`.
//!
//! A failure rolls back what it can, records `failed` with the file and
//! line, and stops the run.

use super::error::MigrateError;
use super::events::{Direction, Event, ms};
use super::history::{self, Record, RowState, literal};
use super::runner::{Flush, Migrator};
use super::source::{Body, Migration, Script};
use crate::db::split;
use crate::db::{Db, Dialect};
use std::time::Instant;

/// Starts a PostgreSQL step's clock (a transaction-local setting): in a
/// query of several steps every statement has the message's
/// `statement_timestamp()`, so each step keeps its own start.
const STEP_CLOCK: &str =
    "set_config('gantry.step_started', extract(epoch FROM clock_timestamp())::text, true)";

/// Milliseconds since the step's `STEP_CLOCK` (since the query's arrival
/// if a script's `RESET ALL` cleared it).
pub(super) const PG_STEP_MS: &str = "((extract(epoch FROM clock_timestamp())::float8 \
     - COALESCE(NULLIF(current_setting('gantry.step_started', true), '')::float8, \
     extract(epoch FROM statement_timestamp())::float8)) * 1000)";

/// A step's query text, and how many characters precede its script (for
/// the line of an error's position).
pub(super) struct PgStep {
    pub text: String,
    pub before_script: usize,
}

/// Opens a step's transaction: `BEGIN` on PostgreSQL (the advisory lock
/// already keeps other runners out), `BEGIN IMMEDIATE` on SQLite.
pub(super) async fn begin(db: &mut Db) -> Result<(), MigrateError> {
    let begin = match db.dialect() {
        Dialect::Postgres => "BEGIN",
        Dialect::Sqlite => "BEGIN IMMEDIATE",
    };
    db.batch(begin)
        .await
        .map_err(MigrateError::sql("begin the migration's transaction"))
}

/// Ends the transaction `begin` opened: COMMIT when `done` is Ok (its
/// failure reported as `commit`), else ROLLBACK and `done`'s error.
pub(super) async fn commit_or_rollback(
    db: &mut Db,
    done: Result<(), MigrateError>,
    commit: &str,
) -> Result<(), MigrateError> {
    match done {
        Ok(()) => db.batch("COMMIT").await.map_err(MigrateError::sql(commit)),
        Err(err) => {
            let _ = db.batch("ROLLBACK").await;
            Err(err)
        }
    }
}

/// The database's message without sqlx's prefix.
pub(super) fn db_message(err: &sqlx::Error) -> String {
    let Some(db) = err.as_database_error() else {
        return err.to_string();
    };
    let mut text = match db.code() {
        Some(code) => format!("{} (SQLSTATE {code})", db.message()),
        None => db.message().to_string(),
    };
    // PostgreSQL says more than its message: what and where, which is how
    // an error without a position (a unique violation) is found.
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        for (what, value) in [
            ("detail", pg.detail()),
            ("table", pg.table()),
            ("constraint", pg.constraint()),
            ("where", pg.r#where()),
        ] {
            if let Some(value) = value {
                text.push_str(&format!("; {what}: {value}"));
            }
        }
    }
    text
}

/// Where in the query text a PostgreSQL error points: a 0-based
/// character offset, if it carries a position.
pub(super) fn pg_position(err: &sqlx::Error) -> Option<usize> {
    let pg = err
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let sqlx::postgres::PgErrorPosition::Original(position) = pg.position()? else {
        return None;
    };
    position.checked_sub(1)
}

/// The script line of a PostgreSQL error that carries a position.
/// `before`: the characters of the query text in front of the script.
pub(super) fn pg_error_line(err: &sqlx::Error, before: usize, script: &str) -> Option<usize> {
    let offset = pg_position(err)?.checked_sub(before)?;
    if offset >= script.chars().count() {
        return None;
    }
    let before: String = script.chars().take(offset).collect();
    Some(before.matches('\n').count() + 1)
}

/// The line of a script's only statement: where a failure without a
/// position must be. For several statements there is no telling without
/// running them again — which would repeat their side effects (a long
/// backfill twice) — so the migration is reported without a line.
pub(super) fn single_statement_line(script: &str) -> Option<usize> {
    let statements = split::split(script);
    match statements.as_slice() {
        [only] => Some(only.line),
        _ => None,
    }
}

/// Runs `script` one statement at a time on the open transaction (SQLite:
/// in-process, so no round trips are lost), stopping at the first error
/// with its line — nothing runs twice to find it.
pub(super) async fn run_statements(
    db: &mut Db,
    script: &str,
) -> Result<(), (Option<usize>, sqlx::Error)> {
    for statement in split::split(script) {
        if let Err(err) = db.batch(statement.text).await {
            return Err((Some(statement.line), err));
        }
    }
    Ok(())
}

impl Migrator {
    /// Applies `m`; false when another runner had already applied it.
    pub(super) async fn apply_migration(
        &self,
        slot: &mut Option<Db>,
        m: &Migration,
        flush: Flush,
    ) -> Result<bool, MigrateError> {
        self.emit(Event::Started {
            version: m.version,
            id: m.id(),
            direction: Direction::Up,
        });
        let started = Instant::now();
        let applied = match &m.body {
            Body::Wasm(step) => self.apply_wasm(slot, m, step).await?,
            Body::Sql { up, .. } => {
                let up = up.text()?;
                let down = m.down()?;
                let db = slot.as_mut().expect("connection");
                if m.no_transaction {
                    self.statement_by_statement(db, m, up, down).await?
                } else {
                    match db.dialect() {
                        Dialect::Postgres => self.one_round_trip(db, m, up, down, flush).await?,
                        Dialect::Sqlite => self.apply_immediate(db, m, up, down).await?,
                    }
                }
            }
        };
        if applied {
            self.emit(Event::Finished {
                version: m.version,
                id: m.id(),
                direction: Direction::Up,
                duration_ms: ms(started.elapsed()),
            });
        } else {
            self.emit(Event::Skipped {
                version: m.version,
                id: m.id(),
            });
        }
        Ok(applied)
    }

    pub(super) fn applied_record<'a>(
        &'a self,
        m: &'a Migration,
        up: &'a str,
        down: Option<&'a Script>,
    ) -> Record<'a> {
        Record {
            version: m.version,
            name: &m.name,
            kind: m.kind(),
            checksum: &m.checksum,
            state: RowState::Applied,
            no_transaction: m.no_transaction,
            duration_ms: None,
            actor: &self.actor,
            up_script: Some(up),
            down_script: down.map(|d| d.text.as_str()),
            down_no_transaction: down.is_some_and(|d| d.no_transaction),
            artifact: None,
            manifest: None,
            progress: 0,
            statements: None,
            error: None,
        }
    }

    /// One migration's text for PostgreSQL's fast path: `BEGIN`, the
    /// clock the step is timed by (and the deferred flush), the script, the
    /// history, log and sqlx rows in one statement, `COMMIT`. The record
    /// statement returns one row tagged `gantry_applied` (the version) with
    /// `gantry_ms`, the step's time on the server.
    pub(super) fn pg_step(
        &self,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
        flush: Flush,
    ) -> PgStep {
        let lit = |t: &str| literal(Dialect::Postgres, t);
        let prefix = match flush {
            Flush::Now => format!("BEGIN;\nSELECT {STEP_CLOCK};\n"),
            Flush::Deferred => format!(
                "BEGIN;\nSELECT {STEP_CLOCK}, set_config('synchronous_commit', 'off', true);\n"
            ),
        };
        // The history row, the log row and sqlx's row are one statement
        // (data-modifying WITH): the server parses, plans and runs one
        // statement where it ran three.
        let text = format!(
            "{prefix}{up}\n;\n\
             WITH applied AS (INSERT INTO gantry_migrations (version, name, kind, checksum, state, no_transaction, applied_at, \
             duration_ms, applied_by, up_script, down_script, down_no_transaction, progress, updated_at, signature) \
             VALUES ({v}, {name}, 'sql', {sum}, 'applied', false, clock_timestamp(), \
             {PG_STEP_MS}, {actor}, {upl}, {downl}, {downtx}, 0, clock_timestamp(), {signature}) RETURNING duration_ms){sqlx}\n\
             INSERT INTO gantry_migration_log (version, action, actor, at) VALUES ({v}, 'apply', {actor}, clock_timestamp()) \
             RETURNING version AS gantry_applied, (SELECT duration_ms FROM applied) AS gantry_ms;\n\
             COMMIT;\n",
            v = m.version,
            name = lit(&m.name),
            sum = lit(&m.checksum),
            actor = lit(&self.actor),
            upl = lit(up),
            downl = down.map(|d| lit(&d.text)).unwrap_or_else(|| "NULL".into()),
            downtx = down.is_some_and(|d| d.no_transaction),
            signature = self
                .history_key()
                .map(|key| lit(&self.applied_record(m, up, down).signed().sign(key)))
                .unwrap_or_else(|| "NULL".into()),
            sqlx = if self.sqlx_on() {
                format!(
                    ",\n sqlx AS ({})",
                    super::sqlx_history::pg_insert(&self.sqlx, m, up)
                )
            } else {
                String::new()
            },
        );
        PgStep {
            before_script: prefix.chars().count(),
            text,
        }
    }

    /// The PostgreSQL fast path: one migration, one round trip.
    pub(super) async fn one_round_trip(
        &self,
        db: &mut Db,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
        flush: Flush,
    ) -> Result<bool, MigrateError> {
        let step = self.pg_step(m, up, down, flush);
        let Err(err) = db.batch(&step.text).await else {
            return Ok(true);
        };
        let _ = db.batch("ROLLBACK").await;
        Err(self
            .step_failed(db, m, up, down, &err, step.before_script)
            .await)
    }

    /// Records `m` as failed with the line `err` points at (`before`: the
    /// query text's characters in front of its script) and gives the error.
    pub(super) async fn step_failed(
        &self,
        db: &mut Db,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
        err: &sqlx::Error,
        before: usize,
    ) -> MigrateError {
        let line = match pg_error_line(err, before, up) {
            Some(line) => Some(line),
            None => single_statement_line(up),
        };
        self.record_failure(db, m, up, down, line, err, Direction::Up)
            .await
    }

    /// `begin`, then on SQLite (no global lock) re-reads the step's row under
    /// the write lock. `Ok(false)`: another runner applied it meanwhile, and
    /// the transaction is closed again.
    pub(super) async fn begin_step(&self, db: &mut Db, version: i64) -> Result<bool, MigrateError> {
        begin(db).await?;
        if db.dialect() == Dialect::Postgres {
            return Ok(true);
        }
        let row = match history::load_one(db, version).await {
            Ok(row) => row,
            Err(err) => {
                let _ = db.batch("ROLLBACK").await;
                return Err(MigrateError::sql("read the migration history")(err));
            }
        };
        let Some(row) = row else { return Ok(true) };
        let _ = db.batch("ROLLBACK").await;
        if row.state == RowState::Applied {
            return Ok(false);
        }
        Err(self
            .check_blocked(&[row])
            .expect_err("a row that is not applied blocks"))
    }

    /// The SQLite path: the write lock first, then a re-check.
    pub(super) async fn apply_immediate(
        &self,
        db: &mut Db,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
    ) -> Result<bool, MigrateError> {
        if !self.begin_step(db, m.version).await? {
            return Ok(false);
        }
        let started = Instant::now();
        if let Err((line, err)) = run_statements(db, up).await {
            let _ = db.batch("ROLLBACK").await;
            return Err(self
                .record_failure(db, m, up, down, line, &err, Direction::Up)
                .await);
        }
        let mut record = self.applied_record(m, up, down);
        record.duration_ms = Some(super::events::ms(started.elapsed()));
        let execution_ns = started.elapsed().as_nanos() as i64;
        let finish = async {
            history::upsert(db, &record, self.history_key()).await?;
            history::log(db, m.version, "apply", &self.actor, None).await?;
            if self.sqlx_on() {
                super::sqlx_history::record(db, &self.sqlx, m, Some(up), execution_ns).await?;
            }
            db.batch("COMMIT").await
        };
        if let Err(err) = finish.await {
            let _ = db.batch("ROLLBACK").await;
            return Err(MigrateError::sql(format!("record {} as applied", m.id()))(
                err,
            ));
        }
        Ok(true)
    }

    /// `no-transaction` files: in progress first, each statement on its own.
    pub(super) async fn statement_by_statement(
        &self,
        db: &mut Db,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
    ) -> Result<bool, MigrateError> {
        let statements = split::split(up);
        let total = statements.len();
        // Claim the migration (under SQLite's write lock, re-checking first).
        if db.dialect() == Dialect::Sqlite && !self.begin_step(db, m.version).await? {
            return Ok(false);
        }
        let mut record = self.applied_record(m, up, down);
        record.state = RowState::InProgress;
        record.statements = Some(total as i64);
        history::upsert(db, &record, self.history_key())
            .await
            .map_err(MigrateError::sql("record the migration as in progress"))?;
        if db.dialect() == Dialect::Sqlite {
            db.batch("COMMIT")
                .await
                .map_err(MigrateError::sql("record the migration as in progress"))?;
        }

        let started = Instant::now();
        for (index, statement) in statements.iter().enumerate() {
            if let Err(err) = db.batch(statement.text).await {
                let message = format!(
                    "statement {} of {total} (line {}): {}",
                    index + 1,
                    statement.line,
                    db_message(&err)
                );
                let _ = history::set_state(db, m.version, RowState::Failed, Some(&message)).await;
                let _ = history::log(db, m.version, "fail", &self.actor, Some(&message)).await;
                return Err(MigrateError::Failed {
                    id: m.id(),
                    path: m.path.clone(),
                    line: Some(statement.line),
                    message: format!("statement {} of {total}: {}", index + 1, db_message(&err)),
                });
            }
            history::set_progress(db, m.version, index as i64 + 1)
                .await
                .map_err(MigrateError::sql("record progress"))?;
            self.emit(Event::Statement {
                version: m.version,
                index: index + 1,
                total,
            });
        }
        record.state = RowState::Applied;
        record.progress = total as i64;
        record.duration_ms = Some(ms(started.elapsed()));
        history::upsert(db, &record, self.history_key())
            .await
            .map_err(MigrateError::sql("record the migration as applied"))?;
        history::log(db, m.version, "apply", &self.actor, None)
            .await
            .map_err(MigrateError::sql("log the migration"))?;
        if self.sqlx_on() {
            super::sqlx_history::record(
                db,
                &self.sqlx,
                m,
                Some(up),
                started.elapsed().as_nanos() as i64,
            )
            .await
            .map_err(MigrateError::sql(
                "record the migration in _sqlx_migrations",
            ))?;
        }
        Ok(true)
    }

    /// Records a failed transactional step (its changes already rolled
    /// back) and builds the error.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per path; a struct would only rename them"
    )]
    pub(super) async fn record_failure(
        &self,
        db: &mut Db,
        m: &Migration,
        up: &str,
        down: Option<&Script>,
        line: Option<usize>,
        err: &sqlx::Error,
        direction: Direction,
    ) -> MigrateError {
        let message = db_message(err);
        let recorded = match line {
            Some(line) => format!("line {line}: {message}"),
            None => message.clone(),
        };
        if direction == Direction::Up {
            let mut record = self.applied_record(m, up, down);
            record.state = RowState::Failed;
            record.error = Some(&recorded);
            if let Err(e) = history::upsert(db, &record, self.history_key()).await {
                tracing::warn!("could not record {} as failed: {e}", m.id());
            }
        }
        let action = if direction == Direction::Up {
            "fail"
        } else {
            "revert-fail"
        };
        if let Err(e) = history::log(db, m.version, action, &self.actor, Some(&recorded)).await {
            tracing::warn!("could not log the failure of {}: {e}", m.id());
        }
        MigrateError::Failed {
            id: m.id(),
            path: m.path.clone(),
            line,
            message,
        }
    }
}
