//! `POST /v1/events`: a JSON array of events, or NDJSON (one per line).
//! Good events are kept even when others are refused; each refusal names
//! its index. The guard (`guard.rs`) has checked the token and the content
//! type; the body is capped.

use super::Api;
use super::schema::{BodyRefused, ErrorBody, Guarded};
use crate::monitor::AuthEvent;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

/// At most this many refusals are listed in an answer.
const LISTED: usize = 100;

#[derive(Serialize, ToSchema)]
pub struct Refused {
    /// The event's index in the array (or line in NDJSON).
    index: usize,
    error: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ingested {
    accepted: u64,
    rejected: u64,
    /// The first refusals (at most 100).
    errors: Vec<Refused>,
}

/// A 400's body: the whole body refused, or each event.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "only describes the answer")]
pub enum NothingTaken {
    Body(ErrorBody),
    Events(Ingested),
}

/// Auth events in: a JSON array, or NDJSON (one per line).
#[utoipa::path(post, path = "/v1/events",
    request_body(description = "Events: a JSON array, or one JSON object per line (NDJSON)", content(
        (Vec<AuthEvent> = "application/json"),
        (AuthEvent = "application/x-ndjson"),
    )),
    responses(
        (status = 200, description = "Taken (some may be refused, each named)", body = Ingested),
        (status = 400, description = "Nothing taken: the body is not JSON (an error), or every event was refused (each named)", body = NothingTaken),
        BodyRefused,
        Guarded,
    ))]
pub async fn events(State(api): State<Api>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody::new("the body is not UTF-8")),
            )
                .into_response();
        }
    };
    let array = text.trim_start().starts_with('[');
    let items: Vec<(usize, Result<AuthEvent, String>)> = if array {
        match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(values) => values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i, serde_json::from_value(v).map_err(|e| e.to_string())))
                .collect(),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(ErrorBody::new(format!("not a JSON array: {e}"))),
                )
                    .into_response();
            }
        }
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i, serde_json::from_str(l).map_err(|e| e.to_string())))
            .collect()
    };
    let mut accepted = 0u64;
    let mut rejected = Vec::new();
    let mut refused = 0u64;
    for (index, item) in items {
        match item.and_then(|event| event.parts().map(|p| (event, p))) {
            Ok((event, (kind, time))) => {
                match &event.instance {
                    Some(instance) => api.monitor.record_from(instance, kind, event.success, time),
                    None => api.monitor.record(kind, event.success, time),
                }
                accepted += 1;
            }
            Err(error) => {
                refused += 1;
                if rejected.len() < LISTED {
                    rejected.push(Refused { index, error });
                }
            }
        }
    }
    api.monitor.ingested.fetch_add(accepted, Ordering::Relaxed);
    if accepted > 0 {
        api.monitor.nudge();
    }
    api.monitor.rejected.fetch_add(refused, Ordering::Relaxed);
    let status = if accepted == 0 && refused > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(Ingested {
            accepted,
            rejected: refused,
            errors: rejected,
        }),
    )
        .into_response()
}
