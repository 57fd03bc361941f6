//! Typed plugin errors: what went wrong loading or calling a plugin, with
//! the context an operator or a plugin author needs to fix it.
//!
//! A plugin fault is always one of these values, never a panic or an abort
//! of the host.

use std::path::PathBuf;
use std::time::Duration;

/// Loading a plugin failed; nothing was registered.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read plugin `{plugin}` from {path}")]
    Read {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("plugin `{plugin}`: {path} is not a WebAssembly component: {detail}")]
    Malformed {
        plugin: String,
        path: PathBuf,
        detail: String,
    },

    #[error(
        "plugin `{plugin}` failed its integrity check: {what} is {expected}, this build's is {actual}"
    )]
    Integrity {
        plugin: String,
        /// Which pin failed: the manifest's or the operator's.
        what: &'static str,
        expected: String,
        actual: String,
    },

    #[error("plugin `{plugin}` is incompatible: expected {expected}, found {found}")]
    Incompatible {
        plugin: String,
        expected: String,
        found: String,
    },

    #[error("plugin `{plugin}` imports `{interface}`, which this host does not provide: {why}")]
    CapabilityUnavailable {
        plugin: String,
        interface: String,
        why: String,
    },

    #[error(transparent)]
    Manifest(#[from] super::manifest::ManifestError),

    /// The operator's `plugins.grants.NAME` cannot narrow this plugin.
    #[error("plugin `{plugin}`: `plugins.grants.{plugin}.{key}` {why}")]
    Narrowing {
        plugin: String,
        key: String,
        why: String,
    },

    /// The component imports a capability its manifest does not grant.
    #[error(
        "plugin `{plugin}` imports `{interface}` but its manifest does not grant it; add {manifest_entry}"
    )]
    Denied {
        plugin: String,
        interface: String,
        manifest_entry: String,
    },
}

/// A call into a plugin failed. The host is unharmed; the store the call
/// ran in has been thrown away.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{plugin}` timed out after {limit:?}")]
    Timeout { plugin: String, limit: Duration },

    #[error("plugin `{plugin}` ran out of memory (limit {limit_mib} MiB)")]
    OutOfMemory { plugin: String, limit_mib: u64 },

    #[error("plugin `{plugin}` trapped: {message}{}", backtrace_suffix(.backtrace))]
    Trap {
        plugin: String,
        /// The panic message when the guest panicked, else the trap's.
        message: String,
        /// The guest's wasm backtrace, one frame a line.
        backtrace: Option<String>,
    },

    #[error("plugin `{plugin}` is a {found} plugin; this call needs a {expected}")]
    WrongKind {
        plugin: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("plugin `{plugin}`: setting `{key}` is not one it declares (it takes: {known})")]
    UnknownSetting {
        plugin: String,
        key: String,
        known: String,
    },

    #[error("plugin `{plugin}`: setting `{key}` is required")]
    MissingSetting { plugin: String, key: String },

    #[error("the plugin runtime is busy: {0}")]
    Busy(String),

    #[error("plugin `{plugin}` failed in the host")]
    Host {
        plugin: String,
        #[source]
        source: anyhow::Error,
    },

    #[error("plugin `{plugin}`: gantry could not confine its SQL to its grant: {why}")]
    Confinement { plugin: String, why: String },
}

fn backtrace_suffix(backtrace: &Option<String>) -> String {
    match backtrace {
        Some(bt) if !bt.is_empty() => format!("\nguest backtrace:\n{bt}"),
        _ => String::new(),
    }
}

impl PluginError {
    /// The name of the plugin at fault.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Timeout { plugin, .. }
            | PluginError::OutOfMemory { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::WrongKind { plugin, .. }
            | PluginError::UnknownSetting { plugin, .. }
            | PluginError::MissingSetting { plugin, .. }
            | PluginError::Host { plugin, .. }
            | PluginError::Confinement { plugin, .. } => Some(plugin),
            PluginError::Busy(_) => None,
        }
    }

    /// True when the operator's input, not the plugin, is at fault.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PluginError::WrongKind { .. }
                | PluginError::UnknownSetting { .. }
                | PluginError::MissingSetting { .. }
        )
    }
}
