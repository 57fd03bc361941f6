//! What the console (or any API client) does to alerts: acknowledge,
//! take an acknowledgement back, silence. JSON in and out; who did it is
//! the body's `by`, else `console@HOST`. A running monitor reads the
//! change from the store at its next evaluation.

use super::Console;
use crate::monitor::MonitorError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest acknowledgement or silence the console sets: a week.
const LONGEST: f64 = 7.0 * 24.0 * 3600.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    expires_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unack {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    matchers: BTreeMap<String, String>,
    duration_seconds: f64,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

fn who(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| format!("console@{}", crate::identity::host()))
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": message.into()})),
    )
        .into_response()
}

fn refused(e: MonitorError) -> Response {
    let status = match &e {
        MonitorError::UnknownAlert(_) => StatusCode::NOT_FOUND,
        MonitorError::Config { .. } => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(serde_json::json!({"error": e.to_string()}))).into_response()
}

fn seconds(value: f64, key: &str) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= LONGEST {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "`{key}` must be a number of seconds in (0, {LONGEST}]"
        ))
    }
}

pub async fn ack(
    State(console): State<Console>,
    Path(id): Path<String>,
    Json(body): Json<Ack>,
) -> Response {
    let expires = match body.expires_seconds.map(|s| seconds(s, "expires_seconds")) {
        Some(Err(why)) => return bad(why),
        Some(Ok(d)) => Some(d),
        None => None,
    };
    let by = who(body.by);
    match crate::monitor::acknowledge(&console.store, &id, &by, body.comment.as_deref(), expires)
        .await
    {
        Ok(alert) => {
            Json(serde_json::json!({"done": format!("acknowledged by {by}"), "alert": alert}))
                .into_response()
        }
        Err(e) => refused(e),
    }
}

pub async fn unack(
    State(console): State<Console>,
    Path(id): Path<String>,
    Json(_): Json<Unack>,
) -> Response {
    match crate::monitor::unacknowledge(&console.store, &id).await {
        Ok(alert) => {
            Json(serde_json::json!({"done": "acknowledgement taken back", "alert": alert}))
                .into_response()
        }
        Err(e) => refused(e),
    }
}

pub async fn silence(State(console): State<Console>, Json(body): Json<Silence>) -> Response {
    if body.matchers.is_empty() {
        return bad("`matchers` must name at least one label (a silence of everything is refused)");
    }
    let duration = match seconds(body.duration_seconds, "duration_seconds") {
        Ok(d) => d,
        Err(why) => return bad(why),
    };
    let by = who(body.by);
    match crate::monitor::silence(
        &console.store,
        &body.matchers,
        &by,
        body.comment.as_deref(),
        duration,
    )
    .await
    {
        Ok(s) => Json(serde_json::json!({"done": format!("silenced as {}", s.id), "silence": s}))
            .into_response(),
        Err(e) => refused(e),
    }
}
