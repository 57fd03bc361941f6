//! Recording auth events without contention: each thread records into a
//! shard of its own (found through a thread-local, once per thread and
//! monitor), on a coarse clock (`CLOCK_REALTIME_COARSE`, a few ns).

use super::auth_event::Kind;
use super::window::{Shard, Totals, Windows};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The current second since the epoch, from the coarse clock.
pub fn now_second() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec as u64
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of each recorder it has recorded into.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// The windows of one monitor and the way into them.
#[derive(Clone)]
pub struct Recorder {
    id: u64,
    windows: Windows,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            windows: Windows::default(),
        }
    }
}

impl Recorder {
    /// Counts one event now.
    #[inline]
    pub fn record(&self, kind: Kind, success: bool, response_time: Option<Duration>) {
        let second = now_second();
        let micros = response_time.map(|d| d.as_micros() as u64);
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(id, _)| *id == self.id) {
                shard.record(second, kind, success, micros);
                return;
            }
            let shard = self.windows.shard();
            shard.record(second, kind, success, micros);
            shards.push((self.id, shard));
        });
    }

    /// The last `seconds` seconds, up to now.
    pub fn totals(&self, seconds: u64) -> Totals {
        self.windows.totals(now_second(), seconds)
    }

    pub fn windows(&self) -> &Windows {
        &self.windows
    }
}
