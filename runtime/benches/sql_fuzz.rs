//! Fuzzes the pair that holds a migration plugin to `sql = "read"`: SQL
//! generated from a grammar of statements, comments, parameters, quoting,
//! functions and nesting (and random splices of it) goes to the parser's
//! check; whatever it admits is compiled by SQLite under a recording
//! authorizer, and anything SQLite would do beyond reading what a plugin
//! may read is a finding (`capabilities::sql::probe`).
//!
//!     cargo bench --bench sql_fuzz -- [--seconds N] [--seed S] [--save PATH]
//!
//! Prints executions, unique admitted statements and findings; exits 1 on a
//! finding. `--save` appends findings and a sample of new admitted
//! statements to a corpus file (the committed one is
//! `runtime/fuzz/sql-read-corpus.txt`, replayed by a unit test). Not run in CI.

use gantry_runtime::capabilities::sql::probe::{Probe, Verdict};
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use gantry_runtime::testing::SplitMix as Rng;

const TABLES: &[&str] = &[
    "users",
    "sessions",
    "active",
    "gantry_migrations",
    "GANTRY_MIGRATION_LOG",
    "_sqlx_migrations",
    "sqlite_master",
    "sqlite_schema",
    "main.users",
    "temp.sqlite_temp_master",
    "pragma_table_info('users')",
    "json_each('[1,2]')",
    "json_tree('{}')",
    "\"users\"",
    "[users]",
    "`users`",
    "\"gantry_migrations\"",
];

const COLUMNS: &[&str] = &[
    "id",
    "email",
    "note",
    "user_id",
    "expires",
    "*",
    "rowid",
    "\"email\"",
    "down_script",
];

const FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "length",
    "coalesce",
    "substr",
    "json_extract",
    "json_each",
    "count",
    "max",
    "sum",
    "group_concat",
    "printf",
    "hex",
    "random",
    "abs",
    "iif",
    "strftime",
    "date",
    "load_extension",
    "writefile",
    "readfile",
    "fts3_tokenizer",
    "sqlite_version",
    "sqlite_compileoption_get",
    "sqlite_rename_table",
    "sqlite_drop_column",
    "unknown_fn",
    "pg_read_file",
    "nextval",
    "zeroblob",
    "randomblob",
    "unhex",
    "edit",
    "likely",
];

const PARAMS: &[&str] = &[
    "$1", "$2", "?1", "?", ":name", "@name", "$name", "$1::text", "$10", "?99",
];

const NOISE: &[&str] = &[
    " ",
    "\n",
    "\t",
    "/* c */",
    "/* /* nested */ */",
    "-- line\n",
    "/**/",
    "/*",
    "*/",
    "--",
    ";",
    "; ",
    "\r\n",
    "\u{a0}",
    "'",
    "\"",
    "`",
    "[",
    "]",
    "$$",
    "$tag$",
    "x'00'",
    "\\",
];

const STATEMENTS: &[&str] = &[
    "INSERT INTO users (email) VALUES ('x')",
    "UPDATE users SET email = 'x'",
    "DELETE FROM users",
    "CREATE TABLE smuggled (x)",
    "DROP TABLE users",
    "ATTACH DATABASE 'other.db' AS other",
    "PRAGMA writable_schema = 1",
    "PRAGMA user_version = 7",
    "PRAGMA table_info('users')",
    "VACUUM",
    "BEGIN",
    "COMMIT",
    "SAVEPOINT a",
    "REPLACE INTO users (id) VALUES (1)",
    "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END",
    "WITH d AS (DELETE FROM users RETURNING id) SELECT * FROM d",
    "VALUES (1), (2)",
    "SELECT 1",
];

fn literal(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => rng.below(1000).to_string(),
        1 => format!(
            "'{}'",
            rng.pick(&[
                "x",
                "it''s",
                "a;b",
                "/*",
                "--",
                "'); DROP TABLE users; --",
                ""
            ])
        ),
        2 => "NULL".into(),
        3 => format!("x'{:02x}'", rng.below(256)),
        4 => format!("{}.{}", rng.below(100), rng.below(100)),
        5 => rng.pick(PARAMS).to_string(),
        6 => "CURRENT_TIMESTAMP".into(),
        _ => format!("'{}'", "a".repeat(rng.below(5))),
    }
}

fn expr(rng: &mut Rng, depth: usize) -> String {
    if depth > 3 {
        return literal(rng);
    }
    match rng.below(12) {
        0 | 1 => literal(rng),
        2 | 3 => rng
            .pick(&[
                "id",
                "email",
                "note",
                "user_id",
                "expires",
                "rowid",
                "\"email\"",
                "down_script",
            ])
            .to_string(),
        4 | 5 => {
            let args: Vec<String> = (0..rng.below(3)).map(|_| expr(rng, depth + 1)).collect();
            format!("{}({})", rng.pick(FUNCTIONS), args.join(", "))
        }
        6 => format!(
            "({} {} {})",
            expr(rng, depth + 1),
            rng.pick(&["+", "||", "=", "<>", "AND", "OR", "->", "->>", "LIKE", "IS"]),
            expr(rng, depth + 1)
        ),
        7 => format!(
            "(SELECT {} FROM {})",
            expr(rng, depth + 1),
            rng.pick(TABLES)
        ),
        8 => format!(
            "CASE WHEN {} THEN {} ELSE {} END",
            expr(rng, depth + 1),
            expr(rng, depth + 1),
            expr(rng, depth + 1)
        ),
        9 => format!(
            "CAST({} AS {})",
            expr(rng, depth + 1),
            rng.pick(&["TEXT", "INTEGER", "BLOB", "REAL"])
        ),
        10 => format!("EXISTS (SELECT 1 FROM {})", rng.pick(TABLES)),
        _ => format!(
            "{} IN ({}, {})",
            expr(rng, depth + 1),
            literal(rng),
            literal(rng)
        ),
    }
}

fn select(rng: &mut Rng, depth: usize) -> String {
    let columns: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            if rng.chance(3) {
                rng.pick(COLUMNS).to_string()
            } else {
                expr(rng, depth + 1)
            }
        })
        .collect();
    let mut sql = format!("SELECT {}", columns.join(", "));
    if !rng.chance(4) {
        let from = if depth < 2 && rng.chance(4) {
            format!("({}) AS s", select(rng, depth + 1))
        } else {
            rng.pick(TABLES).to_string()
        };
        sql.push_str(&format!(" FROM {from}"));
        if rng.chance(3) {
            sql.push_str(&format!(" JOIN {} ON 1", rng.pick(TABLES)));
        }
        if rng.chance(2) {
            sql.push_str(&format!(" WHERE {}", expr(rng, depth + 1)));
        }
    }
    if rng.chance(5) {
        sql.push_str(&format!(" UNION ALL {}", select(rng, depth + 1)));
    }
    if rng.chance(6) {
        sql.push_str(" LIMIT 1");
    }
    sql
}

fn statement(rng: &mut Rng) -> String {
    let mut sql = match rng.below(10) {
        0..=4 => select(rng, 0),
        5 => format!(
            "WITH w AS ({}) {}",
            select(rng, 1),
            select(rng, 1).replacen("FROM", "FROM w,", 1)
        ),
        6 => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) {}",
            select(rng, 1)
        ),
        7 => rng.pick(STATEMENTS).to_string(),
        8 => format!("{}; {}", select(rng, 1), rng.pick(STATEMENTS)),
        _ => format!("{} {}", select(rng, 1), rng.pick(NOISE)),
    };
    // Splices: noise, a second statement, or a fragment, anywhere.
    for _ in 0..rng.below(4) {
        let at = char_boundary(&sql, rng.below(sql.len() + 1));
        let insert = match rng.below(4) {
            0 | 1 => rng.pick(NOISE).to_string(),
            2 => format!(" {} ", rng.pick(STATEMENTS)),
            _ => rng.pick(PARAMS).to_string(),
        };
        sql.insert_str(at, &insert);
    }
    sql
}

fn char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut save: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            "--save" => save = args.next(),
            // `cargo bench` passes --bench.
            _ => {}
        }
    }
    let mut rng = Rng(seed);
    let mut probe = Probe::new();
    let started = Instant::now();
    let mut executions = 0u64;
    let mut refused = 0u64;
    let mut admitted: HashSet<String> = HashSet::new();
    let mut findings: Vec<String> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let sql = statement(&mut rng);
        executions += 1;
        match probe.check(&sql) {
            Verdict::Refused => refused += 1,
            Verdict::Reads => {
                if admitted.insert(sql.clone()) && admitted.len() % 200 == 1 {
                    kept.push(sql);
                }
            }
            Verdict::Finding(finding) => {
                if findings.len() < 50 {
                    eprintln!("FINDING: {finding}\n  input: {sql:?}");
                }
                findings.push(sql);
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "sql_fuzz: seed {seed}: {executions} executions in {:.1} s ({:.0}/s), {refused} refused, {} unique admitted under read, {} findings",
        elapsed.as_secs_f64(),
        executions as f64 / elapsed.as_secs_f64(),
        admitted.len(),
        findings.len()
    );
    if let Some(path) = save {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the corpus");
        for sql in findings.iter().chain(&kept) {
            writeln!(file, "{}", sql.replace('\n', "\\n")).expect("write the corpus");
        }
        println!(
            "saved {} findings and {} admitted statements to {path}",
            findings.len(),
            kept.len()
        );
    }
    if !findings.is_empty() {
        std::process::exit(1);
    }
}
