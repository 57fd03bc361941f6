//! An alert's timeline — pending, firing, every notice to every receiver
//! with its result, acknowledgement, silences, resolved — as a page
//! (`GET /alerts/{id}`, where notices and mails link) and as JSON
//! (`GET /v1/alerts/{id}`).

use super::{Console, esc, shell};
use crate::api::schema::{ErrorBody, Guarded};
use crate::clock::when;
use crate::monitor::lifecycle::group_key;
use crate::store::{AlertRecord, OutboxRecord, SilenceRecord, StoreError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Notices of a group the timeline reads.
const NOTICES: i64 = 500;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub alert: AlertRecord,
    pub group_key: String,
    pub entries: Vec<Entry>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub at_ms: i64,
    /// `pending`, `firing`, `notice`, `acknowledged`, `silenced`, `resolved`.
    pub what: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// A notice's state: delivered, pending, dead, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

fn entry(at_ms: i64, what: &'static str, detail: String) -> Entry {
    Entry {
        at_ms,
        what,
        detail,
        receiver: None,
        result: None,
    }
}

/// True when `notice` carried alert `id`: queued for it, or carrying it
/// in the notice as built.
fn carries(notice: &OutboxRecord, id: &str) -> bool {
    let queued: Vec<String> = serde_json::from_str(&notice.alert_ids).unwrap_or_default();
    queued.iter().any(|q| q == id)
        || notice.payload.as_deref().is_some_and(|p| {
            serde_json::from_str::<crate::monitor::NotificationDoc>(p)
                .is_ok_and(|doc| doc.alerts.iter().any(|a| a.id == id))
        })
}

fn matches(silence: &SilenceRecord, labels: &BTreeMap<String, String>) -> bool {
    let matchers: BTreeMap<String, String> =
        serde_json::from_str(&silence.matchers).unwrap_or_default();
    matchers
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

pub async fn timeline(console: &Console, id: &str) -> Result<Option<Timeline>, StoreError> {
    let group_by = &console.settings.config.config.monitoring.group_by;
    let found = console
        .store
        .read(async |tx| {
            let Some(alert) = tx.alert(id).await? else {
                return Ok::<_, StoreError>(None);
            };
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&alert.labels).unwrap_or_default();
            let key = group_key(group_by, &labels);
            let notices = tx.notices_of_group(&key, NOTICES).await?;
            let silences = tx.silences_ending_after(alert.started_ms).await?;
            Ok(Some((alert, labels, key, notices, silences)))
        })
        .await?;
    let Some((alert, labels, key, notices, silences)) = found else {
        return Ok(None);
    };
    let mut entries = vec![entry(
        alert.started_ms,
        "pending",
        format!("value {}", value(alert.value)),
    )];
    if let Some(at) = alert.firing_ms {
        entries.push(entry(at, "firing", format!("value {}", value(alert.value))));
    }
    for n in notices.iter().filter(|n| carries(n, &alert.id)) {
        let mut detail = format!("{} notice, {} attempt(s)", n.kind, n.attempts);
        if let Some(e) = &n.last_error {
            let _ = write!(detail, "; last error: {e}");
        }
        entries.push(Entry {
            at_ms: n.delivered_ms.unwrap_or(n.created_ms),
            what: "notice",
            detail,
            receiver: Some(n.receiver.clone()),
            result: Some(n.state.as_str().to_string()),
        });
    }
    if let (Some(at), Some(by)) = (alert.ack_ms, &alert.acked_by) {
        let mut detail = format!("by {by}");
        if let Some(c) = &alert.ack_comment {
            let _ = write!(detail, ": {c}");
        }
        if let Some(until) = alert.ack_expires_ms {
            let _ = write!(detail, " (until {})", when(Some(until)));
        }
        entries.push(entry(at, "acknowledged", detail));
    }
    for s in silences.iter().filter(|s| matches(s, &labels)) {
        entries.push(entry(
            s.starts_ms,
            "silenced",
            format!(
                "{} by {} until {}{}",
                s.id,
                s.created_by,
                when(Some(s.ends_ms)),
                s.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(at) = alert.resolved_ms {
        entries.push(entry(
            at,
            "resolved",
            format!("value {}", value(alert.value)),
        ));
    }
    entries.sort_by_key(|e| e.at_ms);
    Ok(Some(Timeline {
        alert,
        group_key: key,
        entries,
    }))
}

fn value(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "no data".into())
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new(format!("no alert {id}"))),
    )
        .into_response()
}

fn failed(e: StoreError) -> Response {
    super::unavailable(e.to_string())
}

/// An alert's timeline.
#[utoipa::path(get, path = "/v1/alerts/{id}", operation_id = "alert_timeline", params(("id" = String, Path, description = "The alert's id")), responses(
    (status = 200, description = "The alert and what happened to it, in order", body = Timeline),
    (status = 404, description = "No such alert", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    Guarded,
))]
pub async fn json(State(console): State<Console>, Path(id): Path<String>) -> Response {
    match timeline(&console, &id).await {
        Ok(Some(t)) => Json(t).into_response(),
        Ok(None) => not_found(&id),
        Err(e) => failed(e),
    }
}

/// An alert's page: where every notice's `generatorURL` and every mail
/// links.
#[utoipa::path(get, path = "/alerts/{id}", operation_id = "alert_page", params(("id" = String, Path, description = "The alert's id")), responses(
    (status = 200, description = "The alert's timeline", body = String, content_type = "text/html"),
    (status = 401, description = "A token is configured: the page that asks for it", body = String, content_type = "text/html"),
    (status = 404, description = "No such alert", body = String, content_type = "text/html"),
    (status = 421, description = "The Host header names neither this API nor a name it answers to", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
))]
pub async fn page(State(console): State<Console>, Path(id): Path<String>) -> Response {
    let t = match timeline(&console, &id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let mut r = shell("no such alert", &format!("<h1>No alert {}</h1>", esc(&id)));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
        Err(e) => return failed(e),
    };
    let a = &t.alert;
    let labels: BTreeMap<String, String> = serde_json::from_str(&a.labels).unwrap_or_default();
    let annotations: BTreeMap<String, String> =
        serde_json::from_str(&a.annotations).unwrap_or_default();
    let open = crate::store::AlertState::OPEN.contains(&a.state);
    let mut body = format!(
        "<h1 id=\"alert\" data-state=\"{state}\">{rule} <span class=\"{class}\">{state}</span></h1>\
         <p>{summary}</p><p class=\"muted\">id {id} · fingerprint {fp} · group {group}</p><p id=\"said\" class=\"muted\"></p>",
        rule = esc(&a.rule),
        state = esc(a.state.as_str()),
        class = if open { "bad" } else { "ok" },
        summary = esc(annotations
            .get("description")
            .or(annotations.get("summary"))
            .map(String::as_str)
            .unwrap_or("")),
        id = esc(&a.id),
        fp = esc(&a.fingerprint),
        group = esc(&t.group_key),
    );
    if open {
        let acked = a.acked_by.is_some();
        let _ = write!(
            body,
            "<p><button data-action=\"{action}\" data-alert=\"{id}\">{action}</button>\
             <button data-action=\"silence\" data-alert=\"{id}\" data-matchers=\"{m}\">silence 1 h</button></p>",
            action = if acked { "unack" } else { "ack" },
            id = esc(&a.id),
            m = esc(&serde_json::json!({"alertname": a.rule}).to_string()),
        );
    }
    body.push_str("<h2>Timeline</h2><table id=\"timeline\"><tr><th>when</th><th>what</th><th>receiver</th><th>result</th><th>detail</th></tr>");
    for e in &t.entries {
        let _ = write!(
            body,
            "<tr data-what=\"{what}\"><td>{}</td><td>{what}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(Some(e.at_ms)),
            esc(e.receiver.as_deref().unwrap_or("")),
            esc(e.result.as_deref().unwrap_or("")),
            esc(&e.detail),
            what = e.what,
        );
    }
    body.push_str("</table><h2>Labels</h2><table>");
    for (k, v) in labels.iter().chain(annotations.iter()) {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    body.push_str(
        "</table><script>window.gantryRefresh = async () => { location.reload(); };</script>",
    );
    shell(&format!("{} — gantry", a.rule), &body)
}
