//! Paths to the test guests built by `build.rs`; for gantry's own tests
//! and benchmarks only (the `testing` feature, which a release never has).

use std::path::PathBuf;

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
