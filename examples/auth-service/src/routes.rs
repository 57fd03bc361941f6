//! The HTTP API: `POST /login`, `POST /refresh`, `GET /verify`, `GET
//! /healthz`, `GET /readyz`, `GET /metrics`, `GET /.well-known/jwks.json`.

use crate::db::Db;
use crate::events::{AuthEvent, Reporter};
use crate::faults::Faults;
use crate::keys::{Claims, KeySet, VerifyError};
use crate::metrics::Metrics;
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Logins per username per minute, when `rate_limiting_enabled`.
pub struct Limiter {
    pub per_minute: Option<u32>,
    windows: std::sync::Mutex<std::collections::HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(per_minute: Option<u32>) -> Limiter {
        Limiter {
            per_minute,
            windows: Default::default(),
        }
    }

    /// False when `key` used up its minute.
    fn allow(&self, key: &str) -> bool {
        let Some(limit) = self.per_minute else {
            return true;
        };
        let mut windows = self.windows.lock().expect("limiter");
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| start.elapsed().as_secs() < 60);
        }
        let entry = windows
            .entry(key.to_string())
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed().as_secs() >= 60 {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 <= limit
    }
}

pub struct App {
    pub db: Db,
    pub limiter: Limiter,
    pub keys: KeySet,
    pub faults: Faults,
    pub metrics: Metrics,
    pub events: Reporter,
    pub version: String,
    pub instance: String,
    pub token_seconds: u64,
    pub refresh_days: u64,
    pub draining: Arc<AtomicBool>,
    pub started: Instant,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/verify", get(verify))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            around,
        ))
        .with_state(app)
}

/// Faults, timing, 5xx counting, and `Connection: close` while draining.
async fn around(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    if let Some(slow) = app.faults.slow {
        tokio::time::sleep(slow).await;
    }
    let mut response = next.run(request).await;
    app.metrics.observe(started.elapsed().as_secs_f64());
    if response.status().is_server_error() {
        app.metrics.server_errors.fetch_add(1, Ordering::Relaxed);
        app.events.record(AuthEvent {
            kind: "service_error",
            success: false,
            response_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            instance: app.instance.clone(),
        });
    }
    if app.draining.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn token_pair(app: &App, user: &str, tenant: &str) -> anyhow::Result<(String, i64)> {
    let now = chrono::Utc::now().timestamp();
    let exp = now + app.token_seconds as i64;
    let mut jti = [0u8; 12];
    getrandom::fill(&mut jti)?;
    let claims = Claims {
        sub: user.to_string(),
        tenant: tenant.to_string(),
        iss: app.keys.issuer().to_string(),
        iat: now,
        exp,
        jti: hex::encode(jti),
    };
    Ok((app.keys.sign(&claims)?, exp))
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn login(State(app): State<Arc<App>>, Json(body): Json<LoginBody>) -> Response {
    let started = Instant::now();
    let record = |success: bool| {
        app.events.record(AuthEvent {
            kind: "auth_attempt",
            success,
            response_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            instance: app.instance.clone(),
        })
    };
    if app.faults.login_fails() {
        record(false);
        return failure(StatusCode::INTERNAL_SERVER_ERROR, "login is broken (fault)");
    }
    if !app.limiter.allow(&body.username) {
        record(false);
        return failure(
            StatusCode::TOO_MANY_REQUESTS,
            "too many login attempts; wait a minute",
        );
    }
    let user = match app.db.user(&body.username).await {
        Ok(user) => user,
        Err(e) => {
            tracing::error!("login: {e}");
            record(false);
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the user store is unavailable",
            );
        }
    };
    // Hash checking runs off the async workers: argon2 is deliberately slow.
    let verified = match user {
        Some(user) => {
            let password = body.password.clone();
            let hash = user.password_hash.clone();
            let ok = tokio::task::spawn_blocking(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            ok.then_some(user)
        }
        None => None,
    };
    let Some(user) = verified else {
        app.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
        app.db.audit(None, "-", "login", "denied").await;
        record(false);
        return failure(StatusCode::UNAUTHORIZED, "wrong username or password");
    };
    let issued = async {
        let (access, exp) = token_pair(&app, &user.id, &user.tenant)?;
        let refresh = random_token()?;
        let refresh_exp = chrono::Utc::now() + chrono::Duration::days(app.refresh_days as i64);
        app.db
            .save_refresh(&user.id, &user.tenant, &refresh, refresh_exp)
            .await?;
        anyhow::Ok((access, exp, refresh))
    }
    .await;
    match issued {
        Ok((access, exp, refresh)) => {
            app.metrics.logins_ok.fetch_add(1, Ordering::Relaxed);
            app.db
                .audit(Some(&user.id), &user.tenant, "login", "ok")
                .await;
            record(true);
            Json(json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_at": exp,
                "refresh_token": refresh,
                "kid": app.keys.active_kid(),
            }))
            .into_response()
        }
        Err(e) => {
            tracing::error!("login: {e}");
            record(false);
            failure(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue tokens")
        }
    }
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(State(app): State<Arc<App>>, Json(body): Json<RefreshBody>) -> Response {
    let started = Instant::now();
    let owner = app.db.take_refresh(&body.refresh_token).await;
    let result = match owner {
        Ok(Some((user, tenant))) => {
            async {
                let (access, exp) = token_pair(&app, &user, &tenant)?;
                let next = random_token()?;
                let next_exp = chrono::Utc::now() + chrono::Duration::days(app.refresh_days as i64);
                app.db.save_refresh(&user, &tenant, &next, next_exp).await?;
                anyhow::Ok(Some((access, exp, next)))
            }
            .await
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let success = matches!(result, Ok(Some(_)));
    app.events.record(AuthEvent {
        kind: "token_refresh",
        success,
        response_time_ms: started.elapsed().as_secs_f64() * 1000.0,
        instance: app.instance.clone(),
    });
    match result {
        Ok(Some((access, exp, next))) => {
            app.metrics.refreshes.fetch_add(1, Ordering::Relaxed);
            Json(json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_at": exp,
                "refresh_token": next,
                "kid": app.keys.active_kid(),
            }))
            .into_response()
        }
        Ok(None) => failure(
            StatusCode::UNAUTHORIZED,
            "unknown, used or expired refresh token",
        ),
        Err(e) => {
            tracing::error!("refresh: {e}");
            failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the token store is unavailable",
            )
        }
    }
}

async fn verify(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        app.metrics.verifies_failed.fetch_add(1, Ordering::Relaxed);
        return failure(StatusCode::UNAUTHORIZED, "no bearer token");
    };
    let outcome = app.keys.verify(token);
    let (kind, success) = match &outcome {
        Ok(_) => ("auth_attempt", true),
        Err(VerifyError::Expired) => ("token_expiration", false),
        Err(VerifyError::Invalid(_)) => ("permission_denial", false),
    };
    if kind != "auth_attempt" {
        app.events.record(AuthEvent {
            kind,
            success,
            response_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            instance: app.instance.clone(),
        });
    }
    match outcome {
        Ok(claims) => {
            app.metrics.verifies_ok.fetch_add(1, Ordering::Relaxed);
            Json(json!({ "sub": claims.sub, "tenant": claims.tenant, "exp": claims.exp }))
                .into_response()
        }
        Err(VerifyError::Expired) => {
            app.metrics.verifies_failed.fetch_add(1, Ordering::Relaxed);
            failure(StatusCode::UNAUTHORIZED, "the token expired")
        }
        Err(VerifyError::Invalid(why)) => {
            app.metrics.verifies_failed.fetch_add(1, Ordering::Relaxed);
            failure(StatusCode::UNAUTHORIZED, &why)
        }
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    Json(json!({
        "status": "ok",
        "version": app.version,
        "instance": app.instance,
        "pid": std::process::id(),
        "uptime_seconds": app.started.elapsed().as_secs_f64(),
        "signing_kid": app.keys.active_kid(),
    }))
    .into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.faults.unready {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "not ready (fault)");
    }
    if app.draining.load(Ordering::Relaxed) {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if !app.db.ping().await {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unreachable",
        );
    }
    Json(json!({ "status": "ready", "version": app.version })).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&app.version, &app.instance),
    )
        .into_response()
}

async fn jwks(State(app): State<Arc<App>>) -> Response {
    (
        [(
            axum::http::header::CACHE_CONTROL,
            format!("public, max-age={}", app.keys.jwks_max_age()),
        )],
        Json(app.keys.jwks().clone()),
    )
        .into_response()
}
