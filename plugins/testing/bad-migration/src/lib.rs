//! A migration step that writes a marker row and then misbehaves as the
//! `wasm_mode` table says: `ok`, `err`, `trap`, `loop`, `commit` (tries to
//! commit the runner's transaction), `sleep` (`pg_sleep(60)`), `spin-sql` (a
//! recursive query that never ends), `run:SQL` (runs SQL, which the grant
//! should refuse), `probe:SQL` (runs only SQL, before any write). Proves a
//! failed step leaves nothing.

use gantry_plugin::Migration;
use gantry_plugin::sql::{self, Value};

struct Bad;

impl Migration for Bad {
    fn up() -> Result<(), String> {
        let rows = sql::query("SELECT mode FROM wasm_mode", &[])?;
        let mode = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Text(mode)) => mode.clone(),
            other => return Err(format!("no mode: {other:?}")),
        };
        // A read-only probe: only the statement, no marker.
        if let Some(statement) = mode.strip_prefix("probe:") {
            return sql::execute(statement, &[]).map(|_| ());
        }
        sql::execute(
            "INSERT INTO wasm_marker (note) VALUES ($1)",
            &[Value::Text("up ran".into())],
        )?;
        match mode.as_str() {
            "ok" => Ok(()),
            "err" => Err("refusing on purpose".into()),
            "trap" => panic!("bad migration trapped on purpose"),
            "loop" => loop {
                std::hint::black_box(0u8);
            },
            "commit" => sql::execute("COMMIT", &[]).map(|_| ()),
            // Blocks in the database, out of epoch interruption's reach.
            "sleep" => sql::query("SELECT pg_sleep(60)", &[]).map(|_| ()),
            // A statement that never ends (SQLite has no sleep).
            "spin-sql" => sql::query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                &[],
            )
            .map(|_| ()),
            other => match other.strip_prefix("run:") {
                Some(statement) => sql::execute(statement, &[]).map(|_| ()),
                None => Err(format!("unknown mode {other}")),
            },
        }
    }

    fn down() -> Result<(), String> {
        sql::execute("DELETE FROM wasm_marker", &[]).map(|_| ())
    }
}

gantry_plugin::migration!(Bad);
