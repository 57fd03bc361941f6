//! `gantry plugin new`: a standalone plugin crate, ready to build with
//! `cargo build --target wasm32-wasip2 --release` wherever it is created.
//!
//! The crate depends on the gantry-plugin SDK by path: the SDK gantry was
//! built from when that tree still exists, else a copy vendored into the
//! crate from the sources embedded in this binary. Never overwrites an
//! existing directory.

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

/// Creates `parent/name`; returns its path.
pub fn create(
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
        ScaffoldKind::HealthCheck => (HEALTH_CHECK_LIB, HEALTH_CHECK_MANIFEST),
        ScaffoldKind::Notifier => (NOTIFIER_LIB, NOTIFIER_MANIFEST),
    };
    let fill = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@SDK@", &sdk.display().to_string().replace('\\', "/"))
    };
    fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    fs::write(dir.join("src/lib.rs"), fill(lib))?;
    fs::write(dir.join(format!("{name}.toml")), fill(manifest))?;
    fs::write(dir.join("README.md"), fill(README))?;
    fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(())
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

const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
gantry-plugin = { path = "@SDK@" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# A plugin is its own workspace, wherever it is created.
[workspace]
"#;

const README: &str = r#"# @NAME@

A gantry plugin.

    cargo build --target wasm32-wasip2 --release
    gantry plugin test . --set url=http://127.0.0.1:8080/health

To install it, copy the component and its manifest into the plugin
directory (`.gantry/plugins` by default, or `plugins.dir` in the config):

    cp target/wasm32-wasip2/release/$(echo @NAME@ | tr - _).wasm .gantry/plugins/@NAME@.wasm
    cp @NAME@.toml .gantry/plugins/@NAME@.toml

`@NAME@.toml` says what the plugin may reach: add destinations under
`[capabilities]`, settings under `[settings.NAME]`.
"#;

const HEALTH_CHECK_MANIFEST: &str = r#"name = "@NAME@"
kind = "health-check"
version = "0.1.0"
description = "A health check."

[capabilities]
# Where the plugin may send HTTP requests: scheme://host:port entries, or a
# setting in braces whose value is a URL the operator chose.
http = ["{url}", "{target}"]

[limits]
memory_mib = 16
timeout_ms = 5000

[settings.url]
description = "URL to check; defaults to the target"
"#;

const HEALTH_CHECK_LIB: &str = r#"//! `@NAME@`: a gantry health check.

use gantry_plugin::http::{describe, Request};
use gantry_plugin::{config, CheckResult, HealthCheck, Metric};

struct Check;

impl HealthCheck for Check {
    fn check(target: String) -> CheckResult {
        let url = match config::get("url") {
            Some(url) => url,
            None if !target.is_empty() => target,
            None => return CheckResult::unknown("setting `url` is required (or give a target)"),
        };
        match Request::get(&url).timeout_ms(5000).send() {
            Ok(response) if (200..300).contains(&response.status) => CheckResult::ok(format!(
                "{url} answered {} in {} ms",
                response.status, response.elapsed_ms
            ))
            .metric(Metric::new("time", f64::from(response.elapsed_ms), "ms")),
            Ok(response) => CheckResult::critical(format!("{url} answered {}", response.status)),
            Err(err) => CheckResult::critical(format!("{url}: {}", describe(&err))),
        }
    }
}

gantry_plugin::health_check!(Check);
"#;

const NOTIFIER_MANIFEST: &str = r#"name = "@NAME@"
kind = "notifier"
version = "0.1.0"
description = "An alert channel."

[capabilities]
http = ["{url}"]

[limits]
memory_mib = 16
timeout_ms = 10000

[settings.url]
description = "where alerts are POSTed"
required = true
"#;

const NOTIFIER_LIB: &str = r#"//! `@NAME@`: a gantry notifier that POSTs each notification (a group of
//! alerts, shaped like Alertmanager's webhook payload) as JSON.

use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{config, AlertState, DeliveryError, Notification, Notifier};

struct Channel;

impl Notifier for Channel {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let url = config::require("url").map_err(DeliveryError::permanent)?;
        let state = |s: AlertState| match s {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        let alerts: Vec<String> = n
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{{\"status\":\"{}\",\"name\":{},\"summary\":{},\"fingerprint\":{}}}",
                    state(a.status),
                    quote(&a.name),
                    quote(&a.summary),
                    quote(&a.fingerprint)
                )
            })
            .collect();
        let body = format!(
            "{{\"receiver\":{},\"status\":\"{}\",\"groupKey\":{},\"test\":{},\"alerts\":[{}]}}",
            quote(&n.receiver),
            state(n.status),
            quote(&n.group_key),
            n.test,
            alerts.join(",")
        );
        let response = Request::post(&url)
            .header("idempotency-key", &n.idempotency_key)
            .json(body)
            .send()
            .map_err(|err| match err {
                HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
                    DeliveryError::permanent(describe(&err))
                }
                other => DeliveryError::retry(describe(&other)),
            })?;
        DeliveryError::from_status(&url, response.status, response.header("retry-after"))
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

gantry_plugin::notifier!(Channel);
"#;

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
            ScaffoldKind::HealthCheck,
            "taken",
            tmp.path(),
            SdkChoice::Default,
        )
        .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
