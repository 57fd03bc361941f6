//! The shape every capability has (Spin's factors, wasi-config's owned
//! state + view + `add_to_linker`): operator limits read from the
//! deployment config, something shared per runtime (a client), a fresh
//! per-call state that implements the WIT host trait, and the one line
//! that links it. The runtime knows capabilities only through this trait
//! and the list in `mod.rs`.

use super::{GrantValue, Grants};
use crate::capabilities::log::LogLine;
use crate::kind::PluginKind;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Linker;

/// What a capability may know about the call it serves.
pub struct CallContext<'a> {
    pub plugin: &'a Arc<str>,
    pub grants: &'a Grants,
    /// Every secret this call may see, to scrub from what leaves it.
    pub secrets: &'a Arc<crate::scrub::Scrubber>,
    /// The plugin's limits (after the operator's narrowing).
    pub limits: &'a crate::limits::Limits,
    /// The operator's settings for this call (already checked).
    pub settings: &'a Arc<BTreeMap<String, String>>,
    /// What a health check looks at (may fill `{target}` grants).
    pub target: &'a str,
    /// When the call must be over; host I/O never outlives it.
    pub deadline: Instant,
    /// The process's tokio runtime, for host I/O.
    pub io: &'a tokio::runtime::Handle,
    /// A CA file the operator trusts for this call's TLS, beside the
    /// platform's trust store.
    pub ca_file: Option<&'a std::path::Path>,
    /// A config validator's file: where each value came from.
    pub origins: Option<&'a super::provenance::Origins>,
}

impl CallContext<'_> {
    /// A setting by key; `target` is the call's target.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        if key == "target" {
            Some(self.target)
        } else {
            self.settings.get(key).map(String::as_str)
        }
    }
}

/// What a call's report collects from each capability.
#[derive(Debug, Default)]
pub struct Collected {
    pub logs: Vec<LogLine>,
    pub dropped_logs: u64,
    /// Destinations refused during the call.
    pub denials: Vec<String>,
}

pub trait Capability {
    /// The `gantry:plugin` interface it implements (`http`).
    const INTERFACE: &'static str;
    /// The worlds whose plugins may import it; a plugin of another kind
    /// that imports it fails to load.
    const WORLDS: &'static [PluginKind];
    /// Operator limits, `plugins.capabilities.<INTERFACE>` in the
    /// deployment config; unknown keys are refused.
    type Limits: DeserializeOwned + Default + Clone + Send + Sync + std::fmt::Debug + 'static;
    /// Built once per runtime.
    type Shared: Send + Sync + 'static;
    /// Built fresh for every call; implements the WIT host trait.
    type State: Send + 'static;

    /// Whether a manifest grants it. Capabilities every world member may
    /// use return true; gated ones (`smtp`, `sql`) read their manifest key.
    fn granted(grants: &Grants) -> bool;

    /// Checks the shape of its key under the manifest's `[capabilities]`.
    fn check_grant(_value: &GrantValue) -> Result<(), String> {
        Err("this capability takes no entry under [capabilities]".into())
    }

    /// The operator's entry for it under `plugins.grants.NAME` (`http =
    /// […]`, `sql = "read"`); [`NoOperatorGrant`] when the operator has
    /// nothing to narrow.
    type Operator: DeserializeOwned
        + serde::Serialize
        + Clone
        + PartialEq
        + Eq
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;

    /// Narrows what the manifest grants (`declared`) by the operator's
    /// `entry`, into `grants`: an entry of the wrong shape, or wider than
    /// the manifest, is an error saying why (the load is refused).
    fn narrow(
        _declared: &Grants,
        _entry: &Self::Operator,
        _grants: &mut Grants,
    ) -> Result<(), String> {
        Err("this capability takes no operator grant".into())
    }

    /// What `grants` let a plugin reach through it, as `gantry plugin
    /// inspect` shows it; `None` for a capability every plugin has.
    fn summary(_grants: &Grants) -> Option<serde_json::Value> {
        None
    }

    fn shared(limits: &Self::Limits, io: &tokio::runtime::Handle) -> anyhow::Result<Self::Shared>;

    fn state(shared: &Self::Shared, call: &CallContext<'_>) -> Self::State;

    /// Links the host trait, reaching the state through `get`.
    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut Self::State,
    ) -> wasmtime::Result<()>;

    /// Moves what the call's report shows out of the finished call's state.
    fn collect(_state: &mut Self::State, _into: &mut Collected) {}
}

/// The operator entry of a capability the operator cannot narrow: any
/// value under its key in `plugins.grants.NAME` is refused when the
/// config is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum NoOperatorGrant {}

impl<'de> serde::Deserialize<'de> for NoOperatorGrant {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "this capability takes no operator grant",
        ))
    }
}
