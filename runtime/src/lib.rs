//! gantry's plugin runtime: the contract's bindings, the capabilities the
//! host gives plugins, wasmtime with its compile cache, manifests, grants
//! and the registry — and the few plain parts they stand on (database
//! connections for the `sql` capability, secret references and scrubbing,
//! owner-only files, text made safe for a screen). It knows no gantry
//! settings, config, state store or engine: the `gantry` crate turns its
//! settings into [`RuntimeSettings`] (see ARCHITECTURE.md, "The runtime").

pub mod bindings;
pub mod capabilities;
pub mod db;
pub mod escape;
pub mod folder;
pub mod identity;
pub mod kind;
pub mod limits;
pub mod position;
pub mod private;
pub mod scrub;
pub mod secrets;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

mod cache;
mod call;
mod deadline;
mod engine;
mod error;
mod host;
mod inspect;
mod limiter;
pub mod manifest;
pub mod narrow;
mod pipe;
pub mod registry;
pub mod returned;
mod source;
mod state;

pub use cache::CacheOutcome;
pub use call::{CallOptions, CallReport, Outcome};
pub use deadline::DeadlineExceeded;
pub use engine::{EngineSettings, TICK};
pub use error::{LoadError, PluginError};
pub use host::{Plugin, Runtime, RuntimeSettings};
pub use inspect::{Inspection, ManifestSummary, inspect, inspect_builtin};
pub use manifest::{Manifest, ManifestError, PluginKind};
pub use registry::{Entry, Registry};
pub use source::{Origin, PluginSource, Provenance};
