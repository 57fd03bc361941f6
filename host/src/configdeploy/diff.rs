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
        diff: unified(&old_masked, &new_masked, &rendered.name),
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
