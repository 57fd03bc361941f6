//! `GET /`: the plots and the panels (alerts, deployments, a canary in
//! steps, instances),
//! each also served alone (`/console/plots`, `/console/panels`) so the
//! page swaps fresh ones in every few seconds without reloading.

use super::{Console, Snapshot, esc, shell, snapshot, unavailable};
use crate::api::schema::{ErrorBody, Guarded};
use crate::clock::when;
use crate::monitor::recorder::now_second;
use crate::store::DeploymentState;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write;

/// How often the page fetches fresh plots and panels.
const REFRESH_MS: u32 = 5000;

/// The console.
#[utoipa::path(get, path = "/", operation_id = "console", responses(
    (status = 200, description = "The console", body = String, content_type = "text/html"),
    (status = 401, description = "A token is configured: the page that asks for it", body = String, content_type = "text/html"),
    (status = 421, description = "The Host header names neither this API nor a name it answers to", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
))]
pub async fn page(State(console): State<Console>) -> Response {
    let s = match snapshot(&console).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let body = format!(
        "<h1>gantry</h1><p class=\"muted\" id=\"node\">{}</p><p id=\"said\" class=\"muted\"></p>\
         <h2>Last hour</h2><div id=\"plots\">{}</div><div id=\"panels\">{}</div>\
         <script>\
         window.gantryRefresh = async () => {{\
           for (const [id, url] of [['plots', '/console/plots'], ['panels', '/console/panels']]) {{\
             const r = await fetch(url, {{credentials: 'same-origin'}});\
             if (r.ok) {{ document.getElementById(id).innerHTML = await r.text(); }}\
           }}\
         }};\
         setInterval(window.gantryRefresh, {REFRESH_MS});\
         </script>",
        esc(&node_line(&console)),
        plots_html(&console),
        panels_html(
            &console,
            &s,
            &super::canary::panels(&console.store, &s.services).await
        ),
    );
    shell("gantry", &body)
}

fn node_line(console: &Console) -> String {
    match &console.monitor {
        Some(m) => format!(
            "monitor {} — {}",
            m.node(),
            if m.is_leading() {
                "leading: evaluates the rules"
            } else {
                "following: another monitor evaluates the rules"
            }
        ),
        None => "monitoring is off (monitoring.enabled)".into(),
    }
}

/// The plots alone (the console swaps them in).
#[utoipa::path(get, path = "/console/plots", responses(
    (status = 200, description = "SVG plots in HTML", body = String, content_type = "text/html"),
    Guarded,
))]
pub async fn plots(State(console): State<Console>) -> Response {
    Html(plots_html(&console)).into_response()
}

/// Alerts, deployments, instances alone (the console swaps them in).
#[utoipa::path(get, path = "/console/panels", responses(
    (status = 200, description = "The panels in HTML", body = String, content_type = "text/html"),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    Guarded,
))]
pub async fn panels(State(console): State<Console>) -> Response {
    match snapshot(&console).await {
        Ok(s) => {
            let canary = super::canary::panels(&console.store, &s.services).await;
            Html(panels_html(&console, &s, &canary)).into_response()
        }
        Err(e) => unavailable(e),
    }
}

fn plots_html(console: &Console) -> String {
    match &console.monitor {
        Some(m) => super::plot::charts(&m.trend().points(), &m.settings().rules, now_second()),
        None => "<p class=\"muted\">no plots: monitoring is off</p>".into(),
    }
}

fn duration(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => format!("{:.1} s", (b - a) as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

fn panels_html(console: &Console, s: &Snapshot, canary: &str) -> String {
    let mut out = String::new();
    out.push_str("<h2>Alerts</h2>");
    if s.alerts.is_empty() {
        out.push_str("<p class=\"ok\">none open</p>");
    } else {
        out.push_str(
            "<table id=\"alerts\"><tr><th>alert</th><th>state</th><th>severity</th><th>value</th>\
             <th>since</th><th>acknowledged</th><th></th></tr>",
        );
        for a in &s.alerts {
            let acked = a.acked_by.is_some();
            let matchers = serde_json::json!({"alertname": a.rule}).to_string();
            let _ = write!(
                out,
                "<tr><td><a href=\"/alerts/{id}\">{rule}</a></td><td class=\"{class}\">{state}</td><td>{sev}</td>\
                 <td>{value}</td><td>{since}</td><td>{by}</td><td>\
                 <button data-action=\"{action}\" data-alert=\"{id}\">{label}</button>\
                 <button data-action=\"silence\" data-alert=\"{id}\" data-matchers=\"{matchers}\">silence 1 h</button></td></tr>",
                id = esc(&a.id),
                rule = esc(&a.rule),
                class = if a.state == crate::store::AlertState::Firing {
                    "bad"
                } else {
                    "muted"
                },
                state = esc(a.state.as_str()),
                sev = esc(&a.severity),
                value = a
                    .value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                since = when(Some(a.started_ms)),
                by = esc(a.acked_by.as_deref().unwrap_or("-")),
                action = if acked { "unack" } else { "ack" },
                label = if acked { "unack" } else { "ack" },
                matchers = esc(&matchers),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Deployments</h2>");
    if s.deployments.is_empty() {
        out.push_str("<p>none yet</p>");
    }
    for d in &s.deployments {
        let r = &d.record;
        let class = if r.state == DeploymentState::Succeeded {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            out,
            "<p><b>{}</b> — {}: <span class=\"{class}\">{}</span>{} (by {} on {}, {}, {})</p>",
            esc(&r.environment),
            esc(&r.id),
            esc(r.state.as_str()),
            if d.interrupted { " (interrupted)" } else { "" },
            esc(&r.actor),
            esc(&r.host),
            when(Some(r.started_ms)),
            duration(Some(r.started_ms), r.finished_ms),
        );
        if let Some(reason) = &r.reason {
            let _ = write!(out, "<p class=\"bad\">{}</p>", esc(reason));
        }
        if let Some(advice) = &d.advice {
            let _ = write!(out, "<p>{}</p>", esc(advice));
        }
        out.push_str(
            "<table><tr><th>step</th><th>state</th><th>took</th><th>what happened</th></tr>",
        );
        for step in &d.steps {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&step.name),
                esc(step.state.as_str()),
                duration(step.started_ms, step.finished_ms),
                esc(&step.what_happened())
            );
        }
        out.push_str("</table>");
    }
    out.push_str(canary);
    out.push_str("<h2>Instances</h2>");
    if s.services.is_empty() {
        out.push_str("<p>no service is configured</p>");
    }
    for svc in &s.services {
        let _ = write!(
            out,
            "<p><b>{}</b>: {} of {} running{}</p><table><tr><th>instance</th><th>revision</th><th>pid</th>\
             <th>address</th><th>state</th><th>health</th></tr>",
            esc(&svc.service),
            svc.instances.iter().filter(|i| i.alive).count(),
            svc.desired,
            svc.last_to
                .as_ref()
                .map(|to| format!(", last rollout to {}", esc(to)))
                .unwrap_or_default(),
        );
        for i in &svc.instances {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&i.record.name),
                esc(&i.version),
                i.record.pid.map(|p| p.to_string()).unwrap_or_default(),
                esc(&i.record.address),
                if i.alive { "ok" } else { "bad" },
                if i.alive {
                    esc(i.record.state.as_str())
                } else {
                    "gone".into()
                },
                if i.health.is_empty() {
                    "-".into()
                } else {
                    esc(&i.health.join("; "))
                },
            );
        }
        out.push_str("</table>");
    }
    let notices: Vec<serde_json::Value> = console
        .inbox
        .lock()
        .expect("inbox")
        .iter()
        .rev()
        .cloned()
        .collect();
    out.push_str("<h2>Local inbox</h2>");
    if notices.is_empty() {
        out.push_str("<p class=\"muted\">no notice received (a webhook receiver at /v1/inbox)</p>");
    } else {
        out.push_str("<table><tr><th>status</th><th>alert</th><th>summary</th></tr>");
        for n in &notices {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(n["status"].as_str().unwrap_or("-")),
                esc(n["commonLabels"]["alertname"].as_str().unwrap_or("-")),
                esc(n["commonAnnotations"]["summary"].as_str().unwrap_or("-")),
            );
        }
        out.push_str("</table>");
    }
    out
}
