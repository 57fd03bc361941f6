//! A plugin's source folder, in Rust or Python: what it is, its manifest,
//! and where a build leaves its component. Building it is the CLI's
//! (`gantry plugin build`); the registry finds a folder's component here.

use crate::manifest::{Manifest, PluginKind};
use std::path::{Path, PathBuf};

/// A folder that is not a plugin, and why.
#[derive(Debug, thiserror::Error)]
#[error("{dir}: not a plugin folder: {why}")]
pub struct NotAPlugin {
    pub dir: PathBuf,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
}

/// A plugin source folder.
#[derive(Debug, Clone)]
pub struct Folder {
    pub dir: PathBuf,
    pub language: Language,
    /// The plugin's name (the manifest's, and the file stem of its files).
    pub name: String,
    pub kind: PluginKind,
    pub manifest: PathBuf,
    /// The Rust package name, whose library is the component.
    package: Option<String>,
}

/// A built component and its manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub wasm: PathBuf,
    pub manifest: PathBuf,
}

impl Folder {
    pub fn detect(dir: &Path) -> Result<Folder, NotAPlugin> {
        let not = |why: String| NotAPlugin {
            dir: dir.to_path_buf(),
            why,
        };
        if !dir.is_dir() {
            return Err(not("no such directory".into()));
        }
        let cargo_toml = dir.join("Cargo.toml");
        if cargo_toml.is_file() {
            let package = cargo_package(&cargo_toml).map_err(not)?;
            let manifest = dir.join(format!("{package}.toml"));
            let parsed = read_manifest(&manifest).map_err(not)?;
            return Ok(Folder {
                dir: dir.to_path_buf(),
                language: Language::Rust,
                name: parsed.name,
                kind: parsed.kind,
                manifest,
                package: Some(package),
            });
        }
        if dir.join("app.py").is_file() {
            let manifest = python_manifest(dir).map_err(not)?;
            let parsed = read_manifest(&manifest).map_err(not)?;
            return Ok(Folder {
                dir: dir.to_path_buf(),
                language: Language::Python,
                name: parsed.name,
                kind: parsed.kind,
                manifest,
                package: None,
            });
        }
        Err(not(
            "it has neither a Cargo.toml (a Rust plugin) nor an app.py (a Python plugin); `gantry plugin new` makes one".into(),
        ))
    }

    /// Where a build of this folder leaves its component. `cargo_target_dir`
    /// is `CARGO_TARGET_DIR` when set.
    pub fn output(&self, cargo_target_dir: Option<&Path>) -> Built {
        let wasm = match (&self.language, &self.package) {
            (Language::Rust, Some(package)) => cargo_target_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.dir.join("target"))
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", package.replace('-', "_"))),
            _ => self.dir.join(format!("{}.wasm", self.name)),
        };
        Built {
            wasm,
            manifest: self.manifest.clone(),
        }
    }

    /// A Python source (`*.py`, `*.wit`) changed since `built` was made, if
    /// any: testing that build would test old code. (A Rust folder is
    /// cargo's to keep fresh; its outputs are relinked, not rewritten.)
    pub fn newer_source(&self, built: &Built) -> Option<PathBuf> {
        if self.language != Language::Python {
            return None;
        }
        let built_at = std::fs::metadata(&built.wasm)
            .and_then(|m| m.modified())
            .ok()?;
        newer_than(&self.dir, built_at)
    }

    /// The command that builds this folder, for messages.
    pub fn build_hint(&self) -> String {
        format!("gantry plugin build {}", self.dir.display())
    }
}

/// The first `*.py` or `*.wit` under `dir` modified after `time`, skipping
/// caches and virtual environments.
fn newer_than(dir: &Path, time: std::time::SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let skip = [
                "__pycache__",
                ".git",
                ".venv",
                "venv",
                "target",
                "node_modules",
            ];
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            if let Some(found) = newer_than(&path, time) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|x| x == "py" || x == "wit")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > time)
        {
            return Some(path);
        }
    }
    None
}

fn cargo_package(cargo_toml: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(cargo_toml)
        .map_err(|e| format!("cannot read {}: {e}", cargo_toml.display()))?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", cargo_toml.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{} has no package.name", cargo_toml.display()))
}

/// The one plugin manifest (`*.toml` other than `pyproject.toml`) in `dir`.
fn python_manifest(dir: &Path) -> Result<PathBuf, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "pyproject.toml"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("it has an app.py but no NAME.toml manifest beside it".into()),
        _ => Err(format!(
            "it has several manifests ({}); keep one NAME.toml",
            found
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    if !path.is_file() {
        return Err(format!("no manifest {}", path.display()));
    }
    Manifest::read(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_neither_is_not_a_plugin() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Folder::detect(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("neither a Cargo.toml"), "{err}");
    }

    #[test]
    fn a_python_folder_needs_exactly_one_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("app.py"), "").unwrap();
        let err = Folder::detect(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no NAME.toml"), "{err}");
        for name in ["a.toml", "b.toml"] {
            std::fs::write(tmp.path().join(name), "").unwrap();
        }
        let err = Folder::detect(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("a.toml, b.toml"), "{err}");
    }

    #[test]
    fn a_python_folder_builds_beside_its_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("app.py"), "").unwrap();
        std::fs::write(
            tmp.path().join("pinger.toml"),
            "name = \"pinger\"\nkind = \"notifier\"\nversion = \"1\"\n",
        )
        .unwrap();
        let folder = Folder::detect(tmp.path()).unwrap();
        assert_eq!(folder.language, Language::Python);
        assert_eq!(folder.kind, PluginKind::Notifier);
        assert_eq!(folder.output(None).wasm, tmp.path().join("pinger.wasm"));
    }
}
