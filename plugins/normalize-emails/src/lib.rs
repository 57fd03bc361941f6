//! `normalize-emails`: the data backfill behind migration 005.
//!
//! `auth_users.email` holds addresses as users typed them (`" Alice
//! <Alice.Smith+news@GoogleMail.com>"`); `email_canonical` is the form
//! lookups and the unique index use (`alicesmith@gmail.com`). The rules —
//! display-name stripping, Unicode lowercasing, provider aliases, dots and
//! `+tags` that a provider ignores — are more than SQL says simply, and
//! must be the same on PostgreSQL and SQLite.
//!
//! Runs inside the migration's transaction: if anything fails, nothing of
//! it stays.

use gantry_plugin::sql::{self, Value};
use gantry_plugin::{Migration, log};

struct NormalizeEmails;

impl Migration for NormalizeEmails {
    fn up() -> Result<(), String> {
        let rows = sql::query(
            "SELECT id, email FROM auth_users WHERE email IS NOT NULL ORDER BY id",
            &[],
        )?;
        let (mut filled, mut unusable) = (0u64, 0u64);
        for row in &rows.rows {
            let (Some(Value::Text(id)), Some(Value::Text(email))) = (row.first(), row.get(1))
            else {
                return Err(format!("unexpected row shape {row:?}"));
            };
            match canonical(email) {
                Some(canonical) => {
                    sql::execute(
                        "UPDATE auth_users SET email_canonical = $1 WHERE id = $2",
                        &[Value::Text(canonical), Value::Text(id.clone())],
                    )?;
                    filled += 1;
                }
                None => {
                    log::warn(&format!(
                        "user {id}: {email:?} is not an email address; left empty"
                    ));
                    unusable += 1;
                }
            }
        }
        log::info(&format!(
            "canonical email filled for {filled} users ({unusable} unusable)"
        ));
        Ok(())
    }

    fn down() -> Result<(), String> {
        let cleared = sql::execute(
            "UPDATE auth_users SET email_canonical = NULL WHERE email_canonical IS NOT NULL",
            &[],
        )?;
        log::info(&format!("canonical email cleared for {cleared} users"));
        Ok(())
    }
}

gantry_plugin::migration!(NormalizeEmails);

/// Providers that ignore `+tags`, and those that also ignore dots.
const PLUS_TAGS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "icloud.com",
    "fastmail.com",
    "proton.me",
    "protonmail.com",
];
const DOTLESS: &[&str] = &["gmail.com"];
const ALIASES: &[(&str, &str)] = &[("googlemail.com", "gmail.com"), ("pm.me", "proton.me")];

/// The canonical form of an address, or `None` if it is not one.
pub fn canonical(raw: &str) -> Option<String> {
    let mut text = raw.trim();
    // "Display Name <addr@host>" → addr@host
    if let (Some(open), Some(close)) = (text.rfind('<'), text.rfind('>'))
        && open < close
    {
        text = text[open + 1..close].trim();
    }
    let text = text.trim_matches(|c: char| c == '"' || c.is_whitespace());
    let (local, domain) = text.rsplit_once('@')?;
    let mut domain = domain.trim_end_matches('.').to_lowercase();
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || text.chars().any(char::is_whitespace)
    {
        return None;
    }
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == domain) {
        domain = (*to).to_string();
    }
    let mut local = local.to_lowercase();
    if PLUS_TAGS.contains(&domain.as_str())
        && let Some(plus) = local.find('+')
    {
        local.truncate(plus);
    }
    if DOTLESS.contains(&domain.as_str()) {
        local.retain(|c| c != '.');
    }
    (!local.is_empty()).then(|| format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical(" Alice <Alice.Smith+news@GoogleMail.com>").as_deref(),
            Some("alicesmith@gmail.com")
        );
        assert_eq!(
            canonical("bob+x@Example.COM.").as_deref(),
            Some("bob+x@example.com")
        );
        assert_eq!(
            canonical("ÉLODIE@exemple.fr").as_deref(),
            Some("élodie@exemple.fr")
        );
        assert_eq!(
            canonical("carol+tag@outlook.com").as_deref(),
            Some("carol@outlook.com")
        );
        assert_eq!(canonical("not an email"), None);
        assert_eq!(canonical("@nouser.com"), None);
        assert_eq!(canonical("x@localhost"), None);
    }
}
