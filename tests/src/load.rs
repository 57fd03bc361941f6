//! Steady HTTP load from the test itself: `workers` clients (keep-alive,
//! or a new connection per request) sending requests back to back or
//! paced, each answer checked, every failure (transport error, reset, or a
//! status other than the expected) counted, and every latency kept for
//! percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Stats>>,
    started: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    pub latencies_us: Vec<u64>,
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

impl Load {
    /// Starts `workers` threads, each with its own keep-alive client,
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
                        // A new connection per request when asked: no
                        // pooled connection, so no retry on one either.
                        let idle = if spec.new_connections { 0 } else { 4 };
                        let client = reqwest::Client::builder()
                            .timeout(Duration::from_secs(10))
                            .pool_max_idle_per_host(idle)
                            .build()
                            .unwrap();
                        let mut stats = Stats::default();
                        while !stop.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            let mut request = client.request(spec.method.clone(), &spec.url);
                            if let Some(token) = &spec.bearer {
                                request = request.bearer_auth(token);
                            }
                            if let Some(body) = &spec.json {
                                request = request.json(body);
                            }
                            match request.send().await {
                                Ok(r) if r.status() == 200 => match r.bytes().await {
                                    Ok(_) => {
                                        stats.ok += 1;
                                        stats
                                            .latencies_us
                                            .push(started.elapsed().as_micros() as u64);
                                    }
                                    Err(e) => {
                                        stats.failed += 1;
                                        stats.failures.push(format!("body: {e}"));
                                    }
                                },
                                Ok(r) => {
                                    stats.failed += 1;
                                    stats.failures.push(format!("status {}", r.status()));
                                }
                                Err(e) => {
                                    stats.failed += 1;
                                    stats.failures.push(format!("{e:?}"));
                                }
                            }
                            if let Some(pace) = spec.pace {
                                tokio::time::sleep(pace).await;
                            }
                        }
                        stats
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

    /// Takes a snapshot-free pause: stops every worker and sums up.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let duration = self.started.elapsed();
        let mut all = Stats::default();
        for handle in self.handles {
            let s = handle.join().unwrap();
            all.ok += s.ok;
            all.failed += s.failed;
            all.failures.extend(s.failures);
            all.latencies_us.extend(s.latencies_us);
        }
        all.latencies_us.sort_unstable();
        let pct = |p: f64| {
            if all.latencies_us.is_empty() {
                return 0.0;
            }
            let i = ((all.latencies_us.len() - 1) as f64 * p).round() as usize;
            all.latencies_us[i] as f64 / 1000.0
        };
        Report {
            ok: all.ok,
            failed: all.failed,
            failures: all.failures.into_iter().take(10).collect(),
            per_second: (all.ok + all.failed) as f64 / duration.as_secs_f64(),
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            duration,
        }
    }
}
