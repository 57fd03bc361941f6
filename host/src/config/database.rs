//! The spec's `database` section as a database to connect to.

use super::DatabaseConfig;
use crate::db::DbTarget;

impl DatabaseConfig {
    /// The spec's `database` section: a `url`, or host/port/user/password/
    /// database meaning PostgreSQL. `password` has already been resolved.
    pub fn target(&self, password: Option<&str>) -> Result<DbTarget, String> {
        let db = self;
        if let Some(url) = &db.url {
            if db.host.is_some() || db.database.is_some() || db.user.is_some() {
                return Err(
                    "`database.url` and `database.host/user/database` are exclusive; give one"
                        .into(),
                );
            }
            return DbTarget::parse(url);
        }
        let host = db.host.as_deref().unwrap_or("localhost");
        let port = db.port.unwrap_or(5432);
        let user = db.user.as_deref().unwrap_or("postgres");
        let name = db
            .database
            .as_deref()
            .ok_or("`database.database` (the database name) is required")?;
        let mut url = url::Url::parse("postgres://localhost").expect("static URL");
        url.set_host(Some(host))
            .map_err(|e| format!("`database.host` {host:?}: {e}"))?;
        url.set_port(Some(port))
            .map_err(|()| "`database.port` is invalid".to_string())?;
        url.set_username(user)
            .map_err(|()| "`database.user` is invalid".to_string())?;
        if let Some(password) = password {
            url.set_password(Some(password))
                .map_err(|()| "`database.password` is invalid".to_string())?;
        }
        url.set_path(name);
        if let Some(mode) = &db.sslmode {
            url.query_pairs_mut().append_pair("sslmode", mode);
        }
        if let Some(ca) = &db.sslrootcert {
            url.query_pairs_mut().append_pair("sslrootcert", ca);
        }
        DbTarget::parse(url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect;

    #[test]
    fn the_spec_section_becomes_a_postgres_url() {
        let db = DatabaseConfig {
            host: Some("localhost".into()),
            port: Some(5432),
            user: Some("postgres".into()),
            database: Some("kari".into()),
            ..DatabaseConfig::default()
        };
        let target = db.target(Some("p@ss/word")).unwrap();
        assert_eq!(target.dialect(), Dialect::Postgres);
        assert!(target.url().contains("p%40ss%2Fword"), "{}", target.url());
        assert_eq!(
            target.to_string(),
            "postgres://postgres:***@localhost:5432/kari"
        );
    }
}
