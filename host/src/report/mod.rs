//! Reporters: the only place gantry prints. Engines emit typed events into
//! a `Sink`; the `Reporter` renders them — progress bars on a terminal,
//! plain lines in a pipe, one JSON object per line with `--json` — and
//! prints each command's result. A closed stdout ends printing quietly;
//! the command carries on and exits as it would have.

mod describe;
mod reporter;
mod table;

pub use describe::{Describe, Progress};
pub use reporter::{Mode, Reporter};
pub use table::table;
