//! What every benchmark binary shares: figures (median, p90, p99 against a
//! goal), verdicts that remember a missed goal so the binary exits 1 after
//! printing every figure, timing, and the path of the built `gantry` binary.

#![allow(
    dead_code,
    reason = "each benchmark binary uses its own subset; `expect` would fail in the others"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Figure {
    pub name: &'static str,
    pub samples: Vec<Duration>,
    /// The most the median may be.
    pub goal: Option<Duration>,
    /// The most the 99th percentile may be.
    pub p99_goal: Option<Duration>,
}

impl Figure {
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[i]
    }

    pub fn print(&self) {
        let median = self.percentile(0.5);
        let mut verdicts = Vec::new();
        if let Some(goal) = self.goal {
            verdicts.push(verdict(median <= goal, &format!("≤ {}", fmt(goal))));
        }
        if let Some(goal) = self.p99_goal {
            let p99 = self.percentile(0.99);
            verdicts.push(verdict(p99 <= goal, &format!("p99 ≤ {}", fmt(goal))));
        }
        let verdict = verdicts.join(", ");
        println!(
            "{:<44} median {:>10}   p90 {:>10}   p99 {:>10}   n={:<6} {verdict}",
            self.name,
            fmt(median),
            fmt(self.percentile(0.9)),
            fmt(self.percentile(0.99)),
            self.samples.len(),
        );
    }
}

pub use gantry_runtime::testing::{finish, verdict};

pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

pub fn timed(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

/// The `gantry` binary beside the benchmark (same profile).
pub fn gantry_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("gantry")
}
