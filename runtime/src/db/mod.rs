//! Connections to the databases gantry works on: PostgreSQL and SQLite,
//! through sqlx, behind one small enum so callers can move a connection
//! around (into a plugin call, for instance).

mod connect;
pub mod split;
mod url;

pub use connect::{
    CONNECT_TIMEOUT, Db, DbError, classify, connect, pg_options, retry_busy, sqlite_options,
};
pub use url::{DbTarget, Dialect};

/// Runs one generic sqlx expression on whichever connection `db` holds:
/// `on_conn!(db, c => sqlx::query("…").execute(c).await)`.
#[macro_export]
#[doc(hidden)]
macro_rules! on_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($conn) => $body,
            $crate::db::Db::Sqlite($conn) => $body,
        }
    };
}

/// SQL written with `$1`-style parameters, in the dialect's own style.
pub fn params_for(dialect: Dialect, sql: &str) -> std::borrow::Cow<'_, str> {
    match dialect {
        Dialect::Postgres => std::borrow::Cow::Borrowed(sql),
        Dialect::Sqlite => std::borrow::Cow::Owned(split::dollar_params_to_sqlite(sql)),
    }
}
