//! Steady HTTP load from the test itself: `workers` clients (keep-alive,
//! or a new connection per request) sending requests back to back or
//! paced, each answer checked, every failure (transport error, reset, a
//! closed keep-alive connection, or a status other than 200) counted, and
//! every request kept with the moment it started, so a report can cover
//! exactly a window (a roll) rather than the whole run.
//!
//! The client is hyper's connection API, one connection per worker: a
//! request that meets a connection the server closed fails and is counted.
//! A pooled client (reqwest, hyper-util's legacy client) retries such a
//! request on a new connection unseen — exactly the race a roll causes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Vec<Sample>>>,
    started: Instant,
}

/// One request: when it started, how long it took, and why it failed.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    latency_us: u64,
    failure: Option<String>,
}

/// What one kind of load sends.
#[derive(Debug, Clone)]
pub struct Spec {
    pub url: String,
    pub method: reqwest::Method,
    pub json: Option<serde_json::Value>,
    pub bearer: Option<String>,
    pub workers: usize,
    /// A new TCP connection for every request.
    pub new_connections: bool,
    /// A pause after each request (paced clients).
    pub pace: Option<Duration>,
}

impl Spec {
    pub fn get(url: &str, workers: usize) -> Spec {
        Spec {
            url: url.to_string(),
            method: reqwest::Method::GET,
            json: None,
            bearer: None,
            workers,
            new_connections: false,
            pace: None,
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub duration: Duration,
}

/// The parts of a request every worker sends, parsed once.
struct Target {
    address: String,
    host: String,
    path: String,
    method: hyper::Method,
    body: Bytes,
    bearer: Option<String>,
}

impl Target {
    fn new(spec: &Spec) -> Target {
        let url = reqwest::Url::parse(&spec.url).expect("a load URL");
        assert_eq!(url.scheme(), "http", "the load client speaks plain HTTP");
        let host = url.host_str().expect("a host").to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        Target {
            address: format!("{host}:{port}"),
            host: format!("{host}:{port}"),
            path,
            method: spec.method.as_str().parse().unwrap(),
            body: spec
                .json
                .as_ref()
                .map(|json| Bytes::from(serde_json::to_vec(json).unwrap()))
                .unwrap_or_default(),
            bearer: spec.bearer.clone(),
        }
    }

    fn request(&self, json: bool) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header(hyper::header::HOST, &self.host);
        if let Some(token) = &self.bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if json {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        request.body(Full::new(self.body.clone())).unwrap()
    }
}

async fn connect(address: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request on `connection` (making one first if there is none)
/// and says whether the connection may carry another.
async fn exchange(
    target: &Target,
    json: bool,
    connection: &mut Option<SendRequest<Full<Bytes>>>,
) -> Result<(), String> {
    let sender = match connection {
        Some(sender) => sender,
        None => connection.insert(connect(&target.address).await?),
    };
    let outcome = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = sender
            .send_request(target.request(json))
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let closing = response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        if status != 200 {
            return Err(format!("status {status}"));
        }
        Ok(closing)
    };
    match tokio::time::timeout(Duration::from_secs(10), outcome).await {
        Ok(Ok(closing)) => {
            if closing {
                *connection = None;
            }
            Ok(())
        }
        Ok(Err(e)) => {
            *connection = None;
            Err(e)
        }
        Err(_) => {
            *connection = None;
            Err("timed out after 10 s".to_string())
        }
    }
}

impl Load {
    /// Starts `workers` threads, each with its own keep-alive connection,
    /// sending GET `url` with `bearer` (if any) and expecting 200.
    pub fn start(url: &str, bearer: Option<String>, workers: usize) -> Load {
        Load::start_spec(Spec {
            bearer,
            ..Spec::get(url, workers)
        })
    }

    /// Starts load as `spec` says.
    pub fn start_spec(spec: Spec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..spec.workers)
            .map(|_| {
                let (spec, stop) = (spec.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let target = Target::new(&spec);
                        let json = spec.json.is_some();
                        let mut connection = None;
                        let mut samples = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let at = Instant::now();
                            let failure = exchange(&target, json, &mut connection).await.err();
                            if spec.new_connections {
                                connection = None;
                            }
                            samples.push(Sample {
                                at,
                                latency_us: at.elapsed().as_micros() as u64,
                                failure,
                            });
                            if let Some(pace) = spec.pace {
                                tokio::time::sleep(pace).await;
                            }
                        }
                        samples
                    })
                })
            })
            .collect();
        Load {
            stop,
            handles,
            started: Instant::now(),
        }
    }

    /// Stops every worker and reports on every request sent.
    pub fn stop(self) -> Report {
        let from = self.started;
        self.stop_within(from, None)
    }

    /// Stops every worker and reports on the requests that started in
    /// `from..to` (`to` = now when `None`): the window of a roll, not the
    /// load around it.
    pub fn stop_within(self, from: Instant, to: Option<Instant>) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let to = to.unwrap_or_else(Instant::now);
        let mut samples: Vec<Sample> = Vec::new();
        for handle in self.handles {
            samples.extend(handle.join().unwrap());
        }
        samples.retain(|s| s.at >= from && s.at < to);
        let mut latencies: Vec<u64> = samples
            .iter()
            .filter(|s| s.failure.is_none())
            .map(|s| s.latency_us)
            .collect();
        latencies.sort_unstable();
        let pct = |p: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() - 1) as f64 * p).round() as usize;
            latencies[i] as f64 / 1000.0
        };
        let failures: Vec<String> = samples.iter().filter_map(|s| s.failure.clone()).collect();
        let duration = to.saturating_duration_since(from);
        Report {
            ok: latencies.len() as u64,
            failed: failures.len() as u64,
            per_second: samples.len() as f64 / duration.as_secs_f64().max(1e-9),
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            failures: failures.into_iter().take(10).collect(),
            duration,
        }
    }
}
