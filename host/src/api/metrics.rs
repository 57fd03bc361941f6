//! `GET /metrics`: the auth figures per window and gantry's own, in
//! Prometheus text format (base units, `_total` counters, HELP and TYPE
//! for every family), so `promtool check metrics` passes.

use super::Api;
use crate::monitor::Kind;
use crate::monitor::rules::{Metric, WINDOWS};
use crate::store::AlertState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::Ordering;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text: events, rule values, alerts, deliveries, plugins.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
    super::schema::Guarded,
))]
pub async fn metrics(State(api): State<Api>) -> Response {
    let monitor = &api.monitor;
    let windows: Vec<(&str, crate::monitor::window::Totals)> = WINDOWS
        .iter()
        .map(|(name, seconds)| (*name, monitor.recorder().totals(*seconds)))
        .collect();
    let mut out = String::new();

    family(
        &mut out,
        "gantry_auth_events",
        "gauge",
        "Auth events recorded by this monitor in the window, by kind.",
    );
    for (w, t) in &windows {
        for kind in Kind::ALL {
            let _ = writeln!(
                out,
                "gantry_auth_events{{window=\"{w}\",kind=\"{}\"}} {}",
                kind.as_str(),
                t.total[kind as usize]
            );
        }
    }
    let ratios = [
        (
            "gantry_auth_success_ratio",
            Metric::SuccessRate,
            "Successful auth attempts per attempt in the window.",
        ),
        (
            "gantry_auth_error_ratio",
            Metric::ErrorRate,
            "Service errors per event in the window.",
        ),
        (
            "gantry_auth_permission_denial_ratio",
            Metric::PermissionDenialRate,
            "Permission denials per auth decision in the window.",
        ),
        (
            "gantry_auth_token_refreshes_per_second",
            Metric::TokenRefreshRate,
            "Token refreshes per second in the window.",
        ),
    ];
    for (name, metric, help) in ratios {
        family(&mut out, name, "gauge", help);
        for (w, t) in &windows {
            if let (Some(v), _) = metric.value(t) {
                let _ = writeln!(out, "{name}{{window=\"{w}\"}} {v}");
            }
        }
    }
    family(
        &mut out,
        "gantry_auth_latency_seconds",
        "summary",
        "Auth response time quantiles in the window (from a log-linear histogram, within ~9 %).",
    );
    for (w, t) in &windows {
        let _ = writeln!(
            out,
            "gantry_auth_latency_seconds_count{{window=\"{w}\"}} {}",
            t.latency_samples()
        );
        for q in [0.5, 0.95, 0.99] {
            if let Some(ms) = t.percentile_ms(q) {
                let _ = writeln!(
                    out,
                    "gantry_auth_latency_seconds{{window=\"{w}\",quantile=\"{q}\"}} {}",
                    ms / 1000.0
                );
            }
        }
    }
    family(
        &mut out,
        "gantry_rule_value",
        "gauge",
        "Each rule's value at its last evaluation (leader only).",
    );
    for (rule, value) in monitor.rule_values() {
        if let Some(v) = value {
            let _ = writeln!(out, "gantry_rule_value{{rule=\"{}\"}} {v}", escape(&rule));
        }
    }
    family(
        &mut out,
        "gantry_monitor_leader",
        "gauge",
        "1 when this monitor leads rule evaluation.",
    );
    let _ = writeln!(
        out,
        "gantry_monitor_leader {}",
        u8::from(monitor.is_leading())
    );

    let (alerts, depth) = monitor
        .store()
        .read(async |tx| {
            let open = tx.alerts(AlertState::OPEN, 10_000).await?;
            Ok::<_, crate::store::StoreError>((open, tx.outbox_depth().await?))
        })
        .await
        .unwrap_or_default();
    family(&mut out, "gantry_alerts", "gauge", "Open alerts by state.");
    for &state in AlertState::OPEN {
        let n = alerts.iter().filter(|a| a.state == state).count();
        let _ = writeln!(out, "gantry_alerts{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "gantry_outbox_depth",
        "gauge",
        "Notices waiting to be delivered.",
    );
    let _ = writeln!(out, "gantry_outbox_depth {depth}");

    family(
        &mut out,
        "gantry_deliveries_total",
        "counter",
        "Notice deliveries by receiver and result.",
    );
    for ((receiver, result), n) in monitor
        .counters
        .by_receiver
        .lock()
        .expect("counters")
        .iter()
    {
        let _ = writeln!(
            out,
            "gantry_deliveries_total{{receiver=\"{}\",result=\"{result}\"}} {n}",
            escape(receiver)
        );
    }
    family(
        &mut out,
        "gantry_plugin_calls_total",
        "counter",
        "Plugin calls by plugin.",
    );
    let stats = monitor.registry().runtime().plugin_stats();
    for (plugin, calls, _) in &stats {
        let _ = writeln!(
            out,
            "gantry_plugin_calls_total{{plugin=\"{}\"}} {calls}",
            escape(plugin)
        );
    }
    family(
        &mut out,
        "gantry_plugin_failures_total",
        "counter",
        "Plugin calls that trapped, timed out or ran out of memory, by plugin.",
    );
    for (plugin, _, failures) in &stats {
        let _ = writeln!(
            out,
            "gantry_plugin_failures_total{{plugin=\"{}\"}} {failures}",
            escape(plugin)
        );
    }
    family(
        &mut out,
        "gantry_plugin_reloads_total",
        "counter",
        "Plugin hot reloads by result.",
    );
    let _ = writeln!(
        out,
        "gantry_plugin_reloads_total{{result=\"swapped\"}} {}",
        monitor.reloads.0.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "gantry_plugin_reloads_total{{result=\"refused\"}} {}",
        monitor.reloads.1.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "gantry_events_ingested_total",
        "counter",
        "Auth events taken through the API.",
    );
    let _ = writeln!(
        out,
        "gantry_events_ingested_total {}",
        monitor.ingested.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "gantry_events_rejected_total",
        "counter",
        "Auth events the API refused.",
    );
    let _ = writeln!(
        out,
        "gantry_events_rejected_total {}",
        monitor.rejected.load(Ordering::Relaxed)
    );

    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
