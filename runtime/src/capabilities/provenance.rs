//! The `provenance` capability: for a config validator, where each value
//! of the file it validates came from (the base file in clear, the
//! environment's values, a SOPS-decrypted value, a secret reference). The
//! host fills it per call from what rendering learnt; read-only.

use super::unit::{CallContext, Capability};
use super::{Grants, NoLimits};
use crate::bindings::provenance as wit;
use crate::kind::PluginKind;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

pub use wit::Origin;

/// Each scalar value's origin, by JSON pointer.
pub type Origins = Arc<BTreeMap<String, Origin>>;

pub struct Provenance;

impl Capability for Provenance {
    const INTERFACE: &'static str = "provenance";
    const WORLDS: &'static [PluginKind] = &[PluginKind::ConfigValidator];
    type Operator = super::NoOperatorGrant;
    type Limits = NoLimits;
    type Shared = ();
    type State = ProvenanceState;

    fn granted(_: &Grants) -> bool {
        true
    }

    fn shared(_: &NoLimits, _: &tokio::runtime::Handle) -> anyhow::Result<()> {
        Ok(())
    }

    fn state(_: &(), call: &CallContext<'_>) -> ProvenanceState {
        ProvenanceState {
            origins: call.origins.cloned(),
        }
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ProvenanceState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<ProvenanceState>>(linker, get)
    }
}

pub struct ProvenanceState {
    origins: Option<Origins>,
}

impl wit::Host for ProvenanceState {
    fn origin_of(&mut self, pointer: String) -> wasmtime::Result<Option<Origin>> {
        Ok(self
            .origins
            .as_ref()
            .and_then(|origins| origins.get(&pointer).copied()))
    }
}
