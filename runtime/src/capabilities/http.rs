//! The `http` capability: outbound HTTP performed by the host for a plugin.
//!
//! Deny by default. A request goes out only when its origin
//! (`scheme://host:port`) is in the plugin's allowlist, resolved from the
//! manifest's `capabilities.http` entries and the call's settings. Every
//! redirect hop is checked again before it is followed. A name is resolved
//! once, by the client's own resolver, and every address it gives passes
//! the address policy (`egress`) before a connection is made to exactly
//! those addresses. Each request is
//! bounded by its own timeout, by what is left of the plugin's deadline,
//! and by a response-size cap. A refusal is the WIT-level `denied` error
//! naming the manifest entry to add; it never reaches the network.
//!
//! This module must never let a plugin choose its own proxy, follow a
//! redirect without checking it, or buffer an unbounded body.

use crate::kind::PluginKind;
use super::egress::{AddressPolicy, CheckedResolver};
use super::io::{remaining, run_io};
use super::unit::{CallContext, Capability, Collected};
use super::{GrantValue, Grants};
use crate::bindings::http::{self as wit, HttpError};
use crate::bindings::types::Kv;
use futures_util::StreamExt;
use reqwest::header::{
    AUTHORIZATION, COOKIE, HOST, HeaderMap, HeaderName, HeaderValue, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;
use wasmtime::component::{HasSelf, Linker};

/// One allowed origin. `port: None` means any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// Checks the shape of a manifest entry, with any `{setting}` stand-ins
    /// replaced by a placeholder: static entries must be exact origins.
    pub fn check_entry(entry: &str) -> Result<(), String> {
        if entry.trim().starts_with('{') && entry.trim().ends_with('}') {
            return Ok(()); // a whole setting: its value is checked per call
        }
        let probe = super::fill_placeholders(entry, "placeholder", "1");
        Self::parse_entry(&probe).map(|_| ())
    }

    /// `scheme://host:port` or `scheme://host:*`; the port defaults to the
    /// scheme's. No path, query or credentials.
    pub fn parse_entry(entry: &str) -> Result<Origin, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("expected scheme://host:port")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme `{scheme}` is not http or https"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("an origin has no path, query or credentials".into());
        }
        if let Some(host) = rest.strip_suffix(":*") {
            let origin = Self::parse_entry(&format!("{scheme}://{host}"))?;
            return Ok(Origin {
                port: None,
                ..origin
            });
        }
        let url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| e.to_string())?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("no host")?;
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }

    /// The origin of a full URL given as a setting value.
    pub fn of_url(url: &str) -> Option<Origin> {
        let url = Url::parse(url).ok()?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }

    fn allows(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.host.as_str())
            && (self.port.is_none() || self.port == url.port_or_known_default())
    }
}

/// The origins one call may reach: the manifest's, within the operator's
/// narrower list when there is one.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    origins: Vec<Origin>,
    /// The operator's key (`plugins.grants.NAME.http`) and its origins.
    within: Option<(String, Vec<Origin>)>,
}

impl Allowlist {
    /// Resolves manifest entries against the call's settings. An entry that
    /// names an unset setting grants nothing.
    pub fn resolve<'a>(entries: &[String], lookup: impl Fn(&str) -> Option<&'a str>) -> Self {
        let origins = entries
            .iter()
            .filter_map(|entry| {
                let filled = super::fill_from(entry, &lookup)?;
                if super::is_whole_template(entry) {
                    Origin::of_url(&filled).or_else(|| Origin::parse_entry(&filled).ok())
                } else {
                    Origin::parse_entry(&filled).ok()
                }
            })
            .collect();
        Allowlist {
            origins,
            within: None,
        }
    }

    /// What `plugin` with `grants` may reach for the settings `lookup`
    /// reads: the manifest's list, within the operator's when narrowed.
    pub fn granted<'a>(
        plugin: &str,
        grants: &Grants,
        lookup: impl Fn(&str) -> Option<&'a str> + Copy,
    ) -> Self {
        let allow = Allowlist::resolve(grants.list("http"), lookup);
        match grants.narrowed("http") {
            Some(narrowed) => allow.within(plugin, Allowlist::resolve(narrowed, lookup)),
            None => allow,
        }
    }

    /// Narrows this list by the operator's for `plugin`: a URL must be in
    /// both.
    pub fn within(mut self, plugin: &str, operator: Allowlist) -> Self {
        self.within = Some((format!("plugins.grants.{plugin}.http"), operator.origins));
        self
    }

    pub fn allows(&self, url: &Url) -> bool {
        self.check(url).is_ok()
    }

    /// Admits `url`, or says which list refused it and what to change.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        // A metadata service is out of reach even to a grant naming it.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            super::egress::literal(ip).map_err(|refused| refused.0)?;
        }
        if !self.origins.iter().any(|o| o.allows(url)) {
            return Err(denial(url));
        }
        match &self.within {
            Some((key, origins)) if !origins.iter().any(|o| o.allows(url)) => Err(format!(
                "{} is granted by the manifest but not by the operator ({key})",
                origin_of(url)
            )),
            _ => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

/// Checks, before any call, each setting a manifest entry takes whole as
/// its destination (`http = ["{url}"]`): the URL must be within the
/// grants (and the operator's narrowing) and, for a name that resolves
/// now, resolve where the address policy admits. The first that cannot work, as
/// (setting, why).
pub fn check_destinations(
    limits: &HttpLimits,
    plugin: &str,
    grants: &Grants,
    settings: &std::collections::BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    let allow = Allowlist::granted(plugin, grants, |k| settings.get(k).map(String::as_str));
    let policy = AddressPolicy {
        allow_private_names: limits.allow_private_names,
        key: "plugins.capabilities.http",
    };
    for entry in grants.list("http") {
        if !super::is_whole_template(entry) {
            continue;
        }
        let key = entry.trim().trim_matches(['{', '}']);
        let Some(value) = settings.get(key).filter(|v| !v.is_empty()) else {
            continue;
        };
        let fail = |why: String| (key.to_string(), why);
        // The value itself may be a secret (a Slack webhook URL): never
        // in the message.
        let url = Url::parse(value).map_err(|e| fail(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!(
                "the URL's scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        allow.check(&url).map_err(fail)?;
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            // A name that does not resolve now (DNS not up yet at boot)
            // is left to delivery, which retries; one that resolves where
            // the policy refuses will never work.
            if let Ok(addrs) = std::net::ToSocketAddrs::to_socket_addrs(&(name, port)) {
                let addrs: Vec<std::net::SocketAddr> = addrs.collect();
                policy.check(name, &addrs).map_err(|refused| fail(refused.0))?;
            }
        }
    }
    Ok(())
}

/// Requests a call may send when its manifest does not ask.
pub const DEFAULT_REQUESTS_PER_CALL: u32 = 64;
/// Body bytes a call may move when its manifest does not ask.
pub const DEFAULT_BYTES_PER_CALL: u64 = 16 << 20;

/// Operator bounds on plugin HTTP (`plugins.capabilities.http`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// A request's timeout when the plugin gives none.
    pub default_timeout_ms: u64,
    pub max_body_bytes: u64,
    pub max_redirects: u32,
    /// The most requests one plugin call may send, redirects included, so
    /// one health check cannot load-test the service it looks at. A call
    /// gets [`DEFAULT_REQUESTS_PER_CALL`] unless its manifest asks for
    /// another number (`limits.http_requests_per_call`) up to this.
    pub max_requests_per_call: u32,
    /// The most body bytes one call may send and receive over all its
    /// requests; a call gets [`DEFAULT_BYTES_PER_CALL`] unless its manifest
    /// asks (`limits.http_bytes_per_call`) up to this.
    pub max_bytes_per_call: u64,
    /// Names may resolve to loopback and private ranges (link-local and
    /// metadata addresses stay refused; see `egress`).
    pub allow_private_names: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            default_timeout_ms: 10_000,
            max_body_bytes: 4 << 20,
            max_redirects: 5,
            max_requests_per_call: 1024,
            max_bytes_per_call: 256 << 20,
            allow_private_names: false,
        }
    }
}

/// What the host shares across calls: one client trusting the platform's
/// roots (`SSL_CERT_FILE` honoured), one more per operator CA file, and
/// the process's I/O runtime. Clients are built on first use (reading the
/// platform's roots costs milliseconds a command that never fetches
/// should not pay); a clone shares them.
#[derive(Clone)]
pub struct HttpShared {
    pub io: tokio::runtime::Handle,
    pub limits: HttpLimits,
    clients: Arc<Clients>,
}

#[derive(Default)]
struct Clients {
    default: std::sync::OnceLock<Result<reqwest::Client, String>>,
    with_ca: Mutex<HashMap<PathBuf, reqwest::Client>>,
}

/// Idle connections kept to one host, and for how long.
const IDLE_PER_HOST: usize = 4;
const IDLE_FOR: Duration = Duration::from_secs(5);

fn client_builder(limits: &HttpLimits) -> reqwest::ClientBuilder {
    let policy = AddressPolicy {
        allow_private_names: limits.allow_private_names,
        key: "plugins.capabilities.http",
    };
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver(policy)))
        // Connections a call leaves idle are kept briefly and few to a
        // host: one call with a wide grant must not leave sockets open long
        // after it.
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .pool_idle_timeout(IDLE_FOR)
        .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
}

impl HttpShared {
    pub fn new(io: tokio::runtime::Handle, limits: HttpLimits) -> anyhow::Result<Self> {
        Ok(HttpShared {
            io,
            limits,
            clients: Arc::default(),
        })
    }

    /// The client for a call: the shared one, or one that also trusts the
    /// CA certificates (PEM) in `ca_file`.
    pub fn client_for(&self, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
        let Some(path) = ca_file else {
            return self
                .clients
                .default
                .get_or_init(|| {
                    client_builder(&self.limits)
                        .build()
                        .map_err(|e| format!("cannot build the HTTP client: {e}"))
                })
                .clone();
        };
        let mut cache = self.clients.with_ca.lock().expect("http clients");
        if let Some(client) = cache.get(path) {
            return Ok(client.clone());
        }
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "the CA file {} holds no PEM certificate: {e}",
                path.display()
            )
        })?;
        let client = certs
            .into_iter()
            .fold(client_builder(&self.limits), |b, cert| b.add_root_certificate(cert))
            .build()
            .map_err(|e| format!("cannot use the CA file {}: {e}", path.display()))?;
        cache.insert(path.to_path_buf(), client.clone());
        Ok(client)
    }
}

/// The capability as a unit: manifest grant `http = ["scheme://host:port", …]`.
pub struct Http;

impl Capability for Http {
    const INTERFACE: &'static str = "http";
    const WORLDS: &'static [PluginKind] = &[PluginKind::HealthCheck, PluginKind::Notifier];
    type Limits = HttpLimits;
    type Shared = HttpShared;
    type State = HttpState;

    fn granted(_: &Grants) -> bool {
        true
    }

    fn check_grant(value: &GrantValue) -> Result<(), String> {
        value.entries(Origin::check_entry)
    }

    /// `http = ["scheme://host:port", …]`, each within a manifest entry.
    type Operator = Vec<String>;

    fn narrow(declared: &Grants, entries: &Vec<String>, grants: &mut Grants) -> Result<(), String> {
        super::narrow_list("http", declared, entries, grants, Origin::check_entry, |m, e| {
            match (Origin::parse_entry(m), Origin::parse_entry(e)) {
                (Ok(m), Ok(e)) => {
                    m.scheme == e.scheme && m.host == e.host && (m.port.is_none() || m.port == e.port)
                }
                _ => false,
            }
        })
    }

    fn summary(grants: &Grants) -> Option<serde_json::Value> {
        Some(super::list_summary("http", grants))
    }

    fn shared(limits: &HttpLimits, io: &tokio::runtime::Handle) -> anyhow::Result<HttpShared> {
        HttpShared::new(io.clone(), *limits)
    }

    fn state(shared: &HttpShared, call: &CallContext<'_>) -> HttpState {
        let allow = Allowlist::granted(call.plugin, call.grants, |k| call.lookup(k));
        let operator = &shared.limits;
        let budget = (
            call.limits
                .http_requests_per_call
                .unwrap_or(DEFAULT_REQUESTS_PER_CALL)
                .min(operator.max_requests_per_call),
            call.limits
                .http_bytes_per_call
                .unwrap_or(DEFAULT_BYTES_PER_CALL)
                .min(operator.max_bytes_per_call),
        );
        HttpState::new(
            shared.clone(),
            allow,
            call.deadline,
            budget,
            call.ca_file.map(Path::to_path_buf),
        )
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut HttpState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<HttpState>>(linker, get)
    }

    fn collect(state: &mut HttpState, into: &mut Collected) {
        into.denials.append(&mut state.denials);
    }
}

/// Per-call state of the capability.
pub struct HttpState {
    shared: HttpShared,
    /// A CA file the operator trusts for this call, beside the platform's
    /// roots; the call's client is taken at its first request.
    ca_file: Option<PathBuf>,
    allow: Arc<Allowlist>,
    deadline: Instant,
    /// Requests and body bytes this call may use.
    budget: (u32, u64),
    /// What this call has used of its request and byte budget.
    used: Arc<Budget>,
    /// Destinations refused during this call, for the call's report.
    pub denials: Vec<String>,
}

/// One call's outbound requests and body bytes so far.
#[derive(Default)]
struct Budget {
    requests: AtomicU32,
    bytes: AtomicU64,
}

impl HttpState {
    pub fn new(
        shared: HttpShared,
        allow: Allowlist,
        deadline: Instant,
        budget: (u32, u64),
        ca_file: Option<PathBuf>,
    ) -> Self {
        HttpState {
            ca_file,
            shared,
            allow: Arc::new(allow),
            deadline,
            budget,
            used: Arc::default(),
            denials: Vec::new(),
        }
    }

    fn fetch_checked(&mut self, req: wit::Request) -> Result<wit::Response, HttpError> {
        let method = Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad method {:?}", req.method)))?;
        let url = Url::parse(&req.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL: {e}")))?;
        let headers = header_map(&req.headers)?;
        check_host_header(&url, &headers)?;
        let wanted = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(Duration::from_millis(self.shared.limits.default_timeout_ms));
        let budget = wanted.min(remaining(self.deadline));
        if budget.is_zero() {
            return Err(HttpError::Timeout);
        }
        let client = self
            .shared
            .client_for(self.ca_file.as_deref())
            .map_err(HttpError::Transport)?;
        let exchange = Exchange {
            client,
            allow: Arc::clone(&self.allow),
            used: Arc::clone(&self.used),
            budget: self.budget,
            limits: self.shared.limits,
            method,
            url,
            headers,
            body: req.body,
            follow: req.follow_redirects,
        };
        let outcome = run_io(&self.shared.io, async move {
            match tokio::time::timeout(budget, exchange.run()).await {
                Ok(result) => result,
                Err(_) => Err(HttpError::Timeout),
            }
        })
        .unwrap_or_else(|| Err(HttpError::Transport("the host is shutting down".into())));
        if let Err(HttpError::Denied(why)) = &outcome {
            self.denials.push(why.clone());
        }
        outcome
    }
}

impl wit::Host for HttpState {
    fn fetch(&mut self, req: wit::Request) -> wasmtime::Result<Result<wit::Response, HttpError>> {
        Ok(self.fetch_checked(req))
    }
}

/// One request and the redirects it leads to.
struct Exchange {
    client: reqwest::Client,
    allow: Arc<Allowlist>,
    used: Arc<Budget>,
    budget: (u32, u64),
    limits: HttpLimits,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    follow: bool,
}

impl Exchange {
    /// Counts one request sending `sent` body bytes against the call's
    /// budget; returns how large its response body may be.
    fn spend(&self, sent: u64) -> Result<u64, HttpError> {
        let (requests, bytes) = self.budget;
        let made = self.used.requests.fetch_add(1, Ordering::Relaxed);
        if made >= requests {
            return Err(HttpError::Denied(format!(
                "this call has sent {made} requests, the most one call may (limits.http_requests_per_call in the manifest, up to the operator's plugins.capabilities.http.max_requests_per_call)"
            )));
        }
        let used = self.used.bytes.fetch_add(sent, Ordering::Relaxed) + sent;
        if used > bytes {
            return Err(HttpError::TooLarge(bytes));
        }
        Ok(self.limits.max_body_bytes.min(bytes - used))
    }

    async fn run(mut self) -> Result<wit::Response, HttpError> {
        let started = Instant::now();
        let mut hops = 0;
        loop {
            self.allow.check(&self.url).map_err(HttpError::Denied)?;
            let sent = self.body.as_ref().map_or(0, |b| b.len() as u64);
            let body_cap = self.spend(sent)?;
            let mut request = self
                .client
                .request(self.method.clone(), self.url.clone())
                .headers(self.headers.clone());
            if let Some(body) = &self.body {
                request = request.body(body.clone());
            }
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if self.follow
                && status.is_redirection()
                && let Some(next) = location(&self.url, response.headers())?
            {
                hops += 1;
                if hops > self.limits.max_redirects {
                    return Err(HttpError::Transport(format!(
                        "more than {} redirects",
                        self.limits.max_redirects
                    )));
                }
                // Credentials and the body were meant for this origin only,
                // as browsers and reqwest's own redirect policy hold; so was
                // a Host header.
                if next.origin() != self.url.origin() {
                    for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, HOST] {
                        self.headers.remove(name);
                    }
                    self.body = None;
                }
                if status == StatusCode::SEE_OTHER
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && self.method == Method::POST)
                {
                    self.method = Method::GET;
                    self.body = None;
                }
                self.url = next;
                continue;
            }
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| Kv {
                    key: k.as_str().to_string(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect();
            let final_url = response.url().to_string();
            let body = read_capped(response, body_cap, &self.used.bytes).await?;
            return Ok(wit::Response {
                status: status.as_u16(),
                headers,
                body,
                elapsed_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
                final_url,
            });
        }
    }
}

fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// The message a plugin gets for a refused URL: what to add, and where.
pub fn denial(url: &Url) -> String {
    let origin = origin_of(url);
    format!(
        "{origin} is not in the allowlist; add \"{origin}\" to capabilities.http in the plugin's manifest"
    )
}

fn location(base: &Url, headers: &HeaderMap) -> Result<Option<Url>, HttpError> {
    let Some(value) = headers.get(LOCATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| HttpError::Transport("redirect Location is not text".into()))?;
    base.join(text)
        .map(Some)
        .map_err(|e| HttpError::Transport(format!("bad redirect Location {text:?}: {e}")))
}

/// The response body, at most `cap` bytes. Every chunk received counts
/// against the call's byte budget (`moved`) as it arrives, also when the
/// body then proves too large or the call's time runs out part-way.
async fn read_capped(
    response: reqwest::Response,
    cap: u64,
    moved: &AtomicU64,
) -> Result<Vec<u8>, HttpError> {
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(HttpError::TooLarge(cap));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(transport)?;
        moved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(HttpError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A `Host` header must name the URL's own host (the allowlist checked the
/// URL; a different Host would reach another virtual host behind it), and
/// there may be one only: servers differ in which of two they route by.
fn check_host_header(url: &Url, headers: &HeaderMap) -> Result<(), HttpError> {
    let given: Vec<&HeaderValue> = headers.get_all(HOST).iter().collect();
    if given.len() > 1 {
        return Err(HttpError::InvalidRequest(format!(
            "{} Host headers in one request are refused: send one, naming the URL's host",
            given.len()
        )));
    }
    let Some(value) = given.first() else {
        return Ok(());
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or_default();
    let given = value.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    if given == host || given == format!("{host}:{port}") {
        return Ok(());
    }
    Err(HttpError::InvalidRequest(format!(
        "a Host header ({given:?}) that differs from the URL's host ({host:?}) is refused"
    )))
}

fn header_map(headers: &[Kv]) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::new();
    for kv in headers {
        let name = HeaderName::from_bytes(kv.key.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad header name {:?}", kv.key)))?;
        let value = HeaderValue::from_str(&kv.value)
            .map_err(|_| HttpError::InvalidRequest(format!("bad value for header {}", kv.key)))?;
        map.append(name, value);
    }
    Ok(map)
}

fn transport(err: reqwest::Error) -> HttpError {
    if err.is_timeout() {
        return HttpError::Timeout;
    }
    if let Some(refused) = super::egress::refusal_in(&err) {
        return HttpError::Denied(refused);
    }
    // The innermost cause says the most ("Connection refused").
    let mut root: &dyn std::error::Error = &err;
    while let Some(cause) = root.source() {
        root = cause;
    }
    let what = if err.is_connect() {
        "cannot connect"
    } else {
        "transfer failed"
    };
    HttpError::Transport(format!("{what}: {root}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn every_chunk_received_counts_against_the_budget() {
        // A body without a length, larger than the cap: refused part-way,
        // and what came in before the refusal is spent.
        let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![7u8; 10_000]));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let response = reqwest::Response::from(http::Response::new(body));
        let moved = AtomicU64::new(0);
        let io = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = io.block_on(read_capped(response, 35_000, &moved));
        assert!(matches!(result, Err(HttpError::TooLarge(35_000))), "{result:?}");
        assert_eq!(moved.load(Ordering::Relaxed), 40_000);

        let chunks = (0..3).map(|_| Ok::<_, std::io::Error>(vec![7u8; 10_000]));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let response = reqwest::Response::from(http::Response::new(body));
        let body = io.block_on(read_capped(response, 35_000, &moved)).unwrap();
        assert_eq!(body.len(), 30_000);
        assert_eq!(moved.load(Ordering::Relaxed), 70_000);
    }

    #[test]
    fn one_host_header_naming_the_urls_host_and_no_second() {
        let target = url("http://api.example.com:8080/x");
        let headers = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append(HOST, HeaderValue::from_str(v).unwrap());
            }
            map
        };
        assert!(check_host_header(&target, &headers(&[])).is_ok());
        assert!(check_host_header(&target, &headers(&["api.example.com:8080"])).is_ok());
        assert!(check_host_header(&target, &headers(&["API.example.com"])).is_ok());
        assert!(check_host_header(&target, &headers(&["admin.internal"])).is_err());
        // The first names the URL's host; a server routing by the second
        // would reach another virtual host.
        let both = headers(&["api.example.com:8080", "admin.internal"]);
        let err = check_host_header(&target, &both).unwrap_err();
        assert!(format!("{err:?}").contains("2 Host headers"), "{err:?}");
        let same = headers(&["api.example.com", "api.example.com"]);
        assert!(check_host_header(&target, &same).is_err());
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let list = Allowlist {
            within: None,
            origins: vec![
                Origin::parse_entry("http://127.0.0.1:8080").unwrap(),
                Origin::parse_entry("https://API.example.com").unwrap(),
                Origin::parse_entry("http://localhost:*").unwrap(),
            ],
        };
        assert!(list.allows(&url("http://127.0.0.1:8080/health")));
        assert!(!list.allows(&url("http://127.0.0.1:8081/health")));
        assert!(!list.allows(&url("https://127.0.0.1:8080/")));
        assert!(list.allows(&url("https://api.example.com/v1")));
        assert!(!list.allows(&url("https://api.example.com:8443/v1")));
        assert!(list.allows(&url("http://localhost:1234/")));
        assert!(!list.allows(&url("http://localhost.evil.com/")));
    }

    #[test]
    fn templates_resolve_from_settings() {
        let entries = vec!["{url}".to_string(), "http://{host}:9000".to_string()];
        let list = Allowlist::resolve(&entries, |key| match key {
            "url" => Some("http://127.0.0.1:7000/healthz?x=1"),
            _ => None,
        });
        assert!(list.allows(&url("http://127.0.0.1:7000/other")));
        assert!(!list.allows(&url("http://127.0.0.1:9000/")));
    }

    /// A value fills what the entry leaves open and changes nothing else,
    /// wherever it came from (the manifest's own default included).
    #[test]
    fn a_value_cannot_move_a_templated_grant() {
        let entries = vec!["https://{ws}.slack.com".to_string()];
        let with = |ws: &'static str| Allowlist::resolve(&entries, move |_| Some(ws));
        assert!(with("acme").allows(&url("https://acme.slack.com/hook")));
        for escape in [
            "evil.example\\",
            "evil.example/",
            "evil.example?",
            "evil.example#",
            "user@evil.example",
            "evil.example:443",
            "evil%2eexample",
            "a.b",
        ] {
            let list = with(escape);
            assert!(list.is_empty(), "{escape:?} granted {list:?}");
            assert!(!list.allows(&url("https://evil.example/")), "{escape:?}");
        }
        let suffix = vec!["https://api.example.{tld}".to_string()];
        let list = Allowlist::resolve(&suffix, |_| Some("com.evil.example"));
        assert!(list.is_empty(), "{list:?}");
        let port = vec!["https://api.example.com:{port}".to_string()];
        assert!(Allowlist::resolve(&port, |_| Some("*")).is_empty());
        assert!(Allowlist::resolve(&port, |_| Some("8443")).allows(&url("https://api.example.com:8443/")));
        // A whole host may be any name or address; a port stays a port.
        let host = vec!["http://{host}:9000".to_string()];
        assert!(Allowlist::resolve(&host, |_| Some("db.internal")).allows(&url("http://db.internal:9000/")));
        assert!(Allowlist::resolve(&host, |_| Some("[::1]")).allows(&url("http://[::1]:9000/")));
        assert!(Allowlist::resolve(&host, |_| Some("evil.example:80")).is_empty());
        assert!(Allowlist::resolve(&host, |_| Some("evil.example\\x")).is_empty());
    }

    #[test]
    fn denial_names_the_entry_to_add() {
        let message = denial(&url("http://127.0.0.1:5555/x"));
        assert!(message.contains("\"http://127.0.0.1:5555\""), "{message}");
        assert!(message.contains("capabilities.http"), "{message}");
    }
}
