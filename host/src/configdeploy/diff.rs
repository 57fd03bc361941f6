//! What a deploy or a restore would change in each file, as a unified diff
//! with every secret masked (a restore shows no contents at all: a backup
//! does not say where its secrets are).

use super::render::{self, Rendered};
use super::write::Planned;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Added,
    Changed,
    Unchanged,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub name: String,
    pub change: FileChange,
    pub holds_secrets: bool,
    /// A unified diff with every secret masked.
    pub diff: String,
}

/// The deployed file against what `rendered` would write.
pub fn diff_for(config_dir: &Path, rendered: &Rendered) -> FileDiff {
    let path = config_dir.join(&rendered.name);
    let current = std::fs::read_to_string(&path).ok();
    let change = match &current {
        None => FileChange::Added,
        Some(text) if text == &rendered.text => FileChange::Unchanged,
        Some(_) => FileChange::Changed,
    };
    let new_masked =
        render::serialise(&rendered.masked(), rendered.format, &path).unwrap_or_default();
    let old_masked = current
        .as_deref()
        .map(|text| match render::parse(text, rendered.format, &path) {
            Ok(value) => render::serialise(
                &render::mask(&value, &rendered.secret_paths),
                rendered.format,
                &path,
            )
            .unwrap_or_default(),
            Err(_) => "(the current file does not parse; its text is not shown)\n".to_string(),
        })
        .unwrap_or_default();
    FileDiff {
        name: rendered.name.clone(),
        change,
        holds_secrets: rendered.holds_secrets(),
        // A secret's value wherever else it appears (an old position, a
        // copy under another key) is masked as well, in every form.
        diff: render::scrub(
            &unified(&old_masked, &new_masked, &rendered.name),
            &rendered.secret_values,
        ),
    }
}

/// What a restore changes; contents are never shown (they may hold
/// secrets the backup does not say how to mask).
pub fn restore_diff(config_dir: &Path, plan: &Planned) -> FileDiff {
    let current = std::fs::read(config_dir.join(&plan.name)).ok();
    let change = match (&current, &plan.contents) {
        (None, None) => FileChange::Unchanged,
        (Some(_), None) => FileChange::Removed,
        (None, Some(_)) => FileChange::Added,
        (Some(a), Some(b)) if a == b => FileChange::Unchanged,
        _ => FileChange::Changed,
    };
    FileDiff {
        name: plan.name.clone(),
        change,
        holds_secrets: plan.mode & 0o077 == 0,
        diff: String::new(),
    }
}

fn unified(old: &str, new: &str, name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(&format!("{name} (deployed)"), &format!("{name} (rendered)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configdeploy::render::Format;
    use serde_json::json;

    /// The deployed file keeps the secret at a position the new render does
    /// not mark, and a literal under a secret-named key: neither shows.
    #[test]
    fn the_old_file_is_masked_by_its_own_secrets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("auth.json"),
            json!({"signing": "s3cret-value-xyz", "db_password": "literal-pw", "ttl": 30})
                .to_string(),
        )
        .unwrap();
        let value = json!({"jwt_secret_key": "s3cret-value-xyz", "ttl": 60});
        let rendered = Rendered {
            source: "base/auth.json".into(),
            name: "auth.json".into(),
            format: Format::Json,
            text: value.to_string(),
            value,
            secret_paths: vec!["/jwt_secret_key".into()],
            secret_values: vec!["s3cret-value-xyz".into()],
            origins: Default::default(),
        };
        let diff = diff_for(dir.path(), &rendered).diff;
        assert!(!diff.contains("s3cret-value-xyz"), "{diff}");
        assert!(!diff.contains("literal-pw"), "{diff}");
        assert!(diff.contains("********") && diff.contains("60"), "{diff}");
    }
}
