//! The page of what runs, for `gantry up`: `GET /` (plain HTML, no build
//! step, refreshes itself) and `GET /v1/status` (the same as JSON) —
//! the newest deployment of each environment with its steps, each
//! service's instances, open alerts — and a local inbox, `POST
//! /v1/inbox`: a webhook receiver for a machine with no other, whose last
//! notices the page lists.

use crate::clock::when;
use crate::deploy::DeploymentView;
use crate::rollout::ServiceStatus;
use crate::runtime::Registry;
use crate::settings::Settings;
use crate::store::{AlertRecord, Store};
use crate::store::{AlertState, DeploymentState};
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Notices the local inbox keeps.
const INBOX: usize = 50;

#[derive(Clone)]
pub struct Page {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub inbox: Arc<Mutex<VecDeque<serde_json::Value>>>,
}

#[derive(Serialize)]
struct Snapshot {
    deployments: Vec<DeploymentView>,
    services: Vec<ServiceStatus>,
    alerts: Vec<AlertRecord>,
}

pub fn router(page: Page) -> Router {
    Router::new()
        .route("/", get(html))
        .route("/v1/status", get(json))
        .route("/v1/inbox", axum::routing::post(take).get(inbox))
        .with_state(page)
}

async fn snapshot(page: &Page) -> Result<Snapshot, String> {
    let deployments = crate::deploy::latest(&page.store)
        .await
        .map_err(|e| e.to_string())?;
    let mut services = Vec::new();
    for name in page.settings.config.config.services.keys() {
        let status = crate::rollout::build::service_status(
            &page.settings,
            &page.store,
            &page.registry,
            name,
            false,
        )
        .await
        .map_err(|e| e.to_string())?;
        services.push(status);
    }
    let alerts = page
        .store
        .read(async |tx| tx.alerts(AlertState::OPEN, 200).await)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Snapshot {
        deployments,
        services,
        alerts,
    })
}

async fn take(State(page): State<Page>, Json(notice): Json<serde_json::Value>) -> Response {
    let mut inbox = page.inbox.lock().expect("inbox");
    if inbox.len() == INBOX {
        inbox.pop_front();
    }
    inbox.push_back(notice);
    axum::http::StatusCode::OK.into_response()
}

async fn inbox(State(page): State<Page>) -> Response {
    let inbox = page.inbox.lock().expect("inbox");
    Json(inbox.iter().cloned().collect::<Vec<_>>()).into_response()
}

async fn json(State(page): State<Page>) -> Response {
    match snapshot(&page).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: String) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": e})),
    )
        .into_response()
}

/// HTML-escaped, with controls and bidirectional overrides (from plugins'
/// messages) shown as escapes rather than reordering the page.
fn esc(text: &str) -> String {
    crate::escape::controls(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn html(State(page): State<Page>) -> Response {
    let s = match snapshot(&page).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>gantry</title>\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}\
         table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
         .bad{color:#b00}.ok{color:#070}</style></head><body><h1>gantry</h1>",
    );
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
        out.push_str(&format!(
            "<p><b>{}</b> — {}: <span class=\"{class}\">{}</span>{} (by {} on {}, {})</p>",
            esc(&r.environment),
            esc(&r.id),
            esc(r.state.as_str()),
            if d.interrupted { " (interrupted)" } else { "" },
            esc(&r.actor),
            esc(&r.host),
            when(Some(r.started_ms)),
        ));
        if let Some(reason) = &r.reason {
            out.push_str(&format!("<p class=\"bad\">{}</p>", esc(reason)));
        }
        if let Some(advice) = &d.advice {
            out.push_str(&format!("<p>{}</p>", esc(advice)));
        }
        out.push_str("<table><tr><th>step</th><th>state</th><th>what happened</th></tr>");
        for step in &d.steps {
            let what = step.what_happened();
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&step.name),
                esc(step.state.as_str()),
                esc(&what)
            ));
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Instances</h2>");
    for svc in &s.services {
        out.push_str(&format!(
            "<p><b>{}</b>: {} of {} running</p><table><tr><th>instance</th><th>version</th><th>pid</th><th>address</th><th>state</th></tr>",
            esc(&svc.service),
            svc.instances.iter().filter(|i| i.alive).count(),
            svc.desired
        ));
        for i in &svc.instances {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
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
            ));
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Alerts</h2>");
    if s.alerts.is_empty() {
        out.push_str("<p class=\"ok\">none open</p>");
    } else {
        out.push_str("<table><tr><th>alert</th><th>state</th><th>severity</th><th>since</th><th>acknowledged</th></tr>");
        for a in &s.alerts {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.rule),
                esc(a.state.as_str()),
                esc(&a.severity),
                when(Some(a.started_ms)),
                esc(a.acked_by.as_deref().unwrap_or("-"))
            ));
        }
        out.push_str("</table>");
    }
    let notices: Vec<serde_json::Value> = page
        .inbox
        .lock()
        .expect("inbox")
        .iter()
        .rev()
        .cloned()
        .collect();
    out.push_str("<h2>Local inbox</h2>");
    if notices.is_empty() {
        out.push_str("<p>no notice received</p>");
    } else {
        out.push_str("<table><tr><th>status</th><th>alert</th><th>summary</th></tr>");
        for n in &notices {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(n["status"].as_str().unwrap_or("-")),
                esc(n["commonLabels"]["alertname"].as_str().unwrap_or("-")),
                esc(n["commonAnnotations"]["summary"].as_str().unwrap_or("-")),
            ));
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>");
    Html(out).into_response()
}
