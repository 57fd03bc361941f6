//! gantry deploys and watches an authentication service. Everything a team
//! customises is a sandboxed WebAssembly component plugin; the host owns
//! sequencing, state and rollback. See ARCHITECTURE.md for the map.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod configdeploy;
pub mod deploy;
pub mod error;
pub mod events;
pub mod findings;
pub mod flock;
pub mod frontdoor;
pub mod identity;
pub mod layout;
pub mod migrate;
pub mod monitor;
pub mod nagios;
pub mod plugin_build;
pub mod process;
pub mod report;
pub mod rollout;
pub mod scaffold;
pub mod settings;
pub mod stats;
pub mod store;
pub mod test_points;

pub use error::{Exit, Failure};

// The runtime crate's layers, under the names the rest of gantry uses.
pub use gantry_runtime as runtime;
pub use gantry_runtime::{bindings, capabilities, db, escape, on_conn, position, scrub, secrets};
