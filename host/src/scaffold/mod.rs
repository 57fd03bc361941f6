//! `gantry plugin new`: a standalone plugin folder, ready for `gantry
//! plugin build` wherever it is created.
//!
//! Rust: a crate that depends on the gantry-plugin SDK by path — the SDK
//! gantry was built from when that tree still exists, else a copy vendored
//! into the crate from the sources embedded in this binary. Python: an
//! `app.py` and the WIT it builds against, written from the contract
//! embedded in this binary so the two always match. Never overwrites an
//! existing directory.

mod python;
mod rust;

use crate::plugin_build::COMPONENTIZE_PY_VERSION;
use anyhow::{Context, bail};
use std::fs;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaffoldKind {
    HealthCheck,
    Notifier,
}

impl ScaffoldKind {
    /// The WIT world the plugin targets.
    pub fn world(self) -> &'static str {
        match self {
            ScaffoldKind::HealthCheck => "health-check",
            ScaffoldKind::Notifier => "notifier",
        }
    }
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    Rust,
    Python,
}

/// Which SDK the new crate depends on.
#[derive(Debug, Clone)]
pub enum SdkChoice {
    /// The tree gantry was built from if it still exists, else vendored.
    Default,
    /// The SDK at this path.
    Path(PathBuf),
    /// A copy inside the crate (`gantry-plugin/`).
    Vendored,
}

/// Creates `parent/name` for a plugin in `lang`; returns its path. `sdk`
/// only matters for Rust.
pub fn create(
    lang: Lang,
    kind: ScaffoldKind,
    name: &str,
    parent: &Path,
    sdk: SdkChoice,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or directory",
            dir.display()
        );
    }
    if lang == Lang::Python {
        fs::create_dir_all(dir.join("wit")).with_context(|| format!("create {}", dir.display()))?;
        let result = write_python(kind, name, &dir);
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        return result.map(|()| dir);
    }
    let vendored = PathBuf::from("gantry-plugin");
    let sdk = match sdk {
        SdkChoice::Path(path) => {
            if !path.join("Cargo.toml").is_file() {
                bail!("--sdk {}: no Cargo.toml there", path.display());
            }
            fs::canonicalize(path)?
        }
        SdkChoice::Default if sdk_built_from().join("Cargo.toml").is_file() => sdk_built_from(),
        SdkChoice::Default | SdkChoice::Vendored => vendored,
    };

    fs::create_dir_all(dir.join("src")).with_context(|| format!("create {}", dir.display()))?;
    let result = write_crate(kind, name, &dir, &sdk);
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result.map(|()| dir)
}

fn write_crate(kind: ScaffoldKind, name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<()> {
    if sdk.is_relative() {
        vendor_sdk(&dir.join(sdk))?;
    }
    let (lib, manifest) = match kind {
        ScaffoldKind::HealthCheck => (rust::HEALTH_CHECK_LIB, rust::HEALTH_CHECK_MANIFEST),
        ScaffoldKind::Notifier => (rust::NOTIFIER_LIB, rust::NOTIFIER_MANIFEST),
    };
    let fill = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@SDK@", &sdk.display().to_string().replace('\\', "/"))
    };
    fs::write(dir.join("Cargo.toml"), fill(rust::CARGO_TOML))?;
    fs::write(dir.join("src/lib.rs"), fill(lib))?;
    fs::write(dir.join(format!("{name}.toml")), fill(manifest))?;
    fs::write(dir.join("README.md"), fill(rust::README))?;
    fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(())
}

fn write_python(kind: ScaffoldKind, name: &str, dir: &Path) -> anyhow::Result<()> {
    let (app, manifest, test_args) = match kind {
        ScaffoldKind::HealthCheck => (
            python::HEALTH_CHECK_APP,
            python::HEALTH_CHECK_MANIFEST,
            python::HEALTH_CHECK_TEST_ARGS,
        ),
        ScaffoldKind::Notifier => (
            python::NOTIFIER_APP,
            python::NOTIFIER_MANIFEST,
            python::NOTIFIER_TEST_ARGS,
        ),
    };
    let fill = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@KIND@", kind.world())
            .replace("@TEST_ARGS@", test_args)
            .replace("@COMPONENTIZE_PY@", COMPONENTIZE_PY_VERSION)
    };
    fs::write(dir.join("app.py"), fill(app))?;
    fs::write(dir.join(format!("{name}.toml")), fill(manifest))?;
    fs::write(dir.join("README.md"), fill(python::README))?;
    fs::write(dir.join(".gitignore"), python::GITIGNORE)?;
    fs::write(dir.join("wit/plugin.wit"), contract())?;
    Ok(())
}

/// The WIT contract this binary was built with.
pub fn contract() -> &'static str {
    crate::bindings::CONTRACT_TEXT
}

/// The SDK source tree this binary was built from (it may be gone).
pub fn sdk_built_from() -> PathBuf {
    PathBuf::from(env!("GANTRY_SDK_DIR"))
}

fn vendor_sdk(to: &Path) -> anyhow::Result<()> {
    for (rel, contents) in embedded::SDK_FILES {
        let path = to.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and `-`, starting with a letter"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-check2").is_ok());
        for bad in ["", "My", "9lives", "a_b", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_embedded_sdk_is_complete() {
        let names: Vec<&str> = embedded::SDK_FILES.iter().map(|(n, _)| *n).collect();
        for needed in [
            "Cargo.toml",
            "src/lib.rs",
            "macros/Cargo.toml",
            "macros/src/lib.rs",
            "wit/plugin.wit",
        ] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("taken")).unwrap();
        let err = create(
            Lang::Rust,
            ScaffoldKind::HealthCheck,
            "taken",
            tmp.path(),
            SdkChoice::Default,
        )
        .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
