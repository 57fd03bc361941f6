//! Leases: ownership of a change, deployment, rollout or monitor
//! leadership, recorded in the state store so it holds across processes
//! and hosts.
//!
//! A lease row names its owner (host, pid and process start time, a random
//! token), and an expiry on the database's clock that a heartbeat pushes
//! forward. A lease is *alive* while it has not expired and, when its owner
//! is on this host, while that very process still runs (so a `kill -9` here
//! frees it at once, while a host that went silent frees it at expiry).
//! A dead lease can be taken over; its owner's unfinished work is then
//! "interrupted". An owner checks `ensure_held` before each side effect:
//! after a pause past its expiry it may have been taken over, and must stop.

use super::error::{StoreError, query_failed};
use super::pool::{Store, Tx};
use crate::db::Dialect;
use crate::identity;
use crate::process::ProcessId;
use crate::{exec_tx, on_tx};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// See `Lease::watch`.
#[derive(Clone)]
pub struct LeaseWatch {
    renewed: Arc<Mutex<Instant>>,
    lost: Arc<AtomicBool>,
    ttl: Duration,
}

impl LeaseWatch {
    /// Renewed within its life and not found lost.
    pub fn is_fresh(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && self.renewed.lock().expect("lease clock").elapsed() < self.ttl
    }
}

/// Who holds (or held) a lease.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub purpose: String,
    pub host: String,
    pub pid: u32,
    #[serde(skip)]
    pub process_start: String,
    #[serde(skip)]
    pub token: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Not expired, and (on this host) its process still runs.
    pub alive: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} ({}, since {}, lease until {})",
            self.pid,
            self.host,
            self.purpose,
            self.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.expires_at.format("%H:%M:%S UTC"),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("{name} is held by {holder}")]
    Held { name: String, holder: Box<Holder> },
    #[error(
        "lost the lease on {name}: it was not renewed in time and may have been taken over; \
         stopped before the next change"
    )]
    Lost { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    purpose: String,
    host: String,
    pid: i64,
    process_start: String,
    token: String,
    acquired_ms: i64,
    expires_ms: i64,
}

impl Row {
    fn holder(self, now_ms: i64) -> Holder {
        let process = ProcessId {
            pid: self.pid as u32,
            start: self.process_start.clone(),
        };
        let local = self.host == identity::host();
        // On this host a dead process frees its lease at once.
        let alive = self.expires_ms > now_ms && (!local || process.is_running());
        Holder {
            name: self.name,
            purpose: self.purpose,
            host: self.host,
            pid: self.pid as u32,
            process_start: self.process_start,
            token: self.token,
            acquired_at: millis(self.acquired_ms),
            expires_at: millis(self.expires_ms),
            alive,
        }
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

const COLUMNS: &str =
    "name, purpose, host, pid, process_start, token, acquired_ms, renewed_ms, expires_ms";

async fn read_row(tx: &mut Tx, name: &str) -> Result<Option<Row>, sqlx::Error> {
    let sql = match tx.dialect() {
        Dialect::Postgres => {
            format!("SELECT {COLUMNS} FROM gantry_leases WHERE name = $1 FOR UPDATE")
        }
        Dialect::Sqlite => format!("SELECT {COLUMNS} FROM gantry_leases WHERE name = ?1"),
    };
    on_tx!(tx, c => sqlx::query_as(&sql).bind(name).fetch_optional(c).await)
}

/// Inside `tx`: refuses a live holder, else takes the row over (or
/// inserts it). Returns the dead holder it replaced.
async fn take(
    tx: &mut Tx,
    name: &str,
    purpose: &str,
    me: &ProcessId,
    token: &str,
    ttl_ms: i64,
) -> Result<Option<Holder>, LeaseError> {
    let fail = query_failed("take a lease");
    if tx.dialect() == Dialect::Postgres {
        // Takers of one name queue here until the transaction ends: with no
        // row to lock (`FOR UPDATE` locks nothing when the last holder
        // deleted it), two would otherwise both insert-or-update and both
        // hold it. SQLite's `BEGIN IMMEDIATE` already serializes them.
        let lock = "SELECT pg_advisory_xact_lock(hashtextextended('gantry-lease:' || $1, 0))";
        exec_tx!(tx, c => sqlx::query(lock).bind(name).execute(c).await)
            .map_err(query_failed("wait for other takers of a lease"))?;
    }
    let now = tx.now_ms().await.map_err(query_failed("read the clock"))?;
    let previous = read_row(tx, name)
        .await
        .map_err(query_failed("read a lease"))?
        .map(|row| row.holder(now));
    if let Some(holder) = &previous
        && holder.alive
    {
        return Err(LeaseError::Held {
            name: name.to_string(),
            holder: Box::new(holder.clone()),
        });
    }
    let upsert = tx
        .sql(
            "INSERT INTO gantry_leases (name, purpose, host, pid, process_start, token, acquired_ms, renewed_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET purpose = excluded.purpose, host = excluded.host, \
             pid = excluded.pid, process_start = excluded.process_start, token = excluded.token, \
             acquired_ms = excluded.acquired_ms, renewed_ms = excluded.renewed_ms, \
             expires_ms = excluded.expires_ms",
        )
        .into_owned();
    exec_tx!(tx, c => sqlx::query(&upsert)
        .bind(name)
        .bind(purpose)
        .bind(identity::host())
        .bind(me.pid as i64)
        .bind(&me.start)
        .bind(token)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(c)
        .await)
    .map_err(fail)?;
    Ok(previous)
}

/// A held lease. Its heartbeat runs until `release` (or drop).
pub struct Lease {
    store: Store,
    name: String,
    token: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
    renewed: Arc<Mutex<Instant>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// The dead holder this lease was taken over from, if any.
    pub took_over: Option<Holder>,
}

impl Store {
    /// Takes the lease `name` for this process, or says who holds it.
    pub async fn try_lease(
        &self,
        name: &str,
        purpose: &str,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        let me = ProcessId::current();
        let token = identity::token();
        let ttl_ms = ttl.as_millis() as i64;
        let took_over = async {
            let mut tx = self.begin(true).await?;
            let result = take(&mut tx, name, purpose, &me, &token, ttl_ms).await;
            match result {
                Ok(previous) => {
                    tx.commit().await.map_err(self.fail("take a lease"))?;
                    Ok(previous)
                }
                Err(err) => {
                    let _ = tx.rollback().await;
                    Err(err)
                }
            }
        }
        .await;
        let took_over = match took_over {
            Ok(previous) => previous,
            // Two takers raced to insert the first row (PostgreSQL): the
            // loser sees a unique violation; report the winner.
            Err(LeaseError::Store(StoreError::Sql { source, .. }))
                if source
                    .as_database_error()
                    .is_some_and(|d| d.code().as_deref() == Some("23505")) =>
            {
                let holder = self.lease_holder(name).await?;
                return Err(match holder {
                    Some(holder) => LeaseError::Held {
                        name: name.to_string(),
                        holder: Box::new(holder),
                    },
                    None => LeaseError::Lost {
                        name: name.to_string(),
                    },
                });
            }
            Err(err) => return Err(err),
        };
        if let Some(previous) = &took_over {
            tracing::warn!(lease = name, "took over the lease of {previous}");
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewed = Arc::new(Mutex::new(Instant::now()));
        let heartbeat = tokio::spawn(heartbeat(
            self.clone(),
            name.to_string(),
            token.clone(),
            ttl,
            Arc::clone(&lost),
            Arc::clone(&renewed),
        ));
        Ok(Lease {
            store: self.clone(),
            name: name.to_string(),
            token,
            ttl,
            lost,
            renewed,
            heartbeat: Some(heartbeat),
            took_over,
        })
    }

    /// Takes the lease, polling while another live process holds it, for at
    /// most `wait`.
    pub async fn lease_waiting(
        &self,
        name: &str,
        purpose: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LeaseError> {
        let started = Instant::now();
        loop {
            match self.try_lease(name, purpose, ttl).await {
                Err(LeaseError::Held { .. }) if started.elapsed() < wait => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Who holds `name` now, alive or not.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<Holder>, StoreError> {
        let mut tx = self.begin(false).await?;
        let now = tx.now_ms().await.map_err(self.fail("read the clock"))?;
        let sql = tx
            .sql(&format!(
                "SELECT {COLUMNS} FROM gantry_leases WHERE name = $1"
            ))
            .into_owned();
        let row: Option<Row> =
            on_tx!(&mut tx, c => sqlx::query_as(&sql).bind(name).fetch_optional(c).await)
                .map_err(self.fail("read a lease"))?;
        let _ = tx.rollback().await;
        Ok(row.map(|r| r.holder(now)))
    }

    /// Every lease row, alive or not.
    pub async fn leases(&self) -> Result<Vec<Holder>, StoreError> {
        let mut tx = self.begin(false).await?;
        let now = tx.now_ms().await.map_err(self.fail("read the clock"))?;
        let sql = format!("SELECT {COLUMNS} FROM gantry_leases ORDER BY name");
        let rows: Vec<Row> = on_tx!(&mut tx, c => sqlx::query_as(&sql).fetch_all(c).await)
            .map_err(self.fail("read leases"))?;
        let _ = tx.rollback().await;
        Ok(rows.into_iter().map(|r| r.holder(now)).collect())
    }

    /// Pushes the lease's expiry forward if `token` still holds it.
    async fn renew(&self, name: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut tx = self.begin(true).await?;
        let now = tx.now_ms().await.map_err(self.fail("read the clock"))?;
        let sql = tx.sql(
            "UPDATE gantry_leases SET renewed_ms = $1, expires_ms = $2 WHERE name = $3 AND token = $4",
        ).into_owned();
        let done = exec_tx!(&mut tx, c => sqlx::query(&sql)
            .bind(now)
            .bind(now + ttl.as_millis() as i64)
            .bind(name)
            .bind(token)
            .execute(c)
            .await)
        .map_err(self.fail("renew a lease"))?;
        tx.commit().await.map_err(self.fail("renew a lease"))?;
        Ok(done == 1)
    }

    async fn drop_lease(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let mut tx = self.begin(true).await?;
        let sql = tx
            .sql("DELETE FROM gantry_leases WHERE name = $1 AND token = $2")
            .into_owned();
        exec_tx!(&mut tx, c => sqlx::query(&sql).bind(name).bind(token).execute(c).await)
            .map_err(self.fail("release a lease"))?;
        tx.commit().await.map_err(self.fail("release a lease"))
    }
}

async fn heartbeat(
    store: Store,
    name: String,
    token: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
    renewed: Arc<Mutex<Instant>>,
) {
    let every = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match store.renew(&name, &token, ttl).await {
            Ok(true) => *renewed.lock().expect("lease clock") = Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %name, "the lease was taken over");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(err) => tracing::warn!(lease = %name, "could not renew the lease: {err}"),
        }
    }
}

impl Lease {
    /// A cheap, cloneable view of whether this lease is still good by the
    /// local clock (renewed within its life and not lost), for readers
    /// that must not claim a lease that may have lapsed.
    pub fn watch(&self) -> LeaseWatch {
        LeaseWatch {
            renewed: Arc::clone(&self.renewed),
            lost: Arc::clone(&self.lost),
            ttl: self.ttl,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token recorded with everything done under this lease.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Ok while this process still owns the lease. When the last renewal is
    /// older than a third of its life (a pause, a slow store), renews now:
    /// the renewal succeeds only if nobody took the lease over meanwhile.
    pub async fn ensure_held(&self) -> Result<(), LeaseError> {
        let lost = || LeaseError::Lost {
            name: self.name.clone(),
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        let since = self.renewed.lock().expect("lease clock").elapsed();
        if since < self.ttl / 3 {
            return Ok(());
        }
        if self.store.renew(&self.name, &self.token, self.ttl).await? {
            *self.renewed.lock().expect("lease clock") = Instant::now();
            Ok(())
        } else {
            self.lost.store(true, Ordering::SeqCst);
            Err(lost())
        }
    }

    /// Stops the heartbeat and deletes the lease row.
    pub async fn release(mut self) {
        if let Some(beat) = self.heartbeat.take() {
            beat.abort();
        }
        if let Err(err) = self.store.drop_lease(&self.name, &self.token).await {
            tracing::warn!(lease = %self.name, "could not release the lease: {err}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(beat) = self.heartbeat.take() {
            beat.abort();
            // Not released explicitly (an error path): release in the
            // background if a runtime is still there; otherwise the row
            // dies with this process (same host) or at expiry.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let store = self.store.clone();
                let (name, token) = (self.name.clone(), self.token.clone());
                rt.spawn(async move {
                    let _ = store.drop_lease(&name, &token).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbTarget;

    impl Lease {
        /// As if this process stopped renewing (a pause, a lost network).
        fn stop_heartbeat(&mut self) {
            if let Some(beat) = self.heartbeat.take() {
                beat.abort();
            }
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let store = Store::open(&DbTarget::parse(&url).unwrap()).await.unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_lease_is_refused_and_a_released_one_is_free() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_secs(5);
        let first = store.try_lease("x", "test", ttl).await.unwrap();
        match store.try_lease("x", "test", ttl).await {
            Err(LeaseError::Held { holder, .. }) => {
                assert!(holder.alive);
                assert_eq!(holder.pid, std::process::id());
            }
            other => panic!(
                "expected Held, got {:?}",
                other.map(|l| l.token().to_string())
            ),
        }
        first.release().await;
        assert!(store.lease_holder("x").await.unwrap().is_none());
        let again = store.try_lease("x", "test", ttl).await.unwrap();
        assert!(again.took_over.is_none());
        again.release().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_is_taken_over_and_its_owner_stops() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_millis(300);
        let mut first = store.try_lease("x", "test", ttl).await.unwrap();
        first.ensure_held().await.unwrap();
        first.stop_heartbeat();
        tokio::time::sleep(Duration::from_millis(450)).await;
        let holder = store.lease_holder("x").await.unwrap().unwrap();
        assert!(!holder.alive, "expired");
        let second = store.try_lease("x", "test", ttl).await.unwrap();
        assert_eq!(
            second.took_over.as_ref().map(|h| h.token.as_str()),
            Some(first.token())
        );
        assert!(matches!(
            first.ensure_held().await,
            Err(LeaseError::Lost { .. })
        ));
        // The heartbeat keeps the second alive past its first expiry.
        tokio::time::sleep(Duration::from_millis(600)).await;
        second.ensure_held().await.unwrap();
        assert!(store.lease_holder("x").await.unwrap().unwrap().alive);
        second.release().await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_nobody_took_is_renewed_by_its_owner() {
        let (_dir, store) = store().await;
        let ttl = Duration::from_millis(200);
        let mut lease = store.try_lease("x", "test", ttl).await.unwrap();
        lease.stop_heartbeat();
        tokio::time::sleep(Duration::from_millis(300)).await;
        lease.ensure_held().await.unwrap();
        assert!(store.lease_holder("x").await.unwrap().unwrap().alive);
    }
}
