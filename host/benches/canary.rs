//! Canary analysis figures: how often an A/A step aborts (false
//! positives, by simulation: 400 steps of seeded event streams judged at
//! every look as a rollout judges them), how soon a canary failing 5 % of
//! logins is aborted at 200 logins/s and a 5 % step, and what counting an
//! event under its revision costs beside the global windows.
//!
//! `cargo bench -p gantry --bench canary`

mod common;

use common::{Figure, finish, verdict};
use gantry::config::analysis::auth_default;
use gantry::frontdoor::HttpSecond;
use gantry::monitor::recorder::Recorder;
use gantry::monitor::revisions::ByRevision;
use gantry::monitor::{AuthEvent, Kind};
use gantry::rollout::analysis::{Figures, Verdict, judge};
use gantry_runtime::testing::SplitMix as Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One revision's traffic in one second: `logins` attempts failing with
/// probability `fail` (a wrong password, or the fault), answers taking
/// a skewed 20–120 ms plus `slower` ms, 0.2 % of them 5xx by chance.
fn second(rng: &mut Rng, figures: &mut Figures, logins: u64, fail: f64, slower: f64) {
    let k = Kind::AuthAttempt as usize;
    let mut http = HttpSecond::default();
    for _ in 0..logins {
        let failed = rng.unit() < fail;
        figures.auth.total[k] += 1;
        if !failed {
            figures.auth.ok[k] += 1;
        }
        let u = rng.unit();
        let ms = 20.0 + 100.0 * u * u + slower;
        let status = if failed || rng.unit() < 0.002 {
            500
        } else {
            200
        };
        http.record(status, Some(Duration::from_secs_f64(ms / 1000.0)));
    }
    figures.http.add(&http);
}

/// A step of `seconds` at 200 logins/s with 5 % to the canary, judged
/// every 2 s; the second it failed at, if it did.
fn step(seed: u64, seconds: u64, canary_fail: f64) -> Option<u64> {
    let mut rng = Rng(seed);
    let template = auth_default();
    // auth-default's default deadline for a 60 s pause: 120 s, every 2 s.
    let looks = 60;
    let (mut baseline, mut canary) = (Figures::default(), Figures::default());
    for t in 1..=seconds {
        second(&mut rng, &mut baseline, 190, 0.02, 0.0);
        second(&mut rng, &mut canary, 10, 0.02 + canary_fail, 0.0);
        if t % 2 == 0 && judge(&template, &baseline, &canary, looks).0 == Verdict::Fail {
            return Some(t);
        }
    }
    None
}

fn main() {
    // False positives: A/A steps of 60 s.
    let runs = 400;
    let aborted = (0..runs)
        .filter(|seed| step(*seed, 60, 0.0).is_some())
        .count();
    let rate = aborted as f64 / runs as f64;
    println!(
        "{:<44} {aborted} of {runs} A/A steps aborted ({:.2} %)   {}",
        "false positives (auth-default, 60 s steps)",
        rate * 100.0,
        verdict(rate <= 0.01, "≤ 1 %")
    );

    // Detection: 5 % of logins failing, 5 % step, 200 logins/s.
    let detected: Vec<Duration> = (0..100)
        .map(|seed| Duration::from_secs(step(1000 + seed, 120, 0.05).unwrap_or(999)))
        .collect();
    Figure {
        name: "detection, 5 % failing, 5 % step, 200/s",
        samples: detected,
        goal: Some(Duration::from_secs(30)),
        p99_goal: None,
    }
    .print();

    // Cost of counting under the revision too.
    let global = Recorder::default();
    let by_revision = ByRevision::default();
    by_revision.assign("auth-7", "0123456789ab");
    let n = 1_000_000;
    let time = |f: &dyn Fn()| -> Vec<Duration> {
        (0..15)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..n {
                    f();
                }
                started.elapsed()
            })
            .collect()
    };
    let latency = Some(Duration::from_millis(12));
    let plain = time(&|| global.record(black_box(Kind::AuthAttempt), true, latency));
    let both = time(&|| {
        global.record(black_box(Kind::AuthAttempt), true, latency);
        by_revision.record(black_box("auth-7"), Kind::AuthAttempt, true, latency);
    });
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let (plain_ns, both_ns) = (
        median(&plain).as_nanos() as f64 / f64::from(n),
        median(&both).as_nanos() as f64 / f64::from(n),
    );
    println!(
        "{:<44} record {plain_ns:.1} ns, record_from {both_ns:.1} ns: +{:.1} ns per event \
         that names its instance; record_auth_event (no instance) unchanged",
        "per-revision cost",
        both_ns - plain_ns
    );
    // Events that name their instance arrive through the API: per event,
    // a JSON line parsed and counted.
    let line =
        r#"{"kind":"auth_attempt","success":true,"response_time_ms":12.5,"instance":"auth-7"}"#;
    let parsed = || {
        let event: AuthEvent = serde_json::from_str(black_box(line)).expect("an event");
        let (kind, time) = event.parts().expect("parts");
        (event, kind, time)
    };
    let api_plain = median(&time(&|| {
        let (event, kind, time) = parsed();
        global.record(kind, event.success, time);
    }))
    .as_nanos() as f64
        / f64::from(n);
    let api_both = median(&time(&|| {
        let (event, kind, time) = parsed();
        global.record(kind, event.success, time);
        by_revision.record(
            event.instance.as_deref().unwrap_or(""),
            kind,
            event.success,
            time,
        );
    }))
    .as_nanos() as f64
        / f64::from(n);
    let added = api_both / api_plain - 1.0;
    println!(
        "{:<44} {api_plain:.0} ns → {api_both:.0} ns (+{:.1} %)   {}",
        "an API event, parsed and counted",
        added * 100.0,
        verdict(added <= 0.10, "≤ +10 %")
    );
    finish();
}
