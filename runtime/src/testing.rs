//! Paths to the test guests built by `build.rs`; for gantry's own tests
//! and benchmarks only (the `testing` feature, which a release never has).

use std::path::{Path, PathBuf};

/// The directory holding every built plugin (`NAME.wasm` + `NAME.toml`).
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("GANTRY_TEST_PLUGINS_DIR"))
}

/// `NAME.wasm` of a built plugin or test guest.
pub fn test_plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "no test plugin {name} at {}",
        path.display()
    );
    path
}

/// Writes `contents` over the file at `path` and puts its modification
/// time back: an edit that keeps the size and the modification time, which
/// only the change time tells (20 ms after the last write, so it is a
/// later tick).
pub fn rewrite_keeping_modified(path: &Path, contents: &[u8]) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(path, contents).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

// Benchmark verdicts: each says "goal … met" or "goal … MISSED" and
// remembers a miss, so a benchmark prints every figure and then exits 1
// ([`finish`]) when any goal was missed.

use std::sync::atomic::{AtomicBool, Ordering};

static MISSED: AtomicBool = AtomicBool::new(false);

/// "goal {goal} met" or "goal {goal} MISSED", remembering a miss.
pub fn verdict(met: bool, goal: &str) -> String {
    if !met {
        MISSED.store(true, Ordering::Relaxed);
    }
    format!("goal {goal} {}", if met { "met" } else { "MISSED" })
}

/// Ends the benchmark: exit 1 when any goal was missed.
pub fn finish() {
    if MISSED.load(Ordering::Relaxed) {
        eprintln!("a goal was MISSED");
        std::process::exit(1);
    }
}

/// SplitMix64: a seeded stream with no dependency, so a benchmark's
/// generated inputs are the same on every run.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `in_` times.
    pub fn chance(&mut self, in_: usize) -> bool {
        self.below(in_) == 0
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A firing notification with nothing in it, marked a test: for notifier
/// calls in tests.
pub fn notification() -> crate::bindings::types::Notification {
    crate::bindings::types::Notification {
        receiver: "mail".into(),
        status: crate::bindings::types::AlertState::Firing,
        group_key: "g".into(),
        group_labels: vec![],
        common_labels: vec![],
        common_annotations: vec![],
        external_url: String::new(),
        alerts: vec![],
        truncated_alerts: 0,
        idempotency_key: "k".into(),
        test: true,
    }
}
