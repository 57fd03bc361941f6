//! gantry deploys and watches an authentication service. Everything a team
//! customises is a sandboxed WebAssembly component plugin; the host owns
//! sequencing, state and rollback. See ARCHITECTURE.md for the map.

pub mod api;
pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod configdeploy;
pub mod db;
pub mod deploy;
pub mod error;
pub mod escape;
pub mod events;
pub mod findings;
pub mod flock;
pub mod frontdoor;
pub mod identity;
pub mod layout;
pub mod migrate;
pub mod monitor;
pub mod nagios;
pub mod pause;
pub mod plugin_build;
pub mod position;
pub mod report;
pub mod rollout;
pub mod runtime;
pub mod scaffold;
pub mod scrub;
pub mod secrets;
pub mod settings;
pub mod store;
#[doc(hidden)]
pub mod testing;

pub use error::{Exit, Failure};
