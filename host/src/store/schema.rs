//! The state store's own schema, versioned: an ordered list of steps, each
//! with its PostgreSQL and SQLite text, recorded in `gantry_store_schema`.
//!
//! `migrate` runs on open. The common case (up to date) costs one query.
//! Otherwise each missing step runs in its own transaction under a lock
//! (an advisory transaction lock on PostgreSQL, `BEGIN IMMEDIATE` on
//! SQLite), re-reading the version first, so two processes opening a new
//! store at once apply each step once. A store whose version is newer
//! than this binary's is refused, naming both: an old binary must never
//! write to a schema it does not know.
//!
//! This is a separate, tiny runner rather than the auth-database migrator:
//! the store sits below the engines, and its history must never mix with
//! an auth database's `gantry_migrations` when both share one PostgreSQL
//! database. Steps are never edited once released; add a new one.

use super::error::StoreError;
use super::pool::{Pool, Tx, failed};
use crate::db::DbTarget;
use crate::db::Dialect;
use crate::{exec_tx, on_tx};

pub struct Step {
    pub version: i64,
    pub name: &'static str,
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

/// Every step, oldest first.
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        name: "config backups and changes",
        // IF NOT EXISTS: stores made before the schema was versioned
        // already have these two tables, exactly so.
        postgres: "
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
);",
        sqlite: "
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
);",
    },
    Step {
        version: 2,
        name: "hosts and leases",
        postgres: "
ALTER TABLE gantry_config_backups ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE gantry_config_changes ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE gantry_config_changes ADD COLUMN owner TEXT;
CREATE TABLE gantry_leases (
    name          TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           BIGINT NOT NULL,
    process_start TEXT NOT NULL,
    token         TEXT NOT NULL,
    acquired_ms   BIGINT NOT NULL,
    renewed_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL
);",
        sqlite: "
ALTER TABLE gantry_config_backups ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE gantry_config_changes ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE gantry_config_changes ADD COLUMN owner TEXT;
CREATE TABLE gantry_leases (
    name          TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    process_start TEXT NOT NULL,
    token         TEXT NOT NULL,
    acquired_ms   INTEGER NOT NULL,
    renewed_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL
);",
    },
    Step {
        version: 3,
        name: "services: revisions, instances, rollouts",
        postgres: "
CREATE TABLE gantry_revisions (
    service    TEXT NOT NULL,
    id         TEXT NOT NULL,
    label      TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (service, id)
);
CREATE TABLE gantry_instances (
    service        TEXT NOT NULL,
    host           TEXT NOT NULL,
    name           TEXT NOT NULL,
    driver         TEXT NOT NULL,
    revision       TEXT NOT NULL,
    pid            BIGINT,
    process_start  TEXT,
    address        TEXT NOT NULL,
    health_address TEXT NOT NULL,
    state          TEXT NOT NULL,
    rollout_id     BIGINT,
    started_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (service, host, name)
);
CREATE TABLE gantry_rollouts (
    id            BIGSERIAL PRIMARY KEY,
    service       TEXT NOT NULL,
    host          TEXT NOT NULL,
    from_revision TEXT,
    to_revision   TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,
    actor         TEXT NOT NULL,
    owner         TEXT,
    started_ms    BIGINT NOT NULL,
    finished_ms   BIGINT
);
CREATE INDEX gantry_rollouts_service ON gantry_rollouts (service, id);",
        sqlite: "
CREATE TABLE gantry_revisions (
    service    TEXT NOT NULL,
    id         TEXT NOT NULL,
    label      TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (service, id)
);
CREATE TABLE gantry_instances (
    service        TEXT NOT NULL,
    host           TEXT NOT NULL,
    name           TEXT NOT NULL,
    driver         TEXT NOT NULL,
    revision       TEXT NOT NULL,
    pid            INTEGER,
    process_start  TEXT,
    address        TEXT NOT NULL,
    health_address TEXT NOT NULL,
    state          TEXT NOT NULL,
    rollout_id     INTEGER,
    started_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (service, host, name)
);
CREATE TABLE gantry_rollouts (
    id            INTEGER PRIMARY KEY,
    service       TEXT NOT NULL,
    host          TEXT NOT NULL,
    from_revision TEXT,
    to_revision   TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,
    actor         TEXT NOT NULL,
    owner         TEXT,
    started_ms    INTEGER NOT NULL,
    finished_ms   INTEGER
);
CREATE INDEX gantry_rollouts_service ON gantry_rollouts (service, id);",
    },
    Step {
        version: 4,
        name: "monitoring: alerts, silences, the outbox, metric seconds",
        postgres: "
CREATE TABLE gantry_alerts (
    id             TEXT PRIMARY KEY,
    fingerprint    TEXT NOT NULL,
    rule           TEXT NOT NULL,
    state          TEXT NOT NULL,
    severity       TEXT NOT NULL,
    labels         TEXT NOT NULL,
    annotations    TEXT NOT NULL,
    value          DOUBLE PRECISION,
    threshold      DOUBLE PRECISION,
    started_ms     BIGINT NOT NULL,
    firing_ms      BIGINT,
    resolved_ms    BIGINT,
    updated_ms     BIGINT NOT NULL,
    acked_by       TEXT,
    ack_comment    TEXT,
    ack_ms         BIGINT,
    ack_expires_ms BIGINT
);
CREATE INDEX gantry_alerts_state ON gantry_alerts (state, fingerprint);
CREATE TABLE gantry_silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    comment    TEXT,
    created_by TEXT NOT NULL,
    starts_ms  BIGINT NOT NULL,
    ends_ms    BIGINT NOT NULL
);
CREATE TABLE gantry_outbox (
    id               BIGSERIAL PRIMARY KEY,
    receiver         TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    alert_ids        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    deliver_at_ms    BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    claimed_by       TEXT,
    claimed_until_ms BIGINT,
    payload          TEXT,
    last_error       TEXT,
    created_ms       BIGINT NOT NULL,
    delivered_ms     BIGINT
);
CREATE INDEX gantry_outbox_due ON gantry_outbox (state, next_attempt_ms);
CREATE TABLE gantry_notify_groups (
    receiver     TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    last_sent_ms BIGINT NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE gantry_metric_seconds (
    node   TEXT NOT NULL,
    second BIGINT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (node, second)
);",
        sqlite: "
CREATE TABLE gantry_alerts (
    id             TEXT PRIMARY KEY,
    fingerprint    TEXT NOT NULL,
    rule           TEXT NOT NULL,
    state          TEXT NOT NULL,
    severity       TEXT NOT NULL,
    labels         TEXT NOT NULL,
    annotations    TEXT NOT NULL,
    value          REAL,
    threshold      REAL,
    started_ms     INTEGER NOT NULL,
    firing_ms      INTEGER,
    resolved_ms    INTEGER,
    updated_ms     INTEGER NOT NULL,
    acked_by       TEXT,
    ack_comment    TEXT,
    ack_ms         INTEGER,
    ack_expires_ms INTEGER
);
CREATE INDEX gantry_alerts_state ON gantry_alerts (state, fingerprint);
CREATE TABLE gantry_silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    comment    TEXT,
    created_by TEXT NOT NULL,
    starts_ms  INTEGER NOT NULL,
    ends_ms    INTEGER NOT NULL
);
CREATE TABLE gantry_outbox (
    id               INTEGER PRIMARY KEY,
    receiver         TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    alert_ids        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    deliver_at_ms    INTEGER NOT NULL,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_by       TEXT,
    claimed_until_ms INTEGER,
    payload          TEXT,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    delivered_ms     INTEGER
);
CREATE INDEX gantry_outbox_due ON gantry_outbox (state, next_attempt_ms);
CREATE TABLE gantry_notify_groups (
    receiver     TEXT NOT NULL,
    group_key    TEXT NOT NULL,
    last_sent_ms INTEGER NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE gantry_metric_seconds (
    node   TEXT NOT NULL,
    second INTEGER NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (node, second)
);",
    },
    Step {
        version: 5,
        name: "deployments and their steps (the deploy journal)",
        postgres: "
CREATE TABLE gantry_deployments (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    environment  TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    actor        TEXT NOT NULL,
    host         TEXT NOT NULL,
    owner        TEXT,
    options      TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    finished_ms  BIGINT
);
CREATE INDEX gantry_deployments_env ON gantry_deployments (environment, seq);
CREATE TABLE gantry_deployment_steps (
    deployment   TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    detail       TEXT NOT NULL,
    error        TEXT,
    started_ms   BIGINT,
    finished_ms  BIGINT,
    PRIMARY KEY (deployment, idx)
);",
        sqlite: "
CREATE TABLE gantry_deployments (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    environment  TEXT NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    actor        TEXT NOT NULL,
    host         TEXT NOT NULL,
    owner        TEXT,
    options      TEXT NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER
);
CREATE INDEX gantry_deployments_env ON gantry_deployments (environment, seq);
CREATE TABLE gantry_deployment_steps (
    deployment   TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    detail       TEXT NOT NULL,
    error        TEXT,
    started_ms   INTEGER,
    finished_ms  INTEGER,
    PRIMARY KEY (deployment, idx)
);",
    },
    Step {
        version: 6,
        name: "JWT key sets and their rotations",
        postgres: "
CREATE TABLE gantry_key_sets (
    environment  TEXT PRIMARY KEY,
    keys         TEXT NOT NULL,
    updated_ms   BIGINT NOT NULL
);
CREATE TABLE gantry_key_rotations (
    id             TEXT PRIMARY KEY,
    environment    TEXT NOT NULL,
    phase          INTEGER NOT NULL,
    state          TEXT NOT NULL,
    old_kid        TEXT NOT NULL,
    new_kid        TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    target         TEXT NOT NULL,
    deployment     TEXT,
    reason         TEXT,
    next_after_ms  BIGINT,
    started_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);
CREATE INDEX gantry_key_rotations_env ON gantry_key_rotations (environment, started_ms);",
        sqlite: "
CREATE TABLE gantry_key_sets (
    environment  TEXT PRIMARY KEY,
    keys         TEXT NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE gantry_key_rotations (
    id             TEXT PRIMARY KEY,
    environment    TEXT NOT NULL,
    phase          INTEGER NOT NULL,
    state          TEXT NOT NULL,
    old_kid        TEXT NOT NULL,
    new_kid        TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    target         TEXT NOT NULL,
    deployment     TEXT,
    reason         TEXT,
    next_after_ms  INTEGER,
    started_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);
CREATE INDEX gantry_key_rotations_env ON gantry_key_rotations (environment, started_ms);",
    },
    Step {
        version: 7,
        name: "instance ids before processes, names never reused, front doors",
        postgres: "
ALTER TABLE gantry_instances ADD COLUMN instance_id TEXT;
CREATE TABLE gantry_instance_names (
    service  TEXT NOT NULL,
    host     TEXT NOT NULL,
    next     BIGINT NOT NULL,
    PRIMARY KEY (service, host)
);
CREATE TABLE gantry_front_doors (
    service        TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    process_start  TEXT NOT NULL,
    control        TEXT NOT NULL,
    listen         TEXT NOT NULL,
    listen_fds     TEXT NOT NULL,
    mode           TEXT NOT NULL,
    binary_id      TEXT NOT NULL,
    started_ms     BIGINT NOT NULL,
    PRIMARY KEY (service, host)
);",
        sqlite: "
ALTER TABLE gantry_instances ADD COLUMN instance_id TEXT;
CREATE TABLE gantry_instance_names (
    service  TEXT NOT NULL,
    host     TEXT NOT NULL,
    next     INTEGER NOT NULL,
    PRIMARY KEY (service, host)
);
CREATE TABLE gantry_front_doors (
    service        TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    process_start  TEXT NOT NULL,
    control        TEXT NOT NULL,
    listen         TEXT NOT NULL,
    listen_fds     TEXT NOT NULL,
    mode           TEXT NOT NULL,
    binary_id      TEXT NOT NULL,
    started_ms     INTEGER NOT NULL,
    PRIMARY KEY (service, host)
);",
    },
    Step {
        version: 8,
        name: "canary steps: traffic weights, per-revision seconds, rollout progress",
        postgres: "
CREATE TABLE gantry_traffic_weights (
    service  TEXT NOT NULL,
    host     TEXT NOT NULL,
    revision TEXT NOT NULL,
    weight   BIGINT NOT NULL,
    PRIMARY KEY (service, host, revision)
);
CREATE TABLE gantry_revision_seconds (
    source   TEXT NOT NULL,
    node     TEXT NOT NULL,
    revision TEXT NOT NULL,
    second   BIGINT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (revision, second, source, node)
);
CREATE INDEX gantry_revision_seconds_second ON gantry_revision_seconds (second);
ALTER TABLE gantry_rollouts ADD COLUMN progress TEXT;
ALTER TABLE gantry_rollouts ADD COLUMN control TEXT;",
        sqlite: "
CREATE TABLE gantry_traffic_weights (
    service  TEXT NOT NULL,
    host     TEXT NOT NULL,
    revision TEXT NOT NULL,
    weight   INTEGER NOT NULL,
    PRIMARY KEY (service, host, revision)
);
CREATE TABLE gantry_revision_seconds (
    source   TEXT NOT NULL,
    node     TEXT NOT NULL,
    revision TEXT NOT NULL,
    second   INTEGER NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (revision, second, source, node)
);
CREATE INDEX gantry_revision_seconds_second ON gantry_revision_seconds (second);
ALTER TABLE gantry_rollouts ADD COLUMN progress TEXT;
ALTER TABLE gantry_rollouts ADD COLUMN control TEXT;",
    },
];

/// The schema version this binary writes.
pub fn latest() -> i64 {
    STEPS.last().map(|s| s.version).unwrap_or(0)
}

/// "gantryst": the advisory lock key for schema changes.
const LOCK_KEY: i64 = 0x6761_6e74_7279_7374;

const META: &str = "CREATE TABLE IF NOT EXISTS gantry_store_schema (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Brings the store's schema to `latest()`.
pub(super) async fn migrate(pool: &Pool, target: &DbTarget) -> Result<(), StoreError> {
    let mut tx = pool
        .begin(false)
        .await
        .map_err(failed(target, "begin a transaction"))?;
    let found = current(&mut tx)
        .await
        .map_err(failed(target, "read its schema version"));
    let _ = tx.rollback().await;
    let found = found?;
    check_not_newer(target, found)?;
    if found == latest() {
        return Ok(());
    }
    for step in STEPS {
        let mut tx = pool
            .begin(true)
            .await
            .map_err(failed(target, "begin a transaction"))?;
        match apply(target, &mut tx, step).await {
            Ok(applied) => {
                tx.commit()
                    .await
                    .map_err(failed(target, "commit a schema step"))?;
                if applied {
                    tracing::info!(
                        store = %target,
                        version = step.version,
                        "state store schema: {}",
                        step.name
                    );
                }
            }
            Err(err) => {
                let _ = tx.rollback().await;
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Applies `step` in `tx` unless the store already has it (re-read under
/// the lock); true when it ran.
async fn apply(target: &DbTarget, tx: &mut Tx, step: &Step) -> Result<bool, StoreError> {
    if tx.dialect() == Dialect::Postgres {
        exec_tx!(tx, c => sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(c)
            .await)
        .map_err(failed(target, "lock its schema"))?;
    }
    // `Executor::execute` (a boxed, Send future), not `RawSql::execute`,
    // whose future is not provably Send inside a spawned task.
    exec_tx!(tx, c => sqlx::Executor::execute(c, sqlx::raw_sql(META)).await)
        .map_err(failed(target, "create its schema table"))?;
    let now = current(tx)
        .await
        .map_err(failed(target, "read its schema version"))?;
    check_not_newer(target, now)?;
    if now >= step.version {
        return Ok(false);
    }
    let text = match tx.dialect() {
        Dialect::Postgres => step.postgres,
        Dialect::Sqlite => step.sqlite,
    };
    exec_tx!(tx, c => sqlx::Executor::execute(c, sqlx::raw_sql(text)).await).map_err(|source| {
        StoreError::Schema {
            target: target.redacted(),
            version: step.version,
            name: step.name,
            source,
        }
    })?;
    let record = tx
        .sql("INSERT INTO gantry_store_schema (version, name, applied_at) VALUES ($1, $2, $3)")
        .into_owned();
    exec_tx!(tx, c => sqlx::query(&record)
        .bind(step.version)
        .bind(step.name)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(c)
        .await)
    .map_err(failed(target, "record its schema version"))?;
    Ok(true)
}

fn check_not_newer(target: &DbTarget, found: i64) -> Result<(), StoreError> {
    if found > latest() {
        return Err(StoreError::TooNew {
            target: target.redacted(),
            found,
            known: latest(),
        });
    }
    Ok(())
}

/// The recorded version; 0 for a store without the schema table.
async fn current(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    let got: Result<Option<i64>, sqlx::Error> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT MAX(version) FROM gantry_store_schema"
    )
    .fetch_one(c)
    .await);
    match got {
        Ok(version) => Ok(version.unwrap_or(0)),
        Err(err) if is_missing_table(&err) => Ok(0),
        Err(err) => Err(err),
    }
}

fn is_missing_table(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
    })
}
