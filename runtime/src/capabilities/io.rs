//! Host I/O done on behalf of a synchronous plugin call.
//!
//! Plugin calls run synchronously on the caller's thread; network work
//! runs on the runtime's own I/O threads and the call waits for it. This
//! works from any thread, inside a tokio runtime or not.

use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `fut` on `io` and waits for it; `None` if the I/O runtime is gone.
pub fn run_io<F>(io: &tokio::runtime::Handle, fut: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().ok()
}

/// Time left until `deadline`, zero when it has passed.
pub fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
