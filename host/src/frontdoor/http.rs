//! The front door's HTTP side: HTTP/1.1 (keep-alive) and HTTP/2 without
//! TLS (h2c, prior knowledge) from clients, each request sent on to an
//! instance of the pool over pooled HTTP/1.1 connections, upgrades
//! (WebSocket) passed through as a byte stream.
//!
//! The instance sees the client's address in `X-Forwarded-For` and
//! `Forwarded`, the scheme in `X-Forwarded-Proto`, the original `Host`.
//! Hop-by-hop headers stay on their hop. A request that could not reach an
//! instance (connection refused: it just went away between the pool's
//! choice and the connect) is tried on another when it carries no body or
//! a small one of known length (read first, up to `REPLAYABLE_BYTES`, so
//! it can be sent again: nothing reached the instance); anything else that
//! fails is a 502, an empty pool 503.
//!
//! Never sends a request to an address that is not in the pool.

use super::pool::{InFlight, Pool};
use super::stats::HttpStats;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

type Body = BoxBody<Bytes, hyper::Error>;

/// Attempts per replayable request before it is a 502.
const TRIES: usize = 3;

/// The largest body (with a `Content-Length`) read before forwarding so
/// the request can be tried on another instance: logins and token
/// refreshes, not uploads.
const REPLAYABLE_BYTES: u64 = 64 << 10;

/// How long such a body may take to arrive.
const BODY_READ: Duration = Duration::from_secs(30);

/// What every connection of the HTTP front door shares.
#[derive(Clone)]
pub struct HttpProxy {
    pool: Arc<Pool>,
    client: Client<HttpConnector, Body>,
    stats: Arc<HttpStats>,
}

impl HttpProxy {
    pub fn new(pool: Arc<Pool>, stats: Arc<HttpStats>) -> HttpProxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        HttpProxy {
            pool,
            client,
            stats,
        }
    }

    /// Serves one client connection until it closes, or until the graceful
    /// shutdown `watcher` belongs to asks it to finish its request and close.
    pub async fn serve(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let _ = stream.set_nodelay(true);
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy.forward(request, peer).await) }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let _ = watcher.watch(connection).await;
    }

    async fn forward(&self, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mut started = std::time::Instant::now();
        let upgrade = is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        set_forwarded(&mut parts.headers, peer, upgrade);
        // The body's own framing says what it is (the hop-by-hop headers,
        // Transfer-Encoding among them, are gone by now): none, a small
        // one of known length (read first, so a connect that fails can be
        // retried with it), or one that goes through as it comes.
        let hint = body.size_hint();
        let (replay, mut body) = if body.is_end_stream() || hint.exact() == Some(0) {
            (Some(Bytes::new()), Some(empty()))
        } else if !upgrade && hint.exact().is_some_and(|n| n <= REPLAYABLE_BYTES) {
            match tokio::time::timeout(BODY_READ, body.collect()).await {
                Ok(Ok(collected)) => {
                    let bytes = collected.to_bytes();
                    (Some(bytes.clone()), Some(full(bytes)))
                }
                Ok(Err(_)) => {
                    return answer(StatusCode::BAD_REQUEST, "the request body was cut short");
                }
                Err(_) => {
                    return answer(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body did not arrive in time",
                    );
                }
            }
        } else {
            (None, Some(body.boxed()))
        };
        let mut tried: Vec<SocketAddr> = Vec::new();
        loop {
            let Some(backend) = self.pool.choose(&tried) else {
                return if tried.is_empty() {
                    answer(StatusCode::SERVICE_UNAVAILABLE, "no instance is serving")
                } else {
                    answer(StatusCode::BAD_GATEWAY, "no instance could be reached")
                };
            };
            let guard = backend.enter();
            let address = backend.member.address;
            let counted_as = |status: StatusCode, timed: bool| {
                self.stats.record(
                    &backend.member.revision,
                    crate::monitor::recorder::now_second(),
                    status.as_u16(),
                    timed.then(|| started.elapsed()),
                )
            };
            let outgoing = match outgoing(&parts, address, body.take()) {
                Ok(request) => request,
                Err(why) => return answer(StatusCode::BAD_REQUEST, why),
            };
            match self.client.request(outgoing).await {
                Ok(mut response) => {
                    counted_as(response.status(), true);
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS
                        && let Some(client_side) = client_upgrade
                    {
                        let backend_side = hyper::upgrade::on(&mut response);
                        tokio::spawn(splice(client_side, backend_side, guard));
                        return response.map(|b| b.boxed());
                    }
                    strip_hop_by_hop(response.headers_mut(), false);
                    return response.map(|b| counted(b, guard));
                }
                Err(e) if e.is_connect() && tried.len() + 1 < TRIES && replay.is_some() => {
                    // Charged to the revision that refused it (the client
                    // does not see it, but a canary refusing connections is
                    // a canary failing); the next attempt is timed alone.
                    counted_as(StatusCode::BAD_GATEWAY, false);
                    started = std::time::Instant::now();
                    drop(guard);
                    tried.push(address);
                    body = replay.clone().map(full);
                }
                Err(e) => {
                    counted_as(StatusCode::BAD_GATEWAY, true);
                    tracing::debug!(backend = %address, "upstream failed: {e}");
                    return answer(StatusCode::BAD_GATEWAY, "the instance did not answer");
                }
            }
        }
    }
}

fn outgoing(
    parts: &hyper::http::request::Parts,
    address: SocketAddr,
    body: Option<Body>,
) -> Result<Request<Body>, &'static str> {
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    let authority = hyper::http::uri::Authority::try_from(address.to_string())
        .map_err(|_| "bad instance address")?;
    let uri = hyper::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| "bad request target")?;
    let mut request = Request::new(body.unwrap_or_else(empty));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    // HTTP/2 clients give the host as :authority.
    if !request.headers().contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, value);
    }
    Ok(request)
}

/// Bytes both ways between an upgraded client and its instance; the
/// instance counts as busy until the connection ends.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    backend: hyper::upgrade::OnUpgrade,
    guard: InFlight,
) {
    let (Ok(client), Ok(backend)) = (client.await, backend.await) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    drop(guard);
}

/// The response body, with the instance counted busy until hyper has sent
/// it (or the client went away) and drops it.
fn counted(body: Incoming, guard: InFlight) -> Body {
    body.map_frame(move |frame| {
        let _busy = &guard;
        frame
    })
    .boxed()
}

fn full(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return empty();
    }
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn answer(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        if upgrade && (*name == "connection" || *name == "upgrade") {
            continue;
        }
        headers.remove(*name);
    }
}

/// The client's address and scheme for the instance.
fn set_forwarded(headers: &mut HeaderMap, peer: SocketAddr, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    let ip = peer.ip().to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let node = if peer.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains('"'))
        .map(|h| format!(";host=\"{h}\""))
        .unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&format!("for={node};proto=http{host}")) {
        headers.append(header::FORWARDED, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_name_the_client_and_hop_by_hop_ones_go() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("auth.example:8080"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(&mut headers, "192.0.2.7:5555".parse().unwrap(), false);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(
            headers[header::FORWARDED],
            "for=192.0.2.7;proto=http;host=\"auth.example:8080\""
        );
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key("x-secret"));
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        set_forwarded(&mut headers, "127.0.0.1:1".parse().unwrap(), true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "Upgrade");
    }
}
