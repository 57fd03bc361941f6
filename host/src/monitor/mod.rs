//! Auth monitoring and alerting: windows of auth events, rules, an alert
//! lifecycle with acknowledgements and silences, a durable outbox and its
//! delivery through notifier plugins. See ARCHITECTURE.md, "Monitoring".

mod admin;
pub mod auth_event;
pub(crate) mod cluster;
mod delivery;
mod engine;
pub mod evaluator;
mod events;
mod export;
pub mod lifecycle;
mod node;
mod notice;
mod receivers;
pub mod recorder;
mod reload;
pub mod revisions;
pub mod rules;
pub mod trend;
pub mod window;

pub use admin::{acknowledge, silence, unacknowledge, unsilence};
pub use auth_event::{AuthEvent, Kind, UnknownKind};
pub use delivery::DeliveryCounters;
pub use engine::{AuthMonitor, MonitorError, MonitorHandle, MonitorSettings};
pub use events::Event;
pub use notice::NotificationDoc;
pub use receivers::{Receiver, check_plugins};
pub use recorder::Recorder;
