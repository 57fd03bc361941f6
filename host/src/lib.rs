//! gantry deploys and watches an authentication service. Everything a team
//! customises is a sandboxed WebAssembly component plugin; the host owns
//! sequencing, state and rollback. See ARCHITECTURE.md for the map.

pub mod capabilities;
pub mod cli;
pub mod runtime;
#[doc(hidden)]
pub mod testing;
