//! A migration plugin cannot reach past its `sql` grant, nor plant what a
//! later rollback runs.
//!
//! The engine tests confine a lent session as a plugin call would, then
//! send statements straight to the connection — as a parser bypass would —
//! and check that the database refuses what the grant does not cover
//! (SQLite's authorizer; PostgreSQL's role), and that the session is itself
//! again after `release`. The end-to-end tests run the real binary: a
//! tampered recorded down is never run, operator pins and grants hold for
//! migration components, and a manifest is named for its file.

use gantry::capabilities::sql::SqlSession;
use gantry::capabilities::sql::grant::{Reserved, SqlGrant};
use gantry::capabilities::sql::role::SqlRoles;
use gantry::db::{Db, DbTarget, connect};
use gantry_tests::pg::TestDb;
use gantry_tests::{Run, Sandbox};
use std::path::{Path, PathBuf};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn open(rt: &tokio::runtime::Runtime, url: &str) -> Db {
    rt.block_on(connect(&DbTarget::parse(url).unwrap()))
        .unwrap()
}

fn run(rt: &tokio::runtime::Runtime, db: &mut Db, sql: &str) -> Result<(), String> {
    rt.block_on(db.batch(sql)).map_err(|e| e.to_string())
}

/// One statement through a confined session, as the capability sends it.
fn stmt(rt: &tokio::runtime::Runtime, s: &mut SqlSession, sql: &str) -> Result<(), String> {
    s.begin_statement();
    run(rt, &mut s.db, sql)
}

fn session(rt: &tokio::runtime::Runtime, db: Db) -> SqlSession {
    SqlSession::new(db, rt.handle().clone(), Reserved::default())
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT);
INSERT INTO users (email) VALUES ('a@example.com');
CREATE TABLE gantry_migrations (version INTEGER PRIMARY KEY, down_script TEXT);
INSERT INTO gantry_migrations VALUES (1, 'DROP TABLE users');
CREATE TABLE _sqlx_migrations (version INTEGER PRIMARY KEY);";

fn sqlite(dir: &Path) -> (tokio::runtime::Runtime, SqlSession) {
    let rt = runtime();
    let url = format!("sqlite://{}", dir.join("auth.db").display());
    let mut db = open(&rt, &url);
    run(&rt, &mut db, SQLITE_SCHEMA).unwrap();
    let session = session(&rt, db);
    (rt, session)
}

#[test]
fn sqlite_refuses_what_a_read_grant_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, mut s) = sqlite(dir.path());
    s.confine(Some(SqlGrant::Read), &SqlRoles::default())
        .unwrap();
    stmt(&rt, &mut s, "SELECT id, lower(email) FROM users").unwrap();
    stmt(&rt, &mut s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT * FROM c").unwrap();
    for hostile in [
        "INSERT INTO users (email) VALUES ('b')",
        "UPDATE users SET email = 'x'",
        "DELETE FROM users",
        "CREATE TABLE extra (id int)",
        "DROP TABLE users",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA writable_schema = 1",
        "PRAGMA user_version = 7",
        "PRAGMA journal_mode = OFF",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT sql FROM sqlite_master",
        "SELECT sql FROM sqlite_schema",
        "SELECT * FROM gantry_migrations",
        "SELECT * FROM _sqlx_migrations",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT a",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN SELECT 1; END",
        "CREATE VIRTUAL TABLE v USING fts5(x)",
        "SELECT fts3_tokenizer('simple')",
        "ANALYZE",
    ] {
        let result = stmt(&rt, &mut s, hostile);
        assert!(result.is_err(), "{hostile} ran under a read grant");
    }
    assert!(!dir.path().join("other.db").exists());
    s.release().unwrap();
    // Back to the runner: its own records are its own again.
    stmt(
        &rt,
        &mut s,
        "UPDATE gantry_migrations SET down_script = down_script",
    )
    .unwrap();
}

#[test]
fn sqlite_admits_each_level_and_never_gantrys_records() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, mut s) = sqlite(dir.path());
    s.confine(Some(SqlGrant::Write), &SqlRoles::default())
        .unwrap();
    // AUTOINCREMENT moves sqlite_sequence: part of a write.
    stmt(&rt, &mut s, "INSERT INTO users (email) VALUES ('b')").unwrap();
    stmt(&rt, &mut s, "UPDATE users SET email = upper(email)").unwrap();
    for hostile in [
        "CREATE TABLE extra (id int)",
        "UPDATE gantry_migrations SET down_script = 'DROP TABLE users'",
        "DELETE FROM _sqlx_migrations",
        "UPDATE sqlite_sequence SET seq = 0",
    ] {
        assert!(
            stmt(&rt, &mut s, hostile).is_err(),
            "{hostile} ran under a write grant"
        );
    }
    s.release().unwrap();

    s.confine(Some(SqlGrant::Ddl), &SqlRoles::default())
        .unwrap();
    for fine in [
        "CREATE TABLE extra (id INTEGER PRIMARY KEY, note TEXT)",
        "CREATE INDEX extra_note ON extra (note)",
        "CREATE VIEW extra_v AS SELECT note FROM extra",
        "ALTER TABLE extra ADD COLUMN more TEXT",
        "DROP VIEW extra_v",
        "DROP INDEX extra_note",
        "ALTER TABLE extra RENAME TO extra2",
        "ALTER TABLE extra2 RENAME COLUMN note TO note2",
        "ALTER TABLE extra2 DROP COLUMN more",
        "DROP TABLE extra2",
        "CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT)",
        "INSERT INTO counted DEFAULT VALUES",
        "DROP TABLE counted",
    ] {
        stmt(&rt, &mut s, fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
    for hostile in [
        "DROP TABLE gantry_migrations",
        "ALTER TABLE gantry_migrations ADD COLUMN x int",
        "CREATE INDEX g ON gantry_migrations (down_script)",
        "CREATE TABLE gantry_shadow (x int)",
        "ATTACH DATABASE 'other.db' AS other",
        "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END",
        "INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x (y)')",
        "SELECT sql FROM sqlite_master",
        "SELECT sqlite_rename_table('main', 'users', 'table', 'x', 'x', 'y', 0)",
    ] {
        assert!(
            stmt(&rt, &mut s, hostile).is_err(),
            "{hostile} ran under a ddl grant"
        );
    }
    s.release().unwrap();
}

/// Text that compiles to two statements is refused before either runs, and
/// a refusal comes back in the authorizer's words.
#[test]
fn sqlite_runs_one_statement_per_call_through_the_capability() {
    use gantry::bindings::sql::{Host, Value};
    use gantry::capabilities::sql::SqlState;
    let dir = tempfile::tempdir().unwrap();
    let (rt, mut s) = sqlite(dir.path());
    s.confine(Some(SqlGrant::Write), &SqlRoles::default())
        .unwrap();
    let mut state = SqlState {
        session: Some(s),
        grant: Some(SqlGrant::Write),
        ..SqlState::default()
    };
    let refused = state
        .execute(
            "INSERT INTO users (email) VALUES ($1)".into(),
            vec![Value::Text("c".into())],
        )
        .unwrap();
    assert_eq!(refused, Ok(1));
    let two = state
        .execute("DELETE FROM users; DELETE FROM users".into(), vec![])
        .unwrap();
    assert!(two.is_err(), "{two:?}");
    let mut s = state.session.take().unwrap();
    s.release().unwrap();
    let count: i64 = rt.block_on(async {
        let Db::Sqlite(conn) = &mut s.db else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(conn)
            .await
            .unwrap()
    });
    assert_eq!(count, 2, "neither DELETE ran");
}

const PG_SCHEMA: &str = "
CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT);
INSERT INTO users (email) VALUES ('a@example.com');
CREATE TABLE gantry_migrations (version BIGINT PRIMARY KEY, down_script TEXT);
INSERT INTO gantry_migrations VALUES (1, 'DROP TABLE users');
CREATE TABLE gantry_migration_log (id BIGSERIAL PRIMARY KEY, detail TEXT);
CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY);";

/// Each statement in a transaction of its own that is confined the way a
/// step's is: `confine` after BEGIN, the statement, then ROLLBACK.
fn pg_try(
    rt: &tokio::runtime::Runtime,
    s: &mut SqlSession,
    grant: SqlGrant,
    sql: &str,
) -> Result<(), String> {
    run(rt, &mut s.db, "BEGIN").unwrap();
    s.confine(Some(grant), &SqlRoles::default()).unwrap();
    let result = run(rt, &mut s.db, sql);
    let _ = run(rt, &mut s.db, "ROLLBACK");
    result
}

#[test]
fn postgres_runs_each_grant_as_a_role_with_that_grants_privileges() {
    let test = TestDb::create("confine");
    let rt = runtime();
    let mut db = open(&rt, &test.url());
    run(&rt, &mut db, PG_SCHEMA).unwrap();
    let mut s = session(&rt, db);
    assert!(
        pg_try(
            &rt,
            &mut s,
            SqlGrant::Read,
            "SELECT id, lower(email) FROM users"
        )
        .is_ok()
    );
    for hostile in [
        "INSERT INTO users (email) VALUES ('b')",
        "DELETE FROM users",
        "CREATE TABLE extra (id int)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT * FROM pg_read_file('/etc/passwd') AS f(x)",
        "SELECT pg_ls_dir('.')",
        "SELECT * FROM gantry_migrations",
        "SELECT * FROM gantry_migration_log",
        "SELECT * FROM _sqlx_migrations",
        "SELECT nextval('gantry_migration_log_id_seq')",
        "UPDATE pg_catalog.pg_proc SET prosrc = prosrc WHERE proname = 'lower'",
        "SELECT query_to_xml('select * from gantry_migrations', true, true, '')",
        "COPY users TO '/tmp/gantry-confine-leak'",
        "SELECT rolpassword FROM pg_authid",
    ] {
        let result = pg_try(&rt, &mut s, SqlGrant::Read, hostile);
        assert!(result.is_err(), "{hostile} ran under a read grant");
    }
    assert!(
        pg_try(
            &rt,
            &mut s,
            SqlGrant::Write,
            "UPDATE users SET email = upper(email)"
        )
        .is_ok()
    );
    assert!(
        pg_try(
            &rt,
            &mut s,
            SqlGrant::Write,
            "INSERT INTO users (email) VALUES ('b')"
        )
        .is_ok()
    );
    for hostile in [
        "UPDATE gantry_migrations SET down_script = 'DROP TABLE users'",
        "DELETE FROM gantry_migration_log",
        "CREATE TABLE extra (id int)",
        "UPDATE pg_catalog.pg_proc SET prosrc = prosrc WHERE proname = 'lower'",
    ] {
        assert!(
            pg_try(&rt, &mut s, SqlGrant::Write, hostile).is_err(),
            "{hostile} ran under a write grant"
        );
    }
    assert!(pg_try(&rt, &mut s, SqlGrant::Ddl, "CREATE TABLE extra (id int)").is_ok());
    for hostile in [
        "DROP TABLE gantry_migrations",
        "ALTER TABLE gantry_migrations ADD COLUMN x int",
        "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
    ] {
        let result = pg_try(&rt, &mut s, SqlGrant::Ddl, hostile);
        // CREATE FUNCTION in public is allowed to a role with CREATE on
        // the schema; the parser is what refuses it (grant.rs tests).
        if hostile.starts_with("CREATE FUNCTION") {
            continue;
        }
        assert!(result.is_err(), "{hostile} ran under a ddl grant");
    }
    // Released, the session is the migrating user again.
    stmt(&rt, &mut s, "BEGIN").unwrap();
    s.confine(Some(SqlGrant::Read), &SqlRoles::default())
        .unwrap();
    s.release().unwrap();
    stmt(
        &rt,
        &mut s,
        "UPDATE gantry_migrations SET down_script = down_script",
    )
    .unwrap();
    stmt(&rt, &mut s, "ROLLBACK").unwrap();
}

/// A statement that gets the session out of its role (here sent straight
/// to the connection, as a parser bypass would) ends the step before the
/// next statement runs, and `release` refuses to hand such a session back.
#[test]
fn postgres_stops_a_step_whose_session_left_its_role() {
    use gantry::bindings::sql::Host;
    use gantry::capabilities::sql::SqlState;
    let test = TestDb::create("leftrole");
    let rt = runtime();
    let mut db = open(&rt, &test.url());
    run(&rt, &mut db, PG_SCHEMA).unwrap();
    let mut s = session(&rt, db);
    run(&rt, &mut s.db, "BEGIN").unwrap();
    s.confine(Some(SqlGrant::Read), &SqlRoles::default())
        .unwrap();
    run(&rt, &mut s.db, "SELECT set_config('role', 'none', true)").unwrap();
    let mut state = SqlState {
        session: Some(s),
        grant: Some(SqlGrant::Read),
        ..SqlState::default()
    };
    let refused = state
        .query("SELECT count(*) FROM users".into(), vec![])
        .unwrap();
    let why = refused.unwrap_err();
    assert!(why.contains("left the role gantry_plugin_read"), "{why}");
    let mut s = state.session.take().unwrap();
    let why = s.release().unwrap_err();
    assert!(why.contains("left the role"), "{why}");
    run(&rt, &mut s.db, "ROLLBACK").unwrap();
}

/// A migrating user that is no superuser and may not create roles would
/// run the step with its own privileges, gantry's records among them: the
/// step is refused, naming the setting; with the operator's role named, it
/// runs under that role.
#[test]
fn postgres_without_a_role_to_switch_to_refuses_the_step() {
    let test = TestDb::create("norole");
    let suffix = std::process::id();
    let user = format!("gantry_test_migrator_{suffix}");
    let reader = format!("gantry_test_reader_{suffix}");
    test.execute(&format!(
        "DROP ROLE IF EXISTS {user}; CREATE ROLE {user} LOGIN"
    ));
    test.execute(&format!(
        "DROP ROLE IF EXISTS {reader}; CREATE ROLE {reader} NOLOGIN; GRANT {reader} TO {user}"
    ));
    test.execute(&format!("GRANT ALL ON SCHEMA public TO {user}"));
    let rt = runtime();
    let url = test.url().replace("postgres@", &format!("{user}@"));
    let mut db = open(&rt, &url);
    run(&rt, &mut db, PG_SCHEMA).unwrap();
    run(&rt, &mut db, &format!("GRANT SELECT ON users TO {reader}")).unwrap();
    let mut s = session(&rt, db);
    run(&rt, &mut s.db, "BEGIN").unwrap();
    let why = s
        .confine(Some(SqlGrant::Read), &SqlRoles::default())
        .unwrap_err();
    assert!(why.contains("plugins.capabilities.sql.roles.read"), "{why}");
    run(&rt, &mut s.db, "ROLLBACK").unwrap();

    let roles = SqlRoles {
        read: Some(reader.clone()),
        ..SqlRoles::default()
    };
    run(&rt, &mut s.db, "BEGIN").unwrap();
    s.confine(Some(SqlGrant::Read), &roles).unwrap();
    run(&rt, &mut s.db, "SAVEPOINT a").unwrap();
    run(&rt, &mut s.db, "SELECT count(*) FROM users").unwrap();
    run(&rt, &mut s.db, "SELECT * FROM gantry_migrations").unwrap_err();
    run(&rt, &mut s.db, "ROLLBACK TO SAVEPOINT a").unwrap();
    s.release().unwrap();
    run(&rt, &mut s.db, "ROLLBACK").unwrap();
    drop(s);
    let admin = TestDb::create("norole_cleanup");
    admin.execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        test.name
    ));
    admin.execute(&format!(
        "DROP ROLE IF EXISTS {user}; DROP ROLE IF EXISTS {reader}"
    ));
}

/// A temporary table a step makes (sent past the parser) would be found
/// before gantry's own by name; `release` discards it, so the runner's
/// records land in gantry's table.
#[test]
fn postgres_discards_what_a_step_made_temporary() {
    let test = TestDb::create("temp");
    let rt = runtime();
    let mut db = open(&rt, &test.url());
    run(&rt, &mut db, PG_SCHEMA).unwrap();
    let mut s = session(&rt, db);
    run(&rt, &mut s.db, "BEGIN").unwrap();
    s.confine(Some(SqlGrant::Ddl), &SqlRoles::default())
        .unwrap();
    run(
        &rt,
        &mut s.db,
        "CREATE TEMP TABLE gantry_migrations (version bigint, down_script text)",
    )
    .unwrap();
    s.release().unwrap();
    let count: i64 = rt.block_on(async {
        let Db::Postgres(conn) = &mut s.db else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT count(*) FROM gantry_migrations")
            .fetch_one(conn)
            .await
            .unwrap()
    });
    assert_eq!(count, 1, "gantry's own table, not the plugin's");
    run(&rt, &mut s.db, "COMMIT").unwrap();
}

/// What a ddl step creates stays its role's (handing it to the migrating
/// user would run the plugin's views and functions with that user's
/// privileges); the migrating user can still change and drop it later.
#[test]
fn postgres_keeps_what_a_ddl_step_made_in_its_role() {
    let test = TestDb::create("confineddl");
    let rt = runtime();
    let mut db = open(&rt, &test.url());
    run(&rt, &mut db, PG_SCHEMA).unwrap();
    let mut s = session(&rt, db);
    run(&rt, &mut s.db, "BEGIN").unwrap();
    s.confine(Some(SqlGrant::Ddl), &SqlRoles::default())
        .unwrap();
    run(&rt, &mut s.db, "CREATE TABLE made_by_plugin (id int)").unwrap();
    run(&rt, &mut s.db, "SAVEPOINT peek").unwrap();
    // A view the plugin writes reads with the plugin's privileges.
    run(
        &rt,
        &mut s.db,
        "CREATE VIEW peek AS SELECT * FROM gantry_migrations; SELECT * FROM peek",
    )
    .unwrap_err();
    run(&rt, &mut s.db, "ROLLBACK TO SAVEPOINT peek").unwrap();
    s.release().unwrap();
    run(&rt, &mut s.db, "COMMIT").unwrap();
    assert_eq!(
        test.scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'made_by_plugin'")
            .as_deref(),
        Some("gantry_plugin_ddl")
    );
    run(
        &rt,
        &mut s.db,
        "ALTER TABLE made_by_plugin ADD COLUMN note text; DROP TABLE made_by_plugin",
    )
    .unwrap();
}

fn migrate(sandbox: &Sandbox, url: &str, args: &[&str]) -> Run {
    Run::from(
        sandbox
            .gantry()
            .env("DATABASE_URL", url)
            .arg("migrate")
            .args(args)
            .output()
            .expect("run gantry"),
    )
}

/// Two reversible SQL migrations in `dir`.
fn two_migrations(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in [
        ("001_keep.up.sql", "CREATE TABLE keep (id int);\n"),
        ("001_keep.down.sql", "DROP TABLE keep;\n"),
        ("002_extra.up.sql", "CREATE TABLE extra (id int);\n"),
        ("002_extra.down.sql", "DROP TABLE extra;\n"),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn sqlite_exec(file: &Path, sql: &str) {
    let rt = runtime();
    let mut db = open(&rt, &format!("sqlite://{}", file.display()));
    run(&rt, &mut db, sql).unwrap();
}

fn sqlite_tables(file: &Path) -> Vec<String> {
    let rt = runtime();
    let mut db = open(&rt, &format!("sqlite://{}", file.display()));
    rt.block_on(async {
        let Db::Sqlite(conn) = &mut db else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(conn)
            .await
            .unwrap()
    })
}

/// A down script rewritten in `gantry_migrations` (as a plugin that got
/// past its grant, or another database user, could) fails its signature:
/// the rollback refuses before touching anything, and status names it.
#[test]
fn a_planted_down_script_is_never_run() {
    // PostgreSQL
    let db = TestDb::create("planted");
    let sandbox = Sandbox::new();
    let dir = two_migrations(&sandbox);
    let dir_arg = dir.to_str().unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    // The file gone, the recorded down is what a rollback would run.
    std::fs::remove_file(dir.join("002_extra.up.sql")).unwrap();
    std::fs::remove_file(dir.join("002_extra.down.sql")).unwrap();
    db.execute("UPDATE gantry_migrations SET down_script = 'DROP TABLE keep; DROP TABLE extra' WHERE version = 2");
    let run = migrate(
        &sandbox,
        &db.url(),
        &["rollback", "--migrations-dir", dir_arg, "--target", "1"],
    )
    .expect(1);
    assert!(
        run.stderr.contains("002_extra") && run.stderr.contains("fails its signature"),
        "{}",
        run.stderr
    );
    let tables = db.tables();
    assert!(
        tables.contains(&"keep".to_string()) && tables.contains(&"extra".to_string()),
        "{tables:?}"
    );
    let status = migrate(
        &sandbox,
        &db.url(),
        &["status", "--migrations-dir", dir_arg, "--json"],
    )
    .expect(1);
    let json = status.json();
    assert_eq!(json["summary"], "attention");
    let row = json["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == 2)
        .unwrap()
        .clone();
    assert_eq!(row["recorded"], "invalid", "{row}");
    let row = json["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == 1)
        .unwrap()
        .clone();
    assert_eq!(row["recorded"], "valid", "{row}");

    // SQLite
    let sandbox = Sandbox::new();
    let dir = two_migrations(&sandbox);
    let dir_arg = dir.to_str().unwrap();
    let file = sandbox.path().join("auth.db");
    let url = format!("sqlite://{}", file.display());
    migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(0);
    std::fs::remove_file(dir.join("002_extra.up.sql")).unwrap();
    std::fs::remove_file(dir.join("002_extra.down.sql")).unwrap();
    sqlite_exec(
        &file,
        "UPDATE gantry_migrations SET down_script = 'DROP TABLE keep; DROP TABLE extra' WHERE version = 2",
    );
    let run = migrate(
        &sandbox,
        &url,
        &["rollback", "--migrations-dir", dir_arg, "--target", "1"],
    )
    .expect(1);
    assert!(run.stderr.contains("fails its signature"), "{}", run.stderr);
    let tables = sqlite_tables(&file);
    assert!(
        tables.contains(&"keep".to_string()) && tables.contains(&"extra".to_string()),
        "{tables:?}"
    );
}

/// A history from before gantry signed it is signed as it stands by the
/// next run, and its recorded downs then run as before.
#[test]
fn a_history_from_before_signatures_is_signed_and_its_downs_still_run() {
    let db = TestDb::create("unsigned");
    let sandbox = Sandbox::new();
    let dir = two_migrations(&sandbox);
    let dir_arg = dir.to_str().unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    db.execute("ALTER TABLE gantry_migrations DROP COLUMN signature");
    // status reads it as it is; the next run that writes signs it.
    migrate(
        &sandbox,
        &db.url(),
        &["status", "--migrations-dir", dir_arg],
    )
    .expect(0);
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    std::fs::remove_file(dir.join("002_extra.up.sql")).unwrap();
    std::fs::remove_file(dir.join("002_extra.down.sql")).unwrap();
    migrate(
        &sandbox,
        &db.url(),
        &["rollback", "--migrations-dir", dir_arg, "--target", "1"],
    )
    .expect(0);
    assert!(!db.tables().contains(&"extra".to_string()));
}

/// The bad-migration test guest as `002_bad`, after a 001 that makes its
/// tables; `name` is the manifest's name.
fn guest_dir(sandbox: &Sandbox, mode: &str, name: &str, grant: &str) -> PathBuf {
    let dir = sandbox.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_setup.up.sql"),
        format!(
            "CREATE TABLE wasm_marker (note text);\nCREATE TABLE wasm_mode (mode text);\nINSERT INTO wasm_mode VALUES ('{}');\n",
            mode.replace('\'', "''")
        ),
    )
    .unwrap();
    std::fs::copy(
        gantry_runtime::testing::test_plugin("bad-migration"),
        dir.join("002_bad.wasm"),
    )
    .unwrap();
    let manifest =
        std::fs::read_to_string(gantry_runtime::testing::plugins_dir().join("bad-migration.toml"))
            .unwrap()
            .replace("name = \"bad-migration\"", &format!("name = {name:?}"))
            .replace("sql = \"write\"", &format!("sql = {grant:?}"));
    std::fs::write(dir.join("002_bad.toml"), manifest).unwrap();
    dir
}

#[test]
fn a_migration_manifest_is_named_for_its_file() {
    let sandbox = Sandbox::new();
    let dir = guest_dir(&sandbox, "ok", "innocent-name", "write");
    let file = sandbox.path().join("auth.db");
    let url = format!("sqlite://{}", file.display());
    let run = migrate(&sandbox, &url, &["--migrations-dir", dir.to_str().unwrap()]).expect(2);
    assert!(
        run.stderr.contains("002_bad.toml")
            && run.stderr.contains("innocent-name")
            && run.stderr.contains("name = \"002_bad\""),
        "{}",
        run.stderr
    );
    assert!(!file.exists(), "nothing was created");
}

/// `plugins.pins.NAME` and `plugins.grants.NAME` hold for a migration
/// component as for any plugin.
#[test]
fn operator_pins_and_grants_hold_for_a_migration_component() {
    let sandbox = Sandbox::new();
    let dir = guest_dir(&sandbox, "ok", "002_bad", "write");
    let file = sandbox.path().join("auth.db");
    let url = format!("sqlite://{}", file.display());
    let config = sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"pins": {"002_bad": "0000000000000000000000000000000000000000000000000000000000000000"}}}"#,
    );
    let run = migrate(
        &sandbox,
        &url,
        &[
            "--config",
            config.to_str().unwrap(),
            "--migrations-dir",
            dir.to_str().unwrap(),
        ],
    )
    .expect(2);
    assert!(
        run.stderr.contains("plugins.pins.002_bad"),
        "{}",
        run.stderr
    );
    assert!(
        !sqlite_tables(&file).contains(&"wasm_marker".to_string()),
        "nothing ran"
    );

    // The operator narrows the grant to read: the step's INSERT is refused.
    let config = sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"grants": {"002_bad": {"sql": "read"}}}}"#,
    );
    let run = migrate(
        &sandbox,
        &url,
        &[
            "--config",
            config.to_str().unwrap(),
            "--migrations-dir",
            dir.to_str().unwrap(),
        ],
    )
    .expect(1);
    assert!(
        run.stderr.contains("needs sql = \"write\""),
        "{}",
        run.stderr
    );
}

/// `t.f` is PostgreSQL's call `f(t)` when `t` has no column `f`: a function
/// of the application's taking a whole row (here one that writes, as its
/// owner), or a domain over the row, is held to the allowlist like any
/// call, read from the catalog.
#[test]
fn a_read_grant_guest_cannot_call_a_row_function_by_attribute() {
    for (function, argument) in [("bump", "app_users"), ("bump_d", "app_users_d")] {
        let db = TestDb::create("rowfn");
        db.execute(&format!(
            "CREATE TABLE app_users (id int); INSERT INTO app_users VALUES (1); \
             GRANT SELECT ON app_users TO PUBLIC; \
             CREATE DOMAIN app_users_d AS app_users; \
             CREATE FUNCTION {function}({argument}) RETURNS int LANGUAGE sql SECURITY DEFINER \
             AS $$ INSERT INTO app_users VALUES (99) RETURNING 1 $$"
        ));
        let sandbox = Sandbox::new();
        let dir = guest_dir(
            &sandbox,
            &format!("probe:SELECT u.{function} FROM app_users AS u"),
            "002_bad",
            "read",
        );
        let run = migrate(
            &sandbox,
            &db.url(),
            &["--migrations-dir", dir.to_str().unwrap()],
        );
        assert_eq!(run.code, 1, "{function}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("002_bad") && run.stderr.contains(&format!("u.{function}")),
            "{}",
            run.stderr
        );
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM app_users").as_deref(),
            Some("1"),
            "{function}"
        );
    }
}

/// Hostile statements from a guest granted only `read`, end to end on both
/// dialects: each fails the step naming the statement, and nothing of it
/// stays.
#[test]
fn a_read_grant_guest_cannot_write_read_files_or_drop_the_lock() {
    let postgres = [
        "SELECT * FROM pg_read_file('/etc/passwd') AS f(x)",
        "SELECT * FROM wasm_mode, LATERAL pg_ls_dir('.') AS f(x)",
        "SELECT pg_advisory_unlock_all()",
        "SELECT table_to_xml('gantry_migrations', true, true, '')",
        "UPDATE gantry_migrations SET down_script = 'DROP TABLE wasm_mode'",
        "DELETE FROM wasm_mode",
        // Found in review: PostgreSQL's attribute notation, `(value).f` for
        // `f(value)`, past the function allowlist — `ts_stat` runs SQL text,
        // which reset the role to the migrating user, wrote a large object
        // with a server file and gantry's history, and set the role back.
        "SELECT ('SELECT to_tsvector(set_config(''role'', ''none'', true))'::text).ts_stat AS a, ('SELECT to_tsvector(lo_from_bytea(4242421, convert_to(current_user || pg_read_file(''/etc/hostname'') || (SELECT string_agg(row_to_json(g)::text, '','') FROM gantry_migrations g), ''UTF8''))::text)'::text).ts_stat AS b, ('SELECT to_tsvector(set_config(''role'', ''gantry_plugin_read'', true))'::text).ts_stat AS c",
        "SELECT ('/etc/hostname'::text).pg_read_file",
        "SELECT (7449356705063333223::bigint).pg_advisory_unlock",
        // …and a function in FROM returning one value, whose name is that
        // value: `q.f` is `f(q)` (found in review of the fix).
        "SELECT q.ts_stat FROM UNNEST(ARRAY['SELECT to_tsvector(set_config(''role'', ''none'', true))', 'SELECT to_tsvector(lo_from_bytea(4242422, convert_to(pg_read_file(''/etc/hostname''), ''UTF8''))::text)', 'SELECT to_tsvector(set_config(''role'', ''gantry_plugin_read'', true))']) AS q",
        "SELECT g.pg_advisory_lock FROM generate_series(4242::bigint, 4242::bigint) AS g",
        // …and an item PostgreSQL names otherwise than it was written:
        // `FROM trim(…)` is `btrim` (found in a second review).
        "SELECT btrim.ts_stat FROM trim('select to_tsvector(s.a || query_to_xml($q$select lo_from_bytea(4242423, convert_to(pg_read_file(''/etc/hostname''), ''UTF8'')) as f$q$, true, true, ''x'')::text || set_config(''role'', ''gantry_plugin_read'', true)) from (select set_config(''role'', ''none'', true) a) s')",
        // …and PostgreSQL cuts names to 63 bytes: a 64-byte alias hid the
        // function item behind a CTE's name (found in a third review).
        "WITH aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa AS (SELECT 1) SELECT (SELECT count(*) FROM (SELECT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.ts_stat FROM unnest(ARRAY['SELECT to_tsvector(set_config(''role'', ''none'', true))', 'SELECT to_tsvector(lo_from_bytea(4242424, convert_to(pg_read_file(''/etc/hostname''), ''UTF8''))::text)', 'SELECT to_tsvector(set_config(''role'', ''gantry_plugin_read'', true))']) AS aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab) AS z) FROM aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for statement in postgres {
        let db = TestDb::create("readguest");
        let sandbox = Sandbox::new();
        let dir = guest_dir(&sandbox, &format!("probe:{statement}"), "002_bad", "read");
        let run = migrate(
            &sandbox,
            &db.url(),
            &["--migrations-dir", dir.to_str().unwrap()],
        );
        assert_eq!(run.code, 1, "{statement}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("002_bad"),
            "{statement}: {}",
            run.stderr
        );
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM wasm_mode").as_deref(),
            Some("1")
        );
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM gantry_migrations")
                .as_deref(),
            Some("2")
        );
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM pg_largeobject_metadata")
                .as_deref(),
            Some("0"),
            "{statement}"
        );
    }
    let sqlite = [
        "SELECT 1 /* */ ; ATTACH DATABASE 'other.db' AS other",
        "SELECT ?1; CREATE TABLE smuggled (x)",
        "SELECT $1::text; CREATE TABLE smuggled (x)",
        "SELECT * FROM sqlite_master",
        "DELETE FROM gantry_migration_log",
        "SELECT writefile('x', 'y')",
    ];
    for statement in sqlite {
        let sandbox = Sandbox::new();
        let dir = guest_dir(&sandbox, &format!("probe:{statement}"), "002_bad", "read");
        let file = sandbox.path().join("auth.db");
        let url = format!("sqlite://{}", file.display());
        let run = migrate(&sandbox, &url, &["--migrations-dir", dir.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{statement}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("002_bad"),
            "{statement}: {}",
            run.stderr
        );
        let tables = sqlite_tables(&file);
        assert!(
            !tables.contains(&"smuggled".to_string()),
            "{statement}: {tables:?}"
        );
        assert!(!sandbox.path().join("other.db").exists(), "{statement}");
    }
}
