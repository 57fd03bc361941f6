//! gantry's own state: config backups and config changes (and, as gantry
//! grows, deployments, alerts and the outbox), in SQLite
//! (`.gantry/state.db` by default) or PostgreSQL when `state.url` says so.
//!
//! Every change is committed before the side effect it records counts as
//! done. Secrets never reach this store: it holds names, checksums and
//! sizes, not contents.

mod records;

pub use records::{BackupFile, BackupRecord, ChangeFile, ChangeKind, ChangeRecord, ChangeState};

use crate::db::{Db, DbError, DbTarget, Dialect, connect, params_for};
use crate::on_conn;

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gantry_config_backups (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL,
    environment TEXT NOT NULL,
    config_dir  TEXT NOT NULL,
    path        TEXT NOT NULL,
    files       TEXT NOT NULL,
    total_size  BIGINT NOT NULL,
    change_id   BIGINT,
    purpose     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gantry_config_changes (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    environment   TEXT NOT NULL,
    config_dir    TEXT NOT NULL,
    backup_id     TEXT,
    restored_from TEXT,
    files         TEXT NOT NULL,
    actor         TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    error         TEXT
);";

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gantry_config_backups (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    environment TEXT NOT NULL,
    config_dir  TEXT NOT NULL,
    path        TEXT NOT NULL,
    files       TEXT NOT NULL,
    total_size  INTEGER NOT NULL,
    change_id   INTEGER,
    purpose     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gantry_config_changes (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    environment   TEXT NOT NULL,
    config_dir    TEXT NOT NULL,
    backup_id     TEXT,
    restored_from TEXT,
    files         TEXT NOT NULL,
    actor         TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    error         TEXT
);";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Connect(#[from] DbError),
    #[error("state store {target}: cannot {action}: {source}")]
    Sql {
        target: String,
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// An open state store.
pub struct Store {
    db: Db,
    target: DbTarget,
}

impl Store {
    /// Opens (creating if needed) the store at `target`.
    pub async fn open(target: &DbTarget) -> Result<Store, StoreError> {
        let mut db = connect(target).await?;
        let schema = match db.dialect() {
            Dialect::Postgres => POSTGRES_SCHEMA,
            Dialect::Sqlite => SQLITE_SCHEMA,
        };
        if let Err(source) = db.batch(schema).await {
            return Err(StoreError::Sql {
                target: target.redacted(),
                action: "create its tables",
                source,
            });
        }
        Ok(Store {
            db,
            target: target.clone(),
        })
    }

    /// Opens the store, runs `work`, and closes the store whatever `work`
    /// returned (an early return must not leave SQLite's side files
    /// behind, or a connection half-open).
    pub async fn with<T, E: From<StoreError>>(
        target: &DbTarget,
        work: impl AsyncFnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut store = Store::open(target).await?;
        let result = work(&mut store).await;
        store.close().await;
        result
    }

    pub fn target(&self) -> &DbTarget {
        &self.target
    }

    fn fail(&self, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            target: self.target.redacted(),
            action,
            source,
        }
    }

    pub async fn insert_backup(&mut self, b: &BackupRecord) -> Result<(), StoreError> {
        let sql = params_for(
            self.db.dialect(),
            "INSERT INTO gantry_config_backups (id, created_at, environment, config_dir, path, files, total_size, change_id, purpose) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .into_owned();
        let files = serde_json::to_string(&b.files).expect("serialisable");
        let done = on_conn!(&mut self.db, c => sqlx::query(&sql)
            .bind(&b.id)
            .bind(b.created_at)
            .bind(&b.environment)
            .bind(&b.config_dir)
            .bind(&b.path)
            .bind(&files)
            .bind(b.total_size)
            .bind(b.change_id)
            .bind(&b.purpose)
            .execute(c)
            .await
            .map(|_| ()));
        done.map_err(self.fail("record a backup"))
    }

    pub async fn set_backup_change(&mut self, id: &str, change_id: i64) -> Result<(), StoreError> {
        let sql = params_for(
            self.db.dialect(),
            "UPDATE gantry_config_backups SET change_id = $1 WHERE id = $2",
        )
        .into_owned();
        let done = on_conn!(&mut self.db, c => sqlx::query(&sql).bind(change_id).bind(id).execute(c).await.map(|_| ()));
        done.map_err(self.fail("link a backup to its change"))
    }

    pub async fn backups(&mut self) -> Result<Vec<BackupRecord>, StoreError> {
        let sql = "SELECT id, created_at, environment, config_dir, path, files, total_size, change_id, purpose \
                   FROM gantry_config_backups ORDER BY created_at, id";
        let rows: Result<Vec<records::RawBackup>, _> =
            on_conn!(&mut self.db, c => sqlx::query_as(sql).fetch_all(c).await);
        Ok(rows
            .map_err(self.fail("read backups"))?
            .into_iter()
            .map(BackupRecord::from)
            .collect())
    }

    pub async fn delete_backup(&mut self, id: &str) -> Result<(), StoreError> {
        let sql = params_for(
            self.db.dialect(),
            "DELETE FROM gantry_config_backups WHERE id = $1",
        )
        .into_owned();
        let done =
            on_conn!(&mut self.db, c => sqlx::query(&sql).bind(id).execute(c).await.map(|_| ()));
        done.map_err(self.fail("forget a backup"))
    }

    /// Records a change as started; returns its id.
    pub async fn start_change(&mut self, change: &ChangeRecord) -> Result<i64, StoreError> {
        let sql = params_for(
            self.db.dialect(),
            "INSERT INTO gantry_config_changes (kind, state, environment, config_dir, backup_id, restored_from, files, actor, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .into_owned();
        let files = serde_json::to_string(&change.files).expect("serialisable");
        let id: Result<i64, _> = on_conn!(&mut self.db, c => sqlx::query_scalar(&sql)
            .bind(change.kind.as_str())
            .bind(change.state.as_str())
            .bind(&change.environment)
            .bind(&change.config_dir)
            .bind(&change.backup_id)
            .bind(&change.restored_from)
            .bind(&files)
            .bind(&change.actor)
            .bind(change.started_at)
            .fetch_one(c)
            .await);
        id.map_err(self.fail("record a config change"))
    }

    pub async fn finish_change(
        &mut self,
        id: i64,
        state: ChangeState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = params_for(
            self.db.dialect(),
            "UPDATE gantry_config_changes SET state = $1, error = $2, finished_at = $3 WHERE id = $4",
        )
        .into_owned();
        let done = on_conn!(&mut self.db, c => sqlx::query(&sql)
            .bind(state.as_str())
            .bind(error)
            .bind(chrono::Utc::now())
            .bind(id)
            .execute(c)
            .await
            .map(|_| ()));
        done.map_err(self.fail("record the end of a config change"))
    }

    /// Marks every unfinished change on `config_dir` as interrupted,
    /// superseded by `by` (call only while holding that directory's lock).
    pub async fn mark_interrupted(
        &mut self,
        config_dir: &str,
        by: Option<i64>,
    ) -> Result<u64, StoreError> {
        let note = match by {
            Some(id) => format!("interrupted; superseded by change #{id}"),
            None => {
                "interrupted; superseded by a later deploy that found nothing to change".to_string()
            }
        };
        let sql = params_for(
            self.db.dialect(),
            "UPDATE gantry_config_changes SET state = 'interrupted', error = $1, finished_at = $2 \
             WHERE config_dir = $3 AND state = 'in_progress' AND ($4 IS NULL OR id <> $4)",
        )
        .into_owned();
        let done = on_conn!(&mut self.db, c => sqlx::query(&sql)
            .bind(&note)
            .bind(chrono::Utc::now())
            .bind(config_dir)
            .bind(by)
            .execute(c)
            .await
            .map(|r| r.rows_affected()));
        done.map_err(self.fail("mark interrupted changes"))
    }

    pub async fn changes(&mut self) -> Result<Vec<ChangeRecord>, StoreError> {
        let sql = "SELECT id, kind, state, environment, config_dir, backup_id, restored_from, files, actor, started_at, finished_at, error \
                   FROM gantry_config_changes ORDER BY id";
        let rows: Result<Vec<records::RawChange>, _> =
            on_conn!(&mut self.db, c => sqlx::query_as(sql).fetch_all(c).await);
        Ok(rows
            .map_err(self.fail("read config changes"))?
            .into_iter()
            .map(ChangeRecord::from)
            .collect())
    }

    pub async fn close(self) {
        self.db.close().await;
    }
}
