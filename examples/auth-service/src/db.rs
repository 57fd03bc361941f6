//! The auth database gantry's migrations create (PostgreSQL or SQLite):
//! users, refresh tokens and the audit trail. One small query per need,
//! written for each dialect where their types differ.

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A user who may log in.
pub struct User {
    pub id: String,
    pub tenant: String,
    pub password_hash: String,
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            let options = SqliteConnectOptions::from_str(url)?
                .busy_timeout(Duration::from_secs(10))
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        }
    }

    pub async fn ping(&self) -> bool {
        match self {
            Db::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.is_ok(),
            Db::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.is_ok(),
        }
    }

    /// An active user by username or canonical email.
    pub async fn user(&self, login: &str) -> anyhow::Result<Option<User>> {
        const SQL: &str = "SELECT id, tenant_id, password_hash FROM auth_users \
                           WHERE (username = $1 OR email_canonical = lower($1)) AND is_active";
        let row: Option<(String, String, String)> = match self {
            Db::Postgres(p) => sqlx::query_as(SQL).bind(login).fetch_optional(p).await?,
            Db::Sqlite(p) => {
                sqlx::query_as(&SQL.replace("AND is_active", "AND is_active = 1"))
                    .bind(login)
                    .fetch_optional(p)
                    .await?
            }
        };
        Ok(row.map(|(id, tenant, password_hash)| User {
            id,
            tenant,
            password_hash,
        }))
    }

    pub async fn add_user(
        &self,
        id: &str,
        username: &str,
        password_hash: &str,
        tenant: &str,
    ) -> anyhow::Result<()> {
        const SQL: &str = "INSERT INTO auth_users (id, username, password_hash, tenant_id) VALUES ($1, $2, $3, $4)";
        match self {
            Db::Postgres(p) => {
                sqlx::query(SQL)
                    .bind(id)
                    .bind(username)
                    .bind(password_hash)
                    .bind(tenant)
                    .execute(p)
                    .await?
            }
            .rows_affected(),
            Db::Sqlite(p) => {
                sqlx::query(SQL)
                    .bind(id)
                    .bind(username)
                    .bind(password_hash)
                    .bind(tenant)
                    .execute(p)
                    .await?
            }
            .rows_affected(),
        };
        Ok(())
    }

    /// Stores a refresh token (its hash only).
    pub async fn save_refresh(
        &self,
        user: &str,
        tenant: &str,
        token: &str,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<()> {
        let hash = token_hash(token);
        match self {
            Db::Postgres(p) => {
                sqlx::query(
                    "INSERT INTO extension_auth_tokens (user_id, tenant_id, token_type, token_hash, expires_at) \
                     VALUES ($1, $2, 'refresh', $3, $4)",
                )
                .bind(user)
                .bind(tenant)
                .bind(&hash)
                .bind(expires)
                .execute(p)
                .await?;
            }
            Db::Sqlite(p) => {
                sqlx::query(
                    "INSERT INTO extension_auth_tokens (user_id, tenant_id, token_type, token_hash, expires_at) \
                     VALUES ($1, $2, 'refresh', $3, $4)",
                )
                .bind(user)
                .bind(tenant)
                .bind(&hash)
                .bind(expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .execute(p)
                .await?;
            }
        }
        Ok(())
    }

    /// Revokes a live refresh token and returns its owner (user, tenant);
    /// `None` when it is unknown, revoked or expired.
    pub async fn take_refresh(&self, token: &str) -> anyhow::Result<Option<(String, String)>> {
        let hash = token_hash(token);
        let row: Option<(String, String)> = match self {
            Db::Postgres(p) => {
                sqlx::query_as(
                    "UPDATE extension_auth_tokens SET is_revoked = true, revoked_at = now() \
                     WHERE token_hash = $1 AND token_type = 'refresh' AND NOT is_revoked AND expires_at > now() \
                     RETURNING user_id, tenant_id",
                )
                .bind(&hash)
                .fetch_optional(p)
                .await?
            }
            Db::Sqlite(p) => {
                sqlx::query_as(
                    "UPDATE extension_auth_tokens SET is_revoked = 1, revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     WHERE token_hash = $1 AND token_type = 'refresh' AND is_revoked = 0 \
                     AND expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     RETURNING user_id, tenant_id",
                )
                .bind(&hash)
                .fetch_optional(p)
                .await?
            }
        };
        Ok(row)
    }

    /// One line of the audit trail; a failure to write it is logged, not fatal.
    pub async fn audit(&self, user: Option<&str>, tenant: &str, action: &str, result: &str) {
        const SQL: &str = "INSERT INTO extension_auth_audit (user_id, tenant_id, action, result) VALUES ($1, $2, $3, $4)";
        let done = match self {
            Db::Postgres(p) => sqlx::query(SQL)
                .bind(user)
                .bind(tenant)
                .bind(action)
                .bind(result)
                .execute(p)
                .await
                .map(|_| ()),
            Db::Sqlite(p) => sqlx::query(SQL)
                .bind(user)
                .bind(tenant)
                .bind(action)
                .bind(result)
                .execute(p)
                .await
                .map(|_| ()),
        };
        if let Err(e) = done {
            tracing::warn!("audit: {e}");
        }
    }
}
