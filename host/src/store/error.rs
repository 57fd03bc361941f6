//! Why the state store could not do what was asked.

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Connect(#[from] DbError),
    #[error("state store {target}: cannot {action}: {source}")]
    Sql {
        target: String,
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A query inside a caller's transaction failed.
    #[error("state store: cannot {action}: {source}")]
    Query {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("state store {target}: schema step {version} ({name}) failed: {source}")]
    Schema {
        target: String,
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "state store {target} has schema version {found}, newer than this gantry knows \
         (version {known}); upgrade gantry to use it"
    )]
    TooNew {
        target: String,
        found: i64,
        known: i64,
    },
}

/// Maps a failed query in a transaction to `StoreError::Query`.
pub fn query_failed(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}
