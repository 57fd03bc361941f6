//! `gantry plugin test`: one call into a plugin, its result and its report
//! (logs, denials, timing) printed, and an exit code from the result.
//! The call runs on a blocking thread, off the async workers.

use super::Context;
use crate::bindings::types::{
    Alert, AlertState, CheckResult, DeliveryError, Finding, FindingSeverity, HealthStatus, Kv,
    Metric, Notification, Severity,
};
use crate::capabilities::config::Settings;
use crate::error::{CliResult, Exit, Failure};
use crate::nagios;
use crate::runtime::{CallOptions, CallReport, Origin, Outcome, Plugin, Runtime};
use anyhow::{Context as _, anyhow};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The plugin, its runtime and its checked settings.
pub struct Call {
    pub runtime: Arc<Runtime>,
    pub plugin: Arc<Plugin>,
    pub settings: Settings,
    pub options: CallOptions,
}

impl Call {
    /// Runs `f` on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime, &Plugin, &Settings, &CallOptions) -> Outcome<T> + Send + 'static,
    ) -> CliResult<Outcome<T>> {
        let (runtime, plugin, settings, options) = (
            Arc::clone(&self.runtime),
            Arc::clone(&self.plugin),
            Arc::clone(&self.settings),
            self.options.clone(),
        );
        tokio::task::spawn_blocking(move || f(&runtime, &plugin, &settings, &options))
            .await
            .map_err(|e| Failure::failed(anyhow!("the plugin call's thread failed: {e}")))
    }
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

pub async fn check(ctx: &Context, call: Call, target: String) -> CliResult {
    let outcome = call
        .run(move |rt, plugin, settings, options| rt.check_with(plugin, settings, &target, options))
        .await?;
    let plugin = &*call.plugin;
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
            "status": nagios::status_name(result.status),
            "message": result.message,
            "metrics": metrics,
            "report": report_json(&report),
            "exit_code": exit as u8,
        });
        ctx.out.json(&value)?;
    } else {
        ctx.out.text(nagios::line(&result))?;
        print_report(ctx, plugin, &report, Report::AfterResult)?;
    }
    Ok(exit)
}

/// A test notification: one firing alert, marked as a test.
pub fn test_notification() -> Notification {
    let now = chrono::Utc::now();
    let kv = |key: &str, value: &str| Kv {
        key: key.into(),
        value: value.into(),
    };
    let alert = Alert {
        fingerprint: "gantry-plugin-test".into(),
        status: AlertState::Firing,
        labels: vec![
            kv("alertname", "GantryPluginTest"),
            kv("severity", "warning"),
            kv("source", "gantry-plugin-test"),
        ],
        annotations: vec![
            kv("summary", "test notice from `gantry plugin test`"),
            kv(
                "description",
                "If you can read this, the notifier delivers.",
            ),
        ],
        starts_at: now.to_rfc3339(),
        ends_at: None,
        generator_url: String::new(),
        name: "GantryPluginTest".into(),
        severity: Severity::Warning,
        summary: "test notice from `gantry plugin test`".into(),
        description: "If you can read this, the notifier delivers.".into(),
        value: None,
        threshold: None,
        acknowledged_by: None,
    };
    Notification {
        receiver: "gantry-plugin-test".into(),
        status: AlertState::Firing,
        group_key: "{}:{alertname=\"GantryPluginTest\"}".into(),
        group_labels: vec![kv("alertname", "GantryPluginTest")],
        common_labels: alert.labels.clone(),
        common_annotations: alert.annotations.clone(),
        external_url: String::new(),
        alerts: vec![alert],
        truncated_alerts: 0,
        idempotency_key: format!("test-{}", now.timestamp_millis()),
        test: true,
    }
}

pub async fn notifier(ctx: &Context, call: Call) -> CliResult {
    let outcome = call
        .run(|rt, plugin, settings, options| {
            rt.notify_with(plugin, settings, &test_notification(), options)
        })
        .await?;
    let plugin = &*call.plugin;
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
            "error": delivered.as_ref().err().map(|e| match e {
                DeliveryError::Retry(r) => serde_json::json!({"retry": r.reason, "retry_after_seconds": r.retry_after_seconds}),
                DeliveryError::Permanent(p) => serde_json::json!({"permanent": p}),
            }),
            "report": report_json(&report),
            "exit_code": exit as u8,
        }))?;
    } else {
        match &delivered {
            Ok(()) => ctx.out.text("DELIVERED: the test notice was accepted")?,
            Err(DeliveryError::Retry(r)) => ctx.out.text(format!(
                "REFUSED (would retry{}): {}",
                r.retry_after_seconds
                    .map(|s| format!(" after {s} s"))
                    .unwrap_or_default(),
                r.reason
            ))?,
            Err(DeliveryError::Permanent(why)) => {
                ctx.out.text(format!("REFUSED (permanently): {why}"))?
            }
        }
        print_report(ctx, plugin, &report, Report::AfterResult)?;
    }
    Ok(exit)
}

pub async fn validator(ctx: &Context, call: Call, file: &Path, environment: &str) -> CliResult {
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
    let (env, json) = (environment.to_string(), json.to_string());
    let outcome = call
        .run(move |rt, plugin, settings, _| rt.validate(plugin, settings, &env, &name, &json))
        .await?;
    let plugin = &*call.plugin;
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
        text.push_str(&format!(
            "  [{}] {}\n",
            line.level,
            crate::escape::one_line(&line.message)
        ));
    }
    if report.dropped_logs > 0 {
        text.push_str(&format!(
            "  ... {} more log lines dropped\n",
            report.dropped_logs
        ));
    }
    for denial in &report.denials {
        text.push_str(&format!("  denied: {}\n", crate::escape::one_line(denial)));
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
        ctx.out.note(text);
    }
    Ok(())
}
