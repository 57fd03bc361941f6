//! Monitoring benchmarks, with the release build of gantry:
//!
//!   cargo build --release -p gantry
//!   cargo bench -p gantry-tests --bench monitor
//!
//! - `record_auth_event` in this process on 1 and 2 threads (goal on 2:
//!   ≥ 10 M events/s);
//! - evaluating 100 rules over 15 minutes of windows (goal ≤ 1 ms);
//! - HTTP ingest into `gantry monitor` in batches of 1,000 on loopback
//!   (goal ≥ 300 k events/s), and the monitor's RSS over 10 M events
//!   (goal: flat);
//! - breach to the webhook receiver's 2xx (goal ≤ for + group_wait +
//!   250 ms; here `for` and group_wait are 0);
//! - hot reload of a notifier, from the new file landing to the new
//!   version serving, with a compile (new bytes) and from the compile
//!   cache (goal ≤ 300 ms);
//! - the console: `GET /` with 1,000 alerts and 1,000 deployments in the
//!   store (goal ≤ 50 ms), and an hour of plot data — 360 points drawn
//!   as SVG, and as `/v1/trend` JSON (goal ≤ 10 ms each).

use gantry::config::MonitoringConfig;
use gantry::monitor::evaluator::Evaluator;
use gantry::monitor::rules::rules;
use gantry::monitor::window::Windows;
use gantry::monitor::{AuthMonitor, Kind, MonitorSettings};
use gantry::runtime::registry::Registry;
use gantry::runtime::{Runtime, RuntimeSettings};
use gantry::store::Store;
use gantry_runtime::testing::verdict;
use gantry_tests::Sandbox;
use gantry_tests::monitor::{MonitorProcess, Receiver, post_events};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let bin = gantry_tests::gantry_bin();
    assert!(
        bin.is_file(),
        "{} is missing: cargo build --release -p gantry",
        bin.display()
    );
    println!(
        "gantry monitor benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `cargo bench --bench monitor -- console plots` runs only those.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sections: [(&str, fn()); 7] = [
        ("record", record),
        ("evaluate", evaluate),
        ("ingest", ingest),
        ("breach", breach),
        ("reload", reload),
        ("console", console),
        ("plots", plots),
    ];
    for (name, run) in sections {
        if only.is_empty() || only.iter().any(|o| o == name) {
            run();
        }
    }
    gantry_runtime::testing::finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// An `AuthMonitor` on a SQLite store in a temp dir, not started.
fn library_monitor(dir: &std::path::Path) -> Arc<AuthMonitor> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.join("state.db").display());
    let store = rt
        .block_on(Store::open(&gantry::db::DbTarget::parse(&url).unwrap()))
        .unwrap();
    let runtime = Arc::new(
        Runtime::new(RuntimeSettings {
            cache_dir: None,
            ..RuntimeSettings::default()
        })
        .unwrap(),
    );
    let registry = Arc::new(Registry::new(runtime, None, Default::default()));
    let config = MonitoringConfig::default();
    let settings = MonitorSettings {
        rules: rules(&config).unwrap(),
        receivers: Vec::new(),
        group_by: config.group_by.clone(),
        timing: gantry::monitor::lifecycle::Timing {
            group_wait: Duration::ZERO,
            group_interval: Duration::ZERO,
            repeat_interval: Duration::from_secs(3600),
        },
        delivery: config.delivery.clone(),
        evaluation_interval: Duration::from_secs(5),
        external_url: String::new(),
        alert_log: dir.join("alerts.json"),
        plugin_dir: None,
        secrets_base: dir.to_path_buf(),
        lease_ttl: Duration::from_secs(30),
        host: "bench".into(),
    };
    Arc::new(AuthMonitor::new(settings, store, registry))
}

fn record() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = library_monitor(dir.path());
    let per_thread: u64 = 20_000_000;
    for threads in [1usize, 2] {
        let mut rates = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let monitor = &monitor;
                    s.spawn(move || {
                        for i in 0..per_thread {
                            monitor
                                .record_auth_event(
                                    "auth_attempt",
                                    !(i + t as u64).is_multiple_of(16),
                                    Some((i % 500) as f64),
                                )
                                .unwrap();
                        }
                    });
                }
            });
            rates.push((per_thread * threads as u64) as f64 / start.elapsed().as_secs_f64());
        }
        let rate = median(rates);
        println!(
            "{:<52} {:>8.1} M events/s   {}",
            format!("record_auth_event, {threads} thread(s)"),
            rate / 1e6,
            if threads == 2 {
                verdict(rate >= 10e6, "≥ 10 M/s")
            } else {
                String::new()
            }
        );
    }
    // The typed call, without parsing the kind's name.
    let start = Instant::now();
    let n = 20_000_000u64;
    for i in 0..n {
        monitor.record(
            Kind::AuthAttempt,
            i % 16 != 0,
            Some(Duration::from_micros(i % 500_000)),
        );
    }
    println!(
        "{:<52} {:>8.1} M events/s",
        "record (typed), 1 thread",
        n as f64 / start.elapsed().as_secs_f64() / 1e6
    );
}

fn evaluate() {
    // 100 rules: every metric, every window, thresholds in range.
    let metrics = [
        ("success_rate", 0.95, "<"),
        ("error_rate", 0.05, ">"),
        ("latency_p50_ms", 300.0, ">"),
        ("latency_p95_ms", 800.0, ">"),
        ("latency_p99_ms", 1000.0, ">"),
        ("token_refresh_rate", 1000.0, ">"),
        ("token_expiration_rate", 100.0, ">"),
        ("permission_denial_rate", 0.1, ">"),
        ("events", 1.0, "<"),
    ];
    let windows = ["1m", "5m", "15m"];
    let rule_configs: Vec<Value> = (0..100)
        .map(|i| {
            let (metric, threshold, op) = metrics[i % metrics.len()];
            json!({
                "name": format!("rule-{i}"),
                "metric": metric,
                "op": op,
                "threshold": threshold,
                "window": windows[i % windows.len()],
                "labels": {"team": format!("t{}", i % 7)},
            })
        })
        .collect();
    let config: MonitoringConfig =
        serde_json::from_value(json!({"default_rules": false, "rules": rule_configs})).unwrap();
    let rules = rules(&config).unwrap();
    assert_eq!(rules.len(), 100);
    // 15 minutes of traffic from two threads' shards.
    let windows = Windows::default();
    let now = gantry::monitor::recorder::now_second();
    for _ in 0..2 {
        let shard = windows.shard();
        for second in now - 899..=now {
            for i in 0..200u64 {
                let kind = Kind::ALL[(i % 5) as usize];
                shard.record(second, kind, i % 13 != 0, Some(1_000 + i * 997 % 900_000));
            }
        }
    }
    let mut evaluator = Evaluator::new(rules);
    let mut samples = Vec::new();
    for i in 0..500 {
        let start = Instant::now();
        let transitions = evaluator.evaluate(i, |w| windows.totals(now, w.as_secs()));
        std::hint::black_box(transitions);
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let m = median(samples.clone());
    println!(
        "{:<52} {:>8.3} ms (p99 {:.3} ms)   {}",
        "evaluate 100 rules over 15 min of windows",
        m,
        percentile(samples, 0.99),
        verdict(m <= 1.0, "≤ 1 ms")
    );
}

fn monitor_config(receivers: Value) -> Value {
    json!({"monitoring": {
        "default_rules": false,
        "rules": [{
            "name": "LoginsFailing",
            "metric": "success_rate",
            "op": "<",
            "threshold": 0.5,
            "window": "15m",
            "min_samples": 10,
            "no_data": "keep",
        }],
        "receivers": receivers,
        "group_wait_seconds": 0,
        "group_interval_seconds": 0,
        "repeat_interval_seconds": 3600,
        "alert_log": "alerts.json",
    }})
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn ingest() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        monitor_config(json!([])).to_string(),
    );
    let monitor = MonitorProcess::start(&sandbox, &[]);
    let batch: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "kind": Kind::ALL[i % 5].as_str(),
                "success": i % 17 != 0,
                "response_time_ms": (i % 400) as f64 + 0.5,
            })
        })
        .collect();
    let body = axum::body::Bytes::from(serde_json::to_vec(&batch).unwrap());
    let url = format!("{}/v1/events", monitor.api);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let send = |batches: u64| {
        let start = Instant::now();
        rt.block_on(async {
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (client, url, body, next) =
                    (client.clone(), url.clone(), body.clone(), Arc::clone(&next));
                tasks.push(tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200);
                        r.bytes().await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        start.elapsed()
    };
    send(200); // warm up
    let pid = monitor.child.id();
    let rss_start = rss_kib(pid);
    let mut rss = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..10 {
        let took = send(1000);
        rates.push(1_000_000.0 / took.as_secs_f64());
        rss.push(rss_kib(pid));
    }
    let rate = median(rates);
    println!(
        "{:<52} {:>8.0} k events/s   {}",
        "HTTP ingest, batches of 1,000, 4 clients",
        rate / 1e3,
        verdict(rate >= 300e3, "≥ 300 k/s")
    );
    println!(
        "{:<52} {:>8.1} MiB after 0.2 M, {:.1} after 1 M, {:.1} after 5 M, {:.1} after 10 M   {}",
        "monitor RSS over 10 M events",
        rss_start as f64 / 1024.0,
        rss[0] as f64 / 1024.0,
        rss[4] as f64 / 1024.0,
        rss[9] as f64 / 1024.0,
        verdict(
            rss[9] <= rss[0] + rss[0] / 10,
            "flat (≤ +10 % from 1 M to 10 M)"
        )
    );
}

fn breach() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    sandbox.write(
        "deployment_config.json",
        monitor_config(json!([
            {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
        ]))
        .to_string(),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    monitor.wait_for("leadership", Duration::from_secs(30), |e| {
        e["event"] == "leading" && e["leading"] == true
    });
    let attempts = |n: u64, ok: bool| {
        Value::Array(
            (0..n)
                .map(|_| json!({"kind": "auth_attempt", "success": ok}))
                .collect(),
        )
    };
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut samples = Vec::new();
    for i in 0..15 {
        // Breach: failures outnumber successes in the window.
        let n = ok + 10 - failed.min(ok);
        let before = hook.delivered("firing").len();
        std::thread::sleep(Duration::from_millis(100 + (i * 37) % 200));
        let start = Instant::now();
        let (status, _) = post_events(&monitor.api, &attempts(n, false), None);
        assert_eq!(status, 200);
        failed += n;
        let deadline = Instant::now() + Duration::from_secs(30);
        let arrived = loop {
            let got = hook.delivered("firing");
            if got.len() > before {
                break got[before].at;
            }
            assert!(Instant::now() < deadline, "no firing notice");
            std::thread::sleep(Duration::from_millis(1));
        };
        samples.push((arrived - start).as_secs_f64() * 1e3);
        // Recover, and wait for the resolved notice.
        let before = hook.delivered("resolved").len();
        let n = failed + 10 - ok;
        let (status, _) = post_events(&monitor.api, &attempts(n, true), None);
        assert_eq!(status, 200);
        ok += n;
        let deadline = Instant::now() + Duration::from_secs(30);
        while hook.delivered("resolved").len() <= before {
            assert!(Instant::now() < deadline, "no resolved notice");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let m = median(samples.clone());
    println!(
        "{:<52} {:>8.1} ms (p90 {:.1}, max {:.1})   {}",
        "breach → webhook 2xx (for 0, group_wait 0)",
        m,
        percentile(samples.clone(), 0.9),
        percentile(samples.clone(), 1.0),
        verdict(percentile(samples, 1.0) <= 250.0, "≤ 250 ms (every sample)")
    );
}

/// The webhook notifier's bytes with a custom section that makes them new
/// (a new hash: the runtime compiles them rather than hit its cache).
fn variant(wasm: &[u8], n: u32) -> Vec<u8> {
    let name = b"gantry-bench";
    let payload = n.to_le_bytes();
    let mut section = Vec::new();
    section.push(name.len() as u8);
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

fn reload() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let plugins = sandbox.path().join(".gantry/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wasm = std::fs::read(gantry_runtime::testing::test_plugin("webhook-notifier")).unwrap();
    let manifest = std::fs::read_to_string(
        gantry_runtime::testing::test_plugin("webhook-notifier").with_extension("toml"),
    )
    .unwrap()
    .replace("name = \"webhook-notifier\"", "name = \"pager\"");
    std::fs::write(plugins.join("pager.toml"), manifest).unwrap();
    std::fs::write(plugins.join("pager.wasm"), &wasm).unwrap();
    sandbox.write(
        "deployment_config.json",
        monitor_config(json!([
            {"name": "ops", "plugin": "pager", "settings": {"url": hook.url()}},
        ]))
        .to_string(),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    let land = |bytes: &[u8]| {
        let tmp = plugins.join(".pager.wasm.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, plugins.join("pager.wasm")).unwrap();
        Instant::now()
    };
    let mut generation = 1u64;
    let mut measure = |bytes: Vec<u8>, monitor: &mut MonitorProcess| {
        let landed = land(&bytes);
        let want = generation + 1;
        monitor.wait_for("the reload", Duration::from_secs(60), |e| {
            e["event"] == "reloaded" && e["generation"].as_u64().is_some_and(|g| g >= want)
        });
        generation = want;
        landed.elapsed().as_secs_f64() * 1e3
    };
    let compiled: Vec<f64> = (0..8)
        .map(|n| measure(variant(&wasm, n), &mut monitor))
        .collect();
    let cached: Vec<f64> = (0..8)
        .map(|n| measure(variant(&wasm, n % 2), &mut monitor))
        .collect();
    for (name, samples) in [
        ("hot reload, new bytes (compile)", compiled),
        ("hot reload, bytes in the compile cache", cached),
    ] {
        let m = median(samples.clone());
        println!(
            "{:<52} {:>8.1} ms (max {:.1})   {}",
            name,
            m,
            percentile(samples, 1.0),
            verdict(m <= 300.0, "≤ 300 ms")
        );
    }
}

/// `GET /` of a monitor whose store holds 1,000 alerts (150 open) and
/// 1,000 deployments over three environments, each with four steps.
fn console() {
    use gantry::store::{AlertRecord, AlertState, DeploymentRecord, DeploymentState};
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        monitor_config(json!([])).to_string(),
    );
    let monitor = MonitorProcess::start(&sandbox, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!(
        "sqlite://{}",
        sandbox.path().join(".gantry/state.db").display()
    );
    rt.block_on(async {
        let store = Store::open(&gantry::db::DbTarget::parse(&url).unwrap())
            .await
            .unwrap();
        let now = gantry::clock::now_ms();
        store
            .write(async |tx| {
                for i in 0..1000i64 {
                    let open = i < 150;
                    let labels =
                        json!({"alertname": format!("Rule{}", i % 40), "severity": "critical"});
                    tx.save_alert(&AlertRecord {
                        id: format!("fp{i:04}-{}", now - i * 1000),
                        fingerprint: format!("fp{i:04}"),
                        rule: format!("Rule{}", i % 40),
                        state: if open {
                            AlertState::Firing
                        } else {
                            AlertState::Resolved
                        },
                        severity: "critical".into(),
                        labels: labels.to_string(),
                        annotations: json!({"summary": "s", "description": "d"}).to_string(),
                        value: Some(0.1),
                        threshold: Some(0.5),
                        started_ms: now - i * 1000,
                        firing_ms: Some(now - i * 1000),
                        resolved_ms: (!open).then_some(now),
                        updated_ms: now,
                        acked_by: None,
                        ack_comment: None,
                        ack_ms: None,
                        ack_expires_ms: None,
                    })
                    .await?;
                    tx.insert_deployment(
                        &DeploymentRecord {
                            id: format!("d{i:04}"),
                            environment: ["development", "staging", "production"][i as usize % 3]
                                .into(),
                            state: DeploymentState::Succeeded,
                            reason: None,
                            actor: "bench".into(),
                            host: "bench".into(),
                            owner: None,
                            options: "{}".into(),
                            started_ms: now - (1000 - i) * 60_000,
                            finished_ms: Some(now - (1000 - i) * 60_000 + 5_000),
                        },
                        &[
                            "migrate".into(),
                            "config".into(),
                            "rollout:auth".into(),
                            "verify".into(),
                        ],
                    )
                    .await?;
                }
                Ok::<_, gantry::store::StoreError>(())
            })
            .await
            .unwrap();
    });
    let page = format!("{}/", monitor.api);
    let (status, html) = gantry_tests::monitor::get(&page);
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Rule1") && html.contains("d0999"),
        "the page lacks the data"
    );
    let mut samples = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let (status, _) = gantry_tests::monitor::get(&page);
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
    }
    let p50 = median(samples.clone());
    println!(
        "console GET / with 1,000 alerts and 1,000 deployments: median {p50:.1} ms, p95 {:.1} ms ({})",
        percentile(samples, 0.95),
        verdict(p50 <= 50.0, "≤ 50 ms")
    );
}

/// An hour of trend (360 points) drawn as the console's SVG plots, and as
/// the `/v1/trend` JSON.
fn plots() {
    use gantry::monitor::trend::{POINTS, STEP, Trend};
    let windows = Windows::default();
    let shard = windows.shard();
    let trend = Trend::default();
    let start = 1_800_000_000u64;
    // Fill second by second, as a monitor would over an hour.
    for s in 0..(POINTS as u64 * STEP) {
        let second = start + s;
        for i in 0..20 {
            shard.record(second, Kind::AuthAttempt, i % 7 != 0, Some(1_000 + i * 500));
        }
        shard.record(second, Kind::PermissionDenial, false, None);
        if s % STEP == 0 {
            trend.update(&windows, second);
        }
    }
    let now = start + POINTS as u64 * STEP;
    trend.update(&windows, now);
    assert!(trend.points().len() >= POINTS - 1);
    let config: MonitoringConfig = serde_json::from_value(json!({
        "default_rules": true,
    }))
    .unwrap();
    let rules = rules(&config).unwrap();
    let mut svg = Vec::new();
    let mut data = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let drawn = gantry::api::console::plot::charts(&trend.points(), &rules, now);
        svg.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(drawn.contains("<polyline"));
        let t = Instant::now();
        let json = serde_json::to_string(&trend.points()).unwrap();
        data.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(json.len() > 1000);
    }
    let (svg, data) = (median(svg), median(data));
    println!(
        "an hour of plots ({} points): SVG {svg:.2} ms ({}), JSON {data:.2} ms ({})",
        trend.points().len(),
        verdict(svg <= 10.0, "≤ 10 ms"),
        verdict(data <= 10.0, "≤ 10 ms"),
    );
}
