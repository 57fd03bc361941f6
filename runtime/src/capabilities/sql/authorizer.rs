//! SQLite's own verdict on a plugin's statements: an authorizer
//! (`sqlite3_set_authorizer`) installed on the lent connection for one
//! plugin call and removed after it. SQLite asks it, while compiling each
//! statement, about every table read or written, every function, pragma,
//! ATTACH and transaction, so what the grant admits is decided by the
//! engine that runs the statement, whatever text reached it.
//!
//! It must never admit ATTACH/DETACH, transaction control, pragma writes,
//! triggers, virtual tables, `sqlite_master`, `gantry_*` or the sqlx history
//! table, whatever the grant.

use super::functions;
use super::grant::{Reserved, SqlGrant, pragma_reads};
use crate::db::Dialect;
use libsqlite3_sys as ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;

/// One action SQLite asked about, as it named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub code: i32,
    pub first: Option<String>,
    pub second: Option<String>,
}

impl Action {
    /// The action's name as in `sqlite3.h` (`SQLITE_READ` is `read`).
    pub fn name(&self) -> &'static str {
        action_name(self.code)
    }

    /// Whether the action only reads.
    pub fn reads(&self) -> bool {
        matches!(
            self.code,
            ffi::SQLITE_SELECT | ffi::SQLITE_READ | ffi::SQLITE_RECURSIVE | ffi::SQLITE_FUNCTION
        ) || (self.code == ffi::SQLITE_PRAGMA
            && pragma_reads(self.first.as_deref().unwrap_or(""), self.second.as_deref()))
    }
}

/// What the authorizer does with what it is asked.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Admit what the grant covers; deny the rest.
    Enforce { grant: SqlGrant, reserved: Reserved },
    /// Admit everything and record it (the fuzzer's observer).
    Record,
}

/// The authorizer's state; lives in a `Box` whose address SQLite holds
/// while it is installed.
#[derive(Debug)]
pub struct Authorizer {
    mode: Mode,
    /// The statement being compiled is DDL the grant admitted: SQLite's own
    /// work on its schema (reading and rewriting `sqlite_master`, its
    /// internal `sqlite_*` functions) is part of it. Reset before each
    /// statement (`begin_statement`); a call runs exactly one.
    in_ddl: bool,
    /// The first action denied, for the refusal.
    pub denied: Option<String>,
    /// Every action asked about (kept only in `Mode::Record`).
    pub actions: Vec<Action>,
}

impl Authorizer {
    pub fn new(mode: Mode) -> Box<Authorizer> {
        Box::new(Authorizer {
            mode,
            in_ddl: false,
            denied: None,
            actions: Vec::new(),
        })
    }

    /// Forgets what the previous statement was.
    pub fn begin_statement(&mut self) {
        self.in_ddl = false;
        self.denied = None;
    }

    fn decide(&mut self, action: Action) -> c_int {
        let verdict = match &self.mode {
            Mode::Record => {
                self.actions.push(action);
                return ffi::SQLITE_OK;
            }
            Mode::Enforce { grant, reserved } => verdict(*grant, reserved, &action, self.in_ddl),
        };
        if verdict.is_ok() && is_ddl(action.code) {
            self.in_ddl = true;
        }
        match verdict {
            Ok(()) => ffi::SQLITE_OK,
            Err(why) => {
                if self.denied.is_none() {
                    self.denied = Some(why);
                }
                ffi::SQLITE_DENY
            }
        }
    }
}

/// Action codes of the DDL a `ddl` grant admits.
fn is_ddl(code: c_int) -> bool {
    matches!(
        code,
        ffi::SQLITE_CREATE_TABLE
            | ffi::SQLITE_CREATE_TEMP_TABLE
            | ffi::SQLITE_CREATE_VIEW
            | ffi::SQLITE_CREATE_TEMP_VIEW
            | ffi::SQLITE_DROP_TABLE
            | ffi::SQLITE_DROP_TEMP_TABLE
            | ffi::SQLITE_DROP_VIEW
            | ffi::SQLITE_DROP_TEMP_VIEW
            | ffi::SQLITE_CREATE_INDEX
            | ffi::SQLITE_CREATE_TEMP_INDEX
            | ffi::SQLITE_DROP_INDEX
            | ffi::SQLITE_DROP_TEMP_INDEX
            | ffi::SQLITE_ALTER_TABLE
    )
}

/// The decision for one action under `grant`; `in_ddl` when the statement
/// is DDL the grant already admitted.
fn verdict(
    grant: SqlGrant,
    reserved: &Reserved,
    action: &Action,
    in_ddl: bool,
) -> Result<(), String> {
    use SqlGrant::*;
    let first = action.first.as_deref().unwrap_or("");
    let second = action.second.as_deref().unwrap_or("");
    let schema_table = |name: &str| {
        matches!(
            name.to_ascii_lowercase().as_str(),
            "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
        )
    };
    // SQLite's own bookkeeping inside admitted DDL: reading and rewriting
    // its schema and sequence tables, its internal functions, rebuilding
    // the new index.
    if in_ddl && grant == Ddl {
        let internal_table = schema_table(first) || first.eq_ignore_ascii_case("sqlite_sequence");
        let own = match action.code {
            ffi::SQLITE_READ | ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
                internal_table
            }
            ffi::SQLITE_FUNCTION => second.to_ascii_lowercase().starts_with("sqlite_"),
            ffi::SQLITE_REINDEX => !reserved.covers(first),
            _ => false,
        };
        if own {
            return Ok(());
        }
    }
    let table = |name: &str| -> Result<(), String> {
        if reserved.covers(name) {
            return Err(format!("{name} holds gantry's own records"));
        }
        Ok(())
    };
    let needs = |level: SqlGrant| -> Result<(), String> {
        if grant >= level {
            Ok(())
        } else {
            Err(format!(
                "{} needs sql = \"{level}\" (the grant is \"{grant}\")",
                describe(action)
            ))
        }
    };
    match action.code {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => Ok(()),
        ffi::SQLITE_READ => {
            if schema_table(first) {
                return Err(format!("reading {first} is not a migration step's"));
            }
            table(first)
        }
        ffi::SQLITE_FUNCTION => match functions::admit(Dialect::Sqlite, grant, second) {
            Ok(()) => Ok(()),
            Err(_) => Err(format!("the function {second} is not one a migration step may call")),
        },
        ffi::SQLITE_PRAGMA => {
            if pragma_reads(first, action.second.as_deref()) {
                Ok(())
            } else {
                Err(format!("PRAGMA {first} is not one that only reads"))
            }
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
            // CREATE and DROP write the schema table themselves; SQLite
            // refuses a direct write to it without writable_schema.
            if schema_table(first) {
                return needs(Ddl);
            }
            if first.to_ascii_lowercase().starts_with("sqlite_") {
                return Err(format!("{first} belongs to SQLite"));
            }
            table(first)?;
            needs(Write)
        }
        // Temporary objects outlive the step in the runner's session and are
        // found first by name: one could stand in for gantry's tables.
        ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_CREATE_TEMP_VIEW
        | ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_DROP_TEMP_TABLE
        | ffi::SQLITE_DROP_TEMP_VIEW
        | ffi::SQLITE_DROP_TEMP_INDEX => Err(format!(
            "{} is refused: temporary objects outlive the step",
            describe(action)
        )),
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_DROP_VIEW => {
            table(first)?;
            needs(Ddl)
        }
        ffi::SQLITE_CREATE_INDEX | ffi::SQLITE_DROP_INDEX => {
            table(first)?;
            table(second)?;
            needs(Ddl)
        }
        ffi::SQLITE_ALTER_TABLE => {
            table(second)?;
            needs(Ddl)
        }
        _ => Err(format!("{} is outside every grant", describe(action))),
    }
}

fn describe(action: &Action) -> String {
    let mut text = action.name().to_ascii_uppercase().replace('_', " ");
    for arg in [&action.first, &action.second].into_iter().flatten() {
        text.push(' ');
        text.push_str(arg);
    }
    text
}

fn action_name(code: i32) -> &'static str {
    match code {
        ffi::SQLITE_CREATE_INDEX => "create_index",
        ffi::SQLITE_CREATE_TABLE => "create_table",
        ffi::SQLITE_CREATE_TEMP_INDEX => "create_temp_index",
        ffi::SQLITE_CREATE_TEMP_TABLE => "create_temp_table",
        ffi::SQLITE_CREATE_TEMP_TRIGGER => "create_temp_trigger",
        ffi::SQLITE_CREATE_TEMP_VIEW => "create_temp_view",
        ffi::SQLITE_CREATE_TRIGGER => "create_trigger",
        ffi::SQLITE_CREATE_VIEW => "create_view",
        ffi::SQLITE_DELETE => "delete",
        ffi::SQLITE_DROP_INDEX => "drop_index",
        ffi::SQLITE_DROP_TABLE => "drop_table",
        ffi::SQLITE_DROP_TEMP_INDEX => "drop_temp_index",
        ffi::SQLITE_DROP_TEMP_TABLE => "drop_temp_table",
        ffi::SQLITE_DROP_TEMP_TRIGGER => "drop_temp_trigger",
        ffi::SQLITE_DROP_TEMP_VIEW => "drop_temp_view",
        ffi::SQLITE_DROP_TRIGGER => "drop_trigger",
        ffi::SQLITE_DROP_VIEW => "drop_view",
        ffi::SQLITE_INSERT => "insert",
        ffi::SQLITE_PRAGMA => "pragma",
        ffi::SQLITE_READ => "read",
        ffi::SQLITE_SELECT => "select",
        ffi::SQLITE_TRANSACTION => "transaction",
        ffi::SQLITE_UPDATE => "update",
        ffi::SQLITE_ATTACH => "attach",
        ffi::SQLITE_DETACH => "detach",
        ffi::SQLITE_ALTER_TABLE => "alter_table",
        ffi::SQLITE_REINDEX => "reindex",
        ffi::SQLITE_ANALYZE => "analyze",
        ffi::SQLITE_CREATE_VTABLE => "create_vtable",
        ffi::SQLITE_DROP_VTABLE => "drop_vtable",
        ffi::SQLITE_FUNCTION => "function",
        ffi::SQLITE_SAVEPOINT => "savepoint",
        ffi::SQLITE_RECURSIVE => "recursive",
        _ => "unknown",
    }
}

unsafe fn text(ptr: *const c_char) -> Option<String> {
    // SAFETY: SQLite passes NUL-terminated strings or NULL.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned())
}

unsafe extern "C" fn callback(
    data: *mut c_void,
    code: c_int,
    first: *const c_char,
    second: *const c_char,
    _database: *const c_char,
    _trigger_or_view: *const c_char,
) -> c_int {
    // SAFETY: `data` is the `Authorizer` box `install` was given, alive
    // until `remove`; SQLite calls this on the thread that prepares, while
    // the caller holds the connection's lock.
    let authorizer = unsafe { &mut *(data as *mut Authorizer) };
    let action = Action {
        code,
        first: unsafe { text(first) },
        second: unsafe { text(second) },
    };
    authorizer.decide(action)
}

/// Installs `authorizer` on the connection.
///
/// # Safety
/// `db` is an open connection the caller holds exclusively, and
/// `authorizer` stays at its address until [`remove`] is called on `db`.
pub unsafe fn install(db: NonNull<ffi::sqlite3>, authorizer: &mut Authorizer) {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::sqlite3_set_authorizer(
            db.as_ptr(),
            Some(callback),
            authorizer as *mut Authorizer as *mut c_void,
        );
    }
}

/// Removes whatever authorizer the connection has.
///
/// # Safety
/// `db` is an open connection the caller holds exclusively.
pub unsafe fn remove(db: NonNull<ffi::sqlite3>) {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::sqlite3_set_authorizer(db.as_ptr(), None, std::ptr::null_mut());
    }
}

/// How many statements `sql` compiles to, each compiled (and so
/// authorized) and thrown away before anything runs; `Err` carries
/// SQLite's message for the first that does not compile.
///
/// # Safety
/// `db` is an open connection the caller holds exclusively.
pub unsafe fn count_statements(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<usize, String> {
    let bytes = sql.as_bytes();
    let mut offset = 0usize;
    let mut count = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let mut tail: *const c_char = std::ptr::null();
        // SAFETY: `rest` is valid for its length; SQLite reads at most
        // that many bytes and points `tail` into it.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                rest.as_ptr() as *const c_char,
                rest.len() as c_int,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: the message belongs to the connection until its next call.
            let message = unsafe { text(ffi::sqlite3_errmsg(db.as_ptr())) }.unwrap_or_default();
            return Err(message);
        }
        if stmt.is_null() {
            // Only whitespace or comments were left.
            break;
        }
        count += 1;
        // SAFETY: `stmt` came from prepare above.
        unsafe { ffi::sqlite3_finalize(stmt) };
        let used = if tail.is_null() {
            rest.len()
        } else {
            (tail as usize).saturating_sub(rest.as_ptr() as usize)
        };
        if used == 0 {
            break;
        }
        offset += used;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(code: i32, first: &str, second: Option<&str>) -> Action {
        Action {
            code,
            first: Some(first.into()),
            second: second.map(Into::into),
        }
    }

    #[test]
    fn the_grant_decides_by_action() {
        let reserved = Reserved::default();
        let read = |a: &Action| verdict(SqlGrant::Read, &reserved, a, false);
        let write = |a: &Action| verdict(SqlGrant::Write, &reserved, a, false);
        let ddl = |a: &Action| verdict(SqlGrant::Ddl, &reserved, a, false);
        assert!(read(&action(ffi::SQLITE_READ, "users", Some("id"))).is_ok());
        assert!(read(&action(ffi::SQLITE_INSERT, "users", None)).is_err());
        assert!(write(&action(ffi::SQLITE_INSERT, "users", None)).is_ok());
        assert!(write(&action(ffi::SQLITE_CREATE_TABLE, "t", None)).is_err());
        assert!(ddl(&action(ffi::SQLITE_CREATE_TABLE, "t", None)).is_ok());
        assert!(ddl(&action(ffi::SQLITE_INSERT, "sqlite_master", None)).is_ok());
        assert!(write(&action(ffi::SQLITE_INSERT, "sqlite_master", None)).is_err());
        for denied in [
            action(ffi::SQLITE_ATTACH, "/tmp/x.db", None),
            action(ffi::SQLITE_DETACH, "x", None),
            action(ffi::SQLITE_TRANSACTION, "COMMIT", None),
            action(ffi::SQLITE_SAVEPOINT, "BEGIN", Some("a")),
            action(ffi::SQLITE_PRAGMA, "writable_schema", Some("1")),
            action(ffi::SQLITE_PRAGMA, "user_version", Some("7")),
            action(ffi::SQLITE_CREATE_TRIGGER, "t", Some("users")),
            action(ffi::SQLITE_CREATE_VTABLE, "v", Some("fts5")),
            action(ffi::SQLITE_READ, "sqlite_master", Some("sql")),
            action(ffi::SQLITE_READ, "gantry_migrations", Some("down_script")),
            action(ffi::SQLITE_UPDATE, "GANTRY_migrations", Some("down_script")),
            action(ffi::SQLITE_DELETE, "_sqlx_migrations", None),
            action(ffi::SQLITE_DROP_TABLE, "gantry_migration_log", None),
            action(ffi::SQLITE_ALTER_TABLE, "main", Some("gantry_migrations")),
            action(ffi::SQLITE_CREATE_INDEX, "i", Some("gantry_migrations")),
            action(ffi::SQLITE_INSERT, "sqlite_sequence", None),
            action(ffi::SQLITE_CREATE_TEMP_TABLE, "t", None),
            action(ffi::SQLITE_CREATE_TEMP_VIEW, "v", None),
        ] {
            assert!(ddl(&denied).is_err(), "{denied:?}");
        }
        let function = Action {
            code: ffi::SQLITE_FUNCTION,
            first: None,
            second: Some("load_extension".into()),
        };
        assert!(ddl(&function).is_err());
        let function = Action {
            second: Some("lower".into()),
            ..function
        };
        assert!(read(&function).is_ok());
    }
}
