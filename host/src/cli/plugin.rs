//! `gantry plugin list | inspect | test | new`.

use super::Context;
use super::plugin_test;
use crate::capabilities::GrantValue;
use crate::error::{CliResult, Exit, Failure};
use crate::plugin_build::{self, Build, Built, COMPONENTIZE_PY_VERSION, Folder, Language};
use crate::report::table;
use crate::runtime::narrow::OperatorGrant;
use crate::runtime::{Entry, ManifestSummary, PluginKind, inspect, inspect_builtin};
use crate::scaffold::{self, Lang, ScaffoldKind, SdkChoice};
use anyhow::anyhow;
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List built-in plugins and those in the plugin directory
    List,
    /// Show a component's world, imports, exports and manifest
    Inspect {
        /// Path to NAME.wasm, or the name of a plugin in the plugin directory
        path: PathBuf,
        /// Manifest [default: NAME.toml beside the component]
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Call a plugin once and print what it returned.
    ///
    /// Exit codes: 0 ok or warning (health checks), delivered (notifiers),
    /// no errors (validators); 1 critical, refused, or the plugin failed;
    /// 2 bad usage; 3 unknown.
    Test {
        /// A plugin name, a NAME.wasm path, or a plugin crate directory
        plugin: String,
        /// A setting for the plugin (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
        /// What a health check looks at (URL, host:port, ...)
        #[arg(long, default_value = "")]
        target: String,
        /// Manifest [default: NAME.toml beside the component]
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Config file to validate (config-validator plugins)
        #[arg(long)]
        file: Option<PathBuf>,
        /// Environment for a config-validator plugin
        #[arg(long, default_value = "development")]
        environment: String,
        /// Also trust the CA certificates in this PEM file for the plugin's
        /// HTTPS (beside the platform's trust store and SSL_CERT_FILE)
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// Create a plugin folder (a Rust crate, or a Python app) that
    /// `gantry plugin build` makes into a component
    New {
        kind: ScaffoldKind,
        name: String,
        /// The plugin's language
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Parent directory of the new crate
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to the gantry-plugin SDK [default: the one gantry was built
        /// from, else a copy vendored into the crate]
        #[arg(long, conflicts_with = "vendor_sdk")]
        sdk: Option<PathBuf>,
        /// Put a copy of the SDK inside the new crate
        #[arg(long)]
        vendor_sdk: bool,
    },
    /// Build a plugin folder into a component: cargo for a Rust crate,
    /// componentize-py for a Python app. `plugin test DIR` then finds it.
    Build {
        /// The plugin folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Also copy the component and its manifest into the plugin
        /// directory, where a running gantry picks them up
        #[arg(long)]
        install: bool,
    },
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("{text:?} has an empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

pub async fn run(ctx: &Context, cmd: PluginCommand) -> CliResult {
    match cmd {
        PluginCommand::List => list(ctx),
        PluginCommand::Inspect { path, manifest } => inspect_cmd(ctx, &path, manifest.as_deref()),
        PluginCommand::Test {
            plugin,
            settings,
            target,
            manifest,
            file,
            environment,
            ca_file,
        } => {
            let registry = ctx.registry()?;
            let plugin = registry.lookup(&plugin, manifest.as_deref())?;
            let settings = plugin.settings(settings)?;
            let call = plugin_test::Call {
                runtime: ctx.runtime()?,
                plugin,
                settings,
                options: crate::runtime::CallOptions {
                    ca_file,
                    ..Default::default()
                },
            };
            match call.plugin.kind() {
                PluginKind::HealthCheck => plugin_test::check(ctx, call, target).await,
                PluginKind::Notifier => plugin_test::notifier(ctx, call).await,
                PluginKind::ConfigValidator => {
                    let file = file.ok_or_else(|| {
                        Failure::usage(anyhow!("a config-validator test needs --file PATH"))
                    })?;
                    plugin_test::validator(ctx, call, &file, &environment).await
                }
                PluginKind::Migration => Err(Failure::usage(anyhow!(
                    "`{}` is a migration plugin; it runs inside `gantry migrate` (try --dry-run)",
                    call.plugin.name()
                ))),
            }
        }
        PluginCommand::New {
            kind,
            name,
            lang,
            dir,
            sdk,
            vendor_sdk,
        } => {
            let sdk = match (sdk, vendor_sdk) {
                (Some(path), _) => SdkChoice::Path(path),
                (None, true) => SdkChoice::Vendored,
                (None, false) => SdkChoice::Default,
            };
            let created = scaffold::create(lang, kind, &name, &dir, sdk).map_err(Failure::usage)?;
            if ctx.out.is_json() {
                ctx.out.json(&serde_json::json!({ "created": created }))?;
            } else {
                let install = match lang {
                    Lang::Python => format!(
                        "  pip install componentize-py=={COMPONENTIZE_PY_VERSION}   # once\n"
                    ),
                    Lang::Rust => String::new(),
                };
                ctx.out.text(format!(
                    "created {}\n\nnext:\n  cd {}\n{install}  gantry plugin build .\n  gantry plugin test . --set url=http://127.0.0.1:8080/health",
                    created.display(),
                    created.display()
                ))?;
            }
            Ok(Exit::Success)
        }
        PluginCommand::Build { dir, install } => build(ctx, &dir, install),
    }
}

fn build(ctx: &Context, dir: &Path, install: bool) -> CliResult {
    let folder = Folder::detect(dir).map_err(Failure::usage)?;
    if folder.language == Language::Python
        && let Some(found) = plugin_build::componentize_py_version()
        && found != COMPONENTIZE_PY_VERSION
    {
        tracing::warn!(
            "componentize-py {found} is on PATH; gantry is tested with {COMPONENTIZE_PY_VERSION}"
        );
    }
    let started = std::time::Instant::now();
    let built = folder
        .build(ctx.settings.cargo_target_dir.as_deref())
        .map_err(Failure::usage)?;
    let took = started.elapsed();
    // What it built must load here, or it is not done.
    let plugin = ctx
        .registry()?
        .lookup(&built.wasm.to_string_lossy(), Some(&built.manifest))?;
    let installed = if install {
        Some(install_into(&ctx.settings.plugin_dir, &folder, &built)?)
    } else {
        None
    };
    let size = std::fs::metadata(&built.wasm).map(|m| m.len()).unwrap_or(0);
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "name": folder.name,
            "language": folder.language,
            "kind": folder.kind,
            "wasm": built.wasm,
            "manifest": built.manifest,
            "bytes": size,
            "sha256": plugin.sha256,
            "build_ms": took.as_millis() as u64,
            "installed": installed,
        }))?;
        return Ok(Exit::Success);
    }
    let mut text = format!(
        "built {} ({:?} {}) in {:.1} s\n  component: {} ({:.1} MB)\n  manifest:  {}",
        folder.name,
        folder.language,
        folder.kind,
        took.as_secs_f64(),
        built.wasm.display(),
        size as f64 / 1e6,
        built.manifest.display(),
    );
    match installed {
        Some(to) => text.push_str(&format!("\n  installed: {}", to.display())),
        None => text.push_str(&format!(
            "\nnext: gantry plugin test {}   (or --install to put it in {})",
            dir.display(),
            ctx.settings.plugin_dir.display()
        )),
    }
    ctx.out.text(text)?;
    Ok(Exit::Success)
}

/// Copies the manifest, then the component, into `plugin_dir`, each by a
/// rename so a watching gantry never reads half a file.
fn install_into(plugin_dir: &Path, folder: &Folder, built: &Built) -> Result<PathBuf, Failure> {
    let fail = |what: String| move |e: std::io::Error| Failure::failed(anyhow!("{what}: {e}"));
    std::fs::create_dir_all(plugin_dir)
        .map_err(fail(format!("create {}", plugin_dir.display())))?;
    let wasm = plugin_dir.join(format!("{}.wasm", folder.name));
    for (from, to) in [
        (
            &built.manifest,
            plugin_dir.join(format!("{}.toml", folder.name)),
        ),
        (&built.wasm, wasm.clone()),
    ] {
        let partial = to.with_extension("partial");
        std::fs::copy(from, &partial)
            .and_then(|_| std::fs::rename(&partial, &to))
            .map_err(fail(format!(
                "install {} as {}",
                from.display(),
                to.display()
            )))?;
    }
    Ok(wasm)
}

#[derive(Serialize)]
struct ListRow {
    name: String,
    kind: Option<PluginKind>,
    version: Option<String>,
    source: String,
    sha256: Option<String>,
    pin: Option<String>,
    capabilities: Vec<String>,
    status: &'static str,
    cache: Option<crate::runtime::CacheOutcome>,
    error: Option<String>,
    /// Versions made current so far (hot reloads bump it).
    generation: u64,
    /// The newest version failed to load; the last good one still serves.
    update_error: Option<String>,
}

fn list_row(entry: &Entry) -> ListRow {
    let manifest = entry.manifest.as_ref();
    let mut capabilities = Vec::new();
    if let Some(m) = manifest {
        for (name, grant) in &m.capabilities.entries {
            match grant {
                GrantValue::List(list) if !list.is_empty() => {
                    capabilities.push(format!("{name}: {}", list.join(" ")))
                }
                GrantValue::Flag(true) => capabilities.push(name.clone()),
                GrantValue::Text(level) => capabilities.push(format!("{name}: {level}")),
                _ => {}
            }
        }
    }
    let (status, cache, sha256, pin, error) = match &entry.loaded {
        Ok(plugin) => (
            "loaded",
            Some(plugin.cache),
            Some(plugin.sha256.clone()),
            Some(plugin.pin.clone()),
            None,
        ),
        Err(err) => ("failed", None, None, None, Some(err.to_string())),
    };
    ListRow {
        name: entry.name.clone(),
        kind: manifest.map(|m| m.kind),
        version: manifest.map(|m| m.version.clone()),
        source: entry.origin.to_string(),
        sha256,
        pin,
        capabilities,
        status,
        cache,
        error,
        generation: entry.generation,
        update_error: entry.failed_update.as_ref().map(|e| e.to_string()),
    }
}

fn list(ctx: &Context) -> CliResult {
    let registry = ctx.registry()?;
    let rows: Vec<ListRow> = registry.entries().iter().map(list_row).collect();
    // A pin or grant under a mistyped name would silently do nothing.
    let plugins = &ctx.settings.config.config.plugins;
    let named = plugins
        .pins
        .keys()
        .map(|n| ("pins", n))
        .chain(plugins.grants.keys().map(|n| ("grants", n)));
    for (table, name) in named {
        if !rows.iter().any(|r| &r.name == name) {
            ctx.out.note(format!(
                "note: plugins.{table}.{name} names no plugin here (built in or in {}); a migration step's plugin is matched when it runs",
                ctx.settings.plugin_dir.display()
            ));
        }
    }
    if ctx.out.is_json() {
        ctx.out.json(&rows)?;
        return Ok(Exit::Success);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.map(|k| k.to_string()).unwrap_or_else(|| "?".into()),
                r.version.clone().unwrap_or_else(|| "?".into()),
                r.source.clone(),
                r.sha256
                    .as_deref()
                    .map(|s| s[..12].to_string())
                    .unwrap_or_else(|| "-".into()),
                if r.capabilities.is_empty() {
                    "-".into()
                } else {
                    r.capabilities.join("; ")
                },
                match (&r.error, &r.update_error) {
                    (Some(err), _) => format!("failed: {err}"),
                    (None, Some(err)) => format!("{} (newest version refused: {err})", r.status),
                    (None, None) => r.status.to_string(),
                },
            ]
        })
        .collect();
    ctx.out.text(table(
        &[
            "NAME",
            "KIND",
            "VERSION",
            "SOURCE",
            "SHA256",
            "CAPABILITIES",
            "STATUS",
        ],
        &cells,
    ))?;
    ctx.out.text(format!(
        "plugin directory: {}",
        ctx.settings.plugin_dir.display()
    ))?;
    Ok(Exit::Success)
}

fn inspect_cmd(ctx: &Context, path: &Path, manifest: Option<&Path>) -> CliResult {
    let runtime = ctx.runtime()?;
    // A bare name is the plugin directory's NAME.wasm, else a built-in.
    let info = match path.to_str() {
        Some(name) if !path.exists() && !name.contains(['/', '.']) => {
            let in_dir = ctx.settings.plugin_dir.join(format!("{name}.wasm"));
            match inspect_builtin(&runtime, name) {
                Some(info) if !in_dir.exists() => info?,
                _ => inspect(&runtime, &in_dir, manifest)?,
            }
        }
        _ => inspect(&runtime, path, manifest)?,
    };
    if ctx.out.is_json() {
        let value = serde_json::json!({
            "path": info.path,
            "size": info.size,
            "sha256": info.sha256,
            "pin": info.pin,
            "world": info.world,
            "imports": info.imports,
            "exports": info.exports,
            "manifest": info.manifest,
            "operator": info.operator,
            "effective": info.effective,
            "loads": info.loads.is_ok(),
            "load_error": info.loads.as_ref().err(),
        });
        ctx.out.json(&value)?;
        return Ok(Exit::Success);
    }
    let mut text = format!(
        "component: {}\nsize: {} bytes\nsha256: {}\npin: {}\nworld: {}\nimports:\n",
        info.path.display(),
        info.size,
        info.sha256,
        info.pin
            .as_deref()
            .map(|p| format!("{p}   (plugins.pins.NAME: component and manifest)"))
            .unwrap_or_else(|| "none without a manifest".into()),
        info.world
            .map(|w| format!("{w} ({})", crate::bindings::CONTRACT))
            .unwrap_or_else(|| "none of gantry's worlds".into()),
    );
    for import in &info.imports {
        text.push_str(&format!("  {import}\n"));
    }
    text.push_str("exports:\n");
    for export in &info.exports {
        text.push_str(&format!("  {export}\n"));
    }
    match &info.manifest {
        Some(m) => {
            text.push_str(&format!(
                "manifest: {}\n  name: {}\n  kind: {}\n  version: {}\n",
                m.path.display(),
                m.name,
                m.kind,
                m.version,
            ));
            for (capability, shown) in &m.grants {
                text.push_str(&format!("  {capability}: {}\n", shown_value(shown)));
            }
            text.push_str(&format!(
                "  limits: {} MiB, {} ms\n  settings: {}\n",
                m.memory_mib,
                m.timeout_ms,
                list_or_none(&m.settings),
            ));
        }
        None => text.push_str("manifest: none found\n"),
    }
    if let Some(m) = &info.manifest {
        text.push_str(&grants_table(
            m,
            info.operator.as_ref(),
            info.effective.as_ref(),
        ));
    }
    match &info.loads {
        Ok(()) => text.push_str("loads: yes"),
        Err(err) => text.push_str(&format!("loads: no: {err}")),
    }
    ctx.out.text(text)?;
    Ok(Exit::Success)
}

/// Manifest, operator (`plugins.grants.NAME`) and effective grants side
/// by side.
fn grants_table(
    manifest: &ManifestSummary,
    operator: Option<&OperatorGrant>,
    effective: Option<&ManifestSummary>,
) -> String {
    let unset = || "-".to_string();
    let capabilities: Vec<&'static str> = manifest.grants.keys().copied().collect();
    let of = |m: &ManifestSummary| -> Vec<String> {
        let mut column: Vec<String> = capabilities
            .iter()
            .map(|c| m.grants.get(c).map_or_else(unset, shown_value))
            .collect();
        column.extend([
            format!("{} MiB", m.memory_mib),
            format!("{} ms", m.timeout_ms),
            m.http_requests_per_call
                .map_or("default".into(), |n| n.to_string()),
            m.http_bytes_per_call
                .map_or("default".into(), |n| n.to_string()),
        ]);
        column
    };
    let width = capabilities.len() + 4;
    let op: Vec<String> = match operator {
        None => vec![unset(); width],
        Some(o) => {
            let entries = crate::capabilities::operator_entries(o);
            let mut column: Vec<String> = capabilities
                .iter()
                .map(|c| entries.get(c).map_or_else(unset, shown_value))
                .collect();
            column.extend([
                o.limits
                    .memory_mib
                    .map_or_else(unset, |n| format!("{n} MiB")),
                o.limits
                    .timeout_ms
                    .map_or_else(unset, |n| format!("{n} ms")),
                o.limits
                    .http_requests_per_call
                    .map_or_else(unset, |n| n.to_string()),
                o.limits
                    .http_bytes_per_call
                    .map_or_else(unset, |n| n.to_string()),
            ]);
            column
        }
    };
    let eff = effective.map_or_else(|| vec!["(does not load)".to_string(); width], of);
    let man = of(manifest);
    let names: Vec<String> = capabilities
        .iter()
        .map(|c| c.to_string())
        .chain(
            ["memory", "timeout", "http requests/call", "http bytes/call"]
                .iter()
                .map(|s| s.to_string()),
        )
        .collect();
    let rows: Vec<Vec<String>> = names
        .iter()
        .enumerate()
        .map(|(i, row)| vec![row.clone(), man[i].clone(), op[i].clone(), eff[i].clone()])
        .collect();
    let grid = table(
        &["", "manifest", "operator (plugins.grants)", "effective"],
        &rows,
    );
    let indented: Vec<String> = grid.lines().map(|l| format!("  {l}")).collect();
    format!("grants:\n{}\n", indented.join("\n"))
}

/// A capability's summary or operator entry as a cell: a list's entries
/// (or `none`), a flag, a level; `none` for null.
fn shown_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shown_value).collect();
            list_or_none(&items)
        }
        other => other.to_string(),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
