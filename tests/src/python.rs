//! componentize-py for the Python plugin tests: the pinned release from
//! PATH when it is there (`.ci/run` installs it), else installed once from
//! PyPI into a virtualenv under `target/`, so `cargo test` needs no step
//! of its own.

use gantry::plugin_build::{COMPONENTIZE_PY_VERSION, componentize_py_version};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A PATH on which `componentize-py` is the pinned release.
pub fn path_with_componentize_py() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_default();
        if componentize_py_version().as_deref() == Some(COMPONENTIZE_PY_VERSION) {
            return path;
        }
        let venv = install_into_venv();
        format!("{}:{path}", venv.join("bin").display())
    })
}

fn install_into_venv() -> PathBuf {
    let venv = crate::gantry_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let tool = venv.join("bin/componentize-py");
    if !tool.is_file() {
        let ok = |cmd: &mut Command, what: &str| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        ok(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                &format!("componentize-py=={COMPONENTIZE_PY_VERSION}"),
            ]),
            "pip install componentize-py",
        );
    }
    venv
}
