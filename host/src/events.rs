//! Where engines send what they do: a `Sink<E>` for each engine's typed
//! events. Engines emit and never print; reporters (human, JSON lines,
//! journal) receive the same events and decide how to show or keep them.

use std::sync::Arc;

/// Receives an engine's events, in order, from any thread.
pub type Sink<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// A sink that drops everything (a library caller that wants no events).
pub fn discard<E>() -> Sink<E> {
    Arc::new(|_| {})
}
