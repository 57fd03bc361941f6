//! gantry's HTTP API (axum): auth events in (`POST /v1/events`), metrics
//! (`GET /metrics`, Prometheus text), alerts (`GET /v1/alerts`) and a
//! liveness answer (`GET /healthz`); the console (`console/`: `/`, alert
//! pages, plots, actions) beside them; `guard.rs` stands in front of all
//! of it.

pub mod console;
pub mod guard;
mod ingest;
mod metrics;

use crate::monitor::AuthMonitor;
use crate::store::AlertState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub monitor: Arc<AuthMonitor>,
}

pub fn router(api: Api, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/events", post(ingest::events))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/alerts", get(alerts))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(api)
}

async fn alerts(State(api): State<Api>) -> Response {
    match api.monitor.alerts(AlertState::OPEN).await {
        Ok(alerts) => Json(alerts).into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn healthz(State(api): State<Api>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "node": api.monitor.node(),
        "leading": api.monitor.is_leading(),
    }))
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
