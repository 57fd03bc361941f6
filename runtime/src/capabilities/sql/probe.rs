//! The parser's check held against SQLite's own account of a statement:
//! what `grant.rs` admits under `read` is compiled by SQLite with a
//! recording authorizer, and every action SQLite reports must be a read of
//! something a plugin may read. A disagreement is a finding. Used by the
//! fuzzer (`benches/sql_fuzz.rs`) and by the unit test that replays its
//! corpus.
//!
//! Compiling is enough: SQLite asks its authorizer while it prepares, so
//! nothing needs to run.

use super::authorizer::{self, Action, Authorizer, Mode};
use super::functions;
use super::grant::{self, Reserved, SqlGrant};
use crate::db::Dialect;
use libsqlite3_sys as ffi;
use std::ffi::CString;
use std::ptr::NonNull;

/// The tables the probe's database has, as a migration's would.
const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT, note BLOB);
CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), expires TEXT);
CREATE VIEW active AS SELECT * FROM sessions WHERE expires > '2000';
CREATE TABLE gantry_migrations (version INTEGER PRIMARY KEY, down_script TEXT);
CREATE TABLE gantry_migration_log (id INTEGER PRIMARY KEY, detail TEXT);
CREATE TABLE _sqlx_migrations (version INTEGER PRIMARY KEY);
CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN UPDATE sessions SET expires = expires WHERE user_id = new.id; END;
";

/// What the probe found about one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The parser refused it.
    Refused,
    /// Admitted, and SQLite agrees it only reads.
    Reads,
    /// Admitted, but SQLite would do more; the finding says what.
    Finding(String),
}

/// An in-memory SQLite database with the probe's schema.
pub struct Probe {
    db: NonNull<ffi::sqlite3>,
    reserved: Reserved,
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: opened in `new`, closed once.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

impl Probe {
    pub fn new() -> Probe {
        let mut db = std::ptr::null_mut();
        let name = CString::new(":memory:").expect("no NUL");
        // SAFETY: a fresh handle for this probe alone.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                name.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK, "an in-memory database opens");
        let db = NonNull::new(db).expect("sqlite3_open_v2 gives a handle");
        let schema = CString::new(SCHEMA).expect("no NUL");
        // SAFETY: the handle is open and ours.
        let rc = unsafe {
            ffi::sqlite3_exec(db.as_ptr(), schema.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut())
        };
        assert_eq!(rc, ffi::SQLITE_OK, "the probe's schema");
        Probe {
            db,
            reserved: Reserved::default(),
        }
    }

    /// The parser's verdict on `sql` under `read`, checked against SQLite.
    pub fn check(&mut self, sql: &str) -> Verdict {
        let admitted = match grant::check(Dialect::Sqlite, SqlGrant::Read, sql, &self.reserved) {
            Ok(admitted) => admitted,
            Err(_) => return Verdict::Refused,
        };
        // What runs must read back as itself: a statement the printer
        // changes in meaning would smuggle past the check on PostgreSQL.
        match grant::check(Dialect::Sqlite, SqlGrant::Read, &admitted.text, &self.reserved) {
            Ok(again) if again.text == admitted.text => {}
            Ok(again) => {
                return Verdict::Finding(format!(
                    "printing is not stable: {:?} reads back as {:?}",
                    admitted.text, again.text
                ));
            }
            Err(refusal) => {
                return Verdict::Finding(format!(
                    "the admitted text {:?} is refused when read again: {refusal:?}",
                    admitted.text
                ));
            }
        }
        let mut recorder = Authorizer::new(Mode::Record);
        // SAFETY: the handle is ours; the recorder outlives its install.
        let counted = unsafe {
            authorizer::install(self.db, &mut recorder);
            let counted = authorizer::count_statements(self.db, &admitted.text);
            authorizer::remove(self.db);
            counted
        };
        match counted {
            // SQLite cannot compile it (a name that does not exist, say):
            // nothing of it would run.
            Err(_) => return Verdict::Reads,
            Ok(1) => {}
            Ok(n) => {
                return Verdict::Finding(format!(
                    "admitted as one statement, SQLite compiles {n}: {:?}",
                    admitted.text
                ));
            }
        }
        match recorder.actions.iter().find(|a| !self.may_read(a)) {
            None => Verdict::Reads,
            Some(action) => Verdict::Finding(format!(
                "admitted under read, SQLite reports {} {:?} {:?} for {:?}",
                action.name(),
                action.first,
                action.second,
                admitted.text
            )),
        }
    }

    fn may_read(&self, action: &Action) -> bool {
        if !action.reads() {
            return false;
        }
        let table = action.first.as_deref().unwrap_or("");
        match action.code {
            ffi::SQLITE_READ => {
                !self.reserved.covers(table)
                    && !matches!(
                        table.to_ascii_lowercase().as_str(),
                        "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
                    )
            }
            ffi::SQLITE_FUNCTION => functions::admit(
                Dialect::Sqlite,
                SqlGrant::Read,
                action.second.as_deref().unwrap_or(""),
            )
            .is_ok(),
            _ => true,
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement the fuzzer ever kept (`fuzz/sql-read-corpus.txt`:
    /// one per line, `\n` for a newline inside one), replayed: none may be
    /// a finding.
    #[test]
    fn the_fuzzers_corpus_holds() {
        let corpus = include_str!("../../../fuzz/sql-read-corpus.txt");
        let mut probe = Probe::new();
        let mut admitted = 0;
        for line in corpus.lines().filter(|l| !l.is_empty() && !l.starts_with("#")) {
            let sql = line.replace("\\n", "\n");
            match probe.check(&sql) {
                Verdict::Finding(finding) => panic!("{finding}"),
                Verdict::Reads => admitted += 1,
                Verdict::Refused => {}
            }
        }
        assert!(admitted > 10, "the corpus holds statements a read grant admits");
    }

    #[test]
    fn the_probe_sees_what_sqlite_would_do() {
        let mut probe = Probe::new();
        assert_eq!(probe.check("SELECT email FROM users"), Verdict::Reads);
        assert_eq!(probe.check("DELETE FROM users"), Verdict::Refused);
        // The probe itself, asked of text the parser never saw: it must
        // catch a write if the parser admitted one.
        let mut recorder = Authorizer::new(Mode::Record);
        unsafe {
            authorizer::install(probe.db, &mut recorder);
            let _ = authorizer::count_statements(probe.db, "INSERT INTO users (email) VALUES ('x')");
            authorizer::remove(probe.db);
        }
        assert!(recorder.actions.iter().any(|a| !probe.may_read(a)));
    }
}
