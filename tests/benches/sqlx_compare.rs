//! gantry against sqlx's own migrator on the same PostgreSQL
//! (127.0.0.1:5432), with sqlx's history kept in step by gantry:
//!
//!   cargo build --release -p gantry
//!   cargo bench -p gantry-tests --bench sqlx_compare
//!
//! sqlx's side is `sqlx::migrate::Migrator::run` — what `sqlx migrate run`
//! and `sqlx::migrate!().run(&pool)` do once connected — timed with its
//! connection, so the comparison flatters sqlx by gantry's process start.
//!
//! - 1,000 cheap migrations (one CREATE TABLE, then 999 one-row INSERTs):
//!   goal gantry ≥ 3× faster.
//! - A realistic service folder built like a real one: 160 migrations in
//!   sqlx naming (tables, columns, backfills), every tenth a
//!   `-- no-transaction` `CREATE INDEX CONCURRENTLY`, and one that prunes
//!   `_sqlx_migrations`: goal gantry faster.

use gantry_tests::pg::TestDb;
use std::path::Path;
use std::time::{Duration, Instant};

fn cheap(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("0001_create_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    for i in 2..=1000 {
        std::fs::write(
            dir.join(format!("{i:04}_insert_{i}.sql")),
            format!("INSERT INTO t VALUES ({i});\n"),
        )
        .unwrap();
    }
}

fn realistic(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut version = 20200101000000i64;
    let mut columns: Vec<String> = Vec::new();
    for i in 0..160 {
        version += 1000;
        let (name, sql) = if i == 0 {
            ("create_users".to_string(), "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());\nINSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 2000) g;\n".to_string())
        } else if i % 10 == 9 {
            (
                format!("index_{i}"),
                format!(
                    "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_idx{i} ON users (email, id);\n"
                ),
            )
        } else if i == 100 {
            (
                "prune_sqlx_history".to_string(),
                "DELETE FROM _sqlx_migrations WHERE version < 20000101000000;\n".to_string(),
            )
        } else if i % 3 == 0 && !columns.is_empty() {
            let c = columns.last().unwrap();
            (
                format!("backfill_{c}"),
                format!("UPDATE users SET {c} = 'x' WHERE {c} IS NULL;\n"),
            )
        } else {
            let c = format!("c{i}");
            columns.push(c.clone());
            (
                format!("add_{c}"),
                format!(
                    "ALTER TABLE users ADD COLUMN {c} TEXT;\nCOMMENT ON COLUMN users.{c} IS 'column {i}';\n"
                ),
            )
        };
        std::fs::write(dir.join(format!("{version}_{name}.sql")), sql).unwrap();
    }
}

fn gantry(db: &TestDb, dir: &Path) -> Duration {
    let work = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = std::process::Command::new(gantry_tests::gantry_bin())
        .current_dir(work.path())
        .env("DATABASE_URL", db.url())
        .env("GANTRY_CACHE_DIR", work.path().join("cache"))
        .args(["-q", "migrate", "--migrations-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{out:?}");
    took
}

fn sqlx(db: &TestDb, dir: &Path) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let start = Instant::now();
        let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
        migrator.run(&mut conn).await.unwrap();
        start.elapsed()
    })
}

/// After gantry: sqlx's migrator finds nothing to do (and no mismatch).
fn sqlx_agrees(db: &TestDb, dir: &Path) {
    let rows_before = db.scalar("SELECT count(*)::text FROM _sqlx_migrations");
    sqlx(db, dir);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM _sqlx_migrations"),
        rows_before
    );
}

fn compare(what: &str, dir: &Path, goal: f64) {
    let mut gantry_runs = Vec::new();
    let mut sqlx_runs = Vec::new();
    for _ in 0..3 {
        let a = TestDb::create("cmp_gantry");
        gantry_runs.push(gantry(&a, dir));
        sqlx_agrees(&a, dir);
        let b = TestDb::create("cmp_sqlx");
        sqlx_runs.push(sqlx(&b, dir));
    }
    gantry_runs.sort();
    sqlx_runs.sort();
    let (g, s) = (gantry_runs[1], sqlx_runs[1]);
    let ratio = s.as_secs_f64() / g.as_secs_f64();
    println!(
        "{what}: gantry {:.0} ms, sqlx's migrator {:.0} ms (medians of 3): {ratio:.2}× — {}",
        g.as_secs_f64() * 1e3,
        s.as_secs_f64() * 1e3,
        gantry_runtime::testing::verdict(ratio >= goal, &format!("≥ {goal}×"))
    );
}

fn main() {
    let bin = gantry_tests::gantry_bin();
    assert!(
        bin.is_file(),
        "{} is missing: cargo build --release -p gantry",
        bin.display()
    );
    println!(
        "gantry vs sqlx's migrator on PostgreSQL ({} cores), sqlx history kept in step",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let root = tempfile::tempdir().unwrap();
    let cheap_dir = root.path().join("cheap");
    cheap(&cheap_dir);
    compare("1,000 cheap migrations", &cheap_dir, 3.0);
    let real_dir = root.path().join("realistic");
    realistic(&real_dir);
    compare(
        "160-migration service folder (2,000 rows, backfills, 16 CONCURRENTLY, a history prune)",
        &real_dir,
        1.0,
    );
    gantry_runtime::testing::finish();
}
