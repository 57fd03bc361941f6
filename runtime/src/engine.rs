//! The process's one wasmtime engine and its epoch ticker.
//!
//! Component model on, Cranelift, the pooling allocator (instantiating and
//! dropping a store is the per-call cost), and epoch interruption driven by
//! a ticker thread: a call's deadline is a number of ticks set on its own
//! store. Nothing here knows about plugins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of plugin timeouts.
pub const TICK: Duration = Duration::from_millis(10);

/// Engine-wide bounds, set by the operator.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Plugin instances that may be alive at once.
    pub max_concurrent_instances: u32,
    /// The largest single linear memory any plugin may have.
    pub max_memory_bytes: usize,
    /// Wasm stack per call.
    pub max_stack_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_concurrent_instances: 64,
            max_memory_bytes: 512 << 20,
            max_stack_bytes: 1 << 20,
        }
    }
}

pub fn new_engine(settings: &EngineSettings) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let instances = settings.max_concurrent_instances;
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .total_memories(instances * 4)
        .total_tables(instances * 8)
        .total_stacks(instances)
        .max_core_instances_per_component(16)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(settings.max_memory_bytes)
        .table_elements(100_000);
    // Measured on the per-call bench (fresh store per call): resetting a
    // table's pages with memset, not madvise, and decommitting slots'
    // memory in batches (one flush, and its TLB shootdown, for several
    // calls; 8 then) took the trivial call from 19.9 to 13.6 µs median,
    // p99 from 36 to 27 µs. Copy-on-write memory init stays on: off, a
    // Python guest's call went from 1.1 to 7.6 ms.
    //
    // `pagemap_scan` stays off although it halves the trivial call (13.3
    // to 6.7 µs median, p99 29.9 to 8.7 µs, with 1 MiB of linear memory
    // kept resident; 2026-12-07): in wasmtime 48.0.10 its scan resets only
    // pages that are present, so a dirty page that is swapped out, or in
    // the middle of a migration (compaction), at the reset is neither reset
    // nor released, and the slot's next instance reads it. 48.0.11 fixes
    // that (it resets written pages that are present or swapped) but cannot
    // be resolved from crates.io: the `wasmtime-internal-wit-bindgen
    // =48.0.11` it requires is not there (2026-12-07), and 49 needs Rust
    // 1.96.
    //
    // Each call queues three regions for decommit (its memory and two empty
    // table regions), so a batch of 8 flushed every 2.7 calls; 12 flushes
    // every fourth. Measured 2026-12-07 (AMD EPYC, 2 cores), alternating
    // runs: 8 gave 12.0–12.2 µs median, p99 26.9–27.3 µs, 373–377 ms of
    // CPU for the bench's 22,000 calls; 12 gave 11.6–11.8 µs, p99 28.0–28.5
    // µs, 358–363 ms (0.6 µs less work a call: fewer flushes). A flush
    // covers more memories, so the slow calls are slower: a Python guest's
    // p99 rose 0.1–0.3 ms (medians alike). Batches of 16–32 took the median
    // to 11.3 µs but p99 to 31–37 µs.
    pool.table_keep_resident(1 << 20).decommit_batch_size(12);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
        .max_wasm_stack(settings.max_stack_bytes)
        .parallel_compilation(true)
        .concurrency_support(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Advances an engine's epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("gantry-epoch".into())
            .spawn(move || {
                // Ticks follow the clock, not the sleeps: a late wake-up
                // (a loaded machine) catches up, so timeouts stay on time.
                let started = std::time::Instant::now();
                let tick_nanos = TICK.as_nanos() as u64;
                let mut ticked: u64 = 0;
                while !flag.load(Ordering::Relaxed) {
                    let next = started + Duration::from_nanos((ticked + 1) * tick_nanos);
                    // Parked, not slept: dropping the ticker wakes it at once.
                    std::thread::park_timeout(
                        next.saturating_duration_since(std::time::Instant::now()),
                    );
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(engine) = engine.upgrade() else {
                        break;
                    };
                    let due = (started.elapsed().as_nanos() / u128::from(tick_nanos)) as u64;
                    while ticked < due {
                        engine.increment_epoch();
                        ticked += 1;
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Ticks for a timeout: rounded up, plus one so a call never ends early.
pub fn ticks_for(timeout: Duration) -> u64 {
    let tick = TICK.as_nanos();
    (timeout.as_nanos().div_ceil(tick) as u64).saturating_add(1)
}
