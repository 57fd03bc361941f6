//! `Migrator`: the runner's entry point. It connects, takes the lock,
//! reads the history, plans, and hands each step to `apply` / `revert`.
//! It emits events and returns reports; it never prints.

use super::checksum;
use super::chunk::Chunked;
use super::error::{DriftItem, MigrateError};
use super::events::{Direction, Event, PlannedStep, Sink};
use super::history::{self, HistoryRow, RowState};
use super::lock::{PgLock, SqliteLock};
use super::source::{
    Migration, MigrationId, MigrationSet, Reading, Source, discover, discover_indexed,
    discover_with,
};
use super::status::{self, Status};
use crate::db::{Db, DbTarget, Dialect, connect};
use crate::runtime::{Runtime, RuntimeSettings};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Whether a migration's commit waits for the disk before the next step.
///
/// On PostgreSQL a migration that is not the run's last commits with
/// `synchronous_commit` off: it is committed and visible at once, and its
/// WAL reaches the disk with the next flush — at the latest the run's last
/// commit (WAL is flushed in order, so that flush covers every commit
/// before it), a failure's record (written with the default) or
/// `history::flush` when a run ends in an error, or the WAL writer a
/// fraction of a second later. A run that returns success is as durable
/// as one that flushed every commit. A step's `Finished` event means
/// committed and visible: a server crash mid-run can lose the run's last
/// few commits, each whole with its history row (so `status` shows them
/// pending), and the next run applies them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    Now,
    Deferred,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply up to and including this migration.
    pub target: Option<MigrationId>,
    pub dry_run: bool,
    pub allow_out_of_order: bool,
}

/// What a run planned and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub direction: Direction,
    pub dry_run: bool,
    pub planned: Vec<PlannedStep>,
    /// Versions applied or reverted by this run.
    pub done: Vec<i64>,
}

pub struct Migrator {
    pub(super) target: DbTarget,
    pub(super) source: Source,
    pub(super) set: MigrationSet,
    pub(super) actor: String,
    lock_timeout: Duration,
    pub(super) sink: Sink,
    runtime: OnceLock<Arc<Runtime>>,
    runtime_settings: RuntimeSettings,
    pub(super) sqlx_mode: super::sqlx_history::SqlxHistory,
    /// Decided per run, under the lock (see `sqlx_history`).
    pub(super) sqlx_on: std::sync::atomic::AtomicBool,
    /// sqlx.toml's table name and ignored characters.
    pub(super) sqlx: super::sqlx_history::SqlxConfig,
    /// Where the installation key lives (`with_history_key`).
    key_dir: Option<std::path::PathBuf>,
    /// The key, once a run has opened (or made) it.
    key: OnceLock<crate::store::InstallationKey>,
    /// The connection `open` made beside reading the folder, until used.
    early: std::sync::Mutex<Option<Result<Db, crate::db::DbError>>>,
}

impl Migrator {
    /// Reads the migrations for the target's dialect from `source`.
    pub fn new(target: DbTarget, source: Source) -> Result<Migrator, MigrateError> {
        let set = discover(&source, target.dialect())?;
        Ok(Migrator::with_set(target, source, set))
    }

    /// As `new`; on PostgreSQL with the down scripts read when a run uses
    /// them (`Reading::DownsWhenUsed`: a no-op `migrate` reads none), and
    /// connecting while the folder is read (the first command's
    /// connection): a no-op `migrate` waits for the longer of the two, not
    /// both. A folder that is refused wins over the connection, which is
    /// closed unused. SQLite is opened only once the whole folder is read
    /// and checked (opening may create the file).
    pub async fn open(target: DbTarget, source: Source) -> Result<Migrator, MigrateError> {
        Migrator::open_indexed(target, source, None).await
    }

    /// As `open`, keeping the folder index (see `index`) in `index_dir`:
    /// an up script the index knows unchanged is read only when a run uses
    /// it, so a no-op lists and stats the folder.
    pub async fn open_indexed(
        target: DbTarget,
        source: Source,
        index_dir: Option<std::path::PathBuf>,
    ) -> Result<Migrator, MigrateError> {
        let dialect = target.dialect();
        if dialect == Dialect::Sqlite {
            // Connecting may create the file: every file is read (and
            // checked) first, as before any database is touched.
            return Migrator::new(target, source);
        }
        let reading = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || match index_dir {
                Some(dir) => discover_indexed(&source, dialect, &dir),
                None => discover_with(&source, dialect, Reading::DownsWhenUsed),
            })
        };
        let (set, early) = tokio::join!(reading, connect(&target));
        let set = match set {
            Ok(found) => found,
            Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
        };
        let set = match set {
            Ok(set) => set,
            Err(refused) => {
                if let Ok(db) = early {
                    db.close().await;
                }
                return Err(refused.into());
            }
        };
        let migrator = Migrator::with_set(target, source, set);
        *migrator.early.lock().expect("early connection") = Some(early);
        Ok(migrator)
    }

    fn with_set(target: DbTarget, source: Source, set: MigrationSet) -> Migrator {
        Migrator {
            target,
            source,
            set,
            actor: crate::identity::actor(),
            lock_timeout: Duration::from_secs(120),
            sink: crate::events::discard(),
            runtime: OnceLock::new(),
            runtime_settings: RuntimeSettings::default(),
            sqlx_mode: Default::default(),
            sqlx_on: Default::default(),
            sqlx: Default::default(),
            key_dir: None,
            key: OnceLock::new(),
            early: std::sync::Mutex::new(None),
        }
    }

    /// A connection to the target: the one `open` made, the first time.
    pub(super) async fn connection(&self) -> Result<Db, MigrateError> {
        let early = self.early.lock().expect("early connection").take();
        match early {
            Some(made) => Ok(made?),
            None => Ok(connect(&self.target).await?),
        }
    }

    /// Signs what the history keeps to run later with the installation key
    /// in `dir` (made on the first run that writes), and runs a recorded
    /// down only when its signature holds. Without it, recorded downs are
    /// never run.
    pub fn with_history_key(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.key_dir = Some(dir.into());
        self
    }

    /// The key a run signs with, once opened.
    pub(super) fn history_key(&self) -> Option<&crate::store::InstallationKey> {
        self.key.get()
    }

    /// Opens the key (`create`: making it when there is none yet).
    pub(super) fn open_history_key(&self, create: bool) -> Result<(), MigrateError> {
        let Some(dir) = &self.key_dir else {
            return Ok(());
        };
        if self.key.get().is_some() {
            return Ok(());
        }
        let opened = if create {
            crate::store::InstallationKey::open_or_create(dir)
        } else if crate::store::InstallationKey::key_path(dir).exists() {
            crate::store::InstallationKey::open(dir)
        } else {
            return Ok(());
        };
        let key = opened.map_err(|e| MigrateError::Key(e.to_string()))?;
        let _ = self.key.set(key);
        Ok(())
    }

    /// Whether sqlx's `_sqlx_migrations` is kept in step (auto by default).
    pub fn with_sqlx_history(mut self, mode: super::sqlx_history::SqlxHistory) -> Self {
        self.sqlx_mode = mode;
        self
    }

    /// sqlx.toml's settings (the history table's name, ignored characters).
    pub fn with_sqlx_config(mut self, config: super::sqlx_history::SqlxConfig) -> Self {
        self.sqlx = config;
        self
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Receives every event the runner emits.
    pub fn on_event(self, sink: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.with_sink(std::sync::Arc::new(sink))
    }

    /// Sends every event the runner emits to `sink` (a reporter's).
    pub fn with_sink(mut self, sink: Sink) -> Self {
        self.sink = sink;
        self
    }

    /// Settings for the plugin runtime that WASM steps run in (built only
    /// when a WASM step runs).
    pub fn with_runtime_settings(mut self, settings: RuntimeSettings) -> Self {
        self.runtime_settings = settings;
        self
    }

    /// Shares an existing plugin runtime.
    pub fn with_runtime(self, runtime: Arc<Runtime>) -> Self {
        let _ = self.runtime.set(runtime);
        self
    }

    pub fn set(&self) -> &MigrationSet {
        &self.set
    }

    pub fn target(&self) -> &DbTarget {
        &self.target
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub(super) fn emit(&self, event: Event) {
        (self.sink)(&event);
    }

    pub(super) fn runtime(&self) -> Result<Arc<Runtime>, MigrateError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(Arc::clone(rt));
        }
        let rt =
            Runtime::new(self.runtime_settings.clone()).map_err(|source| MigrateError::Plugin {
                id: "runtime".into(),
                source,
            })?;
        Ok(Arc::clone(self.runtime.get_or_init(|| Arc::new(rt))))
    }

    /// Files joined with the history; takes no lock and changes nothing.
    pub async fn status(&self) -> Result<Status, MigrateError> {
        let mut db = self.connection().await?;
        let rows = history::load(&mut db)
            .await
            .map_err(MigrateError::sql("read the migration history"));
        let runner = match &mut db {
            Db::Postgres(pg) => super::lock::pg_runner(pg).await,
            Db::Sqlite(_) => super::lock::sqlite_runner(&self.target),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                db.close().await;
                return Err(err);
            }
        };
        let mut status = status::compute(&self.set, &rows);
        status.runner = runner;
        let checked = self.check_signatures(&mut db, &rows, &mut status).await;
        db.close().await;
        checked?;
        Ok(status)
    }

    /// Marks each row that keeps something to run later with whether its
    /// signature holds (only for a migrator that signs).
    async fn check_signatures(
        &self,
        db: &mut Db,
        rows: &[HistoryRow],
        status: &mut Status,
    ) -> Result<(), MigrateError> {
        if self.key_dir.is_none() {
            return Ok(());
        }
        self.open_history_key(false)?;
        for row in rows.iter().filter(|r| r.state == RowState::Applied) {
            // A history from before signatures has no column yet: the next
            // run that writes signs it.
            let Ok(stored) = history::stored_down(db, row.version).await else {
                return Ok(());
            };
            if !stored.runs_anything() {
                continue;
            }
            let verdict = match self.history_key() {
                Some(key) => stored
                    .signed(row.version, &row.name)
                    .verify(key, stored.signature.as_deref()),
                None if stored.signature.is_none() => super::signature::Verdict::Unsigned,
                None => super::signature::Verdict::Invalid,
            };
            if let Some(status_row) = status.rows.iter_mut().find(|r| r.version == row.version) {
                status_row.recorded = Some(verdict);
            }
        }
        Ok(())
    }

    /// Runs `work` holding the migration lock (PostgreSQL) on a fresh
    /// connection with the history tables in place; always releases.
    pub(super) async fn locked<T>(
        &self,
        work: impl AsyncFnOnce(&mut Option<Db>) -> Result<T, MigrateError>,
    ) -> Result<T, MigrateError> {
        let mut slot = Some(self.connection().await?);
        let lock = match self.target.dialect() {
            Dialect::Postgres => {
                let db = slot.as_mut().expect("connection");
                match PgLock::acquire(db, self.lock_timeout, &self.sink).await {
                    Ok(lock) => Some(lock),
                    Err(err) => {
                        if let Some(db) = slot.take() {
                            db.close().await;
                        }
                        return Err(err);
                    }
                }
            }
            Dialect::Sqlite => None,
        };
        // SQLite: one runner at a time per database file, across processes.
        let _sqlite_lock = match self.target.dialect() {
            Dialect::Sqlite => {
                match SqliteLock::acquire(&self.target, self.lock_timeout, &self.sink).await {
                    Ok(lock) => lock,
                    Err(err) => {
                        if let Some(db) = slot.take() {
                            db.close().await;
                        }
                        return Err(err);
                    }
                }
            }
            Dialect::Postgres => None,
        };
        let result = async {
            self.open_history_key(true)?;
            let db = slot.as_mut().expect("connection");
            let in_place = history::in_place(db)
                .await
                .map_err(MigrateError::sql("look for the migration history tables"))?;
            if !in_place {
                // The first write of a run that may apply everything: every
                // script is read and checked first, so a bad one changes
                // nothing.
                self.set.read_scripts()?;
                history::create(db, self.history_key())
                    .await
                    .map_err(MigrateError::sql("create the migration history tables"))?;
            }
            work(&mut slot).await
        }
        .await;
        if let (Some(lock), Some(db)) = (lock, slot.as_mut()) {
            lock.release(db).await;
        }
        if let Some(db) = slot {
            db.close().await;
        }
        result
    }

    /// Applies pending migrations.
    pub async fn migrate(&self, options: &ApplyOptions) -> Result<RunReport, MigrateError> {
        if options.dry_run {
            let mut db = self.connection().await?;
            let planned = match history::load(&mut db).await {
                Ok(rows) => self.plan_apply(&mut db, rows, options).await,
                Err(err) => Err(MigrateError::sql("read the migration history")(err)),
            };
            db.close().await;
            let planned = planned?;
            return Ok(self.report(Direction::Up, true, &planned, Vec::new()));
        }
        self.locked(async |slot| {
            let db = slot.as_mut().expect("connection");
            // The tables are in place (`locked`), so their rows are read at
            // once; planned (and every refusal checked) before sqlx's table
            // is made.
            let rows = history::load_for_plan(db)
                .await
                .map_err(MigrateError::sql("read the migration history"))?;
            let planned = self.plan_apply(db, rows, options).await?;
            // sqlx's table is looked for (and made) only by a run that
            // writes: a no-op asks nothing more.
            if !planned.is_empty() {
                self.prepare_sqlx(db, true)
                    .await
                    .map_err(MigrateError::sql("create sqlx's history table"))?;
            }
            let mut done = Vec::new();
            let mut pace = super::chunk::Pace::new();
            let mut at = 0;
            while at < planned.len() {
                let limit = match self.target.dialect() {
                    Dialect::Postgres => pace.size(),
                    Dialect::Sqlite => 1,
                };
                let chunk = super::chunk::take(&planned[at..], limit);
                let run_last = at + chunk.len() == planned.len();
                let started = std::time::Instant::now();
                let applied = match chunk {
                    [one] => {
                        let flush = if run_last {
                            Flush::Now
                        } else {
                            Flush::Deferred
                        };
                        self.apply_migration(slot, one, flush).await.map(|applied| {
                            if applied {
                                done.push(one.version);
                            }
                            Chunked::Applied
                        })
                    }
                    several => {
                        let db = slot.as_mut().expect("connection");
                        self.apply_chunk(db, several, run_last, &mut done).await
                    }
                };
                match applied {
                    Ok(Chunked::Applied) => {
                        at += chunk.len();
                        pace.after(started.elapsed());
                    }
                    Ok(Chunked::Retry) => pace.one_at_a_time(),
                    Err(err) => {
                        if let (Some(&version), Some(db)) = (done.last(), slot.as_mut()) {
                            history::flush(db, version).await;
                        }
                        return Err(err);
                    }
                }
            }
            Ok(self.report(Direction::Up, false, &planned, done))
        })
        .await
    }

    fn report(
        &self,
        direction: Direction,
        dry_run: bool,
        planned: &[&Migration],
        done: Vec<i64>,
    ) -> RunReport {
        RunReport {
            direction,
            dry_run,
            planned: planned
                .iter()
                .map(|m| planned_step(m, String::new()))
                .collect(),
            done,
        }
    }

    /// What `migrate` would apply, after every refusal check.
    async fn plan_apply<'a>(
        &'a self,
        db: &mut Db,
        rows: Vec<HistoryRow>,
        options: &ApplyOptions,
    ) -> Result<Vec<&'a Migration>, MigrateError> {
        let limit = match &options.target {
            Some(id) => self.resolve(id)?.version,
            None => i64::MAX,
        };
        self.check_blocked(&rows)?;
        self.check_drift(db, &rows).await?;
        for row in &rows {
            if self.set.get(row.version).is_none() {
                self.emit(Event::Warning {
                    message: format!(
                        "{:03}_{} is applied but its file is missing from {}",
                        row.version, row.name, self.source
                    ),
                });
            }
        }
        let applied: std::collections::HashSet<i64> = rows.iter().map(|r| r.version).collect();
        let pending: Vec<&Migration> = self
            .set
            .migrations
            .iter()
            .filter(|m| !applied.contains(&m.version) && m.version <= limit)
            .collect();
        if let Some(newest) = rows.iter().max_by_key(|r| r.version) {
            let early: Vec<String> = pending
                .iter()
                .filter(|m| m.version < newest.version)
                .map(|m| m.id())
                .collect();
            if !early.is_empty() && !options.allow_out_of_order {
                return Err(MigrateError::OutOfOrder {
                    pending: early,
                    newest: format!("{:03}_{}", newest.version, newest.name),
                });
            }
        }
        self.check_pins(&pending)?;
        // Every script this run will run or record is read and checked
        // before anything runs (a no-op reads none of the ones the folder
        // index knows, and no down).
        for m in &pending {
            m.read_scripts()?;
        }
        self.emit(Event::Planned {
            direction: Direction::Up,
            steps: pending
                .iter()
                .map(|m| planned_step(m, String::new()))
                .collect(),
        });
        Ok(pending)
    }

    /// The operator's pins (`plugins.pins.NAME`) hold for WASM steps as for
    /// any plugin: checked for every pending step before anything runs.
    fn check_pins(&self, pending: &[&Migration]) -> Result<(), MigrateError> {
        let steps: Vec<(&Migration, &super::source::WasmStep)> = pending
            .iter()
            .filter_map(|m| match &m.body {
                super::source::Body::Wasm(step) => Some((*m, step.as_ref())),
                _ => None,
            })
            .collect();
        if steps.is_empty() {
            return Ok(());
        }
        let pins = match self.runtime.get() {
            Some(runtime) => &runtime.settings().pins,
            None => &self.runtime_settings.pins,
        };
        for (m, step) in steps {
            let Some(expected) = pins.get(&step.manifest.name) else {
                continue;
            };
            let sha256 = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&step.component))
            };
            let found = step.manifest.pin(&sha256);
            if !found.eq_ignore_ascii_case(expected) {
                return Err(MigrateError::Pin {
                    id: m.id(),
                    key: format!("plugins.pins.{}", step.manifest.name),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    /// The migration file an id names.
    pub(super) fn resolve(&self, id: &MigrationId) -> Result<&Migration, MigrateError> {
        let found = self
            .set
            .get(id.version())
            .filter(|m| id.name().is_none_or(|n| n == m.name));
        found.ok_or_else(|| MigrateError::UnknownTarget(id.to_string()))
    }

    pub(super) fn check_blocked(&self, rows: &[HistoryRow]) -> Result<(), MigrateError> {
        let blocked: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.state != RowState::Applied)
            .map(|r| {
                let what = match r.state {
                    RowState::InProgress => match r.statements {
                        Some(total) => format!(
                            "in progress ({} of {total} statements done); it was interrupted",
                            r.progress
                        ),
                        None => "in progress; it was interrupted".to_string(),
                    },
                    _ => format!(
                        "failed: {}",
                        r.error.as_deref().unwrap_or("no message recorded")
                    ),
                };
                (format!("{:03}_{}", r.version, r.name), what)
            })
            .collect();
        if blocked.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Blocked(blocked))
        }
    }

    async fn check_drift(&self, db: &mut Db, rows: &[HistoryRow]) -> Result<(), MigrateError> {
        let mut drift = Vec::new();
        for row in rows.iter().filter(|r| r.state == RowState::Applied) {
            let Some(file) = self.set.get(row.version) else {
                continue;
            };
            if file.checksum == row.checksum {
                continue;
            }
            let stored = history::stored_down(db, row.version)
                .await
                .map_err(MigrateError::sql("read the applied script"))?;
            let whitespace_only = match (&file.body, stored.up_script) {
                (super::source::Body::Sql { up, .. }, Some(applied)) => {
                    Some(checksum::only_whitespace_differs(up.text()?, &applied))
                }
                _ => None,
            };
            drift.push(DriftItem {
                id: file.id(),
                path: file.path.clone(),
                applied_checksum: row.checksum.clone(),
                file_checksum: file.checksum.clone(),
                whitespace_only,
            });
        }
        if drift.is_empty() {
            Ok(())
        } else {
            Err(MigrateError::Drift(drift))
        }
    }
}

pub(super) fn planned_step(m: &Migration, source: String) -> PlannedStep {
    PlannedStep {
        version: m.version,
        id: m.id(),
        kind: m.kind(),
        no_transaction: m.no_transaction,
        source,
    }
}
