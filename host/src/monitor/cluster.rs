//! Several monitors on one state store: each takes events, and publishes
//! its finished seconds (counts and latency histogram, per second) to the
//! store; the leader — whoever holds the `monitor:leader` lease — merges
//! every other monitor's seconds with its own windows before it evaluates
//! the rules. Any monitor ingests; one judges; a second's data reaches the
//! leader within about two seconds.

use super::auth_event::Kind;
use super::window::{BUCKETS, Totals, Windows};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Serialize, Deserialize)]
pub(crate) struct SecondDoc {
    t: [u64; Kind::COUNT],
    o: [u64; Kind::COUNT],
    /// Non-empty latency buckets: index → count.
    l: BTreeMap<usize, u64>,
}

impl SecondDoc {
    pub(crate) fn of(t: &Totals) -> SecondDoc {
        SecondDoc {
            t: t.total,
            o: t.ok,
            l: t.latency
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(b, c)| (b, *c))
                .collect(),
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::empty(1);
        t.total = self.t;
        t.ok = self.o;
        for (b, c) in &self.l {
            if *b < BUCKETS {
                t.latency[*b] = *c;
            }
        }
        t
    }
}

/// Other monitors' seconds, as read from the store.
#[derive(Default)]
pub struct Remote {
    seconds: Mutex<BTreeMap<(u64, String), Totals>>,
}

/// Publishes this monitor's seconds after `after` up to `upto`
/// (inclusive); returns the last second published.
pub async fn publish(
    store: &Store,
    node: &str,
    windows: &Windows,
    after: u64,
    upto: u64,
) -> Result<u64, StoreError> {
    let from = after.saturating_add(1).max(upto.saturating_sub(60));
    let seconds = windows.seconds(from, upto);
    if !seconds.is_empty() {
        let mut tx = store.begin(true).await?;
        let mut published = Ok(());
        for (second, totals) in &seconds {
            let data = serde_json::to_string(&SecondDoc::of(totals)).expect("json");
            published = tx.publish_second(node, *second as i64, &data).await;
            if published.is_err() {
                break;
            }
        }
        tx.settle(published, "publish metrics").await?;
    }
    Ok(upto)
}

impl Remote {
    /// Reads other monitors' seconds newer than 16 minutes.
    pub async fn refresh(&self, store: &Store, node: &str, now: u64) -> Result<(), StoreError> {
        let since = now.saturating_sub(super::window::SLOTS as u64) as i64;
        let rows = store
            .read(async |tx| tx.published_seconds(node, since).await)
            .await?;
        let mut seconds = self.seconds.lock().expect("remote");
        seconds.clear();
        for (other, second, data) in rows {
            if let Ok(doc) = serde_json::from_str::<SecondDoc>(&data) {
                seconds.insert((second as u64, other), doc.totals());
            }
        }
        Ok(())
    }

    /// Adds other monitors' seconds in `(now - seconds, now]` to `totals`.
    pub fn add_to(&self, totals: &mut Totals, now: u64, seconds: u64) {
        let oldest = now.saturating_sub(seconds.saturating_sub(1));
        let remote = self.seconds.lock().expect("remote");
        for ((second, _), t) in remote.range((oldest, String::new())..) {
            if *second > now {
                break;
            }
            let mut t = t.clone();
            t.seconds = 0;
            totals.add(&t);
        }
    }
}
