//! Which database, from the config's `database` section or a URL; printed
//! only with the password removed.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database to connect to. `Display` never shows the password.
#[derive(Clone)]
pub struct DbTarget {
    url: String,
    dialect: Dialect,
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbTarget({})", self.redacted())
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DbTarget {
    /// Parses a `postgres://`, `postgresql://` or `sqlite:` URL.
    pub fn parse(url: &str) -> Result<DbTarget, String> {
        let url = url.trim();
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(format!(
                "database URL {:?} is neither postgres://… nor sqlite:…",
                redact(url)
            ));
        };
        Ok(DbTarget {
            url: url.to_string(),
            dialect,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The full URL, password included: for connecting only.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

/// Query parameters that carry a credential in database URLs.
const SECRET_PARAMS: [&str; 5] = ["password", "passwd", "pwd", "sslpassword", "secret"];

/// The URL with every password replaced by `***`: the userinfo's, and
/// query parameters such as `?password=`; in a URL that does not parse,
/// whatever sits where they would.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return redact_text(url);
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let secret = |k: &str| SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s));
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// `redact` for text that is not a URL: the part between `scheme://user:`
/// and the last `@` before the path, and every `password=` value.
fn redact_text(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    for key in SECRET_PARAMS {
        let mut from = 0;
        while let Some(found) = out[from..].to_ascii_lowercase().find(&format!("{key}=")) {
            let value = from + found + key.len() + 1;
            let end = out[value..]
                .find(['&', ' ', ';'])
                .map_or(out.len(), |i| value + i);
            out.replace_range(value..end, "***");
            from = value + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_password_is_redacted() {
        for (url, secret) in [
            ("postgres://app:hunter2@db:5432/auth", "hunter2"),
            (
                "postgres://app@db/auth?password=hunter2&sslmode=require",
                "hunter2",
            ),
            (
                "postgres://db/auth?sslmode=require&PASSWORD=hunter2",
                "hunter2",
            ),
            ("postgres://app:hun%20ter2@db/auth", "hun%20ter2"),
            // Does not parse (a space in the port); still nothing shown.
            ("postgres://app:hunter2@db:54 32/auth", "hunter2"),
            ("not a url password=hunter2 host=db", "hunter2"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} → {shown}");
            assert!(shown.contains("***"), "{url} → {shown}");
        }
        assert_eq!(
            redact("postgres://app@db/auth?sslmode=require"),
            "postgres://app@db/auth?sslmode=require"
        );
    }

    #[test]
    fn urls_choose_the_dialect() {
        assert_eq!(
            DbTarget::parse("sqlite://x.db").unwrap().dialect(),
            Dialect::Sqlite
        );
        assert_eq!(
            DbTarget::parse("postgresql://h/db").unwrap().dialect(),
            Dialect::Postgres
        );
        let err = DbTarget::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
