//! Steady HTTP load from the test itself: `workers` keep-alive clients
//! sending requests back to back, each answer checked, every failure
//! (transport error, reset, or a status other than the expected) counted,
//! and every latency kept for percentiles.

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
    /// Starts `workers` threads, each with its own client, sending GET `url`
    /// with `bearer` (if any) and expecting 200.
    pub fn start(url: &str, bearer: Option<String>, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..workers)
            .map(|_| {
                let (url, bearer, stop) = (url.to_string(), bearer.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let client = reqwest::Client::builder()
                            .timeout(Duration::from_secs(10))
                            .pool_max_idle_per_host(4)
                            .build()
                            .unwrap();
                        let mut stats = Stats::default();
                        while !stop.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            let mut request = client.get(&url);
                            if let Some(token) = &bearer {
                                request = request.bearer_auth(token);
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
