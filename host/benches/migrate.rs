//! Migration benchmarks: 1,000 generated trivial migrations, applied by the
//! release `gantry` binary on PostgreSQL (127.0.0.1:5432) and SQLite.
//!
//!   cargo bench -p gantry --bench migrate
//!
//! Prints the time to apply all 1,000, the wall time of a no-op
//! `gantry migrate` with all applied (median of 20), the commits PostgreSQL
//! counted (pg_stat_database.xact_commit), and the round trips a counting
//! TCP proxy between gantry and PostgreSQL saw.

mod common;

use common::gantry_bin;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const COUNT: usize = 1000;
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=COUNT {
        std::fs::write(
            dir.join(format!("{i:04}_t{i}.up.sql")),
            format!("CREATE TABLE t{i} (id int);\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{i:04}_t{i}.down.sql")),
            format!("DROP TABLE t{i};\n"),
        )
        .unwrap();
    }
}

fn gantry(work: &Path, url: &str, dir: &Path) -> Duration {
    let start = Instant::now();
    let out = Command::new(gantry_bin())
        .current_dir(work)
        .env("DATABASE_URL", url)
        .env("GANTRY_CACHE_DIR", work.join("cache"))
        .args(["-q", "migrate", "--migrations-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "gantry migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A TCP proxy to PostgreSQL that counts round trips: each time a client
/// starts sending after the server last spoke is one.
struct Proxy {
    port: u16,
    round_trips: Arc<AtomicU64>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&round_trips);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let server = TcpStream::connect("127.0.0.1:5432").unwrap();
                // As gantry and the server do: without it a message of
                // several segments waits for a delayed ACK (up to 40 ms).
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let server_spoke = Arc::new(AtomicBool::new(true));
                let (spoke, count) = (Arc::clone(&server_spoke), Arc::clone(&counter));
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    move || {
                        if spoke.swap(false, Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    },
                );
                pump(server, client, move || {
                    server_spoke.store(true, Ordering::SeqCst)
                });
            }
        });
        Proxy { port, round_trips }
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// Copies `from` to `to` on its own thread, calling `on_data` per read.
fn pump(mut from: TcpStream, mut to: TcpStream, on_data: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            on_data();
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commits(db: &str) -> u64 {
    psql(
        "postgres",
        &format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"),
    )
    .parse()
    .unwrap()
}

/// The server's WAL flushes so far (`pg_stat_wal`, PostgreSQL 14+).
fn wal_syncs() -> u64 {
    psql("postgres", "SELECT wal_sync FROM pg_stat_wal")
        .parse()
        .unwrap_or(0)
}

fn main() {
    let bin = gantry_bin();
    assert!(bin.is_file(), "{} not built", bin.display());
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("migrations");
    generate(&dir);
    let generated = Instant::now();
    println!(
        "gantry migration benchmarks: {COUNT} trivial migrations (CREATE TABLE), release binary"
    );

    // PostgreSQL, through the counting proxy for the apply.
    let db = format!("gantry_bench_{}", std::process::id());
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
    let proxy = Proxy::start();
    // Let the stats collector settle, then count commits around the run.
    std::thread::sleep(Duration::from_millis(600));
    let before = commits(&db);
    let syncs_before = wal_syncs();
    let apply = gantry(work.path(), &proxy.url(&db), &dir);
    let apply_trips = proxy.round_trips.swap(0, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    let committed = commits(&db) - before;
    let synced = wal_syncs() - syncs_before;
    let noop_trips = {
        gantry(work.path(), &proxy.url(&db), &dir);
        proxy.round_trips.swap(0, Ordering::SeqCst)
    };
    // Files written a moment ago are read whole on every run (the folder
    // index records a file once its times are 2 s old): the first no-op
    // after a checkout.
    let direct = format!("{SERVER}/{db}");
    let cold = median((0..5).map(|_| gantry(work.path(), &direct, &dir)).collect());
    // A folder as it usually is: files older than that, recorded by one
    // run, then listed and stat'ed (a no-op reads no script).
    if let Some(wait) = Duration::from_millis(2100).checked_sub(generated.elapsed()) {
        std::thread::sleep(wait);
    }
    gantry(work.path(), &direct, &dir);
    let noop = median(
        (0..20)
            .map(|_| gantry(work.path(), &direct, &dir))
            .collect(),
    );
    let applied = psql(
        &db,
        "SELECT count(*) FROM gantry_migrations WHERE state = 'applied'",
    );
    println!(
        "postgres  apply {COUNT}: {:>10}   ({:.2} ms each)   applied rows: {applied}",
        ms(apply),
        apply.as_secs_f64() * 1000.0 / COUNT as f64
    );
    println!(
        "postgres  commits during apply: {committed} (server count; {:.2} per migration); WAL flushes to disk: {synced} (the whole server's, background writer included)",
        committed as f64 / COUNT as f64
    );
    println!(
        "postgres  round trips during apply: {apply_trips} ({:.2} per migration, the rest is connect, lock and history read)",
        apply_trips as f64 / COUNT as f64
    );
    println!(
        "postgres  no-op migrate, files just written (every script read): median {:>8} wall",
        ms(cold)
    );
    println!(
        "postgres  no-op migrate (all applied): median {:>8} wall   ({}); {noop_trips} round trips",
        ms(noop),
        common::verdict(noop <= Duration::from_millis(20), "≤ 20 ms")
    );
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );

    // SQLite.
    let file = work.path().join("bench.db");
    let url = format!("sqlite://{}", file.display());
    let apply = gantry(work.path(), &url, &dir);
    let noop = median((0..20).map(|_| gantry(work.path(), &url, &dir)).collect());
    println!(
        "sqlite    apply {COUNT}: {:>10}   ({:.2} ms each)",
        ms(apply),
        apply.as_secs_f64() * 1000.0 / COUNT as f64
    );
    println!(
        "sqlite    no-op migrate (all applied): median {:>8} wall   ({})",
        ms(noop),
        common::verdict(noop <= Duration::from_millis(50), "≤ 50 ms")
    );
    common::finish();
}
