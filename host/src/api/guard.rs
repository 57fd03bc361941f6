//! What every request to gantry's API passes before any handler sees it.
//!
//! - **Host**: the `Host` header must name the listen address, an IP
//!   literal, `localhost`, or a name in `monitoring.api.hosts`; anything
//!   else is 421. A web page on another origin cannot reach the API by
//!   pointing its own name at 127.0.0.1 (DNS rebinding).
//! - **Content type**: every POST carries `application/json` (or NDJSON's
//!   `application/x-ndjson`); anything else is 415. A cross-site page can
//!   send only form and `text/plain` bodies without the browser asking
//!   first, and the API never answers that question. (A POST to a path
//!   the API describes with no POST goes on, to be answered 405.)
//! - **Token**: when `monitoring.api.token` is set, every route needs it,
//!   as `Authorization: Bearer …` or as the page's session cookie (an
//!   HttpOnly, SameSite=Strict cookie set by `POST /v1/session`). `GET /`
//!   without it shows only the form that asks for it.
//!
//! Every answer carries `X-Frame-Options: DENY` and a CSP with
//! `frame-ancestors 'none'` (no page may frame the console and steer a
//! click), and `nosniff`.
//!
//! Never logs or echoes the token.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The page session's cookie.
const COOKIE: &str = "gantry_session";

/// The path that trades the token for the page's cookie.
pub const SESSION_PATH: &str = "/v1/session";

/// What the guard checks against.
#[derive(Debug, Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    token: Option<String>,
    listen: SocketAddr,
    hosts: Vec<String>,
    /// Path templates the API's description has with no POST.
    without_post: Vec<String>,
}

/// True when `path` is an instance of `template` (`/v1/alerts/{id}`).
fn instance_of(path: &str, template: &str) -> bool {
    let mut given = path.split('/');
    let mut wanted = template.split('/');
    loop {
        match (given.next(), wanted.next()) {
            (None, None) => return true,
            (Some(g), Some(w)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(g), Some(w)) if g == w => {}
            _ => return false,
        }
    }
}

impl Guard {
    pub fn new(token: Option<String>, listen: SocketAddr, hosts: Vec<String>) -> Guard {
        Guard {
            inner: Arc::new(Inner {
                token: token.filter(|t| !t.is_empty()),
                listen,
                hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
                without_post: Vec::new(),
            }),
        }
    }

    /// Learns from the API's description which paths take no POST.
    pub fn knowing(self, doc: &utoipa::openapi::OpenApi) -> Guard {
        let without_post = doc
            .paths
            .paths
            .iter()
            .filter(|(_, item)| item.post.is_none())
            .map(|(path, _)| path.clone())
            .collect();
        Guard {
            inner: Arc::new(Inner {
                token: self.inner.token.clone(),
                listen: self.inner.listen,
                hosts: self.inner.hosts.clone(),
                without_post,
            }),
        }
    }

    fn takes_no_post(&self, path: &str) -> bool {
        self.inner
            .without_post
            .iter()
            .any(|template| instance_of(path, template))
    }

    /// `router` behind the guard, with the session route added.
    pub fn wrap(&self, router: axum::Router) -> axum::Router {
        router
            .route(
                SESSION_PATH,
                axum::routing::post(session).with_state(self.clone()),
            )
            .layer(axum::middleware::from_fn_with_state(self.clone(), check))
    }

    fn host_allowed(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string()));
        let Some(host) = host else {
            // HTTP/1.0 without a Host: no name to rebind.
            return true;
        };
        let host = host.to_ascii_lowercase();
        if host == self.inner.listen.to_string() {
            return true;
        }
        let name = strip_port(&host);
        name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self.inner.hosts.iter().any(|h| h == name || *h == host)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
            return true;
        }
        let expected = session_value(token);
        cookies(headers).any(|(name, value)| {
            name == COOKIE && constant_time_eq(value.as_bytes(), expected.as_bytes())
        })
    }
}

/// `host` without a trailing `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The cookie's value: derived from the token, so the cookie is not the
/// token itself.
fn session_value(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("gantry-session-v1\n{token}").as_bytes(),
    ))
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn json_content(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "application/json" | "application/x-ndjson" | "application/ndjson"
    )
}

/// Every answer, admitted or refused, may not be framed by another page
/// (a click on "silence" through an invisible frame), nor sniffed as
/// another type.
async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let mut response = admit(guard, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "frame-ancestors 'none'; default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn admit(guard: Guard, request: Request, next: Next) -> Response {
    if !guard.host_allowed(request.headers(), request.uri()) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this API answers to its listen address, localhost, an IP address or a name in monitoring.api.hosts",
        );
    }
    if request.method() == Method::POST
        && !json_content(request.headers())
        && !guard.takes_no_post(request.uri().path())
    {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST bodies must be Content-Type: application/json (or application/x-ndjson)",
        );
    }
    if request.uri().path() != SESSION_PATH && !guard.authorized(request.headers()) {
        let path = request.uri().path();
        // The console's pages ask for the token; the rest answers 401.
        if request.method() == Method::GET && (path == "/" || path.starts_with("/alerts/")) {
            return (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response();
        }
        return refuse(StatusCode::UNAUTHORIZED, "a bearer token is required");
    }
    next.run(request).await
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the request")]
struct SessionRequest {
    /// `monitoring.api.token`.
    token: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct SessionStarted {
    /// `started`, or why none is needed.
    session: String,
}

/// The session route's part of the API's description.
pub fn description() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(session))]
    struct Session;
    <Session as utoipa::OpenApi>::openapi()
}

/// `POST /v1/session {"token": "…"}`: the page's cookie for the right token.
#[utoipa::path(post, path = "/v1/session", request_body = SessionRequest, responses(
    (status = 200, description = "The session cookie is set (HttpOnly, SameSite=Strict)", body = SessionStarted),
    (status = 401, description = "Wrong token", body = super::schema::ErrorBody),
    (status = 421, description = "The Host header names neither this API nor a name it answers to", body = super::schema::ErrorBody),
    super::schema::BodyRefused,
))]
async fn session(State(guard): State<Guard>, Json(body): Json<serde_json::Value>) -> Response {
    let Some(token) = &guard.inner.token else {
        return Json(json!({"session": "not needed: no token is configured"})).into_response();
    };
    let given = body.get("token").and_then(|t| t.as_str()).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "wrong token");
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        session_value(token)
    );
    (
        [(header::SET_COOKIE, cookie)],
        Json(json!({"session": "started"})),
    )
        .into_response()
}

const LOGIN: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>gantry</title>
<style>body{font:15px system-ui,sans-serif;margin:3em}input{font:inherit}</style></head>
<body><h1>gantry</h1>
<p>This gantry's API needs its token (<code>monitoring.api.token</code>).</p>
<form id="f"><input id="t" type="password" autocomplete="current-password" autofocus>
<button>Open</button> <span id="e"></span></form>
<script>
document.getElementById('f').addEventListener('submit', async (event) => {
  event.preventDefault();
  const r = await fetch('/v1/session', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({token: document.getElementById('t').value})});
  if (r.ok) { location.reload(); } else { document.getElementById('e').textContent = 'wrong token'; }
});
</script></body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn hosts_that_may_reach_the_api() {
        let guard = Guard::new(
            None,
            "127.0.0.1:9464".parse().unwrap(),
            vec!["gantry.internal".into()],
        );
        let uri = axum::http::Uri::from_static("/");
        for ok in [
            "127.0.0.1:9464",
            "localhost:9464",
            "localhost",
            "[::1]:9464",
            "10.0.0.5",
            "gantry.internal:9464",
            "GANTRY.INTERNAL",
        ] {
            assert!(guard.host_allowed(&headers(&[("host", ok)]), &uri), "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "gantry.internal.evil",
        ] {
            assert!(
                !guard.host_allowed(&headers(&[("host", bad)]), &uri),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_path_is_an_instance_of_its_template() {
        assert!(instance_of("/v1/alerts/a-1", "/v1/alerts/{id}"));
        assert!(instance_of("/", "/"));
        assert!(!instance_of("/v1/alerts/", "/v1/alerts/{id}"));
        assert!(!instance_of("/v1/alerts/a/ack", "/v1/alerts/{id}"));
        assert!(!instance_of("/v1/events", "/v1/alerts"));
    }

    #[test]
    fn the_token_comes_as_a_bearer_or_the_session_cookie() {
        let guard = Guard::new(Some("t0ken".into()), "127.0.0.1:1".parse().unwrap(), vec![]);
        assert!(!guard.authorized(&headers(&[])));
        assert!(guard.authorized(&headers(&[("authorization", "Bearer t0ken")])));
        assert!(!guard.authorized(&headers(&[("authorization", "Bearer t0ke")])));
        let cookie = format!("a=b; {COOKIE}={}", session_value("t0ken"));
        assert!(guard.authorized(&headers(&[("cookie", &cookie)])));
        assert!(!guard.authorized(&headers(&[("cookie", "gantry_session=t0ken")])));
        let open = Guard::new(None, "127.0.0.1:1".parse().unwrap(), vec![]);
        assert!(open.authorized(&headers(&[])));
    }

    #[test]
    fn only_json_bodies() {
        assert!(json_content(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(json_content(&headers(&[(
            "content-type",
            "application/x-ndjson"
        )])));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            assert!(!json_content(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!json_content(&headers(&[])));
    }
}
