//! What one plugin may use per call: memory, time, and HTTP budgets, as its
//! manifest asks (within the operator's maximums, see `narrow.rs`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_mib: u64,
    pub timeout_ms: u64,
    /// HTTP requests one call may send, when the plugin needs more (or
    /// fewer) than the default 64; at most the operator's
    /// `plugins.capabilities.http.max_requests_per_call`.
    pub http_requests_per_call: Option<u32>,
    /// Body bytes one call may send and receive, likewise (default 16 MiB).
    pub http_bytes_per_call: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 32,
            timeout_ms: 10_000,
            http_requests_per_call: None,
            http_bytes_per_call: None,
        }
    }
}

impl Limits {
    /// The most a manifest may ask for.
    pub const MAX_MEMORY_MIB: u64 = 512;
    pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;
}

/// A guest waited in a host call until its deadline passed (its time
/// limit): the call is reported as timed out.
#[derive(Debug, thiserror::Error)]
#[error("the plugin's deadline passed while it waited in a host call")]
pub struct DeadlineExceeded;

/// The operator's narrower limits for one plugin
/// (`plugins.grants.NAME.limits`): each at most the manifest's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorLimits {
    pub memory_mib: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub http_requests_per_call: Option<u32>,
    pub http_bytes_per_call: Option<u64>,
}
