//! The same windows per revision, beside the global ones: an event that
//! names its instance is also counted under the revision that instance
//! runs (instance → revision from the store's instance records, re-read
//! every couple of seconds and soon after an instance it does not know
//! sends an event). Events from an instance no record names are counted
//! apart (`unknown_events`, a count), never guessed. Memory is fixed per
//! revision (one ring per recording thread), at most `MAX_REVISIONS`
//! revisions; a revision's windows are dropped once no instance runs it
//! and its last second is published.
//!
//! Each finished second of a revision is published to the store
//! (`gantry_revision_seconds`, source `auth`), which is where a canary
//! analysis reads it from, in whatever process runs the rollout.

use super::auth_event::Kind;
use super::cluster::SecondDoc;
use super::recorder::Recorder;
use crate::store::{Store, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// The most revisions kept at once (a service rolls two at a time; a
/// few services share one monitor).
pub const MAX_REVISIONS: usize = 16;

/// How long published per-revision seconds are kept (six hours: longer
/// than any canary step may last).
pub const SECONDS_KEPT: u64 = 6 * 3600;

/// How often the instance → revision map is re-read when nothing asks.
const REFRESH_EVERY: u64 = 2;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The last instance this thread counted an event of, per monitor:
    /// (monitor, map generation, instance, its revision's recorder).
    /// Events come in batches from one instance, so most skip the map.
    static LAST: RefCell<Option<(u64, u64, String, Recorder)>> = const { RefCell::new(None) };
}

pub struct ByRevision {
    id: u64,
    /// Bumped whenever the instance map changes (the cache above is then
    /// stale).
    generation: AtomicU64,
    /// Instance name → (revision, that revision's recorder).
    instances: RwLock<HashMap<String, (String, Recorder)>>,
    /// Revision → recorder and the last second published.
    revisions: Mutex<HashMap<String, (Recorder, u64)>>,
    unknown_count: AtomicU64,
    stale: AtomicBool,
    refreshed: AtomicU64,
}

impl Default for ByRevision {
    fn default() -> Self {
        ByRevision {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            instances: RwLock::default(),
            revisions: Mutex::default(),
            unknown_count: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            refreshed: AtomicU64::new(0),
        }
    }
}

impl ByRevision {
    /// Counts one event of `instance` under its revision (or as unknown).
    #[inline]
    pub fn record(&self, instance: &str, kind: Kind, success: bool, time: Option<Duration>) {
        let generation = self.generation.load(Ordering::Acquire);
        let cached = LAST.with(|last| match &*last.borrow() {
            Some((id, g, name, recorder))
                if *id == self.id && *g == generation && name == instance =>
            {
                recorder.record(kind, success, time);
                true
            }
            _ => false,
        });
        if cached {
            return;
        }
        if let Some((_, recorder)) = self.instances.read().expect("instances").get(instance) {
            recorder.record(kind, success, time);
            let recorder = recorder.clone();
            LAST.with(|last| {
                *last.borrow_mut() = Some((self.id, generation, instance.to_string(), recorder))
            });
            return;
        }
        self.unknown_count.fetch_add(1, Ordering::Relaxed);
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Says `instance` runs `revision` without the store (benchmarks and
    /// tests; the monitor learns it from the store).
    #[doc(hidden)]
    pub fn assign(&self, instance: &str, revision: &str) {
        let recorder = {
            let mut revisions = self.revisions.lock().expect("revisions");
            revisions
                .entry(revision.to_string())
                .or_insert_with(|| (Recorder::default(), 0))
                .0
                .clone()
        };
        self.instances
            .write()
            .expect("instances")
            .insert(instance.to_string(), (revision.to_string(), recorder));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Events from instances no record names, since start.
    pub fn unknown_events(&self) -> u64 {
        self.unknown_count.load(Ordering::Relaxed)
    }

    /// The revisions with windows now.
    pub fn revisions(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .revisions
            .lock()
            .expect("revisions")
            .keys()
            .cloned()
            .collect();
        all.sort();
        all
    }

    /// `revision`'s recorder, if it has windows.
    pub fn recorder(&self, revision: &str) -> Option<Recorder> {
        self.revisions
            .lock()
            .expect("revisions")
            .get(revision)
            .map(|(r, _)| r.clone())
    }

    /// Re-reads which instance runs which revision when an unknown
    /// instance sent something, or every `REFRESH_EVERY` seconds.
    pub async fn refresh(&self, store: &Store, now: u64) -> Result<(), StoreError> {
        let due = now >= self.refreshed.load(Ordering::Relaxed) + REFRESH_EVERY;
        if !due && !self.stale.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        self.refreshed.store(now, Ordering::Relaxed);
        let instances = store.read(async |tx| tx.instances(None).await).await?;
        let mut revisions = self.revisions.lock().expect("revisions");
        let mut map = HashMap::new();
        for i in instances.into_iter().filter(|i| !i.revision.is_empty()) {
            if !revisions.contains_key(&i.revision) {
                if revisions.len() >= MAX_REVISIONS {
                    continue;
                }
                revisions.insert(i.revision.clone(), (Recorder::default(), now));
            }
            let recorder = revisions[&i.revision].0.clone();
            map.insert(i.name, (i.revision, recorder));
        }
        // A revision no instance runs goes once its seconds are out.
        revisions.retain(|revision, (_, published)| {
            map.values().any(|(r, _)| r == revision) || *published < now.saturating_sub(2)
        });
        let mut instances = self.instances.write().expect("instances");
        let changed = instances.len() != map.len()
            || map
                .iter()
                .any(|(name, (revision, _))| instances.get(name).map(|(r, _)| r) != Some(revision));
        if changed {
            *instances = map;
            self.generation.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Publishes each revision's seconds after its last published one, up
    /// to `upto` (inclusive), as `node`.
    pub async fn publish(&self, store: &Store, node: &str, upto: u64) -> Result<(), StoreError> {
        let (names, seconds): (Vec<String>, Vec<(String, i64, String)>) = {
            let revisions = self.revisions.lock().expect("revisions");
            let seconds = revisions
                .iter()
                .flat_map(|(revision, (recorder, last))| {
                    let from = last.saturating_add(1).max(upto.saturating_sub(60));
                    recorder
                        .windows()
                        .seconds(from, upto)
                        .into_iter()
                        .map(|(s, t)| {
                            let data = serde_json::to_string(&SecondDoc::of(&t)).expect("json");
                            (revision.clone(), s as i64, data)
                        })
                })
                .collect();
            (revisions.keys().cloned().collect(), seconds)
        };
        if !seconds.is_empty() {
            store
                .write(async |tx| tx.publish_revision_seconds("auth", node, &seconds).await)
                .await?;
        }
        let mut revisions = self.revisions.lock().expect("revisions");
        for revision in names {
            if let Some((_, last)) = revisions.get_mut(&revision) {
                *last = upto;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins(by: &ByRevision, revision: &str) -> u64 {
        by.recorder(revision)
            .map(|r| r.totals(5).total[Kind::AuthAttempt as usize])
            .unwrap_or(0)
    }

    #[test]
    fn events_count_under_their_instances_revision_and_follow_a_change() {
        let by = ByRevision::default();
        by.assign("auth-1", "old");
        by.assign("auth-2", "new");
        for _ in 0..3 {
            by.record("auth-1", Kind::AuthAttempt, true, None);
            by.record("auth-2", Kind::AuthAttempt, false, None);
            by.record("auth-2", Kind::AuthAttempt, true, None);
        }
        assert_eq!((logins(&by, "old"), logins(&by, "new")), (3, 6));
        // The thread's cached instance must not outlive a change.
        by.assign("auth-2", "old");
        by.record("auth-2", Kind::AuthAttempt, true, None);
        assert_eq!((logins(&by, "old"), logins(&by, "new")), (4, 6));
        // An instance no record names is counted apart.
        by.record("auth-9", Kind::AuthAttempt, true, None);
        assert_eq!(by.unknown_events(), 1);
        assert_eq!(by.revisions(), ["new", "old"]);
    }
}
