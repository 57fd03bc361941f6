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
//! levels), decided twice: first by parsing it ([`grant`], a refusal that
//! names the statement and the grant that would admit it), then by the
//! database engine, which is the boundary: SQLite's authorizer
//! ([`authorizer`]) and, on PostgreSQL, a role whose privileges are the
//! grant ([`role`]). One statement per call; what runs is the statement as
//! the parser read it. Every statement runs under what is left of the
//! call's deadline.
//!
//! Parameters are written `$1`, `$2`, … for both dialects. A NULL binds as
//! text; cast it in the statement (`$1::bigint`) where a column needs more.

pub mod authorizer;
pub mod functions;
pub mod grant;
pub mod probe;
pub mod role;

use crate::kind::PluginKind;
use super::unit::{CallContext, Capability};
use super::{GrantValue, Grants};
use crate::bindings::sql::{self as wit, Rows, Value};
use crate::db::Db;
use crate::on_conn;
use crate::limits::DeadlineExceeded;
use authorizer::{Authorizer, Mode};
use libsqlite3_sys as ffi;
use grant::{Reserved, SqlGrant};
use role::{RunAs, SqlRoles};
use serde::Deserialize;
use sqlx::{Column, Row, TypeInfo, ValueRef};
use std::ptr::NonNull;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// The longest string or blob a plugin's statement may make on SQLite.
const VALUE_LIMIT: i32 = 16 << 20;
/// SQLite's own default, restored after the call.
const DEFAULT_VALUE_LIMIT: i32 = 1_000_000_000;

/// `plugins.capabilities.sql`: the operator's settings for plugin SQL.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqlLimits {
    /// PostgreSQL roles the operator made for each grant (else gantry's own).
    #[serde(default)]
    pub roles: SqlRoles,
}

/// A connection lent to one plugin call.
pub struct SqlSession {
    pub db: Db,
    pub io: tokio::runtime::Handle,
    /// Statements the plugin ran, for the report.
    pub statements: u64,
    /// Relations no plugin reaches (gantry's records, sqlx's history).
    pub reserved: Reserved,
    /// PostgreSQL: who the call runs as, while confined.
    run_as: Option<RunAs>,
    /// SQLite: the authorizer installed on the connection, while confined.
    authorizer: Option<NonNull<Authorizer>>,
}

// SAFETY: the authorizer is only touched by the thread holding the
// session (SQLite calls it while that thread prepares a statement).
unsafe impl Send for SqlSession {}

impl SqlSession {
    pub fn new(db: Db, io: tokio::runtime::Handle, reserved: Reserved) -> SqlSession {
        SqlSession {
            db,
            io,
            statements: 0,
            reserved,
            run_as: None,
            authorizer: None,
        }
    }

    /// Confines the connection to `grant` for one call: SQLite's authorizer
    /// installed; on PostgreSQL the role for the grant prepared and
    /// entered. Blocks on the session's runtime.
    pub fn confine(&mut self, grant: Option<SqlGrant>, roles: &SqlRoles) -> Result<(), String> {
        // No grant: every statement is refused before it reaches the
        // engine; the narrowest verdict stands behind that.
        let grant = grant.unwrap_or(SqlGrant::Read);
        let reserved = self.reserved.clone();
        let io = self.io.clone();
        match &mut self.db {
            Db::Sqlite(conn) => {
                let state = Box::into_raw(Authorizer::new(Mode::Enforce { grant, reserved }));
                // SAFETY: from Box::into_raw, so never null.
                let state = unsafe { NonNull::new_unchecked(state) };
                io.block_on(async {
                    let mut handle = conn.lock_handle().await.map_err(|e| e.to_string())?;
                    // SAFETY: the handle is locked; the box lives until `release`.
                    unsafe {
                        authorizer::install(handle.as_raw_handle(), &mut *state.as_ptr());
                        // No value a plugin makes (randomblob, zeroblob,
                        // repeat) may grow past this within the host.
                        ffi::sqlite3_limit(handle.as_raw_handle().as_ptr(), ffi::SQLITE_LIMIT_LENGTH, VALUE_LIMIT);
                    }
                    Ok::<(), String>(())
                })
                .inspect_err(|_| {
                    // SAFETY: never installed; ours to free.
                    drop(unsafe { Box::from_raw(state.as_ptr()) });
                })?;
                self.authorizer = Some(state);
            }
            Db::Postgres(conn) => {
                let (run_as, functions) = io.block_on(async {
                    let functions = role::attribute_functions(conn).await?;
                    let run_as = role::prepare(conn, grant, roles, &reserved).await?;
                    role::enter(conn, &run_as).await?;
                    Ok::<_, String>((run_as, functions))
                })?;
                self.reserved = reserved.with_functions(functions);
                self.run_as = Some(run_as);
            }
        }
        Ok(())
    }

    /// Undoes `confine`: the authorizer removed, the migrating user's role
    /// back (and what a managed role created made its).
    pub fn release(&mut self) -> Result<(), String> {
        let io = self.io.clone();
        match &mut self.db {
            Db::Sqlite(conn) => {
                let Some(state) = self.authorizer.take() else {
                    return Ok(());
                };
                let removed = io.block_on(async {
                    let mut handle = conn.lock_handle().await.map_err(|e| e.to_string())?;
                    // The call's deadline must not reach the runner's COMMIT.
                    handle.remove_progress_handler();
                    // SAFETY: the handle is locked.
                    unsafe {
                        authorizer::remove(handle.as_raw_handle());
                        ffi::sqlite3_limit(handle.as_raw_handle().as_ptr(), ffi::SQLITE_LIMIT_LENGTH, DEFAULT_VALUE_LIMIT);
                    }
                    Ok::<(), String>(())
                });
                // Still installed after a failure: left allocated rather
                // than dangling.
                if removed.is_ok() {
                    // SAFETY: removed from the connection; ours to free.
                    drop(unsafe { Box::from_raw(state.as_ptr()) });
                }
                removed
            }
            Db::Postgres(conn) => {
                let Some(run_as) = self.run_as.take() else {
                    return Ok(());
                };
                io.block_on(role::leave(conn, &run_as))
            }
        }
    }

    /// Who a confined PostgreSQL call runs as.
    pub fn run_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    /// Starts a statement: the authorizer forgets the previous one (each
    /// plugin statement calls this; a call runs exactly one statement).
    pub fn begin_statement(&mut self) {
        if let Some(state) = self.authorizer {
            // SAFETY: SQLite is not inside a call on this connection now.
            unsafe { (*state.as_ptr()).begin_statement() };
        }
    }

    /// What the authorizer refused last, if it refused anything.
    fn denial(&mut self) -> Option<String> {
        let state = self.authorizer?;
        // SAFETY: SQLite is not inside a call on this connection now.
        unsafe { (*state.as_ptr()).denied.take() }
    }
}

/// The capability as a unit: manifest grant `sql = "read" | "write" |
/// "ddl"`; the session is lent by the migration runner for each step
/// (`Runtime::migrate`).
pub struct Sql;

impl Capability for Sql {
    const INTERFACE: &'static str = "sql";
    const WORLDS: &'static [PluginKind] = &[PluginKind::Migration];
    type Limits = SqlLimits;
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

    /// `sql = "read" | "write" | "ddl" | false`: at most the manifest's.
    type Operator = SqlLevel;

    fn narrow(declared: &Grants, entry: &SqlLevel, grants: &mut Grants) -> Result<(), String> {
        let asked = level(declared);
        let value = match entry {
            SqlLevel::Off(false) => GrantValue::Flag(false),
            SqlLevel::Off(true) => {
                return Err("= true: say \"read\", \"write\", \"ddl\" or false".into());
            }
            SqlLevel::Level(text) => {
                let level = SqlGrant::parse(text).ok_or_else(|| {
                    format!("= {text:?}: expected \"read\", \"write\", \"ddl\" or false")
                })?;
                match asked {
                    Some(asked) if level <= asked => GrantValue::Text(level.to_string()),
                    _ => {
                        return Err(format!(
                            "= \"{level}\" is wider than the manifest's sql = {}",
                            asked.map_or("none".to_string(), |a| format!("\"{a}\""))
                        ));
                    }
                }
            }
        };
        grants.entries.insert("sql".into(), value);
        Ok(())
    }

    fn summary(grants: &Grants) -> Option<serde_json::Value> {
        Some(serde_json::json!(level(grants).map(|l| l.as_str())))
    }

    fn shared(_: &SqlLimits, _: &tokio::runtime::Handle) -> anyhow::Result<()> {
        Ok(())
    }

    fn state(_: &(), call: &CallContext<'_>) -> SqlState {
        SqlState {
            grant: level(call.grants),
            max_result_bytes: usize::try_from(call.limits.memory_mib << 20).unwrap_or(usize::MAX),
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

/// The operator's `sql` entry: a level, or `false`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum SqlLevel {
    Off(bool),
    Level(String),
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
pub struct SqlState {
    pub session: Option<SqlSession>,
    /// What the plugin's grant admits (set from its grants per call).
    pub grant: Option<SqlGrant>,
    /// The call's deadline: every statement ends by it (set by the call).
    pub deadline: Option<Instant>,
    /// The most a query's rows may hold: the plugin's memory limit.
    pub max_result_bytes: usize,
}

impl Default for SqlState {
    fn default() -> Self {
        SqlState {
            session: None,
            grant: None,
            deadline: None,
            max_result_bytes: 64 << 20,
        }
    }
}

impl SqlState {
    /// Runs one admitted statement, bounded by what is left of the call
    /// (`prepare`). Past the deadline the call ends as a timeout, whatever
    /// the statement was doing.
    fn bounded<T>(
        &mut self,
        statement: &str,
        run: impl AsyncFnOnce(&mut Db, &str) -> Result<T, String>,
    ) -> wasmtime::Result<Result<T, String>> {
        let deadline = self.deadline;
        let (session, admitted) = match self.admit(statement) {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(Err(refused)),
        };
        let io = session.io.clone();
        session.begin_statement();
        let role = session.run_as.as_ref().map(|r| r.role().to_string());
        let result = io.block_on(async {
            let db = &mut session.db;
            prepare(db, role.as_deref(), deadline, &admitted.text).await?;
            run(db, &admitted.text).await
        });
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        // The engine's refusal, in the authorizer's words.
        let result = result.map_err(|why| match session.denial() {
            Some(denied) => format!(
                "`{}` is refused by the database: {denied}",
                grant::first_words(statement)
            ),
            None => why,
        });
        Ok(result)
    }

    /// The session a statement may run on and the statement as admitted,
    /// after the checks every statement passes.
    fn admit(&mut self, statement: &str) -> Result<(&mut SqlSession, grant::Admitted), String> {
        let session = self.session.as_mut().ok_or_else(|| {
            "sql is available only while gantry runs this plugin as a migration step".to_string()
        })?;
        let grant = self
            .grant
            .ok_or_else(|| "this plugin's manifest grants no sql".to_string())?;
        let admitted = grant::admit(session.db.dialect(), grant, statement, &session.reserved)?;
        session.statements += 1;
        Ok((session, admitted))
    }
}

/// Readies the connection for one statement, bounded by `deadline`: on
/// PostgreSQL `SET LOCAL statement_timeout` (the time left; it covers lock
/// waits too); on SQLite, holding the handle once, a progress handler that
/// interrupts past the deadline (removed by `release`) and the statement
/// compiled under the authorizer — exactly one, or refused before anything
/// runs.
async fn prepare(
    db: &mut Db,
    role: Option<&str>,
    deadline: Option<Instant>,
    text: &str,
) -> Result<(), String> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if left.is_some_and(|left| left.is_zero()) {
        return Err(String::new());
    }
    match db {
        Db::Postgres(conn) => {
            // Still the call's role (a statement that left it ends the step
            // before the next runs), and the time left, in one trip.
            // Rounded up: PostgreSQL's timer starts with the statement,
            // after this trip, so it cancels at or past the deadline and the
            // call ends as a timeout, never as the statement's own error.
            let ms = left.map_or(0, |left| {
                left.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128)
            });
            let row = sqlx::raw_sql(&format!(
                "SET LOCAL statement_timeout = {ms}; SELECT current_user::text"
            ))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
            let user: String = row.try_get(0).map_err(|e| e.to_string())?;
            if let Some(role) = role.filter(|role| *role != user) {
                return Err(format!(
                    "the session left the role {role} (it is {user} now); the step is stopped"
                ));
            }
            // The extended protocol takes one statement per query.
            Ok(())
        }
        Db::Sqlite(conn) => {
            let mut handle = conn.lock_handle().await.map_err(|e| e.to_string())?;
            if let Some(deadline) = deadline {
                // Returning false interrupts the statement.
                handle.set_progress_handler(1_000, move || Instant::now() < deadline);
            }
            // SAFETY: the handle is locked for the count.
            match unsafe { authorizer::count_statements(handle.as_raw_handle(), text) } {
                Ok(1) => Ok(()),
                Ok(n) => Err(format!(
                    "`{}` holds {n} statements; send one statement per call",
                    grant::first_words(text)
                )),
                Err(why) => Err(why),
            }
        }
    }
}

impl wit::Host for SqlState {
    fn query(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, String>> {
        let cap = self.max_result_bytes;
        self.bounded(&statement, async |db: &mut Db, text: &str| {
            query(db, text, &params, cap).await
        })
    }

    fn execute(
        &mut self,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, String>> {
        self.bounded(&statement, async |db: &mut Db, text: &str| {
            execute(db, text, &params).await
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

/// Runs `sql` (as admitted: in the dialect's own placeholder style), never
/// from or into the connection's statement cache, so each call's text is
/// compiled — and authorized — afresh.
async fn execute(db: &mut Db, sql: &str, params: &[Value]) -> Result<u64, String> {
    let done = on_conn!(db, c => bind_all!(sqlx::query(sql).persistent(false), params)
        .execute(c)
        .await
        .map(|r| r.rows_affected()));
    done.map_err(|e| e.to_string())
}

/// Rows of a query, gathered as they stream in and stopped once they pass
/// `cap` bytes (the plugin's own memory could not take more): a query
/// cannot make the host hold what the plugin may not.
async fn query(db: &mut Db, sql: &str, params: &[Value], cap: usize) -> Result<Rows, String> {
    match db {
        Db::Postgres(c) => {
            let stream = bind_all!(sqlx::query(sql).persistent(false), params).fetch(c);
            collect(stream, pg_value, cap).await
        }
        Db::Sqlite(c) => {
            let stream = bind_all!(sqlx::query(sql).persistent(false), params).fetch(c);
            collect(stream, sqlite_value, cap).await
        }
    }
}

async fn collect<R: Row>(
    mut stream: futures_util::stream::BoxStream<'_, Result<R, sqlx::Error>>,
    value: fn(&R, usize) -> Result<Value, String>,
    cap: usize,
) -> Result<Rows, String> {
    use futures_util::TryStreamExt;
    let mut columns = None;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await.map_err(|e| e.to_string())? {
        if columns.is_none() {
            columns = Some(row.columns().iter().map(|c| c.name().to_string()).collect());
        }
        let values = (0..row.len())
            .map(|i| value(&row, i))
            .collect::<Result<Vec<_>, _>>()?;
        bytes += values.iter().map(size_of_value).sum::<usize>() + 16;
        if bytes > cap {
            return Err(format!(
                "the result passed {} MiB, as much as this plugin may hold; select less, or page through it",
                cap >> 20
            ));
        }
        rows.push(values);
    }
    Ok(Rows {
        columns: columns.unwrap_or_default(),
        rows,
    })
}

fn size_of_value(value: &Value) -> usize {
    match value {
        Value::Text(text) => text.len() + 8,
        Value::Blob(blob) => blob.len() + 8,
        _ => 16,
    }
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
