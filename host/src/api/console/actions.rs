//! What the console (or any API client) does to alerts: acknowledge,
//! take an acknowledgement back, silence. JSON in and out; who did it is
//! the body's `by`, else `console@HOST`. A running monitor reads the
//! change from the store at its next evaluation.

use super::Console;
use crate::api::schema::{BodyRefused, ErrorBody, Guarded};
use crate::monitor::MonitorError;
use crate::store::{AlertRecord, SilenceRecord};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// The longest acknowledgement or silence the console sets: a week.
const LONGEST: f64 = 7.0 * 24.0 * 3600.0;
/// Bounds on what one request may store.
const MAX_TEXT: usize = 1024;
const MAX_MATCHERS: usize = 20;
/// Silences active at once: more means something is wrong.
const MAX_ACTIVE_SILENCES: usize = 1000;

/// `text` within `MAX_TEXT` characters, or the refusal naming `key`.
fn bounded(key: &str, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT => {
            Err(format!("`{key}` is longer than {MAX_TEXT} characters"))
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    #[serde(default)]
    #[schema(max_length = 1024)]
    by: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    comment: Option<String>,
    /// When the acknowledgement ends (none: with the alert).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 604800.0)]
    expires_seconds: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unack {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Labels an alert must have, each with this value.
    #[schema(schema_with = matchers_schema)]
    matchers: BTreeMap<String, String>,
    #[schema(exclusive_minimum = 0.0, maximum = 604800.0)]
    duration_seconds: f64,
    #[serde(default)]
    #[schema(max_length = 1024)]
    by: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    comment: Option<String>,
}

/// Label → value, at least one.
fn matchers_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_TEXT)),
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_TEXT)),
        ))
        .min_properties(Some(1))
        .max_properties(Some(MAX_MATCHERS))
        .build()
}

#[derive(Serialize, ToSchema)]
pub struct Acked {
    /// What was done, in words.
    done: String,
    alert: AlertRecord,
}

#[derive(Serialize, ToSchema)]
pub struct Silenced {
    done: String,
    silence: SilenceRecord,
}

fn who(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| format!("console@{}", crate::identity::host()))
}

fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody::new(message))).into_response()
}

fn refused(e: MonitorError) -> Response {
    let status = match &e {
        MonitorError::UnknownAlert(_) => StatusCode::NOT_FOUND,
        MonitorError::Config { .. } => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(ErrorBody::new(e.to_string()))).into_response()
}

fn seconds(value: f64, key: &str) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value <= LONGEST {
        Ok(crate::clock::seconds(value))
    } else {
        Err(format!(
            "`{key}` must be a number of seconds in (0, {LONGEST}]"
        ))
    }
}

/// Acknowledges an open alert: it stops repeating (not its resolved
/// notice) until the acknowledgement expires or is taken back.
#[utoipa::path(post, path = "/v1/alerts/{id}/ack", params(("id" = String, Path, description = "The alert's id")),
    request_body = Ack, responses(
    (status = 200, description = "Acknowledged", body = Acked),
    (status = 404, description = "No such alert", body = ErrorBody),
    (status = 409, description = "The alert is not open", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    BodyRefused,
    Guarded,
))]
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
    if let Err(why) =
        bounded("by", body.by.as_deref()).and(bounded("comment", body.comment.as_deref()))
    {
        return bad(why);
    }
    let by = who(body.by);
    match crate::monitor::acknowledge(&console.store, &id, &by, body.comment.as_deref(), expires)
        .await
    {
        Ok(alert) => Json(Acked {
            done: format!("acknowledged by {by}"),
            alert,
        })
        .into_response(),
        Err(e) => refused(e),
    }
}

/// Takes an acknowledgement back.
#[utoipa::path(post, path = "/v1/alerts/{id}/unack", params(("id" = String, Path, description = "The alert's id")),
    request_body = Unack, responses(
    (status = 200, description = "No longer acknowledged", body = Acked),
    (status = 404, description = "No such alert", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    BodyRefused,
    Guarded,
))]
pub async fn unack(
    State(console): State<Console>,
    Path(id): Path<String>,
    Json(_): Json<Unack>,
) -> Response {
    match crate::monitor::unacknowledge(&console.store, &id).await {
        Ok(alert) => Json(Acked {
            done: "acknowledgement taken back".into(),
            alert,
        })
        .into_response(),
        Err(e) => refused(e),
    }
}

/// Silences alerts whose labels match every matcher.
#[utoipa::path(post, path = "/v1/silences", request_body = Silence, responses(
    (status = 200, description = "Silenced", body = Silenced),
    (status = 409, description = "Too many silences are active", body = ErrorBody),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    BodyRefused,
    Guarded,
))]
pub async fn silence(State(console): State<Console>, Json(body): Json<Silence>) -> Response {
    if body.matchers.is_empty() {
        return bad("`matchers` must name at least one label (a silence of everything is refused)");
    }
    let duration = match seconds(body.duration_seconds, "duration_seconds") {
        Ok(d) => d,
        Err(why) => return bad(why),
    };
    if body.matchers.len() > MAX_MATCHERS {
        return bad(format!("at most {MAX_MATCHERS} matchers"));
    }
    let texts = body
        .matchers
        .iter()
        .flat_map(|(k, v)| [("matchers", k.as_str()), ("matchers", v.as_str())])
        .chain([("by", body.by.as_deref().unwrap_or(""))])
        .chain([("comment", body.comment.as_deref().unwrap_or(""))]);
    for (key, text) in texts {
        if let Err(why) = bounded(key, Some(text)) {
            return bad(why);
        }
    }
    let now = crate::clock::now_ms();
    match console
        .store
        .read(async |tx| tx.silences_ending_after(now).await)
        .await
    {
        Ok(active) if active.len() >= MAX_ACTIVE_SILENCES => {
            return refused(MonitorError::Config {
                key: "silences".into(),
                message: format!(
                    "{MAX_ACTIVE_SILENCES} silences are active already; end some first"
                ),
            });
        }
        Ok(_) => {}
        Err(e) => return refused(e.into()),
    }
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
        Ok(s) => Json(Silenced {
            done: format!("silenced as {}", s.id),
            silence: s,
        })
        .into_response(),
        Err(e) => refused(e),
    }
}
