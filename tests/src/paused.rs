//! Child gantry processes stopped at a pause point (`GANTRY_PAUSE_AT`):
//! whether one has stopped itself, waiting until it has, and signalling it
//! on (SIGCONT) or away (SIGKILL).

use std::process::Child;
use std::time::{Duration, Instant};

/// Whether `child` is stopped (state `T` in /proc).
pub fn is_paused(child: &Child) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .ok()
        .and_then(|stat| {
            // The state follows the command name's closing parenthesis.
            let (_, rest) = stat.rsplit_once(") ")?;
            rest.chars().next()
        })
        == Some('T')
}

/// Waits (up to 60 s) until `child` has stopped itself at its pause point;
/// panics, saying `what`, when it exits or never gets there.
pub fn wait_paused(child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !is_paused(child) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what}: gantry exited ({status}) before its pause point");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: gantry never reached its pause point"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child this test started, a standard signal.
    unsafe { libc::kill(child.id() as i32, sig) };
}
