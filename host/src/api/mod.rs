//! gantry's HTTP API (axum): auth events in (`POST /v1/events`), metrics
//! (`GET /metrics`, Prometheus text), alerts (`GET /v1/alerts`) and a
//! liveness answer (`GET /healthz`); the console (`console/`: `/`, alert
//! pages, plots, actions) beside them; `guard.rs` stands in front of all
//! of it.

pub mod console;
pub mod guard;
mod ingest;
mod metrics;
pub mod schema;

use crate::monitor::AuthMonitor;
use crate::store::{AlertRecord, AlertState};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Json, Response};
use schema::{ErrorBody, Guarded};
use serde::Serialize;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub monitor: Arc<AuthMonitor>,
}

pub fn router(api: Api) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(ingest::events))
        .routes(routes!(metrics::metrics))
        .routes(routes!(alerts))
        .routes(routes!(healthz))
        .with_state(api)
}

/// `router` with its OpenAPI description served at `/v1/openapi.json`
/// (the guard's session route added to it), and the description; every
/// route's body capped at `max_body_bytes`.
pub fn with_description(
    router: OpenApiRouter,
    max_body_bytes: usize,
) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut doc) =
        OpenApiRouter::with_openapi(<schema::Doc as utoipa::OpenApi>::openapi())
            .merge(router)
            .layer(DefaultBodyLimit::max(max_body_bytes))
            .split_for_parts();
    doc.merge(guard::description());
    let served = Arc::new(doc.clone());
    let router = router.route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let doc = Arc::clone(&served);
            async move { Json(doc.as_ref().clone()) }
        }),
    );
    (router, doc)
}

/// Open alerts (pending and firing).
#[utoipa::path(get, path = "/v1/alerts", responses(
    (status = 200, description = "Open alerts, newest first", body = [AlertRecord]),
    (status = 503, description = "The state store did not answer", body = ErrorBody),
    Guarded,
))]
async fn alerts(State(api): State<Api>) -> Response {
    match api.monitor.alerts(AlertState::OPEN).await {
        Ok(alerts) => Json(alerts).into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody::new(e.to_string())),
        )
            .into_response(),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    /// This monitor's name in claims and published seconds.
    node: String,
    /// It holds the leader lease and evaluates the rules.
    leading: bool,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "The monitor runs", body = Health),
    Guarded,
))]
async fn healthz(State(api): State<Api>) -> Response {
    Json(Health {
        status: "ok",
        node: api.monitor.node().to_string(),
        leading: api.monitor.is_leading(),
    })
    .into_response()
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}
