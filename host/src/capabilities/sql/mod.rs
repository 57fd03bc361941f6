//! The `sql` capability: statements on the migration's own transaction.
//!
//! Only a migration plugin can import it (its world is the only one that
//! does), and only a call made by the migration runner carries a session:
//! the runner opens the transaction, hands the connection to the call, and
//! takes it back afterwards to commit or roll back. The plugin can never
//! commit, open another connection, or reach another database.
//!
//! What a statement may do is the manifest's grant, `sql = "read"`,
//! `"write"` or `"ddl"` (`true` is `"write"`, as manifests said before
//! levels), decided by parsing it ([`grant`]). Every statement runs under
//! what is left of the call's deadline.
//!
//! Parameters are written `$1`, `$2`, … for both dialects. A NULL binds as
//! text; cast it in the statement (`$1::bigint`) where a column needs more.

pub mod grant;

use super::unit::{CallContext, Capability};
use super::{GrantValue, Grants, NoLimits};
use crate::bindings::sql::{self as wit, Rows, Value};
use crate::db::{Db, params_for};
use grant::SqlGrant;
use crate::on_conn;
use crate::runtime::DeadlineExceeded;
use std::time::Instant;
use sqlx::{Column, Row, TypeInfo, ValueRef};
use wasmtime::component::{HasSelf, Linker};

/// A connection lent to one plugin call.
pub struct SqlSession {
    pub db: Db,
    pub io: tokio::runtime::Handle,
    /// Statements the plugin ran, for the report.
    pub statements: u64,
}

/// The capability as a unit: manifest grant `sql = "read" | "write" |
/// "ddl"`; the session is lent by the migration runner for each step
/// (`Runtime::migrate`).
pub struct Sql;

impl Capability for Sql {
    const INTERFACE: &'static str = "sql";
    type Limits = NoLimits;
    type Shared = ();
    type State = SqlState;

    fn granted(grants: &Grants) -> bool {
        level(grants).is_some()
    }

    fn check_grant(value: &GrantValue) -> Result<(), String> {
        match value {
            GrantValue::Flag(_) => Ok(()),
            GrantValue::Text(text) if SqlGrant::parse(text).is_some() => Ok(()),
            _ => Err(format!("expected {}", SqlGrant::NAMES)),
        }
    }

    fn shared(_: &NoLimits, _: &tokio::runtime::Handle) -> anyhow::Result<()> {
        Ok(())
    }

    fn state(_: &(), call: &CallContext<'_>) -> SqlState {
        SqlState {
            grant: level(call.grants),
            ..SqlState::default()
        }
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut SqlState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<SqlState>>(linker, get)
    }
}

/// The level a manifest's `sql` key grants; `None` when it grants none.
pub fn level(grants: &Grants) -> Option<SqlGrant> {
    match grants.entries.get("sql") {
        Some(GrantValue::Flag(true)) => Some(SqlGrant::Write),
        Some(GrantValue::Text(text)) => SqlGrant::parse(text),
        _ => None,
    }
}

/// Per-call state: a session while a migration runs, none otherwise.
#[derive(Default)]
pub struct SqlState {
    pub session: Option<SqlSession>,
    /// What the plugin's grant admits (set from its grants per call).
    pub grant: Option<SqlGrant>,
    /// The call's deadline: every statement ends by it (set by the call).
    pub deadline: Option<Instant>,
}

impl SqlState {
    /// Runs one admitted statement, bounded by what is left of the call:
    /// `SET LOCAL statement_timeout` on PostgreSQL (it covers lock waits
    /// too), a progress handler on SQLite. Past the deadline the call ends
    /// as a timeout, whatever the statement was doing.
    fn bounded<T>(
        &mut self,
        statement: &str,
        run: impl AsyncFnOnce(&mut Db) -> Result<T, String>,
    ) -> wasmtime::Result<Result<T, String>> {
        let deadline = self.deadline;
        let session = match self.admit(statement) {
            Ok(session) => session,
            Err(refused) => return Ok(Err(refused)),
        };
        let SqlSession { db, io, .. } = session;
        let result = io.block_on(async {
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(String::new());
                }
                limit(db, deadline, left).await?;
            }
            let result = run(db).await;
            if let Db::Sqlite(conn) = db
                && let Ok(mut handle) = conn.lock_handle().await
            {
                handle.remove_progress_handler();
            }
            result
        });
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        Ok(result)
    }

    /// The session a statement may run on, after the checks every
    /// statement passes.
    fn admit(&mut self, statement: &str) -> Result<&mut SqlSession, String> {
        let session = self.session.as_mut().ok_or_else(|| {
            "sql is available only while gantry runs this plugin as a migration step".to_string()
        })?;
        let grant = self
            .grant
            .ok_or_else(|| "this plugin's manifest grants no sql".to_string())?;
        grant::admit(session.db.dialect(), grant, statement)?;
        session.statements += 1;
        Ok(session)
    }
}

/// Bounds the next statement on `db` by `deadline`.
async fn limit(db: &mut Db, deadline: Instant, left: std::time::Duration) -> Result<(), String> {
    match db {
        Db::Postgres(conn) => {
            let ms = left.as_millis().clamp(1, i32::MAX as u128);
            sqlx::query(&format!("SET LOCAL statement_timeout = {ms}"))
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Db::Sqlite(conn) => {
            let mut handle = conn.lock_handle().await.map_err(|e| e.to_string())?;
            // Returning false interrupts the statement.
            handle.set_progress_handler(1_000, move || Instant::now() < deadline);
            Ok(())
        }
    }
}

impl wit::Host for SqlState {
    fn query(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, String>> {
        self.bounded(&statement, async |db: &mut Db| {
            query(db, &statement, &params).await
        })
    }

    fn execute(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, String>> {
        self.bounded(&statement, async |db: &mut Db| {
            execute(db, &statement, &params).await
        })
    }
}

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                Value::Null => q.bind(None::<String>),
                Value::Boolean(b) => q.bind(*b),
                Value::Integer(i) => q.bind(*i),
                Value::Float(f) => q.bind(*f),
                Value::Text(t) => q.bind(t.clone()),
                Value::Blob(b) => q.bind(b.clone()),
            };
        }
        q
    }};
}

async fn execute(db: &mut Db, statement: &str, params: &[Value]) -> Result<u64, String> {
    let sql = params_for(db.dialect(), statement).into_owned();
    let done = on_conn!(db, c => bind_all!(sqlx::query(&sql), params)
        .execute(c)
        .await
        .map(|r| r.rows_affected()));
    done.map_err(|e| e.to_string())
}

async fn query(db: &mut Db, statement: &str, params: &[Value]) -> Result<Rows, String> {
    let sql = params_for(db.dialect(), statement).into_owned();
    match db {
        Db::Postgres(c) => {
            let rows = bind_all!(sqlx::query(&sql), params)
                .fetch_all(c)
                .await
                .map_err(|e| e.to_string())?;
            convert(&rows, pg_value)
        }
        Db::Sqlite(c) => {
            let rows = bind_all!(sqlx::query(&sql), params)
                .fetch_all(c)
                .await
                .map_err(|e| e.to_string())?;
            convert(&rows, sqlite_value)
        }
    }
}

fn convert<R: Row>(
    rows: &[R],
    value: fn(&R, usize) -> Result<Value, String>,
) -> Result<Rows, String> {
    let columns = rows
        .first()
        .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let rows = rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| value(row, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rows { columns, rows })
}

fn pg_value(row: &sqlx::postgres::PgRow, i: usize) -> Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    Ok(match ty.as_str() {
        "BOOL" => Value::Boolean(row.try_get(i).map_err(err)?),
        "INT2" => Value::Integer(row.try_get::<i16, _>(i).map_err(err)?.into()),
        "INT4" => Value::Integer(row.try_get::<i32, _>(i).map_err(err)?.into()),
        "INT8" => Value::Integer(row.try_get(i).map_err(err)?),
        "FLOAT4" => Value::Float(row.try_get::<f32, _>(i).map_err(err)?.into()),
        "FLOAT8" => Value::Float(row.try_get(i).map_err(err)?),
        "BYTEA" => Value::Blob(row.try_get(i).map_err(err)?),
        "JSON" | "JSONB" => Value::Text(
            row.try_get::<serde_json::Value, _>(i)
                .map_err(err)?
                .to_string(),
        ),
        "TIMESTAMPTZ" => Value::Text(
            row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                .map_err(err)?
                .to_rfc3339(),
        ),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" => {
            Value::Text(row.try_get(i).map_err(err)?)
        }
        other => {
            return Err(format!(
                "column {} has type {other}, which gantry does not map; cast it to text in the query",
                i + 1
            ));
        }
    })
}

fn sqlite_value(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    Ok(match ty.as_str() {
        "INTEGER" | "BOOLEAN" | "INT8" => Value::Integer(row.try_get(i).map_err(err)?),
        "REAL" => Value::Float(row.try_get(i).map_err(err)?),
        "BLOB" => Value::Blob(row.try_get(i).map_err(err)?),
        _ => Value::Text(row.try_get(i).map_err(err)?),
    })
}
