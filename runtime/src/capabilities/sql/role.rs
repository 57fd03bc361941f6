//! PostgreSQL's own verdict on a plugin's statements: each plugin call runs
//! under `SET LOCAL ROLE` to a role whose privileges are its grant, so the
//! server refuses what the grant does not cover — a catalog write, a file
//! read, gantry's own tables — whatever text reached it.
//!
//! The roles are the operator's (`plugins.capabilities.sql.roles`), or
//! gantry's own `gantry_plugin_read|write|ddl` (NOLOGIN), created when the
//! migrating user may create roles and granted, for each step, the
//! privileges of the grant on the tables of the schemas in the search path,
//! minus `gantry_*` and the sqlx history table. With neither, the step is
//! refused: run as the migrating user, it would reach gantry's records.
//!
//! Never leaves the session in a plugin's role: `leave` resets it before
//! the runner writes its own records.

use super::grant::{AttributeFunctions, Reserved, SqlGrant};
use serde::Deserialize;
use sqlx::PgConnection;

/// `plugins.capabilities.sql.roles`: roles the operator made, one per level.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqlRoles {
    pub read: Option<String>,
    pub write: Option<String>,
    pub ddl: Option<String>,
}

impl SqlRoles {
    fn named(&self, grant: SqlGrant) -> Option<&str> {
        match grant {
            SqlGrant::Read => self.read.as_deref(),
            SqlGrant::Write => self.write.as_deref(),
            SqlGrant::Ddl => self.ddl.as_deref(),
        }
        .filter(|name| !name.is_empty())
    }
}

/// Who a plugin call runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The operator's role for the grant.
    Operator(String),
    /// gantry's own role for the grant, with this step's privileges.
    Managed(String),
}

impl RunAs {
    pub fn role(&self) -> &str {
        match self {
            RunAs::Operator(role) | RunAs::Managed(role) => role,
        }
    }
}

/// gantry's role for a grant.
pub fn managed_name(grant: SqlGrant) -> String {
    format!("gantry_plugin_{grant}")
}

fn db_err(what: &str) -> impl Fn(sqlx::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The functions PostgreSQL may call for `item.name` (attribute notation:
/// `name(item)` when the FROM item has no column `name`): every function
/// callable with one argument, and which of them take a whole row (a row
/// type or a domain over one, `record`, a pseudo-type such as
/// `anyelement`) — in any schema, the database's own included, which no
/// allowlist can know of. The parser's check holds such names to the
/// function allowlist (`grant.rs`).
pub async fn attribute_functions(conn: &mut PgConnection) -> Result<AttributeFunctions, String> {
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT p.proname::text, \
                bool_or(t.typtype IN ('c', 'p') OR t.typname = 'record' OR coalesce(b.typtype = 'c', false)) \
         FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_type t ON t.oid = p.proargtypes[0] \
         LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype \
         WHERE p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1 \
         GROUP BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err("read the functions a FROM item may call"))?;
    let mut functions = AttributeFunctions::default();
    for (name, of_rows) in rows {
        if of_rows {
            functions.of_rows.insert(name.clone());
        }
        functions.unary.insert(name);
    }
    Ok(functions)
}

/// Decides who the call runs as and, for gantry's own role, makes it and
/// grants it this grant's privileges. Runs inside the step's transaction
/// (a savepoint keeps a lost race to create the role from spoiling it).
pub async fn prepare(
    conn: &mut PgConnection,
    grant: SqlGrant,
    roles: &SqlRoles,
    reserved: &Reserved,
) -> Result<RunAs, String> {
    if let Some(role) = roles.named(grant) {
        return Ok(RunAs::Operator(role.to_string()));
    }
    let (superuser, createrole): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err("read the migrating user's attributes"))?;
    let role = managed_name(grant);
    if !superuser && !createrole {
        // Its own privileges include gantry's records: only the parser
        // would stand between the plugin and them.
        return Err(format!(
            "the migrating user may not create roles, so gantry cannot confine the step to its \
             grant: create a NOLOGIN role with this grant's privileges (and none on gantry_* or \
             the sqlx history), grant it to the migrating user, and name it under \
             plugins.capabilities.sql.roles.{grant} (or let the migrating user CREATEROLE, and \
             gantry makes {role})"
        ));
    }
    make_role(conn, &role, grant, superuser, reserved)
        .await
        .map(|()| RunAs::Managed(role.clone()))
        .map_err(|why| {
            format!(
                "gantry could not prepare the role {role} ({why}); create a role with this \
                 grant's privileges and name it under plugins.capabilities.sql.roles.{grant}"
            )
        })
}

async fn make_role(
    conn: &mut PgConnection,
    role: &str,
    grant: SqlGrant,
    superuser: bool,
    reserved: &Reserved,
) -> Result<(), String> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err("look for the role"))?;
    if !exists {
        batch(conn, "SAVEPOINT gantry_role").await?;
        let created = batch(conn, &format!("CREATE ROLE {role} NOLOGIN")).await;
        if let Err(why) = created {
            // Another runner made it first: that one is as good.
            batch(conn, "ROLLBACK TO SAVEPOINT gantry_role").await?;
            let now: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err("look for the role"))?;
            if !now {
                return Err(why);
            }
        }
        batch(conn, "RELEASE SAVEPOINT gantry_role").await?;
    }
    if !superuser {
        batch(conn, &format!("GRANT {role} TO CURRENT_USER")).await?;
    }
    let schemas: Vec<String> = sqlx::query_scalar("SELECT unnest(current_schemas(false))::text")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err("read the search path"))?;
    let (tables, sequences) = match grant {
        SqlGrant::Read => ("SELECT", "SELECT"),
        SqlGrant::Write | SqlGrant::Ddl => ("SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT, UPDATE"),
    };
    let mut sql = String::new();
    for schema in &schemas {
        let schema = quote_ident(schema);
        sql.push_str(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO {role};\n\
             GRANT {tables} ON ALL TABLES IN SCHEMA {schema} TO {role};\n\
             GRANT {sequences} ON ALL SEQUENCES IN SCHEMA {schema} TO {role};\n"
        ));
        if grant == SqlGrant::Ddl {
            sql.push_str(&format!("GRANT CREATE ON SCHEMA {schema} TO {role};\n"));
        }
    }
    // gantry's records and sqlx's history: out of reach, table and sequence.
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY(current_schemas(false)) AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f') \
         AND (lower(c.relname) LIKE 'gantry\\_%' OR lower(c.relname) = $1 OR lower(c.relname) = '_sqlx_migrations' \
              OR lower(c.relname) LIKE '\\_sqlx\\_migrations%' OR lower(c.relname) LIKE $2)",
    )
    .bind(reserved.sqlx_table())
    .bind(format!("{}%", reserved.sqlx_table()))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err("list gantry's own tables"))?;
    for relation in &kept {
        sql.push_str(&format!("REVOKE ALL ON {relation} FROM {role};\n"));
    }
    batch(conn, &sql).await
}

/// Switches the session to the call's role, for the rest of the
/// transaction or until `leave`.
pub async fn enter(conn: &mut PgConnection, run_as: &RunAs) -> Result<(), String> {
    batch(conn, &format!("SET LOCAL ROLE {}", quote_ident(run_as.role()))).await
}

/// Whether the session is still the call's role: a statement that changed
/// it (past every check) ends the step before the next one runs.
pub async fn still_in(conn: &mut PgConnection, run_as: &RunAs) -> Result<(), String> {
    let current: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if current != run_as.role() {
        return Err(format!(
            "the session left the role {} (it is {current} now); the step is stopped",
            run_as.role()
        ));
    }
    Ok(())
}

/// Back to the migrating user, with nothing of the call left in the
/// session: its statement timeout, and any temporary object (found before
/// gantry's own tables by name). What a ddl step created stays its role's:
/// handing it to the migrating user would make a view or a SECURITY
/// DEFINER function the plugin wrote run with that user's privileges. The
/// migrating user (a superuser, or a member of the role) can still alter
/// and drop it in later migrations.
pub async fn leave(conn: &mut PgConnection, run_as: &RunAs) -> Result<(), String> {
    still_in(conn, run_as).await?;
    batch(
        conn,
        "RESET ROLE; SET LOCAL statement_timeout TO DEFAULT; DISCARD TEMP",
    )
    .await
}

async fn batch(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A PostgreSQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
