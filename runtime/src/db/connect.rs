//! Opening a connection, with failures an operator can act on:
//! unreachable, refused credentials, no such database.

use super::url::{DbTarget, Dialect};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// An open connection to either kind of database.
pub enum Db {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs SQL text of one or more statements (simple query protocol on
    /// PostgreSQL: one round trip).
    pub async fn batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres(conn) => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()),
            Db::Sqlite(conn) => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()),
        }
    }

    /// The first column of a one-row query without parameters, as a bool,
    /// sent as a simple query: one round trip and nothing prepared, where
    /// the extended protocol takes two (for what a command asks once).
    pub async fn flag(&mut self, sql: &str) -> Result<bool, sqlx::Error> {
        use sqlx::Row;
        match self {
            Db::Postgres(conn) => sqlx::raw_sql(sql).fetch_one(conn).await?.try_get(0),
            Db::Sqlite(conn) => sqlx::raw_sql(sql).fetch_one(conn).await?.try_get(0),
        }
    }

    /// True when `table` exists (in the current schema on PostgreSQL).
    pub async fn table_exists(&mut self, table: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = match self {
            Db::Postgres(c) => {
                sqlx::query_scalar(
                    "SELECT 1::bigint FROM pg_catalog.pg_tables WHERE tablename = $1 AND schemaname = current_schema()",
                )
                .bind(table)
                .fetch_optional(c)
                .await?
            }
            Db::Sqlite(c) => {
                sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")
                    .bind(table)
                    .fetch_optional(c)
                    .await?
            }
        };
        Ok(found.is_some())
    }

    /// Ends the session. On PostgreSQL, `Terminate` is written at once and
    /// the connection dropped without waiting for the TLS shutdown (sqlx
    /// reads the server's close_notify first, which comes only once the
    /// backend has exited: 2–3 ms of every command's time). The backend
    /// exits on `Terminate`; if it cannot be written at once, the server
    /// sees the socket close (logged only with a transaction open).
    pub async fn close(self) {
        use futures_util::FutureExt;
        use sqlx::Connection;
        let _ = match self {
            Db::Postgres(conn) => conn.close().now_or_never(),
            Db::Sqlite(conn) => Some(conn.close().await),
        };
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot reach the database {target}: {detail}")]
    Unreachable { target: String, detail: String },
    #[error("the database {target} refused the credentials: {detail}")]
    Auth { target: String, detail: String },
    #[error("the database {target} does not exist: {detail}")]
    NoSuchDatabase { target: String, detail: String },
    #[error("bad database URL {target}: {detail}")]
    BadUrl { target: String, detail: String },
    #[error("database {target}: {source}")]
    Other {
        target: String,
        #[source]
        source: sqlx::Error,
    },
}

/// PostgreSQL connection options for `target`, with statement logging
/// kept at trace level.
pub fn pg_options(target: &DbTarget) -> Result<PgConnectOptions, DbError> {
    Ok(PgConnectOptions::from_str(target.url())
        .map_err(|e| DbError::BadUrl {
            target: target.redacted(),
            detail: e.to_string(),
        })?
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5)))
}

/// SQLite connection options for `target` (WAL, foreign keys, a 30 s busy
/// timeout), creating the file (0600) and its directory (0700) when
/// missing and narrowing them when wider.
pub fn sqlite_options(target: &DbTarget) -> Result<SqliteConnectOptions, DbError> {
    let name = target.redacted();
    let options = SqliteConnectOptions::from_str(target.url()).map_err(|e| DbError::BadUrl {
        target: name.clone(),
        detail: e.to_string(),
    })?;
    let file = options.get_filename().to_path_buf();
    let in_memory = target.url().contains(":memory:") || file.as_os_str().is_empty();
    if !in_memory {
        // The database holds gantry's records or the auth data: the owner's
        // alone, as are its WAL and shared-memory files (SQLite gives them
        // the database's mode).
        let unreachable = |what: &Path, e: std::io::Error| DbError::Unreachable {
            target: name.clone(),
            detail: format!("cannot make {} private: {e}", what.display()),
        };
        // A directory gantry makes is private; one that exists is the
        // operator's to set.
        if let Some(dir) = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            crate::private::dir(dir).map_err(|e| unreachable(dir, e))?;
        }
        crate::private::create_file(&file).map_err(|e| unreachable(&file, e))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", file.display()));
            crate::private::file(&side).map_err(|e| unreachable(&side, e))?;
        }
    }
    Ok(options
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30))
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5)))
}

/// How long connecting may take before the database counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, creating a SQLite file (and its directory) when missing.
pub async fn connect(target: &DbTarget) -> Result<Db, DbError> {
    let name = target.redacted();
    let classify = |err: sqlx::Error| classify(&name, err);
    let connecting = async {
        match target.dialect() {
            Dialect::Postgres => pg_options(target)?
                .connect()
                .await
                .map(Db::Postgres)
                .map_err(classify),
            Dialect::Sqlite => {
                let options = sqlite_options(target)?;
                retry_busy(|| options.connect())
                    .await
                    .map(Db::Sqlite)
                    .map_err(classify)
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Unreachable {
            target: name.clone(),
            detail: format!("no answer within {CONNECT_TIMEOUT:?}"),
        }),
    }
}

/// Connects, trying again while SQLite answers busy. Several processes
/// opening a fresh file at once race to switch it to WAL: the pragma
/// reads, then upgrades to a write, and SQLite refuses a losing upgrade
/// at once rather than waiting (the busy timeout does not cover it: a
/// deadlock's way out). The winner commits within milliseconds, and the
/// next try finds the file in WAL mode already.
pub async fn retry_busy<T, F, Fut>(mut connect: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT / 2;
    loop {
        match connect().await {
            Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// SQLITE_BUSY, or one of its extended codes.
fn is_busy(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// Turns a connection failure into what an operator can act on.
pub fn classify(target: &str, err: sqlx::Error) -> DbError {
    let target = target.to_string();
    if let Some(db) = err.as_database_error() {
        let detail = db.message().to_string();
        return match db.code().as_deref() {
            Some("28P01" | "28000") => DbError::Auth { target, detail },
            Some("3D000") => DbError::NoSuchDatabase { target, detail },
            _ => DbError::Other {
                target,
                source: err,
            },
        };
    }
    match err {
        sqlx::Error::Io(io) => DbError::Unreachable {
            target,
            detail: io.to_string(),
        },
        sqlx::Error::Tls(tls) => DbError::Unreachable {
            target,
            detail: format!("TLS: {tls}"),
        },
        sqlx::Error::Configuration(detail) => DbError::BadUrl {
            target,
            detail: detail.to_string(),
        },
        other => DbError::Other {
            target,
            source: other,
        },
    }
}
