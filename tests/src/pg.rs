//! A fresh PostgreSQL database per test on 127.0.0.1:5432, dropped after.

use sqlx::{Connection, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database that exists for the life of this value.
pub struct TestDb {
    pub name: String,
    rt: tokio::runtime::Runtime,
}

impl TestDb {
    pub fn create(tag: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "gantry_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut admin = PgConnection::connect(&format!("{SERVER}/postgres"))
                .await
                .expect("PostgreSQL at 127.0.0.1:5432 (start it with pg_ctlcluster … main start)");
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
            }
        });
        TestDb { name, rt }
    }

    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }

    /// Runs SQL and returns every row's columns as text (NULL → None).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Like `query`, but an error (say, a table not there yet) is `Err`.
    pub fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        use sqlx::Row;
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url())
                .await
                .map_err(|e| e.to_string())?;
            let rows = sqlx::query(sql)
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                        .collect()
                })
                .collect())
        })
    }

    /// The single text value of a one-row, one-column query.
    pub fn scalar(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|mut r| r.remove(0))
    }

    pub fn execute(&self, sql: &str) {
        self.rt.block_on(async {
            let mut conn = PgConnection::connect(&self.url()).await.unwrap();
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    /// Table names in the public schema, sorted.
    pub fn tables(&self) -> Vec<String> {
        self.query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .into_iter()
        .filter_map(|mut r| r.remove(0))
        .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        self.rt.block_on(async {
            if let Ok(mut admin) = PgConnection::connect(&format!("{SERVER}/postgres")).await {
                let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        });
    }
}
