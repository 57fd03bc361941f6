//! Host-core benchmarks: what the state store adds to a command.
//!
//!   cargo bench -p gantry --bench core
//!
//! `gantry --version` is the floor (process start, no settings, no store);
//! `gantry status` on SQLite opens the store, checks its schema version,
//! reads the config changes and closes it. The difference is the store's
//! share, which the host-core issue bounds at 5 ms.

mod common;

use common::{Figure, fmt, gantry_bin, timed};
use std::process::{Command, Stdio};
use std::time::Duration;

fn wall(work: &std::path::Path, args: &'static [&'static str]) -> Vec<Duration> {
    let bin = gantry_bin();
    let run = || {
        let status = Command::new(&bin)
            .args(args)
            .current_dir(work)
            .env("GANTRY_CACHE_DIR", work.join("cache"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.code().is_some_and(|c| c <= 1), "{args:?}: {status}");
    };
    run();
    timed(60, run)
}

fn main() {
    if !gantry_bin().is_file() {
        eprintln!("{} not built", gantry_bin().display());
        return;
    }
    let work = tempfile::tempdir().unwrap();
    println!(
        "gantry core benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let floor = Figure {
        name: "wall: `gantry --version` (process floor)",
        samples: wall(work.path(), &["--version"]),
        goal: None,
        p99_goal: None,
    };
    floor.print();
    let status = Figure {
        name: "wall: `gantry status`, SQLite state store",
        samples: wall(work.path(), &["status"]),
        goal: None,
        p99_goal: None,
    };
    status.print();
    let share = status.percentile(0.5).saturating_sub(floor.percentile(0.5));
    println!(
        "{:<44} median {:>10}   {}",
        "state store's share of `gantry status`",
        fmt(share),
        common::verdict(share <= Duration::from_millis(5), "≤ 5.00 ms")
    );
    common::finish();
}
