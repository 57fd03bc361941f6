//! The migration runner: `gantry migrate`, `status`, `rollback`, `repair`
//! on PostgreSQL and SQLite, with WASM data-migration steps.
//!
//! `Migrator` is the library entry point; it emits `Event`s and never
//! prints. See ARCHITECTURE.md, "Migrations".

mod adopt;
mod adopt_golang;
mod apply;
pub mod checksum;
mod chunk;
mod error;
mod events;
pub mod history;
mod index;
mod lock;
mod repair;
mod revert;
mod runner;
pub mod signature;
pub mod source;
mod sqlx_history;
mod status;
mod wasm;

pub use adopt::{AdoptProblem, AdoptReport};
pub use error::{DriftItem, MigrateError};
pub use events::{Direction, Event, PlannedStep};
pub use history::RowState;
pub use repair::RepairAction;
pub use runner::{ApplyOptions, Migrator, RunReport};
pub use source::{Migration, MigrationId, MigrationSet, Source, discover};
pub use sqlx_history::{SqlxConfig, SqlxHistory, source_for as sqlx_source_for};
pub use status::{State, Status, StatusRow, Summary};
