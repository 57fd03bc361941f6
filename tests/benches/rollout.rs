//! Rollout benchmarks with the release builds of gantry and the example
//! auth service:
//!
//!   cargo build --release -p gantry -p auth-service
//!   cargo bench -p gantry-tests --bench rollout
//!
//! (The release binaries are built first, by hand: cargo holds its build
//! lock while a benchmark runs, so the benchmark cannot build them.)
//!
//! - rolling 3 instances (max_parallel 1): wall time against the floor —
//!   what the service itself takes: each new instance's start (spawn to
//!   first passing check) and the last old instance's drain (SIGTERM to
//!   exit) — plus min_healthy_time per batch; goal ≤ 1.2 × floor + that.
//! - under steady load from this process (≥ 2,000 req/s): failed requests
//!   (goal 0) and p99 during the roll — the requests that started between
//!   the rollout's start and its exit — against the steady p99 (goal ≤ 2×).
//!
//! A goal missed makes the benchmark exit 1, after printing every figure.

use gantry_runtime::testing::verdict;
use gantry_tests::auth::Fixture;
use gantry_tests::load::Load;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn main() {
    gantry_tests::require_release_bins();
    let min_healthy = 0.5;
    let mut f = Fixture::new(
        3,
        json!({"min_healthy_time_seconds": min_healthy, "health_check_interval_seconds": 0.02}),
    );
    // Only the readiness check: the floor is the service's own start time.
    let checks = f.service()["health_checks"][0].clone();
    f.service()["health_checks"] = json!([checks]);
    f.service()["health_checks"][0]["period_seconds"] = json!(0.02);
    f.save();
    f.gantry(&["rollout", "auth"]).expect(0);
    let token = f.token();

    let steady = Load::start(&f.url("/verify"), Some(token.clone()), 8);
    std::thread::sleep(Duration::from_secs(3));
    let steady = steady.stop();

    f.service()["version"] = json!("v2");
    f.save();
    let load = Load::start(&f.url("/verify"), Some(token), 8);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let roll = f.gantry(&["rollout", "auth", "--json"]).expect(0);
    let ended = Instant::now();
    let wall = ended - started;
    std::thread::sleep(Duration::from_millis(500));
    let during = load.stop_within(started, Some(ended));

    let events: Vec<Value> = roll.json_lines();
    let healthy_after: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "healthy")
        .map(|e| e["after_ms"].as_f64().unwrap() / 1000.0)
        .collect();
    assert_eq!(healthy_after.len(), 3);
    let last_drain = events
        .iter()
        .filter(|e| e["event"] == "stopped")
        .filter_map(|e| e["after_ms"].as_f64())
        .next_back()
        .unwrap_or(0.0)
        / 1000.0;
    let starts: f64 = healthy_after.iter().map(|h| h - min_healthy).sum();
    let floor = starts + last_drain;
    let budget = 1.2 * floor + 3.0 * min_healthy;
    let roll_met = wall.as_secs_f64() <= budget;
    let load_met =
        during.failed == 0 && during.per_second >= 2000.0 && during.p99_ms <= 2.0 * steady.p99_ms;
    println!(
        "gantry rollout benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "roll 3 instances: wall {:.2} s; floor {:.3} s (Σ start times {:.3} s + last drain {:.3} s); budget 1.2 × floor + 3 × {min_healthy} s = {:.2} s: {}",
        wall.as_secs_f64(),
        floor,
        starts,
        last_drain,
        budget,
        verdict(roll_met, "≤ budget")
    );
    println!(
        "steady load: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        steady.per_second, steady.p50_ms, steady.p99_ms
    );
    println!(
        "during the roll: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} ok, {} failed: {}",
        during.per_second,
        during.p50_ms,
        during.p99_ms,
        during.ok,
        during.failed,
        verdict(load_met, "(0 failed, ≥ 2,000 req/s, p99 ≤ 2× steady)")
    );
    if !during.failures.is_empty() {
        println!("first failures: {:?}", during.failures);
    }
    gantry_runtime::testing::finish();
}
