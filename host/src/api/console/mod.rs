//! The console: what an on-call engineer opens first, served by the API
//! with no build step. `GET /` shows the last hour's plots (SVG drawn
//! server-side, swapped in live), open alerts with ack and silence, the
//! newest deployment of each environment with its steps and durations,
//! each service's instances with health and revision, and a canary
//! rolling in steps with its analysis and both revisions plotted;
//! `GET /alerts/{id}` is an alert's timeline — the page every notice's
//! `generatorURL` and every mail links to. The same as JSON:
//! `GET /v1/status`, `GET /v1/alerts/{id}`, `GET /v1/trend`. Actions are
//! JSON POSTs (`/v1/alerts/{id}/ack`, `/unack`, `/v1/silences`): the
//! guard's content-type rule and SameSite=Strict session keep another
//! site's page from sending them. A local inbox (`POST /v1/inbox`) is a
//! webhook receiver for a machine with no other.

mod actions;
mod alert;
mod canary;
mod home;
pub mod plot;

use super::schema::{BodyRefused, ErrorBody, Guarded};
use crate::deploy::DeploymentView;
use crate::monitor::AuthMonitor;
use crate::rollout::ServiceStatus;
use crate::runtime::Registry;
use crate::settings::Settings;
use crate::store::{AlertRecord, AlertState, Store};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Notices the local inbox keeps.
const INBOX: usize = 50;
/// Open alerts the console lists.
const OPEN_ALERTS: i64 = 200;

#[derive(Clone)]
pub struct Console {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub registry: Arc<Registry>,
    /// The running monitor (absent when monitoring is off).
    pub monitor: Option<Arc<AuthMonitor>>,
    pub inbox: Arc<Mutex<VecDeque<serde_json::Value>>>,
}

#[derive(Serialize)]
pub struct Snapshot {
    deployments: Vec<DeploymentView>,
    services: Vec<ServiceStatus>,
    alerts: Vec<AlertRecord>,
}

pub fn router(console: Console) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(home::page))
        .routes(routes!(home::plots))
        .routes(routes!(home::panels))
        .routes(routes!(alert::page))
        .routes(routes!(alert::json))
        .routes(routes!(actions::ack))
        .routes(routes!(actions::unack))
        .routes(routes!(actions::silence))
        .routes(routes!(trend))
        .routes(routes!(json))
        .routes(routes!(take, inbox))
        .with_state(console)
}

async fn snapshot(console: &Console) -> Result<Snapshot, String> {
    let deployments = crate::deploy::latest(&console.store)
        .await
        .map_err(|e| e.to_string())?;
    let mut services = Vec::new();
    for name in console.settings.config.config.services.keys() {
        let status = crate::rollout::build::service_status(
            &console.settings,
            &console.store,
            &console.registry,
            name,
            false,
        )
        .await
        .map_err(|e| e.to_string())?;
        services.push(status);
    }
    let alerts = console
        .store
        .read(async |tx| tx.alerts(AlertState::OPEN, OPEN_ALERTS).await)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Snapshot {
        deployments,
        services,
        alerts,
    })
}

/// The local inbox takes a notice (any JSON: Alertmanager's webhook body).
#[utoipa::path(post, path = "/v1/inbox", request_body = Object, responses(
    (status = 200, description = "Kept (the last 50 are)"),
    BodyRefused,
    Guarded,
))]
async fn take(
    State(console): State<Console>,
    Json(notice): Json<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    let notice = serde_json::Value::Object(notice);
    let mut inbox = console.inbox.lock().expect("inbox");
    if inbox.len() == INBOX {
        inbox.pop_front();
    }
    inbox.push_back(notice);
    axum::http::StatusCode::OK.into_response()
}

/// The local inbox's notices, oldest first.
#[utoipa::path(get, path = "/v1/inbox", responses(
    (status = 200, description = "The last notices", body = [Object]),
    Guarded,
))]
async fn inbox(State(console): State<Console>) -> Response {
    let inbox = console.inbox.lock().expect("inbox");
    Json(inbox.iter().cloned().collect::<Vec<_>>()).into_response()
}

/// What runs: the newest deployment of each environment with its steps,
/// each service's instances, open alerts.
#[utoipa::path(get, path = "/v1/status", responses(
    (status = 200, description = "deployments, services, alerts", body = Object),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    Guarded,
))]
async fn json(State(console): State<Console>) -> Response {
    match snapshot(&console).await {
        Ok(s) => Json(s).into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Serialize, ToSchema)]
struct Threshold {
    rule: String,
    metric: &'static str,
    op: &'static str,
    threshold: f64,
}

#[derive(Serialize, ToSchema)]
struct TrendBody {
    /// Seconds each point covers.
    step_seconds: u64,
    /// The series each point's `values` carries, in order.
    series: Vec<&'static str>,
    points: Vec<crate::monitor::trend::Point>,
    /// The rules' thresholds, to draw beside the series.
    thresholds: Vec<Threshold>,
}

/// The last hour's points, the series they carry and the rules'
/// thresholds on them.
#[utoipa::path(get, path = "/v1/trend", responses(
    (status = 200, description = "The last hour, oldest point first", body = TrendBody),
    (status = 503, description = "Monitoring is off", body = ErrorBody),
    Guarded,
))]
async fn trend(State(console): State<Console>) -> Response {
    let Some(monitor) = &console.monitor else {
        return unavailable("monitoring is off (monitoring.enabled)".into());
    };
    Json(TrendBody {
        step_seconds: crate::monitor::trend::STEP,
        series: crate::monitor::trend::SERIES
            .iter()
            .map(|s| s.name)
            .collect(),
        points: monitor.trend().points(),
        thresholds: monitor
            .settings()
            .rules
            .iter()
            .map(|r| Threshold {
                rule: r.name.clone(),
                metric: r.metric.name(),
                op: r.op.symbol(),
                threshold: r.threshold,
            })
            .collect(),
    })
    .into_response()
}

fn unavailable(e: String) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Json(ErrorBody::new(e)),
    )
        .into_response()
}

/// HTML-escaped, with controls and bidirectional overrides (from plugins'
/// messages) shown as escapes rather than reordering the page.
pub fn esc(text: &str) -> String {
    crate::escape::controls(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A whole page: the head, the style, the script the actions use.
fn shell(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body><header><a href=\"/\"><b>gantry</b></a></header>\
         {body}<script>{SCRIPT}</script></body></html>",
        esc(title)
    ))
    .into_response()
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em 2em;max-width:80em;color:#1f2328}\
header{margin-bottom:1em}a{color:#0969da}h2{margin-top:1.5em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}\
.bad{color:#cf222e}.ok{color:#1a7f37}.muted{color:#656d76}\
#plots,.plots{display:flex;flex-wrap:wrap;gap:1em}figure.plot{margin:0}figcaption{font-weight:600;margin-bottom:.2em}\
button{font:inherit;margin-right:.3em}";

/// Every action posts JSON and reloads what it changed.
const SCRIPT: &str = r#"
async function gantryPost(url, body) {
  const r = await fetch(url, {method: 'POST', credentials: 'same-origin',
    headers: {'content-type': 'application/json'}, body: JSON.stringify(body)});
  const said = await r.json().catch(() => ({}));
  const out = document.getElementById('said');
  if (out) { out.textContent = r.ok ? (said.done || 'done') : (said.error || ('failed: ' + r.status)); }
  if (r.ok && window.gantryRefresh) { await window.gantryRefresh(); }
  return r.ok;
}
document.addEventListener('click', async (event) => {
  const b = event.target.closest('button[data-action]');
  if (!b) { return; }
  const id = b.dataset.alert;
  if (b.dataset.action === 'ack') {
    await gantryPost('/v1/alerts/' + encodeURIComponent(id) + '/ack', {comment: 'from the console'});
  } else if (b.dataset.action === 'unack') {
    await gantryPost('/v1/alerts/' + encodeURIComponent(id) + '/unack', {});
  } else if (b.dataset.action === 'silence') {
    await gantryPost('/v1/silences', {matchers: JSON.parse(b.dataset.matchers),
      duration_seconds: 3600, comment: 'from the console'});
  }
});
"#;
