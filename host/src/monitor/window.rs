//! Sliding windows of auth events in fixed memory.
//!
//! Time is cut into one-second slots kept in a ring of `SLOTS` (16
//! minutes). Each recording thread owns a shard — relaxed atomic adds on
//! memory only it writes, so two threads never contend — registered once;
//! readers merge every shard's slots for a window. A slot carries its
//! second: a writer that finds an older second there resets it first,
//! and a reader skips slots outside its window — so memory never grows
//! with the number of events.
//!
//! Latencies go into a log-linear histogram per slot (8 sub-buckets per
//! power of two of microseconds, 1 µs to about 19 hours): mergeable by
//! adding, percentiles within an eighth of an octave (~9 %).

use super::auth_event::Kind;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Slots in the ring: one per second, 16 minutes.
pub const SLOTS: usize = 960;
/// Histogram buckets: 8 per power of two of microseconds, 36 powers.
pub const BUCKETS: usize = 8 * 36;

pub fn bucket_of(micros: u64) -> usize {
    let v = micros.max(1);
    let msb = 63 - v.leading_zeros() as usize;
    let sub = if msb >= 3 {
        ((v >> (msb - 3)) & 7) as usize
    } else {
        ((v << (3 - msb)) & 7) as usize
    };
    (msb * 8 + sub).min(BUCKETS - 1)
}

/// The middle of a bucket, in microseconds.
pub fn bucket_value(bucket: usize) -> f64 {
    let msb = bucket / 8;
    let sub = (bucket % 8) as f64;
    (1u64 << msb) as f64 * (1.0 + (sub + 0.5) / 8.0)
}

struct Slot {
    second: AtomicU64,
    total: [AtomicU64; Kind::COUNT],
    ok: [AtomicU64; Kind::COUNT],
    latency: Box<[AtomicU32]>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            second: AtomicU64::new(0),
            total: std::array::from_fn(|_| AtomicU64::new(0)),
            ok: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// One recording thread's ring.
pub struct Shard {
    slots: Box<[Slot]>,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
        }
    }

    /// Counts one event at `second` (only the owning thread calls this).
    #[inline]
    pub fn record(&self, second: u64, kind: Kind, success: bool, micros: Option<u64>) {
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        if slot.second.load(Ordering::Relaxed) != second {
            for c in slot.total.iter().chain(slot.ok.iter()) {
                c.store(0, Ordering::Relaxed);
            }
            for b in slot.latency.iter() {
                b.store(0, Ordering::Relaxed);
            }
            slot.second.store(second, Ordering::Release);
        }
        let k = kind as usize;
        slot.total[k].fetch_add(1, Ordering::Relaxed);
        if success {
            slot.ok[k].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(us) = micros {
            slot.latency[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a window holds, merged over shards and seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub total: [u64; Kind::COUNT],
    pub ok: [u64; Kind::COUNT],
    pub latency: Vec<u64>,
    /// Seconds the window covers.
    pub seconds: u64,
}

impl Totals {
    pub fn empty(seconds: u64) -> Totals {
        Totals {
            total: [0; Kind::COUNT],
            ok: [0; Kind::COUNT],
            latency: vec![0; BUCKETS],
            seconds,
        }
    }

    pub fn add(&mut self, other: &Totals) {
        for k in 0..Kind::COUNT {
            self.total[k] += other.total[k];
            self.ok[k] += other.ok[k];
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
    }

    pub fn events(&self) -> u64 {
        self.total.iter().sum()
    }

    pub fn latency_samples(&self) -> u64 {
        self.latency.iter().sum()
    }

    /// The `p`-quantile of latency in milliseconds; `None` without samples.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latency_samples();
        if n == 0 {
            return None;
        }
        let rank = ((n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(bucket) / 1000.0);
            }
        }
        None
    }
}

/// Every shard, and the clock the windows run on.
#[derive(Clone, Default)]
pub struct Windows {
    shards: Arc<Mutex<Vec<Arc<Shard>>>>,
}

impl Windows {
    /// A new shard for the calling thread, registered for readers.
    pub fn shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::new());
        self.shards.lock().expect("shards").push(Arc::clone(&shard));
        shard
    }

    /// The window of `seconds` ending with second `now` (inclusive).
    pub fn totals(&self, now: u64, seconds: u64) -> Totals {
        let seconds = seconds.min(SLOTS as u64 - 1);
        let oldest = now.saturating_sub(seconds - 1);
        let mut totals = Totals::empty(seconds);
        let shards: Vec<Arc<Shard>> = self.shards.lock().expect("shards").clone();
        for shard in shards {
            for slot in shard.slots.iter() {
                let second = slot.second.load(Ordering::Acquire);
                if second < oldest || second > now || second == 0 {
                    continue;
                }
                for k in 0..Kind::COUNT {
                    totals.total[k] += slot.total[k].load(Ordering::Relaxed);
                    totals.ok[k] += slot.ok[k].load(Ordering::Relaxed);
                }
                for (b, c) in slot.latency.iter().enumerate() {
                    totals.latency[b] += c.load(Ordering::Relaxed) as u64;
                }
            }
        }
        totals
    }

    /// Each second in `from..=to` with events, merged over shards: what a
    /// monitor publishes for the others.
    pub fn seconds(&self, from: u64, to: u64) -> Vec<(u64, Totals)> {
        let mut out: std::collections::BTreeMap<u64, Totals> = Default::default();
        let shards: Vec<Arc<Shard>> = self.shards.lock().expect("shards").clone();
        for shard in shards {
            for slot in shard.slots.iter() {
                let second = slot.second.load(Ordering::Acquire);
                if second < from || second > to || second == 0 {
                    continue;
                }
                let t = out.entry(second).or_insert_with(|| Totals::empty(1));
                for k in 0..Kind::COUNT {
                    t.total[k] += slot.total[k].load(Ordering::Relaxed);
                    t.ok[k] += slot.ok[k].load(Ordering::Relaxed);
                }
                for (b, c) in slot.latency.iter().enumerate() {
                    t.latency[b] += c.load(Ordering::Relaxed) as u64;
                }
            }
        }
        out.into_iter().filter(|(_, t)| t.events() > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_close() {
        let mut last = 0;
        for us in [
            1u64, 2, 3, 7, 8, 9, 100, 1000, 1024, 5_000, 1_000_000, 60_000_000,
        ] {
            let b = bucket_of(us);
            assert!(b >= last, "{us}");
            last = b;
            let v = bucket_value(b);
            assert!((v - us as f64).abs() / (us as f64) < 0.13, "{us} → {v}");
        }
    }

    #[test]
    fn a_window_counts_its_seconds_only() {
        let w = Windows::default();
        let s = w.shard();
        s.record(100, Kind::AuthAttempt, true, Some(1000));
        s.record(100, Kind::AuthAttempt, false, Some(3000));
        s.record(150, Kind::AuthAttempt, true, Some(2000));
        let t = w.totals(150, 60);
        assert_eq!(t.total[Kind::AuthAttempt as usize], 3);
        assert_eq!(t.ok[Kind::AuthAttempt as usize], 2);
        let t = w.totals(170, 60);
        assert_eq!(
            t.total[Kind::AuthAttempt as usize],
            1,
            "second 100 left the window"
        );
        // The ring reuses second 100's slot 960 s later and resets it.
        s.record(100 + SLOTS as u64, Kind::TokenRefresh, true, None);
        let t = w.totals(100 + SLOTS as u64, 10);
        assert_eq!(t.total[Kind::AuthAttempt as usize], 0);
        assert_eq!(t.total[Kind::TokenRefresh as usize], 1);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let w = Windows::default();
        let s = w.shard();
        for i in 1..=100u64 {
            s.record(10, Kind::AuthAttempt, true, Some(i * 1000));
        }
        let t = w.totals(10, 1);
        let p50 = t.percentile_ms(0.5).unwrap();
        let p99 = t.percentile_ms(0.99).unwrap();
        assert!((45.0..=56.0).contains(&p50), "{p50}");
        assert!((90.0..=110.0).contains(&p99), "{p99}");
    }
}
