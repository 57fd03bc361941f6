//! `gantry migrate` end to end against real PostgreSQL (a fresh database
//! per test) and SQLite files. Schema is checked in the catalog, never by
//! trusting the runner.

use gantry_tests::pg::TestDb;
use gantry_tests::{Run, Sandbox};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const AUTH_TABLES: [&str; 5] = [
    "auth_users",
    "extension_auth_audit",
    "extension_auth_sessions",
    "extension_auth_tokens",
    "extension_permissions",
];

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

/// The repo's postgres or sqlite migrations, copied so a test may edit them.
fn copy_migrations(sandbox: &Sandbox, dialect: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    let to = sandbox.path().join("migrations");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
    to
}

fn auth_tables(db: &TestDb) -> Vec<String> {
    db.tables()
        .into_iter()
        .filter(|t| !t.starts_with("gantry_"))
        .collect()
}

#[test]
fn apply_status_rollback_and_reapply_on_postgres() {
    let db = TestDb::create("cycle");
    let sandbox = Sandbox::new();
    let url = db.url();

    let status = migrate(&sandbox, &url, &["status", "--json"])
        .expect(3)
        .json();
    assert_eq!(status["summary"], "pending");
    assert!(
        db.tables().is_empty(),
        "status must not create anything: {:?}",
        db.tables()
    );

    migrate(&sandbox, &url, &[]).expect(0);
    assert_eq!(auth_tables(&db), AUTH_TABLES);
    let fks = db.query(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
    );
    assert_eq!(fks.len(), 3, "{fks:?}");
    assert!(
        fks.iter().all(|r| r[1].as_deref() == Some("auth_users")),
        "{fks:?}"
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM pg_trigger WHERE tgname LIKE 'trg_%updated_at'")
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        db.scalar(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_auth_users_email_canonical'"
        )
        .map(|d| d.starts_with("CREATE UNIQUE INDEX")),
        Some(true)
    );
    // updated_at is maintained by the database.
    db.execute("INSERT INTO auth_users (id, username, password_hash, tenant_id, created_at, updated_at) VALUES ('u', 'u', 'x', 't', now() - interval '1 day', now() - interval '1 day')");
    db.execute("UPDATE auth_users SET is_active = false WHERE id = 'u'");
    assert_eq!(
        db.scalar("SELECT (updated_at > created_at)::text FROM auth_users")
            .as_deref(),
        Some("true")
    );

    let status = migrate(&sandbox, &url, &["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["summary"], "up-to-date");
    let rows = status["migrations"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["state"] == "applied"), "{status}");
    assert_eq!(rows[5]["no_transaction"], true);
    assert_eq!(rows[4]["kind"], "wasm");

    migrate(
        &sandbox,
        &url,
        &["rollback", "--target", "001_create_auth_tables"],
    )
    .expect(0);
    assert_eq!(
        auth_tables(&db),
        [
            "extension_auth_audit",
            "extension_auth_sessions",
            "extension_auth_tokens",
            "extension_permissions"
        ]
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM pg_constraint WHERE contype = 'f'")
            .as_deref(),
        Some("0")
    );
    let status = migrate(&sandbox, &url, &["status", "--json"])
        .expect(3)
        .json();
    assert_eq!(status["migrations"][0]["state"], "applied");
    assert_eq!(status["migrations"][1]["state"], "pending");

    migrate(&sandbox, &url, &[]).expect(0);
    assert_eq!(auth_tables(&db), AUTH_TABLES);
    migrate(&sandbox, &url, &["rollback", "--target", "0"]).expect(0);
    assert!(auth_tables(&db).is_empty(), "{:?}", auth_tables(&db));
}

#[test]
fn apply_status_and_rollback_on_sqlite() {
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("auth.db");
    let url = format!("sqlite://{}", file.display());
    migrate(&sandbox, &url, &[]).expect(0);
    let tables = sqlite_tables(&file);
    for table in AUTH_TABLES {
        assert!(
            tables.contains(&table.to_string()),
            "{table} missing from {tables:?}"
        );
    }
    migrate(&sandbox, &url, &["status"]).expect(0);
    migrate(&sandbox, &url, &["rollback", "--target", "1"]).expect(0);
    assert!(!sqlite_tables(&file).contains(&"auth_users".to_string()));
    migrate(&sandbox, &url, &[]).expect(0);
    assert!(sqlite_tables(&file).contains(&"auth_users".to_string()));
}

#[test]
fn with_no_config_the_embedded_default_is_a_sqlite_file() {
    let sandbox = Sandbox::new();
    let run = Run::from(
        sandbox
            .gantry()
            .env_remove("DATABASE_URL")
            .arg("migrate")
            .output()
            .unwrap(),
    )
    .expect(0);
    // Beside the (absent) config, which is the working directory.
    let expected = format!("sqlite://{}/.gantry/auth.db", sandbox.path().display());
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    assert!(sandbox.path().join(".gantry/auth.db").is_file());
}

#[test]
fn the_spec_database_section_is_used() {
    let db = TestDb::create("section");
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        format!(
            r#"{{"database": {{"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "${{env:GANTRY_TEST_DB_PW}}", "database": "{}"}}}}"#,
            db.name
        ),
    );
    let run = Run::from(
        sandbox
            .gantry()
            .env_remove("DATABASE_URL")
            .env("GANTRY_TEST_DB_PW", "not-printed-pw")
            .args(["migrate", "--target", "2"])
            .output()
            .unwrap(),
    )
    .expect(0);
    assert!(!run.stdout.contains("not-printed-pw") && !run.stderr.contains("not-printed-pw"));
    assert!(db.tables().contains(&"auth_users".to_string()));
}

fn sqlite_tables(file: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    })
}

#[test]
fn eight_concurrent_runners_apply_each_migration_exactly_once() {
    let db = TestDb::create("race");
    let sandbox = Sandbox::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            sandbox
                .gantry()
                .env("DATABASE_URL", db.url())
                .arg("migrate")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).expect(0);
    }
    let applies = db.query("SELECT version::text, count(*)::text FROM gantry_migration_log WHERE action = 'apply' GROUP BY version ORDER BY version");
    assert_eq!(applies.len(), 6, "{applies:?}");
    assert!(
        applies.iter().all(|r| r[1].as_deref() == Some("1")),
        "{applies:?}"
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations WHERE state = 'applied'")
            .as_deref(),
        Some("6")
    );
}

#[test]
fn a_line_ending_edit_is_accepted_and_a_real_edit_is_refused() {
    let db = TestDb::create("drift");
    let sandbox = Sandbox::new();
    let dir = copy_migrations(&sandbox, "postgres");
    let dir_arg = dir.to_str().unwrap();
    let url = db.url();
    migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(0);

    let file = dir.join("001_create_auth_tables.up.sql");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replace('\n', "\r\n") + "\r\n\r\n").unwrap();
    migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(0);
    migrate(&sandbox, &url, &["status", "--migrations-dir", dir_arg]).expect(0);

    std::fs::write(
        &file,
        original.replace(
            "    revoked_at  TIMESTAMPTZ,",
            "    revoked_at  TIMESTAMPTZ,\n    reason TEXT,",
        ),
    )
    .unwrap();
    let refused = migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(2);
    assert!(
        refused.stderr.contains("001_create_auth_tables.up.sql"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("the SQL changed"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        refused.stderr.matches("v1:sha256:").count(),
        2,
        "both checksums: {}",
        refused.stderr
    );
    let status = migrate(
        &sandbox,
        &url,
        &["status", "--json", "--migrations-dir", dir_arg],
    )
    .expect(1)
    .json();
    assert_eq!(status["migrations"][0]["state"], "checksum_drift");

    std::fs::write(
        &file,
        original.replace(
            "CREATE TABLE extension_auth_tokens (",
            "CREATE   TABLE   extension_auth_tokens (",
        ),
    )
    .unwrap();
    let ws = migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(2);
    assert!(
        ws.stderr.contains("only whitespace changed"),
        "{}",
        ws.stderr
    );

    migrate(
        &sandbox,
        &url,
        &[
            "repair",
            "accept-checksum",
            "1",
            "--migrations-dir",
            dir_arg,
            "--note",
            "reformatted",
        ],
    )
    .expect(0);
    migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(0);
    assert_eq!(
        db.scalar("SELECT actor || ' ' || detail FROM gantry_migration_log WHERE action = 'accept-checksum'")
            .map(|d| d.contains("reformatted")),
        Some(true)
    );
}

fn failing_dir(sandbox: &Sandbox, second: &str) -> PathBuf {
    let dir = sandbox.path().join("failing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_base.up.sql"),
        "CREATE TABLE base (id int PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(dir.join("001_base.down.sql"), "DROP TABLE base;\n").unwrap();
    std::fs::write(dir.join("002_more.up.sql"), second).unwrap();
    std::fs::write(
        dir.join("002_more.down.sql"),
        "DROP TABLE IF EXISTS more;\n",
    )
    .unwrap();
    dir
}

const FAILS_ON_LINE_5: &str = "-- two statements that work, then one that does not\n\
CREATE TABLE more (id int);\n\
INSERT INTO more VALUES (1);\n\
\n\
INSERT INTO no_such_table VALUES (1);\n\
INSERT INTO more VALUES (2);\n";

#[test]
fn a_failing_statement_leaves_nothing_and_names_file_and_line() {
    for dialect in ["postgres", "sqlite"] {
        let pg = (dialect == "postgres").then(|| TestDb::create("fail"));
        let sandbox = Sandbox::new();
        let url = match &pg {
            Some(db) => db.url(),
            None => format!("sqlite://{}", sandbox.path().join("f.db").display()),
        };
        let dir = failing_dir(&sandbox, FAILS_ON_LINE_5);
        let dir_arg = dir.to_str().unwrap();
        let failed = migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(1);
        assert!(
            failed.stderr.contains("002_more.up.sql:5"),
            "{dialect}: {}",
            failed.stderr
        );
        assert!(
            failed.stderr.contains("no_such_table"),
            "{dialect}: {}",
            failed.stderr
        );
        match &pg {
            // A flat folder of SQL files is sqlx's form: its history is
            // kept in step (see sqlx_adopt.rs).
            Some(db) => assert_eq!(
                db.tables(),
                [
                    "_sqlx_migrations",
                    "base",
                    "gantry_migration_log",
                    "gantry_migrations"
                ],
                "{dialect}"
            ),
            None => {
                assert!(!sqlite_tables(&sandbox.path().join("f.db")).contains(&"more".to_string()))
            }
        }
        let status = migrate(
            &sandbox,
            &url,
            &["status", "--json", "--migrations-dir", dir_arg],
        )
        .expect(1)
        .json();
        assert_eq!(
            status["migrations"][1]["state"], "failed",
            "{dialect}: {status}"
        );
        assert!(
            status["migrations"][1]["error"]
                .as_str()
                .unwrap()
                .contains("line 5"),
            "{status}"
        );

        let blocked = migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(1);
        assert!(
            blocked.stderr.contains("repair"),
            "{dialect}: {}",
            blocked.stderr
        );

        std::fs::write(
            dir.join("002_more.up.sql"),
            FAILS_ON_LINE_5.replace("no_such_table", "more"),
        )
        .unwrap();
        migrate(
            &sandbox,
            &url,
            &["repair", "mark-reverted", "2", "--migrations-dir", dir_arg],
        )
        .expect(0);
        migrate(&sandbox, &url, &["--migrations-dir", dir_arg]).expect(0);
        migrate(&sandbox, &url, &["status", "--migrations-dir", dir_arg]).expect(0);
    }
}

/// The folder index lets a no-op stat the up scripts instead of reading
/// them; it must never hide an edit. Any write sets a file's change time,
/// which nothing can set back: an edit that keeps the size and restores
/// the modification time is seen all the same.
#[test]
fn the_folder_index_never_hides_an_edit() {
    let db = TestDb::create("index");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("indexed");
    std::fs::create_dir_all(&dir).unwrap();
    for v in 1..=3 {
        std::fs::write(
            dir.join(format!("{v:03}_t{v}.up.sql")),
            format!("CREATE TABLE t{v} (id int);\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{v:03}_t{v}.down.sql")),
            format!("DROP TABLE t{v};\n"),
        )
        .unwrap();
    }
    // Files are recorded once their times are two seconds old.
    std::thread::sleep(Duration::from_millis(2100));
    let dir_arg = dir.to_str().unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    let index_dir = sandbox.path().join(".cache/migration-index");
    let indexes: Vec<PathBuf> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let index = std::fs::read_to_string(&indexes[0]).unwrap();
    for v in 1..=3 {
        assert!(index.contains(&format!("{v:03}_t{v}.up.sql")), "{index}");
    }
    assert!(!index.contains(".down.sql"), "{index}");
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);

    // Same size, same modification time, different text.
    let file = dir.join("002_t2.up.sql");
    gantry_runtime::testing::rewrite_keeping_modified(&file, b"CREATE TABLE u2 (id int);\n");
    let refused = migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(2);
    assert!(
        refused.stderr.contains("002_t2.up.sql"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("the SQL changed"),
        "{}",
        refused.stderr
    );

    // A garbled index is an empty one; put back, the file is applied-as-is.
    std::fs::write(&indexes[0], "gantry migration index 1\nnot a line\n\u{0}").unwrap();
    std::fs::write(&file, "CREATE TABLE t2 (id int);\n").unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    // A new pending migration known to nobody is read and applied.
    std::fs::write(dir.join("004_t4.up.sql"), "CREATE TABLE t4 (id int);\n").unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    assert!(db.tables().contains(&"t4".to_string()));

    // An index that lies (the file's identity right, its checksum and
    // no-transaction mark wrong) is caught when the script is read, and
    // dropped; nothing ran.
    use std::os::unix::fs::MetadataExt;
    let next = dir.join("005_t5.up.sql");
    std::fs::write(&next, "CREATE TABLE t5 (id int);\n").unwrap();
    let meta = std::fs::metadata(&next).unwrap();
    let header = std::fs::read_to_string(&indexes[0])
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(header.starts_with("gantry migration index"), "{header:?}");
    std::fs::write(
        &indexes[0],
        format!(
            "{header}\n{} {} {} {} {} 1 v1:sha256:{} 005_t5.up.sql\n",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let refused = migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(2);
    assert!(
        refused.stderr.contains("005_t5.up.sql"),
        "{}",
        refused.stderr
    );
    assert!(!db.tables().contains(&"t5".to_string()));
    assert!(!indexes[0].exists(), "the lying index is dropped");
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    assert!(db.tables().contains(&"t5".to_string()));
}

/// Twelve cheap steps: on PostgreSQL quick steps go several to a query
/// (1, 2, 4, … a step at a time again after a slow chunk). Step 3 sleeps,
/// so the chunks are [1] [2 3] [4] [5 6] [7 8 9 10]; `bad` replaces step 8.
fn chunked_dir(sandbox: &Sandbox, bad: &str) -> PathBuf {
    let dir = sandbox.path().join("chunked");
    std::fs::create_dir_all(&dir).unwrap();
    for v in 1..=12 {
        let script = match v {
            3 => "CREATE TABLE t3 (id int);\nSELECT pg_sleep(0.3);\n".to_string(),
            8 => bad.to_string(),
            _ => format!("CREATE TABLE t{v} (id int);\n"),
        };
        std::fs::write(dir.join(format!("{v:03}_step{v}.sql")), script).unwrap();
    }
    dir
}

#[test]
fn a_failure_inside_a_chunk_keeps_the_steps_before_it_and_names_its_line() {
    let cases = [
        // A statement with a position: the line in its own file.
        (
            "CREATE TABLE t8 (id int);\nINSERT INTO t8 VALUES (1);\nINSERT INTO nowhere VALUES (1);\n",
            "008_step8.sql:3",
        ),
        // A syntax error stops the whole query before any step runs: the
        // steps go again one at a time, and the one at fault is named.
        (
            "CREATE TABLE t8 (id int);\nCREATE TABEL oops (id int);\n",
            "008_step8.sql:2",
        ),
        // A deferred constraint fails at COMMIT, after the step's record
        // statement answered: the history, not the answers, says it failed.
        (
            "CREATE TABLE p8 (id int PRIMARY KEY);\n\
             CREATE TABLE t8 (id int REFERENCES p8 DEFERRABLE INITIALLY DEFERRED);\n\
             INSERT INTO t8 VALUES (42);\n",
            "008_step8.sql",
        ),
    ];
    for (bad, names) in cases {
        let db = TestDb::create("chunk");
        let sandbox = Sandbox::new();
        let dir = chunked_dir(&sandbox, bad);
        let dir_arg = dir.to_str().unwrap();
        let failed = migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(1);
        assert!(failed.stderr.contains(names), "{}", failed.stderr);
        let states =
            db.query("SELECT version::text, state FROM gantry_migrations ORDER BY version");
        let states: Vec<(String, String)> = states
            .into_iter()
            .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
            .collect();
        let mut expected: Vec<(String, String)> = (1..=7)
            .map(|v| (v.to_string(), "applied".to_string()))
            .collect();
        expected.push(("8".into(), "failed".into()));
        assert_eq!(states, expected, "{}", failed.stderr);
        let tables = db.tables();
        for v in 1..=7 {
            assert!(tables.contains(&format!("t{v}")), "t{v}: {tables:?}");
        }
        for absent in ["t8", "p8", "t9", "t10", "t12"] {
            assert!(
                !tables.contains(&absent.to_string()),
                "{absent}: {tables:?}"
            );
        }
        // sqlx's history holds what was committed, no more.
        assert_eq!(
            db.scalar(
                "SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations"
            ),
            Some("1,2,3,4,5,6,7".into())
        );
        // Each step is timed by itself, not from the start of its chunk.
        let ms = |v: i64| -> f64 {
            db.scalar(&format!(
                "SELECT duration_ms::text FROM gantry_migrations WHERE version = {v}"
            ))
            .unwrap()
            .parse()
            .unwrap()
        };
        assert!(ms(3) >= 300.0, "step 3 took {}", ms(3));
        assert!(ms(2) < 300.0 && ms(4) < 300.0, "{} {}", ms(2), ms(4));
        let sqlx_ns: i64 = db
            .scalar("SELECT execution_time::text FROM _sqlx_migrations WHERE version = 3")
            .unwrap()
            .parse()
            .unwrap();
        assert!(sqlx_ns >= 300_000_000, "{sqlx_ns}");

        // Mended, the run goes on from the failed step.
        std::fs::write(dir.join("008_step8.sql"), "CREATE TABLE t8 (id int);\n").unwrap();
        migrate(
            &sandbox,
            &db.url(),
            &["repair", "mark-reverted", "8", "--migrations-dir", dir_arg],
        )
        .expect(0);
        migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM gantry_migrations WHERE state = 'applied'"),
            Some("12".into())
        );
    }
}

#[test]
fn kill_during_a_no_transaction_migration_blocks_until_repair() {
    let db = TestDb::create("kill");
    let sandbox = Sandbox::new();
    let dir = failing_dir(
        &sandbox,
        "-- gantry:no-transaction\nCREATE TABLE more (id int);\nSELECT pg_sleep(60);\nCREATE INDEX CONCURRENTLY more_id ON more (id);\n",
    );
    let dir_arg = dir.to_str().unwrap().to_string();
    let mut child = sandbox
        .gantry()
        .env("DATABASE_URL", db.url())
        .args(["migrate", "--migrations-dir", &dir_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let progress = db
            .try_query("SELECT state, progress::text FROM gantry_migrations WHERE version = 2")
            .ok()
            .and_then(|rows| rows.into_iter().next());
        if progress
            .is_some_and(|r| r[0].as_deref() == Some("in_progress") && r[1].as_deref() == Some("1"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the migration never reached statement 2"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gantry_tests::paused::signal(&child, libc::SIGKILL);
    child.wait().unwrap();

    let status = migrate(
        &sandbox,
        &db.url(),
        &["status", "--migrations-dir", &dir_arg],
    )
    .expect(1);
    assert!(
        status.stdout.contains("in progress (1/3 statements)"),
        "{}",
        status.stdout
    );
    // …and says the killed runner's statement still runs on the server.
    assert!(
        status.stdout.contains("running now: backend pid") && status.stdout.contains("pg_sleep"),
        "{}",
        status.stdout
    );
    // The killed client's statement still runs on the server, in the
    // session that holds the lock: nobody may enter, and the holder is
    // named.
    let waiting = migrate(
        &sandbox,
        &db.url(),
        &["--migrations-dir", &dir_arg, "--lock-timeout", "1"],
    )
    .expect(1);
    assert!(waiting.stderr.contains("held by pid"), "{}", waiting.stderr);

    // The operator stops that statement; the half-done migration then
    // blocks until repaired.
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid() AND datname = current_database()");
    let refused = migrate(
        &sandbox,
        &db.url(),
        &["--migrations-dir", &dir_arg, "--lock-timeout", "10"],
    )
    .expect(1);
    assert!(
        refused.stderr.contains("002_more") && refused.stderr.contains("repair"),
        "{}",
        refused.stderr
    );

    // Undoes statement 1 by hand, and says so.
    db.execute("DROP TABLE more");
    migrate(
        &sandbox,
        &db.url(),
        &[
            "repair",
            "mark-reverted",
            "002_more",
            "--migrations-dir",
            &dir_arg,
        ],
    )
    .expect(0);
    std::fs::write(dir.join("002_more.up.sql"), "-- gantry:no-transaction\nCREATE TABLE more (id int);\nCREATE INDEX CONCURRENTLY more_id ON more (id);\n").unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", &dir_arg]).expect(0);
    assert_eq!(
        db.scalar("SELECT indexname::text FROM pg_indexes WHERE indexname = 'more_id'")
            .as_deref(),
        Some("more_id")
    );
}

#[test]
fn the_wasm_backfill_goes_up_and_down() {
    let db = TestDb::create("wasm");
    let sandbox = Sandbox::new();
    let url = db.url();
    migrate(&sandbox, &url, &["--target", "4"]).expect(0);
    db.execute(
        "INSERT INTO auth_users (id, username, password_hash, tenant_id, email) VALUES \
         ('1', 'alice', 'x', 't', ' Alice <Alice.Smith+news@GoogleMail.com>'), \
         ('2', 'bob', 'x', 't', 'BOB@Example.COM'), \
         ('3', 'carol', 'x', 't', 'not an address'), \
         ('4', 'dave', 'x', 't', NULL)",
    );
    migrate(&sandbox, &url, &[]).expect(0);
    let canonical = db.query("SELECT id, email_canonical FROM auth_users ORDER BY id");
    assert_eq!(
        canonical,
        vec![
            vec![Some("1".into()), Some("alicesmith@gmail.com".into())],
            vec![Some("2".into()), Some("bob@example.com".into())],
            vec![Some("3".into()), None],
            vec![Some("4".into()), None],
        ]
    );
    migrate(&sandbox, &url, &["rollback", "--target", "4"]).expect(0);
    assert_eq!(
        db.scalar("SELECT count(email_canonical)::text FROM auth_users")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM auth_users")
            .as_deref(),
        Some("4")
    );
}

/// A folder whose 001 sets up the tables and the mode `bad-migration`
/// (002) reads; returns its path.
fn bad_migration_dir(sandbox: &Sandbox, mode: &str) -> std::path::PathBuf {
    let dir = sandbox.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_setup.up.sql"),
        format!("CREATE TABLE wasm_marker (note text);\nCREATE TABLE wasm_mode (mode text);\nINSERT INTO wasm_mode VALUES ('{}');\n", mode.replace('\'', "''")),
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
            .replace("name = \"bad-migration\"", "name = \"002_bad\"");
    std::fs::write(dir.join("002_bad.toml"), manifest).unwrap();
    dir
}

#[test]
fn a_failing_wasm_step_is_rolled_back() {
    for mode in ["err", "trap", "loop", "commit", "sleep"] {
        let db = TestDb::create("badwasm");
        let started = std::time::Instant::now();
        let sandbox = Sandbox::new();
        let dir = bad_migration_dir(&sandbox, mode);
        let run = migrate(
            &sandbox,
            &db.url(),
            &["--migrations-dir", dir.to_str().unwrap()],
        )
        .expect(1);
        assert!(run.stderr.contains("002_bad"), "{mode}: {}", run.stderr);
        if mode == "sleep" {
            // pg_sleep(60) ends with the step's 1 s deadline.
            assert!(run.stderr.contains("timed out"), "{}", run.stderr);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "took {:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM wasm_marker")
                .as_deref(),
            Some("0"),
            "{mode}: the step's insert must be rolled back"
        );
        assert_eq!(
            db.scalar("SELECT state FROM gantry_migrations WHERE version = 2")
                .as_deref(),
            Some("failed"),
            "{mode}"
        );
    }
}

/// Each statement is parsed and admitted only under the step's grant
/// (`sql = "write"` for bad-migration): what no grant admits, and DDL that
/// needs a wider one, fail the step naming the statement, and roll back.
#[test]
fn a_wasm_step_is_held_to_its_sql_grant() {
    let postgres = [
        ("COPY wasm_marker TO PROGRAM 'id'", "no sql grant admits it"),
        ("SET ROLE postgres", "no sql grant admits it"),
        (
            "SET SESSION AUTHORIZATION postgres",
            "no sql grant admits it",
        ),
        (
            "SELECT set_config('statement_timeout', '0', true)",
            "set_config is not one a migration step may call",
        ),
        (
            "SELECT pg_read_file('/etc/passwd')",
            "pg_read_file is not one a migration step may call",
        ),
        (
            "SELECT * FROM dblink('host=10.0.0.1', 'select 1') AS t(x int)",
            "dblink is not one a migration step may call",
        ),
        ("DO $$ BEGIN PERFORM 1; END $$", "is refused"),
        ("CREATE TABLE extra (id int)", "needs sql = \"ddl\""),
    ];
    for (statement, why) in postgres {
        let db = TestDb::create("sqlgrant");
        let sandbox = Sandbox::new();
        let dir = bad_migration_dir(&sandbox, &format!("run:{statement}"));
        let run = migrate(
            &sandbox,
            &db.url(),
            &["--migrations-dir", dir.to_str().unwrap()],
        )
        .expect(1);
        let first = statement
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            run.stderr.contains("002_bad")
                && run.stderr.contains(&first)
                && run.stderr.contains(why),
            "{statement}: {}",
            run.stderr
        );
        assert_eq!(
            db.scalar("SELECT count(*)::text FROM wasm_marker")
                .as_deref(),
            Some("0"),
            "{statement}: the step's insert must be rolled back"
        );
        assert!(!db.tables().contains(&"extra".to_string()));
    }
    let sqlite = [
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil.so')",
    ];
    for statement in sqlite {
        let sandbox = Sandbox::new();
        let dir = bad_migration_dir(&sandbox, &format!("run:{statement}"));
        let url = format!("sqlite://{}", sandbox.path().join("grant.db").display());
        let run = migrate(&sandbox, &url, &["--migrations-dir", dir.to_str().unwrap()]).expect(1);
        let first = statement.split_whitespace().next().unwrap();
        assert!(
            run.stderr.contains(first) && run.stderr.contains("no sql grant admits it"),
            "{statement}: {}",
            run.stderr
        );
        assert!(!sandbox.path().join("other.db").exists());
    }
}

/// A statement that never ends on SQLite is interrupted at the step's
/// deadline (1 s) by a progress handler; the step is rolled back.
#[test]
fn a_wasm_step_whose_sqlite_statement_never_ends_times_out() {
    let sandbox = Sandbox::new();
    let dir = bad_migration_dir(&sandbox, "spin-sql");
    let url = format!("sqlite://{}", sandbox.path().join("spin.db").display());
    let started = std::time::Instant::now();
    let run = migrate(&sandbox, &url, &["--migrations-dir", dir.to_str().unwrap()]).expect(1);
    assert!(
        run.stderr.contains("002_bad") && run.stderr.contains("timed out"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let status = migrate(&sandbox, &url, &["status"]);
    assert!(status.stdout.contains("failed"), "{}", status.stdout);
}

#[test]
fn out_of_order_pending_migrations_need_the_flag() {
    let db = TestDb::create("order");
    let sandbox = Sandbox::new();
    let dir = failing_dir(&sandbox, "CREATE TABLE more (id int);\n");
    let dir_arg = dir.to_str().unwrap();
    std::fs::remove_file(dir.join("002_more.up.sql")).unwrap();
    std::fs::remove_file(dir.join("002_more.down.sql")).unwrap();
    std::fs::write(dir.join("003_last.up.sql"), "CREATE TABLE last (id int);\n").unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    std::fs::write(dir.join("002_more.up.sql"), "CREATE TABLE more (id int);\n").unwrap();
    let refused = migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(2);
    assert!(
        refused.stderr.contains("002_more") && refused.stderr.contains("--allow-out-of-order"),
        "{}",
        refused.stderr
    );
    migrate(
        &sandbox,
        &db.url(),
        &["--migrations-dir", dir_arg, "--allow-out-of-order"],
    )
    .expect(0);
    assert!(db.tables().contains(&"more".to_string()));
}

#[test]
fn a_rollback_range_without_a_down_changes_nothing() {
    let db = TestDb::create("nodown");
    let sandbox = Sandbox::new();
    let dir = failing_dir(&sandbox, "CREATE TABLE more (id int);\n");
    std::fs::remove_file(dir.join("002_more.down.sql")).unwrap();
    std::fs::write(dir.join("003_last.up.sql"), "CREATE TABLE last (id int);\n").unwrap();
    std::fs::write(dir.join("003_last.down.sql"), "DROP TABLE last;\n").unwrap();
    let dir_arg = dir.to_str().unwrap();
    migrate(&sandbox, &db.url(), &["--migrations-dir", dir_arg]).expect(0);
    let before = db.tables();
    let refused = migrate(
        &sandbox,
        &db.url(),
        &["rollback", "--target", "1", "--migrations-dir", dir_arg],
    )
    .expect(2);
    assert!(refused.stderr.contains("002_more"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("003_last"), "{}", refused.stderr);
    assert_eq!(db.tables(), before, "nothing may change");
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("3")
    );
}

#[test]
fn bad_files_exit_2_and_touch_no_database() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("001_a.up.sql", "SELECT 1;"), ("001_b.up.sql", "SELECT 2;")],
            "001_b.up.sql",
        ),
        // Down scripts are read when used; a fresh database's run uses
        // every one, so a bad one is still refused before anything is made.
        (
            &[
                ("001_a.up.sql", "CREATE TABLE a (id int);"),
                ("001_a.down.sql", "BEGIN;\nDROP TABLE a;\nCOMMIT;\n"),
            ],
            "001_a.down.sql",
        ),
        (
            &[
                ("001_a.up.sql", "CREATE TABLE a (id int);"),
                ("001_a.down.sql", "DROP TABLE a; -- \u{fffd}"),
                ("002_b.up.sql", "CREATE TABLE b (id int);"),
                ("002_b.down.sql", "DROP TABLE b;\nROLLBACK;\n"),
            ],
            "002_b.down.sql",
        ),
        (
            &[("001_a.up.sql", "SELECT 1;"), ("oops.sql", "SELECT 2;")],
            "oops.sql",
        ),
        (
            &[
                ("001_a.up.sql", "SELECT 1;"),
                ("002_b.down.sql", "SELECT 2;"),
            ],
            "002_b.down.sql",
        ),
    ];
    for (files, named) in cases {
        let db = TestDb::create("badfiles");
        let sandbox = Sandbox::new();
        let dir = sandbox.path().join("m");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let run = migrate(
            &sandbox,
            &db.url(),
            &["--migrations-dir", dir.to_str().unwrap()],
        )
        .expect(2);
        assert!(run.stderr.contains(named), "{}", run.stderr);
        assert!(
            db.tables().is_empty(),
            "nothing may be created: {:?}",
            db.tables()
        );
    }
}

/// A down script is read when a run uses it: a pending migration's before
/// anything runs, an applied one's when it is rolled back. A bad down of
/// an applied migration does not stop a no-op `migrate`.
#[test]
fn down_scripts_are_checked_when_used() {
    let db = TestDb::create("lazydown");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &[u8]| std::fs::write(dir.join(name), text).unwrap();
    file("001_a.up.sql", b"CREATE TABLE a (id int);");
    file("001_a.down.sql", b"DROP TABLE a;");
    let args = ["--migrations-dir", dir.to_str().unwrap()];
    migrate(&sandbox, &db.url(), &args).expect(0);

    // Applied, then its down goes bad: nothing to apply is still fine.
    file("001_a.down.sql", b"BEGIN;\nDROP TABLE a;\nCOMMIT;\n");
    migrate(&sandbox, &db.url(), &args).expect(0);

    // A pending migration's bad down (not UTF-8) is refused before it runs.
    file("002_b.up.sql", b"CREATE TABLE b (id int);");
    file("002_b.down.sql", b"DROP TABLE b; -- \xff\xfe");
    let run = migrate(&sandbox, &db.url(), &args).expect(2);
    assert!(run.stderr.contains("002_b.down.sql"), "{}", run.stderr);
    assert!(!db.tables().contains(&"b".to_string()), "{:?}", db.tables());

    // Rolling back the applied one reads its down and refuses it.
    std::fs::remove_file(dir.join("002_b.up.sql")).unwrap();
    std::fs::remove_file(dir.join("002_b.down.sql")).unwrap();
    let rollback = [
        "rollback",
        "--target",
        "0",
        "--migrations-dir",
        dir.to_str().unwrap(),
    ];
    let run = migrate(&sandbox, &db.url(), &rollback).expect(2);
    assert!(run.stderr.contains("001_a.down.sql"), "{}", run.stderr);
    assert!(db.tables().contains(&"a".to_string()), "{:?}", db.tables());
}

/// A schema of its own on the search path gets a history of its own,
/// even when a schema further along already has one.
#[test]
fn each_schema_keeps_its_own_history() {
    let db = TestDb::create("schemas");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_a.up.sql"), "CREATE TABLE a (id int);").unwrap();
    let args = ["--migrations-dir", dir.to_str().unwrap()];
    migrate(&sandbox, &db.url(), &args).expect(0);
    db.execute("CREATE SCHEMA tenant");
    let tenant = format!("{}?options=-c%20search_path%3Dtenant,public", db.url());
    migrate(&sandbox, &tenant, &args).expect(0);
    for schema in ["public", "tenant"] {
        assert_eq!(
            db.scalar(&format!(
                "SELECT count(*)::text FROM {schema}.gantry_migrations WHERE state = 'applied'"
            ))
            .as_deref(),
            Some("1"),
            "{schema}"
        );
        assert_eq!(
            db.scalar(&format!("SELECT to_regclass('{schema}.a')::text"))
                .as_deref(),
            Some(format!("{schema}.a").as_str()).map(|s| s.trim_start_matches("public.")),
            "{schema}"
        );
    }
}

#[test]
fn an_unreachable_database_exits_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sandbox = Sandbox::new();
    let run = migrate(
        &sandbox,
        &format!("postgres://postgres:hunter2@127.0.0.1:{port}/x"),
        &[],
    )
    .expect(1);
    assert!(
        run.stderr.contains("cannot reach the database"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("hunter2"),
        "the password leaked: {}",
        run.stderr
    );
}

/// A server that speaks just enough of the PostgreSQL protocol to refuse
/// a password, as a real server with password authentication does.
fn password_refusing_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let read_message = |s: &mut std::net::TcpStream, typed: bool| -> Option<Vec<u8>> {
                let mut head = vec![0u8; if typed { 5 } else { 4 }];
                s.read_exact(&mut head).ok()?;
                let len = u32::from_be_bytes(head[head.len() - 4..].try_into().unwrap()) as usize;
                let mut body = vec![0u8; len - 4];
                s.read_exact(&mut body).ok()?;
                Some(body)
            };
            let Some(first) = read_message(&mut s, false) else {
                continue;
            };
            if first.len() == 4 && first == [0x04, 0xd2, 0x16, 0x2f] {
                let _ = s.write_all(b"N"); // no TLS
                if read_message(&mut s, false).is_none() {
                    continue;
                }
            }
            let _ = s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]); // cleartext password, please
            let _ = read_message(&mut s, true);
            let mut fields = Vec::new();
            for (code, text) in [
                (b'S', "FATAL"),
                (b'V', "FATAL"),
                (b'C', "28P01"),
                (b'M', "password authentication failed for user \"postgres\""),
            ] {
                fields.push(code);
                fields.extend_from_slice(text.as_bytes());
                fields.push(0);
            }
            fields.push(0);
            let mut message = vec![b'E'];
            message.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
            message.extend_from_slice(&fields);
            let _ = s.write_all(&message);
        }
    });
    port
}

#[test]
fn a_wrong_password_exits_2() {
    let port = password_refusing_server();
    let sandbox = Sandbox::new();
    let run = migrate(
        &sandbox,
        &format!("postgres://postgres:wrong-pw@127.0.0.1:{port}/kari"),
        &[],
    )
    .expect(2);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("password authentication failed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong-pw"),
        "the password leaked: {}",
        run.stderr
    );
}

#[test]
fn a_dry_run_changes_nothing() {
    let db = TestDb::create("dry");
    let sandbox = Sandbox::new();
    let run = migrate(&sandbox, &db.url(), &["--dry-run"]).expect(0);
    assert!(
        run.stdout.contains("001_create_auth_tables"),
        "{}",
        run.stdout
    );
    assert!(db.tables().is_empty());
    migrate(&sandbox, &db.url(), &[]).expect(0);
    let run = migrate(
        &sandbox,
        &db.url(),
        &["rollback", "--target", "3", "--dry-run"],
    )
    .expect(0);
    assert!(
        run.stdout.contains("006_unique_canonical_email"),
        "{}",
        run.stdout
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM gantry_migrations")
            .as_deref(),
        Some("6")
    );
}

#[test]
fn the_library_runs_without_the_cli() {
    // The library runs without the CLI.
    let sandbox = Sandbox::new();
    let url = format!("sqlite://{}", sandbox.path().join("lib.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let target = gantry::db::DbTarget::parse(&url).unwrap();
        let migrator =
            gantry::migrate::Migrator::new(target, gantry::migrate::Source::Builtin).unwrap();
        migrator
            .migrate(&gantry::migrate::ApplyOptions::default())
            .await
            .unwrap()
    });
    assert_eq!(report.done.len(), 6);
    let cli = migrate(&sandbox, &url, &["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(cli["summary"], "up-to-date");
}

#[test]
fn an_error_without_a_position_is_not_found_by_running_the_script_again() {
    let db = TestDb::create("nopos");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("001_base.up.sql"),
        "CREATE SEQUENCE side_effects;\nCREATE TABLE t (id int PRIMARY KEY);\n",
    )
    .unwrap();
    // A sequence is not transactional: if anything ran the script twice,
    // it would say 2.
    std::fs::write(
        dir.join("002_dupes.up.sql"),
        "SELECT nextval('side_effects');\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);\n",
    )
    .unwrap();
    let failed = migrate(
        &sandbox,
        &db.url(),
        &["--migrations-dir", dir.to_str().unwrap()],
    )
    .expect(1);
    assert_eq!(
        db.scalar("SELECT last_value::text FROM side_effects")
            .as_deref(),
        Some("1"),
        "the failed script ran once"
    );
    assert!(
        failed.stderr.contains("002_dupes") && failed.stderr.contains("t_pkey"),
        "names the migration and the constraint: {}",
        failed.stderr
    );
}

#[test]
fn losing_the_lock_session_stops_the_work_with_it() {
    let db = TestDb::create("lockloss");
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_slow.up.sql"), "SELECT pg_sleep(20);\n").unwrap();
    let mut child = sandbox
        .gantry()
        .env("DATABASE_URL", db.url())
        .args(["migrate", "--migrations-dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleeping = "SELECT count(*)::text FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' \
                    AND pid <> pg_backend_pid() AND state = 'active' AND datname = current_database()";
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.scalar(sleeping).as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "the migration never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The server ends the session that holds the migration lock (an
    // operator, a failover, a network drop).
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the runner went on after losing its lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert_eq!(
        db.scalar(sleeping).as_deref(),
        Some("0"),
        "no statement of the runner still runs once its lock is gone"
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("001_slow"), "{stderr}");
}

#[test]
fn eight_concurrent_sqlite_runners_wait_for_a_live_one_and_apply_each_migration_once() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("001_t.up.sql"), "CREATE TABLE t (x INTEGER);\n").unwrap();
    // A no-transaction step long enough that the others arrive while it
    // is in progress (they must wait for it, not call it interrupted).
    std::fs::write(
        dir.join("002_fill.up.sql"),
        "-- no-transaction\n\
         INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT x FROM c;\n\
         CREATE INDEX t_x ON t (x);\n",
    )
    .unwrap();
    std::fs::write(dir.join("003_u.up.sql"), "CREATE TABLE u (y INTEGER);\n").unwrap();
    let file = sandbox.path().join("race.db");
    let url = format!("sqlite://{}", file.display());
    let children: Vec<_> = (0..8)
        .map(|_| {
            sandbox
                .gantry()
                .env("DATABASE_URL", &url)
                .args(["migrate", "--migrations-dir", dir.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).expect(0);
    }
    let count = |sql: &str| -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        })
    };
    assert_eq!(count("SELECT count(*) FROM t"), 300000, "filled once");
    assert_eq!(
        count("SELECT count(*) FROM gantry_migration_log WHERE action = 'apply'"),
        3,
        "each migration applied once"
    );
    assert_eq!(
        count("SELECT count(*) FROM gantry_migrations WHERE state = 'applied'"),
        3
    );
}
