//! The sandboxed plugin runtime (see ARCHITECTURE.md, "The runtime").

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
pub use source::{Origin, PluginSource};
