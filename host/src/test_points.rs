//! Named points where a test can stop a gantry process: with
//! `GANTRY_PAUSE_AT=NAME` set, the process sends itself SIGSTOP on
//! reaching `NAME`, so a test can look at the state store and the files
//! at exactly that moment, then SIGCONT (or SIGKILL) it.
//!
//! Read once per process; without the variable every point is one
//! comparison against `None`. Never changes behaviour otherwise.

use std::sync::OnceLock;

/// The points: `config:recorded` (a config change is recorded
/// `in_progress`, no file written yet), `config:wrote-first` (the first
/// file of a change is in place), `rollout:replaced-one` (the first
/// instance of a rollout is replaced, the rest are not),
/// `rollout:recorded-instance` and `rollout:spawned` (a new instance's row
/// is recorded; its process is spawned), `deploy:leased` (a deploy holds
/// its lease), `deploy:step:NAME` (a deploy step is recorded `running`),
/// `rotate:phase-N` (a key rotation's phase N is recorded, its deployment
/// not yet started).
pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("GANTRY_PAUSE_AT").ok());
    if at.as_deref() == Some(name) {
        tracing::warn!(point = name, "pausing (GANTRY_PAUSE_AT)");
        // SAFETY: raise(3) with a standard signal number.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}
