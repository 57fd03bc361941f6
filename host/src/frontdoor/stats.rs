//! What the front door saw per revision, per second: answers by status
//! class and the time to the answer's head in the monitor's log-linear
//! histogram — what a canary analysis compares a new revision's users'
//! experience by. Finished seconds are taken and published to the store
//! (`gantry_revision_seconds`, source `http`) once a second; at most
//! `KEPT` seconds per revision and shard are held if publishing fails, so
//! memory stays bounded.

use crate::monitor::window::{BUCKETS, bucket_of};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Seconds held per revision while they cannot be published.
const KEPT: usize = 300;

/// One second of one revision, as published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpSecond {
    /// Answers by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub s: [u64; 5],
    /// Non-empty latency buckets (µs histogram): index → count.
    pub l: BTreeMap<usize, u64>,
}

impl HttpSecond {
    /// Counts one answer; its time when it has one (a connection refused
    /// before anything was sent has none worth comparing).
    pub fn record(&mut self, status: u16, elapsed: Option<Duration>) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.s[class] += 1;
        if let Some(elapsed) = elapsed {
            let bucket = bucket_of(elapsed.as_micros().min(u128::from(u64::MAX)) as u64);
            *self.l.entry(bucket.min(BUCKETS - 1)).or_default() += 1;
        }
    }

    pub fn add(&mut self, other: &HttpSecond) {
        for (a, b) in self.s.iter_mut().zip(other.s) {
            *a += b;
        }
        for (bucket, count) in &other.l {
            *self.l.entry(*bucket).or_default() += count;
        }
    }

    pub fn requests(&self) -> u64 {
        self.s.iter().sum()
    }
}

/// Shards: each thread records into its own (found once per thread), so
/// the front door's workers never wait on each other.
const SHARDS: usize = 16;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

type Seconds = HashMap<String, BTreeMap<u64, HttpSecond>>;

pub struct HttpStats {
    shards: Box<[Mutex<Seconds>]>,
}

impl Default for HttpStats {
    fn default() -> Self {
        HttpStats {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl HttpStats {
    /// Counts one answer `revision` gave at `second`.
    pub fn record(&self, revision: &str, second: u64, status: u16, elapsed: Option<Duration>) {
        let shard = SHARD.with(|s| *s);
        let mut all = self.shards[shard].lock().expect("stats");
        let seconds = match all.get_mut(revision) {
            Some(seconds) => seconds,
            None => all.entry(revision.to_string()).or_default(),
        };
        seconds.entry(second).or_default().record(status, elapsed);
        while seconds.len() > KEPT {
            seconds.pop_first();
        }
    }

    /// Takes every second before `now`, merged over the shards:
    /// (revision, second, data).
    pub fn take_finished(&self, now: u64) -> Vec<(String, u64, HttpSecond)> {
        let mut merged: BTreeMap<(String, u64), HttpSecond> = BTreeMap::new();
        for shard in self.shards.iter() {
            let mut all = shard.lock().expect("stats");
            for (revision, seconds) in all.iter_mut() {
                let current = seconds.split_off(&now);
                for (second, data) in std::mem::replace(seconds, current) {
                    merged
                        .entry((revision.clone(), second))
                        .or_default()
                        .add(&data);
                }
            }
            all.retain(|_, seconds| !seconds.is_empty());
        }
        merged
            .into_iter()
            .map(|((revision, second), data)| (revision, second, data))
            .collect()
    }

    /// Puts back seconds that could not be published (tried next time).
    pub fn restore(&self, taken: Vec<(String, u64, HttpSecond)>) {
        let mut all = self.shards[0].lock().expect("stats");
        for (revision, second, data) in taken {
            let seconds = all.entry(revision).or_default();
            seconds.entry(second).or_default().add(&data);
            while seconds.len() > KEPT {
                seconds.pop_first();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_taken_once_finished_and_put_back_on_failure() {
        let stats = HttpStats::default();
        stats.record("a", 10, 200, Some(Duration::from_millis(5)));
        stats.record("a", 10, 503, Some(Duration::from_millis(7)));
        stats.record("b", 11, 200, Some(Duration::from_millis(5)));
        let taken = stats.take_finished(11);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].2.s, [0, 1, 0, 0, 1]);
        assert_eq!(taken[0].2.l.values().sum::<u64>(), 2);
        stats.restore(taken);
        assert_eq!(stats.take_finished(12).len(), 2);
        assert!(stats.take_finished(13).is_empty());
    }

    #[test]
    fn threads_record_apart_and_their_seconds_merge() {
        let stats = std::sync::Arc::new(HttpStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        stats.record("a", 5, 200, Some(Duration::from_millis(3)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let taken = stats.take_finished(6);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].2.requests(), 400);
    }

    #[test]
    fn memory_is_bounded_when_nothing_is_published() {
        let stats = HttpStats::default();
        for second in 0..(KEPT as u64 * 2) {
            stats.record("a", second, 200, Some(Duration::from_millis(1)));
        }
        assert_eq!(stats.take_finished(u64::MAX).len(), KEPT);
    }
}
