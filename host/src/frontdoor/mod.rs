//! gantry's front door: a small reverse proxy (gantry's own binary in
//! `gantry front-door run`) that owns a supervised service's public
//! addresses and sends traffic only to instances that passed their gate.
//! Instances listen on private addresses; draining is leaving the pool.

pub mod control;
pub mod http;
pub mod pool;
pub mod serve;
pub mod stats;

pub use control::{Answer, ControlError, Request, Status};
pub use pool::{Member, Pool, PoolStatus};
pub use serve::{FrontDoor, Loader, Mode, Publisher};
pub use stats::{HttpSecond, HttpStats};
