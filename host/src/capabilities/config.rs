//! The `config` capability: the operator's settings for this plugin call.
//!
//! Read-only. Settings have been checked against the manifest's
//! `[settings]` before the call; this module never logs their values,
//! since some are secrets.

use crate::runtime::bindings::config as wit;
use crate::runtime::bindings::types::Kv;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Settings for one call, shared cheaply between calls.
pub type Settings = Arc<BTreeMap<String, String>>;

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
