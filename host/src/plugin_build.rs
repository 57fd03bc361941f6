//! `gantry plugin build`: a plugin folder, in Rust or Python, made into a
//! component that `gantry plugin test DIR` and the plugin directory take.
//!
//! A folder with a `Cargo.toml` is a Rust crate built by cargo for
//! `wasm32-wasip2`; its component stays in cargo's target directory. A
//! folder with an `app.py` is a Python plugin built by componentize-py
//! against the folder's `wit/` (or the contract embedded in gantry) into
//! `NAME.wasm` beside `NAME.toml`. Either way the manifest names the plugin
//! and its kind, which is the world it is built for.

use crate::runtime::{Manifest, PluginKind};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py release gantry's Python support is built and tested
/// with (`.ci/run` installs it).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{dir}: not a plugin folder: {why}")]
    NotAPlugin { dir: PathBuf, why: String },

    #[error(
        "{dir} is a Python plugin, and building it needs componentize-py, which is not on PATH; install it with `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`"
    )]
    ToolMissing { dir: PathBuf },

    #[error("{dir}: {tool} could not be started")]
    Spawn {
        dir: PathBuf,
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{dir}: {tool} failed ({status}){}", tail(.output))]
    Failed {
        dir: PathBuf,
        tool: &'static str,
        status: std::process::ExitStatus,
        /// The tool's own output (its last lines are shown).
        output: String,
    },

    #[error("{dir}: {what}")]
    Io {
        dir: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The part of a tool's output that says what went wrong: componentize-py
/// wraps the Python error (file, line, the error) in a traceback of its own
/// launcher, so it starts after that; otherwise the last lines.
fn tail(output: &str) -> String {
    let output = output
        .split_once("AssertionError:")
        .map_or(output, |(_, error)| error);
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(15);
    format!(":\n{}", lines[from..].join("\n"))
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
    pub fn detect(dir: &Path) -> Result<Folder, BuildError> {
        let not = |why: String| BuildError::NotAPlugin {
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

    /// Builds the component. The tool's output is captured and shown only
    /// when it fails.
    pub fn build(&self, cargo_target_dir: Option<&Path>) -> Result<Built, BuildError> {
        let built = self.output(cargo_target_dir);
        match self.language {
            Language::Rust => {
                let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
                cargo
                    .args(["build", "--target", "wasm32-wasip2", "--release"])
                    .current_dir(&self.dir);
                if let Some(dir) = cargo_target_dir {
                    cargo.env("CARGO_TARGET_DIR", dir);
                }
                self.run("cargo", cargo)?;
            }
            Language::Python => self.componentize(&built.wasm)?,
        }
        if !built.wasm.is_file() {
            return Err(BuildError::NotAPlugin {
                dir: self.dir.clone(),
                why: format!(
                    "the build succeeded but left no {}; is it a cdylib?",
                    built.wasm.display()
                ),
            });
        }
        Ok(built)
    }

    fn componentize(&self, wasm: &Path) -> Result<(), BuildError> {
        let io = |what: String| {
            let dir = self.dir.clone();
            move |source| BuildError::Io { dir, what, source }
        };
        // The tool runs inside the folder; every path given to it is absolute.
        let dir = self
            .dir
            .canonicalize()
            .map_err(io("resolve the folder".into()))?;
        let wasm = &dir.join(wasm.file_name().expect("NAME.wasm"));
        // The folder's own contract when it has one, else this gantry's.
        let own_wit = dir.join("wit");
        let scratch;
        let wit = if own_wit.join("plugin.wit").is_file() {
            own_wit
        } else {
            scratch = tempfile::tempdir().map_err(io("create a scratch directory".into()))?;
            std::fs::write(
                scratch.path().join("plugin.wit"),
                crate::scaffold::contract(),
            )
            .map_err(io("write the contract".into()))?;
            scratch.path().to_path_buf()
        };
        let partial = wasm.with_extension("wasm.partial");
        let mut cmd = Command::new("componentize-py");
        cmd.arg("-d")
            .arg(&wit)
            .args(["-w", self.kind.as_str(), "componentize", "app", "-p"])
            .arg(&dir)
            .arg("-o")
            .arg(&partial)
            .current_dir(&dir);
        let result = self.run("componentize-py", cmd);
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result?;
        std::fs::rename(&partial, wasm).map_err(io(format!("replace {}", wasm.display())))
    }

    fn run(&self, tool: &'static str, mut cmd: Command) -> Result<(), BuildError> {
        let output = cmd
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound if tool == "componentize-py" => BuildError::ToolMissing {
                    dir: self.dir.clone(),
                },
                _ => BuildError::Spawn {
                    dir: self.dir.clone(),
                    tool,
                    source,
                },
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            return Err(BuildError::Failed {
                dir: self.dir.clone(),
                tool,
                status: output.status,
                output: text,
            });
        }
        Ok(())
    }
}

/// The installed componentize-py's version, if it runs.
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

pub fn componentize_py_version() -> Option<String> {
    let out = Command::new("componentize-py")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_string)
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
    fn the_test_command_installs_the_pinned_componentize_py() {
        let script = include_str!("../../scripts/test");
        assert!(
            script.contains(&format!("componentize-py=={COMPONENTIZE_PY_VERSION}"))
                && script.contains(&format!("\"componentize-py {COMPONENTIZE_PY_VERSION}\"")),
            "scripts/test must install componentize-py {COMPONENTIZE_PY_VERSION}"
        );
    }

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
