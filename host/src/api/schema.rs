//! The shapes the API answers with, for handlers and for its OpenAPI
//! description (`/v1/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` annotations): errors, the refusals the guard and the
//! body extractors give any route, and the description itself.

use serde::Serialize;
use utoipa::{IntoResponses, OpenApi, ToSchema};

/// Every error answer: what was wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
        }
    }
}

/// What any route may answer before its handler runs (the guard).
#[derive(IntoResponses)]
#[allow(dead_code, reason = "only describes responses")]
pub enum Guarded {
    /// A token is configured and the request did not carry it.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The Host header names neither this API nor a name it answers to.
    #[response(status = 421)]
    Misdirected(ErrorBody),
}

/// What a route taking a JSON body may answer on a bad one.
#[derive(IntoResponses)]
#[allow(dead_code, reason = "only describes responses")]
pub enum BodyRefused {
    /// Not JSON, or not the JSON the route takes.
    #[response(status = 400)]
    BadRequest,
    /// Over `monitoring.api.max_body_bytes`.
    #[response(status = 413)]
    TooLarge,
    /// Not `Content-Type: application/json`.
    #[response(status = 415)]
    Unsupported(ErrorBody),
    /// JSON of the wrong shape.
    #[response(status = 422)]
    Unprocessable,
}

/// The description's header; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(info(
    title = "gantry",
    description = "gantry's API: auth events in, alerts, metrics, the console and its actions."
))]
pub struct Doc;
