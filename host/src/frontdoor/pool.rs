//! The front door's pool: the instances that passed their gate, each with
//! its private address and revision, and how many requests (or
//! connections) each is serving now.
//!
//! Selection: a revision by its weight (when weights are set; otherwise
//! every instance counts the same), then the less busy of two instances of
//! it (power of two choices). An instance being drained is never chosen;
//! its drain ends when its last request does.
//!
//! Never chooses an instance that is not in the pool: the pool is what
//! gantry put there, nothing else.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// One instance as gantry hands it to the front door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: SocketAddr,
    pub revision: String,
}

/// What the pool holds of a member: its load, and whether it drains.
#[derive(Debug)]
pub struct Backend {
    pub member: Member,
    in_flight: AtomicUsize,
    served: AtomicU64,
    idle: Notify,
}

impl Backend {
    fn new(member: Member) -> Arc<Backend> {
        Arc::new(Backend {
            member,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle: Notify::new(),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Counts one request (or connection) until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight on a backend.
pub struct InFlight(pub Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    serving: Vec<Arc<Backend>>,
    draining: Vec<Arc<Backend>>,
    /// Share of requests per revision; empty: by instance.
    weights: BTreeMap<String, u32>,
}

/// The pool, shared by every connection of the front door.
#[derive(Debug, Default)]
pub struct Pool {
    table: RwLock<Table>,
    next: AtomicU64,
}

/// A snapshot, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PoolStatus {
    pub serving: Vec<MemberStatus>,
    pub draining: Vec<MemberStatus>,
    pub weights: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    pub in_flight: usize,
    pub served: u64,
}

impl Pool {
    /// Makes `members` the serving set. A member no longer listed starts to
    /// drain; one listed again is served again; load counts carry over.
    pub fn set(&self, members: Vec<Member>, weights: BTreeMap<String, u32>) {
        let mut table = self.table.write().expect("pool");
        let mut old: Vec<Arc<Backend>> = table.serving.drain(..).collect();
        old.append(&mut table.draining);
        let mut serving = Vec::with_capacity(members.len());
        for member in members {
            match old.iter().position(|b| b.member == member) {
                Some(i) => serving.push(old.swap_remove(i)),
                None => serving.push(Backend::new(member)),
            }
        }
        table.serving = serving;
        table.draining = old.into_iter().filter(|b| b.in_flight() > 0).collect();
        table.weights = weights;
    }

    /// Takes `name` out of the serving set; its requests in flight finish.
    pub fn remove(&self, name: &str) -> Option<Arc<Backend>> {
        let mut table = self.table.write().expect("pool");
        let i = table.serving.iter().position(|b| b.member.name == name)?;
        let backend = table.serving.remove(i);
        table.draining.push(Arc::clone(&backend));
        Some(backend)
    }

    /// Waits until `backend` serves nothing (or `timeout` passes); true
    /// when it went idle.
    pub async fn drained(&self, backend: &Backend, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = backend.idle.notified();
            if backend.in_flight() == 0 {
                self.forget_drained();
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return backend.in_flight() == 0;
            }
        }
    }

    fn forget_drained(&self) {
        let mut table = self.table.write().expect("pool");
        table.draining.retain(|b| b.in_flight() > 0);
    }

    /// An instance for the next request, or none when the pool is empty.
    /// `not` excludes backends that already failed this request.
    pub fn choose(&self, not: &[SocketAddr]) -> Option<Arc<Backend>> {
        let table = self.table.read().expect("pool");
        let tick = self.next.fetch_add(1, Ordering::Relaxed);
        let revision = if table.weights.is_empty() {
            None
        } else {
            pick_revision(&table.weights, &table.serving, not, tick)
        };
        // A revision weighted 0 (a canary taken out) is never chosen, even
        // when no weighted revision can be: better a 503 than the canary.
        let eligible = |b: &&Arc<Backend>| {
            !not.contains(&b.member.address)
                && revision.as_ref().is_none_or(|r| &b.member.revision == r)
                && table.weights.get(&b.member.revision) != Some(&0)
        };
        let n = table.serving.iter().filter(eligible).count();
        if n == 0 {
            return None;
        }
        // Two choices, the less busy wins.
        let nth = |k: usize| table.serving.iter().filter(eligible).nth(k);
        let a = nth((tick as usize) % n)?;
        let b = nth((mix(tick) as usize) % n)?;
        Some(Arc::clone(if b.in_flight() < a.in_flight() {
            b
        } else {
            a
        }))
    }

    pub fn is_empty(&self) -> bool {
        self.table.read().expect("pool").serving.is_empty()
    }

    pub fn status(&self) -> PoolStatus {
        let table = self.table.read().expect("pool");
        let list = |backends: &[Arc<Backend>]| {
            backends
                .iter()
                .map(|b| MemberStatus {
                    member: b.member.clone(),
                    in_flight: b.in_flight(),
                    served: b.served(),
                })
                .collect()
        };
        PoolStatus {
            serving: list(&table.serving),
            draining: list(&table.draining),
            weights: table.weights.clone(),
        }
    }
}

/// A revision chosen by weight, spreading `tick` over the total weight;
/// `None` when weights name no revision in the pool.
fn pick_revision(
    weights: &BTreeMap<String, u32>,
    serving: &[Arc<Backend>],
    not: &[SocketAddr],
    tick: u64,
) -> Option<String> {
    let present = |rev: &String| {
        serving
            .iter()
            .any(|b| &b.member.revision == rev && !not.contains(&b.member.address))
    };
    let total: u32 = weights
        .iter()
        .filter(|(rev, w)| **w > 0 && present(rev))
        .map(|(_, w)| *w)
        .sum();
    if total == 0 {
        return None;
    }
    let mut slot = (mix(tick) % u64::from(total)) as u32;
    for (rev, w) in weights.iter().filter(|(rev, w)| **w > 0 && present(rev)) {
        if slot < *w {
            return Some(rev.clone());
        }
        slot -= w;
    }
    None
}

/// SplitMix64's finalizer: spreads consecutive ticks.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16, revision: &str) -> Member {
        Member {
            name: name.into(),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            revision: revision.into(),
        }
    }

    #[test]
    fn only_members_are_chosen_and_a_removed_one_drains() {
        let pool = Pool::default();
        assert!(pool.choose(&[]).is_none());
        pool.set(
            vec![member("a", 1, "r1"), member("b", 2, "r1")],
            BTreeMap::new(),
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            seen.insert(pool.choose(&[]).unwrap().member.name.clone());
        }
        assert_eq!(seen.len(), 2);
        let held = pool.choose(&[]).unwrap();
        let guard = held.enter();
        let removed = pool.remove(&held.member.name).unwrap();
        for _ in 0..100 {
            assert_ne!(pool.choose(&[]).unwrap().member.name, held.member.name);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(!rt.block_on(pool.drained(&removed, std::time::Duration::from_millis(20))));
        drop(guard);
        assert!(rt.block_on(pool.drained(&removed, std::time::Duration::from_millis(20))));
        assert!(pool.status().draining.is_empty());
    }

    #[test]
    fn weights_split_requests_by_revision() {
        let pool = Pool::default();
        let weights = BTreeMap::from([("old".to_string(), 90), ("new".to_string(), 10)]);
        pool.set(
            vec![
                member("a", 1, "old"),
                member("b", 2, "old"),
                member("c", 3, "new"),
            ],
            weights,
        );
        let new = (0..10_000)
            .filter(|_| pool.choose(&[]).unwrap().member.revision == "new")
            .count();
        assert!(
            (800..1200).contains(&new),
            "{new} of 10000 to the new revision"
        );
        // 0 / 100: none at all.
        let weights = BTreeMap::from([("old".to_string(), 100), ("new".to_string(), 0)]);
        pool.set(vec![member("a", 1, "old"), member("c", 3, "new")], weights);
        assert!((0..1000).all(|_| pool.choose(&[]).unwrap().member.revision == "old"));
        // The favoured revision gone: the one weighted 0 still gets nothing.
        let weights = BTreeMap::from([("old".to_string(), 100), ("new".to_string(), 0)]);
        pool.set(vec![member("c", 3, "new")], weights);
        assert!(pool.choose(&[]).is_none());
    }

    #[test]
    fn a_failed_backend_is_skipped_for_the_retry() {
        let pool = Pool::default();
        pool.set(
            vec![member("a", 1, "r"), member("b", 2, "r")],
            BTreeMap::new(),
        );
        let first = pool.choose(&[]).unwrap();
        let second = pool.choose(&[first.member.address]).unwrap();
        assert_ne!(first.member.address, second.member.address);
        assert!(
            pool.choose(&[first.member.address, second.member.address])
                .is_none()
        );
    }
}
