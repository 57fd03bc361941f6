//! Auth monitoring and alerting: windows of auth events, rules, an alert
//! lifecycle with acknowledgements and silences, a durable outbox and its
//! delivery through notifier plugins. See ARCHITECTURE.md, "Monitoring".

pub mod evaluator;
pub mod event;
pub mod recorder;
pub mod rules;
pub mod window;

pub use event::{AuthEvent, Kind, UnknownKind};
pub use recorder::Recorder;
