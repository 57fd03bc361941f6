//! `gantry plugin build`: a plugin folder, in Rust or Python, made into a
//! component that `gantry plugin test DIR` and the plugin directory take.
//!
//! A folder with a `Cargo.toml` is a Rust crate built by cargo for
//! `wasm32-wasip2`; its component stays in cargo's target directory. A
//! folder with an `app.py` is a Python plugin built by componentize-py
//! against the folder's `wit/` (or the contract embedded in gantry) into
//! `NAME.wasm` beside `NAME.toml`. Either way the manifest names the plugin
//! and its kind, which is the world it is built for.

pub use gantry_runtime::folder::{Built, Folder, Language, NotAPlugin};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py release gantry's Python support is built and tested
/// with (`.ci/run` installs it).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    NotAPlugin(#[from] NotAPlugin),

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

/// Building a plugin folder: cargo for Rust, componentize-py for Python.
pub trait Build {
    /// Builds the component. The tool's output is captured and shown only
    /// when it fails.
    fn build(&self, cargo_target_dir: Option<&Path>) -> Result<Built, BuildError>;
}

impl Build for Folder {
    fn build(&self, cargo_target_dir: Option<&Path>) -> Result<Built, BuildError> {
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
                run(self, "cargo", cargo)?;
            }
            Language::Python => componentize(self, &built.wasm)?,
        }
        if !built.wasm.is_file() {
            return Err(BuildError::NotAPlugin(NotAPlugin {
                dir: self.dir.clone(),
                why: format!(
                    "the build succeeded but left no {}; is it a cdylib?",
                    built.wasm.display()
                ),
            }));
        }
        Ok(built)
    }
}

fn componentize(folder: &Folder, wasm: &Path) -> Result<(), BuildError> {
    let io = |what: String| {
        let dir = folder.dir.clone();
        move |source| BuildError::Io { dir, what, source }
    };
    // The tool runs inside the folder; every path given to it is absolute.
    let dir = folder
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
            gantry_runtime::bindings::CONTRACT_TEXT,
        )
        .map_err(io("write the contract".into()))?;
        scratch.path().to_path_buf()
    };
    let partial = wasm.with_extension("wasm.partial");
    let mut cmd = Command::new("componentize-py");
    cmd.arg("-d")
        .arg(&wit)
        .args(["-w", folder.kind.as_str(), "componentize", "app", "-p"])
        .arg(&dir)
        .arg("-o")
        .arg(&partial)
        .current_dir(&dir);
    let result = run(folder, "componentize-py", cmd);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result?;
    std::fs::rename(&partial, wasm).map_err(io(format!("replace {}", wasm.display())))
}

fn run(folder: &Folder, tool: &'static str, mut cmd: Command) -> Result<(), BuildError> {
    let output = cmd
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound if tool == "componentize-py" => BuildError::ToolMissing {
                dir: folder.dir.clone(),
            },
            _ => BuildError::Spawn {
                dir: folder.dir.clone(),
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
            dir: folder.dir.clone(),
            tool,
            status: output.status,
            output: text,
        });
    }
    Ok(())
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
}
