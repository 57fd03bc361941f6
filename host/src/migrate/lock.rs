//! The PostgreSQL migration lock: a session advisory lock held by the very
//! connection that applies the migrations, for the whole run, taken with
//! `pg_try_advisory_lock` in a polling loop (never a blocking wait) and
//! released on every exit path. The lock and the work share one session:
//! if it ends (the process dies, the server kills it, the network drops
//! it), the lock goes *and* the work stops with it — a second runner can
//! never enter while the first is still applying.
//!
//! SQLite has no such lock; there each migration takes `BEGIN IMMEDIATE`
//! (with a busy timeout) and re-reads its history row under it.

use super::error::MigrateError;
use super::events::{Event, Sink};
use crate::db::Db;
use std::time::{Duration, Instant};

/// "gantrymg": the advisory lock key (per database).
const KEY: i64 = 0x6761_6e74_7279_6d67;
const POLL: Duration = Duration::from_millis(50);
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Proof that the migrating session holds the lock.
pub struct PgLock;

impl PgLock {
    /// Takes the lock on `conn` (the migrating connection), waiting at
    /// most `timeout`.
    pub async fn acquire(
        conn: &mut Db,
        timeout: Duration,
        sink: &Sink,
    ) -> Result<PgLock, MigrateError> {
        assert!(
            matches!(conn, Db::Postgres(_)),
            "PgLock is only taken on PostgreSQL"
        );
        let started = Instant::now();
        let mut last_report: Option<Instant> = None;
        loop {
            // Simple queries: one round trip each, nothing prepared.
            let got = conn
                .flag(&format!("SELECT pg_try_advisory_lock({KEY})"))
                .await
                .map_err(MigrateError::sql("take the migration lock"))?;
            if got {
                if last_report.is_some() {
                    sink(&Event::LockAcquired {
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                return Ok(PgLock);
            }
            let Db::Postgres(pg) = &mut *conn else {
                unreachable!("checked above");
            };
            let holder = holder(pg).await;
            if started.elapsed() >= timeout {
                return Err(MigrateError::LockTimeout {
                    waited: started.elapsed(),
                    holder,
                });
            }
            if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                tracing::info!(holder_pid = ?holder, "waiting for the migration lock");
                sink(&Event::LockWaiting {
                    holder_pid: holder,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
                last_report = Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Releases it on `conn` (closing the session would too).
    pub async fn release(self, conn: &mut Db) {
        if let Db::Postgres(_) = conn {
            let released = conn
                .flag(&format!("SELECT pg_advisory_unlock({KEY})"))
                .await;
            if let Err(err) = released {
                tracing::warn!(
                    "could not release the migration lock (the session end will): {err}"
                );
            }
        }
    }
}

/// The backend pid that holds the lock, if it can be seen.
async fn holder(pg: &mut sqlx::PgConnection) -> Option<i32> {
    holder_row(pg).await.map(|row| row.0)
}

/// The SQLite migration lock: an exclusive `flock` on a file beside the
/// database (`<db>.gantry-migrate.lock`, holding the holder's pid), for the
/// whole run. A live runner makes the next one wait (and names its pid);
/// a dead one's lock went with its process, so its half-done
/// no-transaction step is reported as interrupted — never a live one's.
pub struct SqliteLock {
    _file: std::fs::File,
}

impl SqliteLock {
    /// `None` for an in-memory database (nothing to share).
    pub async fn acquire(
        target: &crate::db::DbTarget,
        timeout: Duration,
        sink: &Sink,
    ) -> Result<Option<SqliteLock>, MigrateError> {
        use std::io::{Read, Seek, Write};
        let Some(lock_path) = sqlite_lock_path(target) else {
            return Ok(None);
        };
        let io = |what: &str, e: std::io::Error| MigrateError::Sql {
            context: format!("{what} {}", lock_path.display()),
            source: sqlx::Error::Io(e),
        };
        let mut file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("open the migration lock", e))?;
        let started = Instant::now();
        let mut last_report: Option<Instant> = None;
        loop {
            if crate::flock::try_lock(&file, false).map_err(|e| io("take the migration lock", e))? {
                break;
            }
            let mut text = String::new();
            let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
            let holder = text.trim().parse::<i32>().ok();
            if started.elapsed() >= timeout {
                return Err(MigrateError::LockTimeout {
                    waited: started.elapsed(),
                    holder,
                });
            }
            if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                sink(&Event::LockWaiting {
                    holder_pid: holder,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
                last_report = Some(Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
        if last_report.is_some() {
            sink(&Event::LockAcquired {
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(Some(SqliteLock { _file: file }))
    }
}

/// pid, state, seconds its statement has run, the statement.
type RunnerRow = (i32, Option<String>, Option<f64>, Option<String>);

/// The session holding the migration lock: its row in pg_stat_activity.
async fn holder_row(pg: &mut sqlx::PgConnection) -> Option<RunnerRow> {
    sqlx::query_as(
        "SELECT a.pid, a.state, EXTRACT(EPOCH FROM now() - a.query_start)::float8, left(a.query, 120) \
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
           AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
         LIMIT 1",
    )
    .bind((KEY >> 32) & 0xffff_ffff)
    .bind(KEY & 0xffff_ffff)
    .fetch_optional(pg)
    .await
    .ok()
    .flatten()
}

/// The server session holding the migration lock, as a line: its backend
/// pid, state, how long its statement has run, and the statement.
pub async fn pg_runner(pg: &mut sqlx::PgConnection) -> Option<String> {
    let (pid, state, seconds, query) = holder_row(pg).await?;
    Some(format!(
        "backend pid {pid} holds the migration lock ({}{}): {}",
        state.as_deref().unwrap_or("unknown"),
        seconds
            .map(|s| format!(", its statement running for {s:.0} s"))
            .unwrap_or_default(),
        query.unwrap_or_default().trim()
    ))
}

/// The gantry process holding a SQLite database's migration lock, if any.
pub fn sqlite_runner(target: &crate::db::DbTarget) -> Option<String> {
    let lock_path = sqlite_lock_path(target)?;
    let file = std::fs::File::open(&lock_path).ok()?;
    // A shared probe: it succeeds only while no runner holds the lock.
    if crate::flock::try_lock(&file, true).unwrap_or(false) {
        return None;
    }
    let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
    Some(format!(
        "gantry process pid {} holds the migration lock",
        pid.trim()
    ))
}

/// `<db file>.gantry-migrate.lock`, beside the very file `connect` opens
/// (the URL read by sqlx's own parser); `None` for an in-memory database.
fn sqlite_lock_path(target: &crate::db::DbTarget) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(target.url()).ok()?;
    let file = options.get_filename();
    let name = file.to_str()?;
    if name.is_empty() || name.contains(":memory:") || name.contains("sqlx-in-memory") {
        return None;
    }
    Some(std::path::PathBuf::from(format!(
        "{name}.gantry-migrate.lock"
    )))
}
