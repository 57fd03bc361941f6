//! TCP connect probes, to targets the manifest allows.

use crate::bindings::tcp as raw;
use std::time::Duration;

/// Connects to `host:port` and closes; returns how long the connect took.
pub fn probe(host: &str, port: u16, timeout: Duration) -> Result<Duration, String> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    raw::probe(host, port, timeout_ms).map(Duration::from_micros)
}
