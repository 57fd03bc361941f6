//! Canary detection with the release builds of gantry and the example
//! auth service, under paced login load:
//!
//!   cargo build --release -p gantry -p auth-service
//!   cargo bench -p gantry-tests --bench canary
//!
//! - detection: a version failing 5 % of its logins, at about 200
//!   logins/s and a 5 % first step judged by `auth-default`: from the
//!   step's start (its canary admitted) to the abort, over three runs.
//!   Goal ≤ 30 s (the issue's).
//! - the same version as its baseline (A/A) through the same step:
//!   passes (goal: not aborted).
//!
//! A goal missed makes the benchmark exit 1, after printing every figure.
//! The false-positive rate over many A/A steps is simulated in `cargo
//! bench -p gantry --bench canary` (hundreds of real steps would take
//! hours).

use gantry_runtime::testing::{finish, verdict};
use gantry_tests::canary::{canary, failed_share, paced_logins, progress};
use std::time::Duration;

/// Eight clients pausing 38 ms after each login: about 200 logins/s.
const WORKERS: usize = 8;
const PACE: Duration = Duration::from_millis(38);

fn main() {
    gantry_tests::require_release_bins();
    let mut detected = Vec::new();
    for run in 0..3 {
        let mut c = canary(60);
        c.version("v2", Some("fail-login=0.05"));
        let load = paced_logins(&c.f, WORKERS, Some(PACE));
        std::thread::sleep(Duration::from_secs(2));
        let rolled = c.f.gantry(&["rollout", "auth"]);
        let report = load.stop();
        let status = c.f.status();
        let step = &progress(&status)["steps"][0];
        let (started, ended) = (step["started_ms"].as_i64(), step["finished_ms"].as_i64());
        let aborted = rolled.code == 1;
        println!(
            "run {run}: {} logins/s, {:.2} % failed overall, {}",
            report.per_second.round(),
            failed_share(&report) * 100.0,
            match (aborted, started, ended) {
                (true, Some(a), Some(b)) => format!(
                    "aborted {:.1} s after the step began",
                    (b - a) as f64 / 1000.0
                ),
                _ => format!("NOT aborted (exit {})", rolled.code),
            }
        );
        match (aborted, started, ended) {
            (true, Some(a), Some(b)) => detected.push(Duration::from_millis((b - a) as u64)),
            _ => detected.push(Duration::from_secs(3600)),
        }
    }
    detected.sort();
    let median = detected[detected.len() / 2];
    println!(
        "{:<44} median {:.1} s, worst {:.1} s   {}",
        "detection, 5 % failing, 5 % step, ~200/s",
        median.as_secs_f64(),
        detected.last().unwrap().as_secs_f64(),
        verdict(median <= Duration::from_secs(30), "≤ 30 s")
    );

    // A/A: the same build as a new revision passes the step.
    let mut c = canary(20);
    c.version("v2", None);
    let load = paced_logins(&c.f, WORKERS, Some(PACE));
    let rolled = c.f.gantry(&["rollout", "auth"]);
    load.stop();
    let passed = rolled.code == 0;
    println!(
        "{:<44} {}   {}",
        "A/A step (20 s pause)",
        if passed { "passed" } else { "ABORTED" },
        verdict(passed, "passes")
    );
    finish();
}
