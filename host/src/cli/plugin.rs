//! `gantry plugin list | inspect | test | new`.

use super::Context;
use super::output::table;
use crate::error::{CliResult, Exit, Failure};
use crate::runtime::bindings::types::{
    Alert, AlertState, CheckResult, Finding, FindingSeverity, HealthStatus, Kv, Metric, Severity,
};
use crate::runtime::{
    CallReport, Entry, Origin, Plugin, PluginKind, PluginSource, Runtime, inspect,
};
use crate::scaffold::{self, ScaffoldKind, SdkChoice};
use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List built-in plugins and those in the plugin directory
    List,
    /// Show a component's world, imports, exports and manifest
    Inspect {
        /// Path to NAME.wasm
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
    },
    /// Create a plugin crate that builds with
    /// `cargo build --target wasm32-wasip2 --release`
    New {
        kind: ScaffoldKind,
        name: String,
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

pub fn run(ctx: &Context, cmd: PluginCommand) -> CliResult {
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
        } => {
            let runtime = ctx.runtime()?;
            let plugin = resolve(ctx, &runtime, &plugin, manifest.as_deref())?;
            let settings = plugin.settings(settings)?;
            match plugin.kind() {
                PluginKind::HealthCheck => test_check(ctx, &runtime, &plugin, &settings, &target),
                PluginKind::Notifier => test_notifier(ctx, &runtime, &plugin, &settings),
                PluginKind::ConfigValidator => {
                    let file = file.ok_or_else(|| {
                        Failure::usage(anyhow!("a config-validator test needs --file PATH"))
                    })?;
                    test_validator(ctx, &runtime, &plugin, &settings, &file, &environment)
                }
                PluginKind::Migration => Err(Failure::usage(anyhow!(
                    "`{}` is a migration plugin; it runs inside `gantry migrate` (try --dry-run)",
                    plugin.name()
                ))),
            }
        }
        PluginCommand::New {
            kind,
            name,
            dir,
            sdk,
            vendor_sdk,
        } => {
            let sdk = match (sdk, vendor_sdk) {
                (Some(path), _) => SdkChoice::Path(path),
                (None, true) => SdkChoice::Vendored,
                (None, false) => SdkChoice::Default,
            };
            let created = scaffold::create(kind, &name, &dir, sdk).map_err(Failure::usage)?;
            if ctx.out.is_json() {
                ctx.out.json(&serde_json::json!({ "created": created }))?;
            } else {
                ctx.out.text(format!(
                    "created {}\n\nnext:\n  cd {}\n  cargo build --target wasm32-wasip2 --release\n  gantry plugin test . --set url=http://127.0.0.1:8080/health",
                    created.display(),
                    created.display()
                ))?;
            }
            Ok(Exit::Success)
        }
    }
}

#[derive(Serialize)]
struct ListRow {
    name: String,
    kind: Option<PluginKind>,
    version: Option<String>,
    source: String,
    sha256: Option<String>,
    capabilities: Vec<String>,
    status: &'static str,
    cache: Option<crate::runtime::CacheOutcome>,
    error: Option<String>,
}

fn list_row(entry: &Entry) -> ListRow {
    let manifest = entry.manifest.as_ref();
    let mut capabilities = Vec::new();
    if let Some(m) = manifest {
        let caps = &m.capabilities;
        if !caps.http.is_empty() {
            capabilities.push(format!("http: {}", caps.http.join(" ")));
        }
        if !caps.tcp.is_empty() {
            capabilities.push(format!("tcp: {}", caps.tcp.join(" ")));
        }
        if caps.smtp {
            capabilities.push("smtp".into());
        }
        if caps.sql {
            capabilities.push("sql".into());
        }
    }
    let (status, cache, sha256, error) = match &entry.loaded {
        Ok(plugin) => (
            "loaded",
            Some(plugin.cache),
            Some(plugin.sha256.clone()),
            None,
        ),
        Err(err) => ("failed", None, None, Some(err.to_string())),
    };
    ListRow {
        name: entry.name.clone(),
        kind: manifest.map(|m| m.kind),
        version: manifest.map(|m| m.version.clone()),
        source: entry.origin.to_string(),
        sha256,
        capabilities,
        status,
        cache,
        error,
    }
}

fn list(ctx: &Context) -> CliResult {
    let runtime = ctx.runtime()?;
    let registry = ctx.registry(&runtime);
    let rows: Vec<ListRow> = registry.entries().map(list_row).collect();
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
                match &r.error {
                    None => r.status.to_string(),
                    Some(err) => format!("failed: {err}"),
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
    ctx.out
        .text(format!("plugin directory: {}", ctx.plugin_dir().display()))?;
    Ok(Exit::Success)
}

fn inspect_cmd(ctx: &Context, path: &Path, manifest: Option<&Path>) -> CliResult {
    let runtime = ctx.runtime()?;
    let info = inspect(&runtime, path, manifest)?;
    if ctx.out.is_json() {
        let value = serde_json::json!({
            "path": info.path,
            "size": info.size,
            "sha256": info.sha256,
            "world": info.world,
            "imports": info.imports,
            "exports": info.exports,
            "manifest": info.manifest,
            "loads": info.loads.is_ok(),
            "load_error": info.loads.as_ref().err(),
        });
        ctx.out.json(&value)?;
        return Ok(Exit::Success);
    }
    let mut text = format!(
        "component: {}\nsize: {} bytes\nsha256: {}\nworld: {}\nimports:\n",
        info.path.display(),
        info.size,
        info.sha256,
        info.world
            .map(|w| format!("{w} ({})", crate::runtime::bindings::CONTRACT))
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
                "manifest: {}\n  name: {}\n  kind: {}\n  version: {}\n  http: {}\n  tcp: {}\n  smtp: {}\n  sql: {}\n  limits: {} MiB, {} ms\n  settings: {}\n",
                m.path.display(),
                m.name,
                m.kind,
                m.version,
                list_or_none(&m.http),
                list_or_none(&m.tcp),
                m.smtp,
                m.sql,
                m.memory_mib,
                m.timeout_ms,
                list_or_none(&m.settings),
            ));
        }
        None => text.push_str("manifest: none found\n"),
    }
    match &info.loads {
        Ok(()) => text.push_str("loads: yes"),
        Err(err) => text.push_str(&format!("loads: no: {err}")),
    }
    ctx.out.text(text)?;
    Ok(Exit::Success)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A name in the registry, a `.wasm` path, or a plugin crate directory.
fn resolve(
    ctx: &Context,
    runtime: &Runtime,
    what: &str,
    manifest: Option<&Path>,
) -> CliResult<Plugin> {
    let path = Path::new(what);
    let wasm = if path.is_dir() {
        Some(crate_component(path)?)
    } else if path.extension().is_some_and(|x| x == "wasm") || path.is_file() {
        Some(path.to_path_buf())
    } else {
        None
    };
    let manifest = match (manifest, &wasm) {
        (Some(m), _) => Some(m.to_path_buf()),
        (None, Some(_)) if path.is_dir() => Some(crate_manifest(path)?),
        _ => None,
    };
    if let Some(wasm) = wasm {
        let source = PluginSource::from_path(&wasm, manifest.as_deref())?;
        let pin = ctx
            .config
            .config
            .plugins
            .pins
            .get(&source.manifest.name)
            .cloned();
        return Ok(runtime.load(source, pin.as_deref())?);
    }
    // By name: a built-in, else the plugin directory.
    let pin = ctx.config.config.plugins.pins.get(what).map(String::as_str);
    if let Some(source) = PluginSource::builtin(what) {
        return Ok(runtime.load(source?, pin)?);
    }
    let candidate = ctx.plugin_dir().join(format!("{what}.wasm"));
    if candidate.is_file() {
        return Ok(runtime.load(PluginSource::from_path(&candidate, None)?, pin)?);
    }
    let known: Vec<&str> = PluginSource::builtin_names().collect();
    Err(Failure::usage(anyhow!(
        "no plugin named `{what}`: not a built-in ({}) and no {} exists",
        known.join(", "),
        candidate.display()
    )))
}

/// The package name of the crate in `dir`.
fn crate_name(dir: &Path) -> CliResult<String> {
    let cargo_toml = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml)
        .with_context(|| format!("{} is not a plugin crate (no Cargo.toml)", dir.display()))
        .map_err(Failure::usage)?;
    let value: toml::Value = toml::from_str(&text)
        .with_context(|| format!("cannot parse {}", cargo_toml.display()))
        .map_err(Failure::usage)?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(String::from)
        .ok_or_else(|| Failure::usage(anyhow!("{} has no package.name", cargo_toml.display())))
}

fn crate_manifest(dir: &Path) -> CliResult<PathBuf> {
    Ok(dir.join(format!("{}.toml", crate_name(dir)?)))
}

/// Where `cargo build --target wasm32-wasip2 --release` puts the crate's component.
fn crate_component(dir: &Path) -> CliResult<PathBuf> {
    let name = crate_name(dir)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.is_file() {
        return Err(Failure::usage(anyhow!(
            "{} does not exist; build the plugin first: (cd {} && cargo build --target wasm32-wasip2 --release)",
            wasm.display(),
            dir.display()
        )));
    }
    Ok(wasm)
}

#[derive(Serialize)]
struct MetricView {
    name: String,
    value: f64,
    unit: String,
    warn: Option<f64>,
    crit: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl From<&Metric> for MetricView {
    fn from(m: &Metric) -> Self {
        MetricView {
            name: m.name.clone(),
            value: m.value,
            unit: m.unit.clone(),
            warn: m.warn,
            crit: m.crit,
            min: m.min,
            max: m.max,
        }
    }
}

pub fn status_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Ok => "ok",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
        HealthStatus::Unknown => "unknown",
    }
}

/// Nagios perfdata: `label=value[unit];warn;crit;min;max`.
pub fn perfdata(metrics: &[Metric]) -> String {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    metrics
        .iter()
        .map(|m| {
            let text = format!(
                "{}={}{};{};{};{};{}",
                m.name,
                m.value,
                m.unit,
                num(m.warn),
                num(m.crit),
                num(m.min),
                num(m.max)
            );
            text.trim_end_matches(';').to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn test_check(
    ctx: &Context,
    runtime: &Runtime,
    plugin: &Plugin,
    settings: &crate::capabilities::config::Settings,
    target: &str,
) -> CliResult {
    let outcome = runtime.check(plugin, settings, target);
    let report = outcome.report;
    let result: CheckResult = match outcome.result {
        Ok(result) => result,
        Err(err) => {
            print_report(ctx, plugin, &report, Report::BeforeError)?;
            return Err(err.into());
        }
    };
    let exit = match result.status {
        HealthStatus::Ok | HealthStatus::Warning => Exit::Success,
        HealthStatus::Critical => Exit::Failed,
        HealthStatus::Unknown => Exit::Inconclusive,
    };
    if ctx.out.is_json() {
        let metrics: Vec<MetricView> = result.metrics.iter().map(MetricView::from).collect();
        let value = serde_json::json!({
            "plugin": plugin.name(),
            "kind": plugin.kind(),
            "status": status_name(result.status),
            "message": result.message,
            "metrics": metrics,
            "report": report_json(&report),
            "exit_code": exit as u8,
        });
        ctx.out.json(&value)?;
    } else {
        let mut line = format!(
            "{}: {}",
            status_name(result.status).to_uppercase(),
            result.message
        );
        if !result.metrics.is_empty() {
            line.push_str(&format!(" | {}", perfdata(&result.metrics)));
        }
        ctx.out.text(line)?;
        print_report(ctx, plugin, &report, Report::AfterResult)?;
    }
    Ok(exit)
}

fn test_alert() -> Alert {
    let now = chrono::Utc::now();
    Alert {
        id: format!("test-{}", now.timestamp_millis()),
        fingerprint: "gantry-plugin-test".into(),
        name: "GantryPluginTest".into(),
        severity: Severity::Warning,
        state: AlertState::Firing,
        summary: "test notice from `gantry plugin test`".into(),
        description: "If you can read this, the notifier delivers.".into(),
        labels: vec![Kv {
            key: "source".into(),
            value: "gantry-plugin-test".into(),
        }],
        annotations: Vec::new(),
        value: None,
        threshold: None,
        starts_at: now.to_rfc3339(),
        ends_at: None,
        acknowledged_by: None,
    }
}

fn test_notifier(
    ctx: &Context,
    runtime: &Runtime,
    plugin: &Plugin,
    settings: &crate::capabilities::config::Settings,
) -> CliResult {
    let outcome = runtime.notify(plugin, settings, &test_alert());
    let report = outcome.report;
    let delivered = match outcome.result {
        Ok(delivered) => delivered,
        Err(err) => {
            print_report(ctx, plugin, &report, Report::BeforeError)?;
            return Err(err.into());
        }
    };
    let exit = if delivered.is_ok() {
        Exit::Success
    } else {
        Exit::Failed
    };
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "plugin": plugin.name(),
            "kind": plugin.kind(),
            "delivered": delivered.is_ok(),
            "error": delivered.as_ref().err(),
            "report": report_json(&report),
            "exit_code": exit as u8,
        }))?;
    } else {
        match &delivered {
            Ok(()) => ctx.out.text("DELIVERED: the test alert was accepted")?,
            Err(why) => ctx.out.text(format!("REFUSED: {why}"))?,
        }
        print_report(ctx, plugin, &report, Report::AfterResult)?;
    }
    Ok(exit)
}

fn test_validator(
    ctx: &Context,
    runtime: &Runtime,
    plugin: &Plugin,
    settings: &crate::capabilities::config::Settings,
    file: &Path,
    environment: &str,
) -> CliResult {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Failure::usage)?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", file.display()))
        .map_err(Failure::usage)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = runtime.validate(plugin, settings, environment, &name, &json.to_string());
    let report = outcome.report;
    let findings: Vec<Finding> = match outcome.result {
        Ok(findings) => findings,
        Err(err) => {
            print_report(ctx, plugin, &report, Report::BeforeError)?;
            return Err(err.into());
        }
    };
    let severity = |f: &Finding| match f.severity {
        FindingSeverity::Error => "error",
        FindingSeverity::Warning => "warning",
        FindingSeverity::Info => "info",
    };
    let errors = findings
        .iter()
        .filter(|f| f.severity == FindingSeverity::Error)
        .count();
    let exit = if errors > 0 {
        Exit::Failed
    } else {
        Exit::Success
    };
    if ctx.out.is_json() {
        let list: Vec<_> = findings
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "severity": severity(f), "message": f.message}))
            .collect();
        ctx.out.json(&serde_json::json!({
            "plugin": plugin.name(),
            "findings": list,
            "report": report_json(&report),
            "exit_code": exit as u8,
        }))?;
    } else {
        if findings.is_empty() {
            ctx.out.text("no findings")?;
        }
        for f in &findings {
            ctx.out
                .text(format!("{}: {}: {}", severity(f), f.path, f.message))?;
        }
        print_report(ctx, plugin, &report, Report::AfterResult)?;
    }
    Ok(exit)
}

fn report_json(report: &CallReport) -> serde_json::Value {
    serde_json::json!({
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
        "logs": report.logs,
        "dropped_logs": report.dropped_logs,
        "stdout": report.stdout,
        "stderr": report.stderr,
        "denials": report.denials,
    })
}

/// Where a call's report goes: after a result (stdout, skipped with
/// `--json`, whose result carries it) or before an error (stderr, with
/// the plugin's stderr).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    AfterResult,
    BeforeError,
}

/// Plugin logs, denials and timing, after the result (to stdout) or
/// before an error (to stderr).
fn print_report(
    ctx: &Context,
    plugin: &Plugin,
    report: &CallReport,
    when: Report,
) -> CliResult<()> {
    if ctx.out.is_json() && when == Report::AfterResult {
        return Ok(());
    }
    let mut text = String::new();
    for line in &report.logs {
        text.push_str(&format!("  [{}] {}\n", line.level, line.message));
    }
    if report.dropped_logs > 0 {
        text.push_str(&format!(
            "  ... {} more log lines dropped\n",
            report.dropped_logs
        ));
    }
    for denial in &report.denials {
        text.push_str(&format!("  denied: {denial}\n"));
    }
    if !report.stderr.trim().is_empty() && when == Report::BeforeError {
        text.push_str(&format!(
            "  stderr: {}\n",
            report.stderr.trim_end().replace('\n', "\n          ")
        ));
    }
    let source = match &plugin.origin {
        Origin::Builtin => "built-in".to_string(),
        Origin::File(path) => path.display().to_string(),
    };
    text.push_str(&format!(
        "  ({} {} from {source}, {:.1} ms)",
        plugin.name(),
        plugin.manifest.version,
        report.elapsed.as_secs_f64() * 1000.0
    ));
    if when == Report::AfterResult {
        ctx.out.text(text)?;
    } else {
        eprintln!("{text}");
    }
    Ok(())
}
