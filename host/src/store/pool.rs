//! The `Store` handle: a sqlx pool (SQLite in WAL mode, or PostgreSQL),
//! cheap to clone and shared by every engine in a process, and the
//! transactions its callers run their reads and writes in.
//!
//! A `Store` connects on first use, so a command that fails on bad input
//! before it needs the store leaves no store file behind. Connecting
//! migrates the store's own schema (see `schema.rs`). A write
//! transaction on SQLite starts with `BEGIN IMMEDIATE`, so two writers
//! queue on the busy timeout instead of failing to upgrade a read lock.

use super::error::StoreError;
use super::schema;
use crate::db::{
    CONNECT_TIMEOUT, DbError, DbTarget, Dialect, classify, pg_options, sqlite_options,
};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::{Postgres, Sqlite, Transaction};
use std::sync::Arc;

/// An open state store. Clones share one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: tokio::sync::OnceCell<Pool>,
    target: DbTarget,
}

#[derive(Clone)]
pub(super) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    pub(super) async fn begin(&self, write: bool) -> Result<Tx, sqlx::Error> {
        match self {
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres),
            Pool::Sqlite(p) if write => p.begin_with("BEGIN IMMEDIATE").await.map(Tx::Sqlite),
            Pool::Sqlite(p) => p.begin().await.map(Tx::Sqlite),
        }
    }

    async fn close(&self) {
        // sqlx's `close` does not wait for a connection still on its way
        // back: a finished transaction returns its connection from a
        // spawned task, and closing the idle ones first lets `close`
        // return before that one arrives. It is then dropped, unclosed,
        // when the runtime shuts down; for SQLite its thread races the
        // process's exit to fold the write-ahead log back, and the process
        // leaves `-wal` and `-shm` beside the database. So every
        // connection is let come back first (bounded: no task holds one
        // when a command ends).
        let returned = async {
            while self.busy() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), returned).await;
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Some connection is checked out or on its way back.
    fn busy(&self) -> bool {
        match self {
            Pool::Postgres(p) => p.num_idle() < p.size() as usize,
            Pool::Sqlite(p) => p.num_idle() < p.size() as usize,
        }
    }
}

/// A transaction on the store; queries go through `on_tx!`.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// Runs one generic sqlx expression on a `Tx`'s connection:
/// `on_tx!(tx, c => sqlx::query("…").execute(c).await)`.
#[macro_export]
#[doc(hidden)]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// Like `on_tx!` for a statement that returns no rows: evaluates to
/// `Result<u64, sqlx::Error>`, the rows it affected.
#[macro_export]
#[doc(hidden)]
macro_rules! exec_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body.map(|r| r.rows_affected())
            }
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body.map(|r| r.rows_affected())
            }
        }
    };
}

impl Tx {
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// `sql`, written with `$1` parameters, in this dialect's style.
    pub fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        crate::db::params_for(self.dialect(), sql)
    }

    /// Commits; see `Store::begin` for when to use explicit transactions.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.rollback().await,
            Tx::Sqlite(t) => t.rollback().await,
        }
    }

    /// Ends the transaction by what its work returned: commits `Ok` (a
    /// failed commit is an error saying `what` it committed), rolls back
    /// `Err` and returns it.
    pub async fn settle<T, E: From<StoreError>>(
        self,
        result: Result<T, E>,
        what: &'static str,
    ) -> Result<T, E> {
        match result {
            Ok(value) => {
                self.commit()
                    .await
                    .map_err(super::error::query_failed(what))?;
                Ok(value)
            }
            Err(err) => {
                let _ = self.rollback().await;
                Err(err)
            }
        }
    }

    /// The database's clock in milliseconds since the epoch: one clock for
    /// every host sharing a PostgreSQL store (SQLite is local anyway).
    pub async fn now_ms(&mut self) -> Result<i64, sqlx::Error> {
        match self {
            Tx::Postgres(t) => {
                sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                    .fetch_one(&mut **t)
                    .await
            }
            Tx::Sqlite(_) => Ok(chrono::Utc::now().timestamp_millis()),
        }
    }
}

impl Store {
    /// A store at `target`, connected (and its schema brought up to date)
    /// on first use.
    pub fn lazy(target: &DbTarget) -> Store {
        Store {
            inner: Arc::new(Inner {
                pool: tokio::sync::OnceCell::new(),
                target: target.clone(),
            }),
        }
    }

    /// Opens (creating if needed) the store at `target` now and brings its
    /// schema up to date; refuses a schema newer than this binary.
    pub async fn open(target: &DbTarget) -> Result<Store, StoreError> {
        let store = Store::lazy(target);
        store.pool().await?;
        Ok(store)
    }

    async fn pool(&self) -> Result<&Pool, StoreError> {
        self.inner
            .pool
            .get_or_try_init(|| connect(&self.inner.target))
            .await
    }

    pub fn target(&self) -> &DbTarget {
        &self.inner.target
    }
    pub fn dialect(&self) -> Dialect {
        self.inner.target.dialect()
    }

    pub(super) fn fail(&self, action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        failed(&self.inner.target, action)
    }

    /// Starts a transaction; `write` ones take SQLite's write lock at once.
    /// Code that runs in a spawned task uses this with `Tx::commit` rather
    /// than `read`/`write`: a future holding an async closure over `&mut Tx`
    /// is not provably `Send` (rustc's higher-ranked lifetime limits).
    pub async fn begin(&self, write: bool) -> Result<Tx, StoreError> {
        self.pool()
            .await?
            .begin(write)
            .await
            .map_err(self.fail("begin a transaction"))
    }

    /// Runs `work` in one transaction, committed when it returns `Ok` and
    /// rolled back otherwise: several records change together or not at all.
    pub async fn write<T, E: From<StoreError>>(
        &self,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(true, work).await
    }

    /// Runs `work` in a read transaction (one consistent snapshot).
    pub async fn read<T, E: From<StoreError>>(
        &self,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(false, work).await
    }

    async fn transaction<T, E: From<StoreError>>(
        &self,
        write: bool,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tx = self.begin(write).await?;
        let result = work(&mut tx).await;
        tx.settle(result, "commit a transaction").await
    }

    /// Closes every connection (SQLite then folds its write-ahead log back
    /// and removes its side files). Clones become unusable.
    pub async fn close(&self) {
        if let Some(pool) = self.inner.pool.get() {
            pool.close().await;
        }
    }
}

/// Connects a pool and brings the schema up to date. For PostgreSQL one
/// connection is made directly first: a pool retries a refused connection
/// until its acquire timeout and then reports only that it timed out,
/// while an operator needs "cannot reach 127.0.0.1:5432: connection
/// refused" now.
async fn connect(target: &DbTarget) -> Result<Pool, StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let name = target.redacted();
    let pool = match target.dialect() {
        Dialect::Postgres => {
            let options = pg_options(target)?;
            let probe = timed(&name, options.connect()).await?;
            let _ = probe.close().await;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(options),
            )
        }
        // A pool retries only a refused connection, which SQLite never
        // reports: its errors come back at once, as they are.
        // Busy at connect is a race to switch a fresh file to WAL:
        // tried again (`retry_busy`).
        Dialect::Sqlite => {
            let options = sqlite_options(target)?;
            Pool::Sqlite(
                timed(
                    &name,
                    crate::db::retry_busy(|| {
                        SqlitePoolOptions::new()
                            .max_connections(4)
                            .acquire_timeout(std::time::Duration::from_secs(35))
                            .connect_with(options.clone())
                    }),
                )
                .await?,
            )
        }
    };
    if let Err(err) = schema::migrate(&pool, target).await {
        pool.close().await;
        return Err(err);
    }
    Ok(pool)
}

async fn timed<P>(
    name: &str,
    connecting: impl std::future::Future<Output = Result<P, sqlx::Error>>,
) -> Result<P, DbError> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT + std::time::Duration::from_secs(1),
        connecting,
    )
    .await
    {
        Ok(result) => result.map_err(|e| classify(name, e)),
        Err(_) => Err(DbError::Unreachable {
            target: name.to_string(),
            detail: format!("no answer within {CONNECT_TIMEOUT:?}"),
        }),
    }
}

/// Maps a failed query on the store at `target` to `StoreError::Sql`.
pub(super) fn failed(
    target: &DbTarget,
    action: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    let target = target.redacted();
    move |source| StoreError::Sql {
        target,
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::Store;
    use crate::db::DbTarget;

    /// A command's last transactions return their connections from spawned
    /// tasks as the command ends; closing the store still closes every one
    /// of them, so SQLite folds its write-ahead log back and removes its
    /// side files before the process exits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_leaves_no_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.db");
        let target = DbTarget::parse(&format!("sqlite://{}", file.display())).unwrap();
        let side = |suffix: &str| dir.path().join(format!("state.db{suffix}"));
        for round in 0..40 {
            let store = Store::open(&target).await.unwrap();
            // Two reads at once hold two connections.
            let (a, b) = tokio::join!(
                store.read(async |tx| tx.backups().await),
                store.read(async |tx| tx.backups().await)
            );
            a.unwrap();
            b.unwrap();
            store.close().await;
            assert!(!side("-wal").exists(), "round {round}: -wal left");
            assert!(!side("-shm").exists(), "round {round}: -shm left");
        }
    }
}
