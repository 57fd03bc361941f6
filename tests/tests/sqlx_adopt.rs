//! Coming from sqlx: an sqlx migrations folder runs unchanged, and a
//! database sqlx migrated is taken over without re-running anything.

use gantry_tests::pg::TestDb;
use gantry_tests::{Run, Sandbox};
use std::path::{Path, PathBuf};

const USERS: &str =
    "CREATE TABLE users (\n    id BIGSERIAL PRIMARY KEY,\n    email TEXT NOT NULL\n);\n";
const PROFILES_UP: &str = "CREATE TABLE profiles (\n    user_id BIGINT PRIMARY KEY REFERENCES users (id),\n    bio TEXT\n);\n";
const PROFILES_DOWN: &str = "DROP TABLE profiles;\n";
const INDEX: &str = "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n";
const LATER: &str = "ALTER TABLE users ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();\n";

/// A flat sqlx folder: up-only, reversible, and a no-transaction index.
fn sqlx_folder(sandbox: &Sandbox) -> PathBuf {
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("20250101000000_create_users.sql"), USERS).unwrap();
    std::fs::write(dir.join("20250102000000_add_profiles.up.sql"), PROFILES_UP).unwrap();
    std::fs::write(
        dir.join("20250102000000_add_profiles.down.sql"),
        PROFILES_DOWN,
    )
    .unwrap();
    std::fs::write(dir.join("20250103000000_index_email.sql"), INDEX).unwrap();
    dir
}

fn gantry(sandbox: &Sandbox, db: &TestDb, dir: &Path, args: &[&str]) -> Run {
    Run::from(
        sandbox
            .gantry()
            .env("DATABASE_URL", db.url())
            .arg("migrate")
            .args(args)
            .args(["--migrations-dir", dir.to_str().unwrap()])
            .output()
            .unwrap(),
    )
}

/// Runs sqlx's own migrator over `dir`, as `sqlx migrate run` would.
fn sqlx_migrate(db: &TestDb, dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
        migrator.run(&mut conn).await.unwrap();
    });
}

/// The schema as the catalog describes it, gantry's and sqlx's own tables aside.
fn schema(db: &TestDb) -> Vec<Vec<Option<String>>> {
    let mut rows = db.query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
           AND table_name NOT IN ('_sqlx_migrations', 'gantry_migrations', 'gantry_migration_log') ORDER BY 1, 2",
    );
    rows.extend(db.query(
        "SELECT tablename::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
           AND tablename NOT IN ('_sqlx_migrations', 'gantry_migrations', 'gantry_migration_log') ORDER BY 1, 2",
    ));
    rows.extend(db.query(
        "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE '%migration%' ORDER BY 1, 2",
    ));
    rows
}

#[test]
fn an_sqlx_folder_applies_unchanged_and_reruns_as_a_no_op() {
    let db = TestDb::create("sqlxfolder");
    let sandbox = Sandbox::new();
    let dir = sqlx_folder(&sandbox);
    gantry(&sandbox, &db, &dir, &[]).expect(0);
    assert!(db.tables().contains(&"profiles".to_string()));
    assert_eq!(
        db.scalar("SELECT indexname::text FROM pg_indexes WHERE indexname = 'users_email'")
            .as_deref(),
        Some("users_email")
    );
    let again = gantry(&sandbox, &db, &dir, &[]).expect(0);
    assert!(
        again.stdout.contains("nothing to apply"),
        "{}",
        again.stdout
    );
    let status = gantry(&sandbox, &db, &dir, &["status", "--json"])
        .expect(0)
        .json();
    let states: Vec<&str> = status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "applied", "applied"]);
    assert_eq!(status["migrations"][2]["no_transaction"], true);
    assert_eq!(status["migrations"][0]["reversible"], false);

    // Up-only migrations stop a rollback before it starts, by name.
    let refused = gantry(&sandbox, &db, &dir, &["rollback", "--target", "0"]).expect(2);
    assert!(
        refused.stderr.contains("20250101000000_create_users"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("20250103000000_index_email"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("add_profiles"),
        "{}",
        refused.stderr
    );
    assert!(
        db.tables().contains(&"profiles".to_string()),
        "nothing reverted"
    );
}

#[test]
fn adopt_takes_over_a_database_sqlx_migrated() {
    let adopted = TestDb::create("adopt");
    let sqlx_only = TestDb::create("sqlxonly");
    let sandbox = Sandbox::new();
    let dir = sqlx_folder(&sandbox);
    sqlx_migrate(&adopted, &dir);
    let sqlx_rows_before = adopted.query("SELECT version::text, encode(checksum, 'hex'), success::text FROM _sqlx_migrations ORDER BY 1");
    assert_eq!(sqlx_rows_before.len(), 3);

    // Before adopting, gantry sees pending migrations it must not re-run.
    let run = gantry(&sandbox, &adopted, &dir, &["adopt", "--from", "sqlx"]).expect(0);
    assert!(run.stdout.contains("adopted 3"), "{}", run.stdout);
    assert_eq!(
        adopted.query("SELECT version::text, encode(checksum, 'hex'), success::text FROM _sqlx_migrations ORDER BY 1"),
        sqlx_rows_before,
        "_sqlx_migrations must not change"
    );
    gantry(&sandbox, &adopted, &dir, &["status"]).expect(0);
    let noop = gantry(&sandbox, &adopted, &dir, &[]).expect(0);
    assert!(noop.stdout.contains("nothing to apply"), "{}", noop.stdout);
    let log =
        adopted.scalar("SELECT count(*)::text FROM gantry_migration_log WHERE action = 'adopt'");
    assert_eq!(log.as_deref(), Some("3"));
    // Adopting again records nothing new.
    let again = gantry(&sandbox, &adopted, &dir, &["adopt", "--from", "sqlx"]).expect(0);
    assert!(
        again.stdout.contains("adopted 0") && again.stdout.contains("3 already"),
        "{}",
        again.stdout
    );

    // A further migration is gantry's to apply.
    std::fs::write(dir.join("20250104000000_add_created_at.sql"), LATER).unwrap();
    let more = gantry(&sandbox, &adopted, &dir, &[]).expect(0);
    assert!(more.stdout.contains("apply 1 migration"), "{}", more.stdout);

    // The same folder run by sqlx alone gives the same schema.
    sqlx_migrate(&sqlx_only, &dir);
    assert_eq!(schema(&adopted), schema(&sqlx_only));
}

#[test]
fn adopt_refuses_when_a_file_changed_after_sqlx_applied_it() {
    let db = TestDb::create("adoptdrift");
    let sandbox = Sandbox::new();
    let dir = sqlx_folder(&sandbox);
    sqlx_migrate(&db, &dir);
    let edited = dir.join("20250102000000_add_profiles.up.sql");
    std::fs::write(
        &edited,
        PROFILES_UP.replace("bio TEXT", "bio TEXT NOT NULL"),
    )
    .unwrap();

    let refused = gantry(&sandbox, &db, &dir, &["adopt", "--from", "sqlx"]).expect(2);
    assert!(
        refused
            .stderr
            .contains("20250102000000_add_profiles.up.sql"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing was recorded"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("create_users.sql"),
        "only the changed file: {}",
        refused.stderr
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("0")
    );

    let accepted = gantry(
        &sandbox,
        &db,
        &dir,
        &["adopt", "--from", "sqlx", "--accept-drift"],
    )
    .expect(0);
    assert!(accepted.stdout.contains("accepted"), "{}", accepted.stdout);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("3")
    );
}

#[test]
fn adopt_without_an_sqlx_history_exits_2() {
    let db = TestDb::create("nosqlx");
    let sandbox = Sandbox::new();
    let dir = sqlx_folder(&sandbox);
    let run = gantry(&sandbox, &db, &dir, &["adopt", "--from", "sqlx"]).expect(2);
    assert!(run.stderr.contains("_sqlx_migrations"), "{}", run.stderr);
}

#[test]
fn a_no_transaction_file_failing_at_statement_two_keeps_statement_one() {
    let db = TestDb::create("notx");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("20250101000000_two_tables.sql");
    let body = "-- no-transaction\nCREATE TABLE first (id int);\nINSERT INTO nowhere VALUES (1);\nCREATE TABLE second (id int);\n";
    std::fs::write(&file, body).unwrap();

    let failed = gantry(&sandbox, &db, &dir, &[]).expect(1);
    assert!(
        failed.stderr.contains("statement 2 of 3"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("20250101000000_two_tables.sql:3"),
        "{}",
        failed.stderr
    );
    assert!(
        db.tables().contains(&"first".to_string()),
        "statement 1 stays"
    );
    assert!(!db.tables().contains(&"second".to_string()));

    let status = gantry(&sandbox, &db, &dir, &["status", "--json"])
        .expect(1)
        .json();
    let row = &status["migrations"][0];
    assert_eq!(row["state"], "failed");
    assert!(
        row["error"].as_str().unwrap().contains("statement 2 of 3"),
        "{row}"
    );
    assert_eq!(row["progress"]["done"], 1);
    assert_eq!(row["progress"]["total"], 3);

    // Out: undo statement 1, forget the attempt, fix the file, run again.
    db.execute("DROP TABLE first");
    gantry(
        &sandbox,
        &db,
        &dir,
        &["repair", "mark-reverted", "20250101000000"],
    )
    .expect(0);
    std::fs::write(&file, body.replace("nowhere", "first")).unwrap();
    gantry(&sandbox, &db, &dir, &[]).expect(0);
    assert!(db.tables().contains(&"second".to_string()));
}

const PRUNE: &str = "-- a real service prunes sqlx's own history of squashed migrations\n\
                     DELETE FROM _sqlx_migrations WHERE version < 20250101000000;\n";

/// sqlx's view of the database: the versions its migrator finds applied.
fn sqlx_applied(db: &TestDb) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        use sqlx::migrate::Migrate;
        let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        let mut applied: Vec<i64> = conn
            .list_applied_migrations()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.version)
            .collect();
        applied.sort();
        applied
    })
}

#[test]
fn sqlx_history_is_kept_in_step_so_the_services_own_migrator_finds_nothing_pending() {
    let db = TestDb::create("sqlxstep");
    let sandbox = Sandbox::new();
    let dir = sqlx_folder(&sandbox);
    std::fs::write(dir.join("20250104000000_prune_history.sql"), PRUNE).unwrap();
    std::fs::write(dir.join("20250105000000_later.up.sql"), LATER).unwrap();
    std::fs::write(
        dir.join("20250105000000_later.down.sql"),
        "ALTER TABLE users DROP COLUMN created_at;\n",
    )
    .unwrap();
    gantry(&sandbox, &db, &dir, &[]).expect(0);
    assert_eq!(
        sqlx_applied(&db),
        [
            20250101000000,
            20250102000000,
            20250103000000,
            20250104000000,
            20250105000000
        ]
    );
    assert_eq!(
        db.query(
            "SELECT description, success::text FROM _sqlx_migrations WHERE version = 20250102000000"
        ),
        [[Some("add profiles".to_string()), Some("true".to_string())]],
        "sqlx's description and success"
    );
    // sqlx's own migrator: nothing pending, no checksum mismatch (it
    // would fail re-creating the tables, or on the checksum).
    sqlx_migrate(&db, &dir);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("5")
    );

    // A rollback: sqlx sees exactly the migrations up to the target.
    gantry(
        &sandbox,
        &db,
        &dir,
        &["rollback", "--target", "20250104000000"],
    )
    .expect(0);
    assert_eq!(
        sqlx_applied(&db),
        [
            20250101000000,
            20250102000000,
            20250103000000,
            20250104000000
        ]
    );
    // Re-apply with gantry, then edit a file on purpose: `repair
    // accept-checksum` brings sqlx's checksum along, so sqlx's migrator
    // passes again; `mark-reverted` forgets it in both histories.
    gantry(&sandbox, &db, &dir, &[]).expect(0);
    std::fs::write(
        dir.join("20250101000000_create_users.sql"),
        format!("-- users\n{USERS}"),
    )
    .unwrap();
    gantry(
        &sandbox,
        &db,
        &dir,
        &["repair", "accept-checksum", "20250101000000"],
    )
    .expect(0);
    sqlx_migrate(&db, &dir);
    gantry(
        &sandbox,
        &db,
        &dir,
        &["repair", "mark-reverted", "20250105000000"],
    )
    .expect(0);
    assert_eq!(
        sqlx_applied(&db),
        [
            20250101000000,
            20250102000000,
            20250103000000,
            20250104000000
        ]
    );
    // mark-reverted means it was undone by hand: undo it, and the
    // service's migrator applies it again itself.
    db.execute("ALTER TABLE users DROP COLUMN created_at");
    sqlx_migrate(&db, &dir);
    assert_eq!(sqlx_applied(&db).len(), 5);

    // Turned off: gantry leaves sqlx's table alone.
    let off = TestDb::create("sqlxoff");
    sandbox.write(
        "deployment_config.json",
        r#"{"migrations": {"sqlx_history": false}}"#,
    );
    gantry(&sandbox, &off, &dir, &[]).expect(1);
    assert!(
        !off.tables().contains(&"_sqlx_migrations".to_string()),
        "the prune migration fails without sqlx's table, as it would have before"
    );
}

#[test]
fn on_sqlite_too_sqlxs_own_migrator_finds_nothing_pending_after_gantry() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_create_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("2_add_index.up.sql"),
        "CREATE INDEX users_email ON users (email);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("2_add_index.down.sql"),
        "DROP INDEX users_email;\n",
    )
    .unwrap();
    let file = sandbox.path().join("auth.db");
    let url = format!("sqlite://{}", file.display());
    Run::from(
        sandbox
            .gantry()
            .env("DATABASE_URL", &url)
            .args(["migrate", "--migrations-dir", dir.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        use sqlx::migrate::Migrate;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
        migrator.run(&mut conn).await.unwrap();
        let applied: Vec<i64> = conn
            .list_applied_migrations()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(applied, [1, 2]);
    });
}

#[test]
fn sqlx_toml_renames_the_history_table_moves_the_folder_and_ignores_characters() {
    use sha2::Digest;
    let db = TestDb::create("sqlxtoml");
    let sandbox = Sandbox::new();
    sandbox.write(
        "sqlx.toml",
        "[migrate]\ntable-name = \"svc_migrations\"\nmigrations-dir = \"db/migrations\"\nignored-chars = [\"\\r\"]\ncreate-schemas = []\n",
    );
    let crlf = "CREATE TABLE users (\r\n    id BIGSERIAL PRIMARY KEY\r\n);\r\n";
    sandbox.write("db/migrations/1_create_users.sql", crlf);
    sandbox.write(
        "db/migrations/2_add_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    // No --migrations-dir: sqlx.toml's folder.
    Run::from(
        sandbox
            .gantry()
            .env("DATABASE_URL", db.url())
            .arg("migrate")
            .output()
            .unwrap(),
    )
    .expect(0);
    let tables = db.tables();
    assert!(tables.contains(&"svc_migrations".to_string()), "{tables:?}");
    assert!(
        !tables.contains(&"_sqlx_migrations".to_string()),
        "{tables:?}"
    );
    let stored = db.query(
        "SELECT version::text, encode(checksum, 'hex') FROM svc_migrations ORDER BY version",
    );
    let without_cr = crlf.replace('\r', "");
    assert_eq!(
        stored[0][1].as_deref(),
        Some(hex::encode(sha2::Sha384::digest(without_cr.as_bytes())).as_str()),
        "the checksum leaves the ignored characters out, as sqlx's does"
    );
    assert_eq!(stored.len(), 2);

    // A bad sqlx.toml is refused, naming it.
    sandbox.write("sqlx.toml", "[migrate\n");
    let bad = Run::from(
        sandbox
            .gantry()
            .env("DATABASE_URL", db.url())
            .arg("migrate")
            .output()
            .unwrap(),
    )
    .expect(2);
    assert!(bad.stderr.contains("sqlx.toml"), "{}", bad.stderr);
}

#[test]
fn adopt_takes_over_golang_migrates_schema_migrations_and_refuses_a_dirty_one() {
    let db = TestDb::create("golang");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("1_create_users.up.sql", USERS),
        ("1_create_users.down.sql", "DROP TABLE users;\n"),
        ("2_add_profiles.up.sql", PROFILES_UP),
        ("2_add_profiles.down.sql", PROFILES_DOWN),
        ("3_later.up.sql", LATER),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    // What golang-migrate leaves after `migrate up 2`.
    db.execute(USERS);
    db.execute(PROFILES_UP);
    db.execute("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)");
    db.execute("INSERT INTO schema_migrations VALUES (2, true)");

    let dirty = gantry(&sandbox, &db, &dir, &["adopt", "--from", "golang-migrate"]).expect(2);
    assert!(
        dirty.stderr.contains("dirty at version 2"),
        "{}",
        dirty.stderr
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("0")
    );

    db.execute("UPDATE schema_migrations SET dirty = false");
    let adopted = gantry(&sandbox, &db, &dir, &["adopt", "--from", "golang-migrate"]).expect(0);
    assert!(
        adopted
            .stdout
            .contains("adopted 2 migrations from schema_migrations"),
        "{}",
        adopted.stdout
    );
    // Only 3 runs; schema_migrations is left as it was.
    gantry(&sandbox, &db, &dir, &[]).expect(0);
    assert_eq!(
        db.query("SELECT version::text FROM gantry_migrations ORDER BY version"),
        [
            [Some("1".to_string())],
            [Some("2".to_string())],
            [Some("3".to_string())]
        ]
    );
    assert_eq!(
        db.query("SELECT version::text, dirty::text FROM schema_migrations"),
        [[Some("2".to_string()), Some("false".to_string())]]
    );
}
