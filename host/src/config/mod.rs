//! The deployment config (`deployment_config.json`, or TOML): parsed and
//! validated into plain structs before anything is built from it.

pub mod analysis;
mod database;
mod load;
mod model;
mod monitoring;
mod services;

pub(crate) use load::strip_position;
pub use load::{ConfigError, LoadedConfig, load, locate};
pub use model::*;
pub use monitoring::{
    ApiConfig, DeliveryConfig, EmailAlerts, MonitoringConfig, ReceiverConfig, RuleConfig,
};
pub use services::{
    DriverKind, ExecCommands, ExecInstance, FrontDoorConfig, FrontDoorMode, HealthCheckConfig,
    RolloutConfig, ServiceConfig, StepConfig, Traffic,
};
