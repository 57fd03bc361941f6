//! The `config` capability: the operator's settings for this plugin call.
//!
//! Read-only. Settings have been checked against the manifest's
//! `[settings]` before the call; this module never logs their values,
//! since some are secrets.

use crate::kind::PluginKind;
use super::unit::{CallContext, Capability};
use super::{Grants, NoLimits};
use crate::bindings::config as wit;
use crate::bindings::types::Kv;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Settings for one call, shared cheaply between calls.
pub type Settings = Arc<BTreeMap<String, String>>;

/// The capability as a unit: every plugin reads its own settings.
pub struct Config;

impl Capability for Config {
    const INTERFACE: &'static str = "config";
    const WORLDS: &'static [PluginKind] = &PluginKind::ALL;
    type Operator = super::NoOperatorGrant;
    type Limits = NoLimits;
    type Shared = ();
    type State = ConfigState;

    fn granted(_: &Grants) -> bool {
        true
    }

    fn shared(_: &NoLimits, _: &tokio::runtime::Handle) -> anyhow::Result<()> {
        Ok(())
    }

    fn state(_: &(), call: &CallContext<'_>) -> ConfigState {
        ConfigState::new(Arc::clone(call.settings))
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ConfigState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<ConfigState>>(linker, get)
    }
}

pub struct ConfigState {
    settings: Settings,
}

impl ConfigState {
    pub fn new(settings: Settings) -> Self {
        ConfigState { settings }
    }
}

impl wit::Host for ConfigState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).cloned())
    }

    fn all(&mut self) -> wasmtime::Result<Vec<Kv>> {
        Ok(self
            .settings
            .iter()
            .map(|(key, value)| Kv {
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }
}
