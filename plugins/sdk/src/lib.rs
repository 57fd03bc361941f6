//! Write gantry plugins in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. It implements one
//! of the traits below and exports it with the matching macro:
//!
//! ```ignore
//! use gantry_plugin::{CheckResult, HealthCheck};
//!
//! struct AlwaysOk;
//!
//! impl HealthCheck for AlwaysOk {
//!     fn check(target: String) -> CheckResult {
//!         CheckResult::ok(format!("{target} is fine"))
//!     }
//! }
//!
//! gantry_plugin::health_check!(AlwaysOk);
//! ```
//!
//! Everything outside the plugin is reached through the host: [`config`] for
//! the operator's settings, [`log`] for log lines, [`http`] and [`tcp`] for
//! the network (only to destinations the manifest allows), [`smtp`] for mail
//! and [`sql`] for migrations. This crate never touches files, sockets or the
//! environment itself; the sandbox would refuse it anyway.

pub mod check;
pub mod config;
pub mod http;
pub mod log;
pub mod tcp;

/// The raw bindings generated from `wit/plugin.wit` (world `imports`).
pub mod bindings {
    wit_bindgen::generate!({
        world: "gantry:plugin/imports",
        path: "wit",
    });
    pub use self::gantry::plugin::{config, http, log, provenance, smtp, sql, tcp, types};
}

pub use bindings::provenance;
pub use bindings::smtp;
pub use bindings::sql;
pub use bindings::types::{
    Alert, AlertState, CheckResult, DeliveryError, Finding, FindingSeverity, HealthStatus, Kv,
    Level, Metric, Notification, Retry, Severity,
};
pub use gantry_plugin_macros::{config_validator, health_check, migration, notifier};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// A health check: looks at a target and says how it is.
pub trait HealthCheck {
    fn check(target: String) -> CheckResult;
}

/// An alert channel: delivers one notification (a group of alerts for one
/// receiver), or says whether to try again and when.
pub trait Notifier {
    fn notify(notification: Notification) -> Result<(), DeliveryError>;
}

/// A config rule: looks at one rendered config file (as JSON text).
pub trait ConfigValidator {
    fn validate(environment: String, file_name: String, json: String) -> Vec<Finding>;
}

/// A data migration, run inside the migration's own transaction.
pub trait Migration {
    fn up() -> Result<(), String>;
    fn down() -> Result<(), String>;
}

impl Finding {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FindingSeverity::Error, path, message)
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FindingSeverity::Warning, path, message)
    }

    pub fn info(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FindingSeverity::Info, path, message)
    }

    fn new(severity: FindingSeverity, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            path: path.into(),
            severity,
            message: message.into(),
        }
    }
}

impl Alert {
    /// The value of a label, if the alert carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        find(&self.labels, key)
    }

    /// The value of an annotation, if the alert carries it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        find(&self.annotations, key)
    }
}

fn find<'a>(pairs: &'a [Kv], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

impl Notification {
    /// True while any alert of the group fires.
    pub fn is_firing(&self) -> bool {
        self.status == AlertState::Firing
    }

    /// How many of its alerts fire.
    pub fn firing_count(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertState::Firing)
            .count()
    }

    /// The name a title shows: its first alert's, else `gantry`.
    pub fn name(&self) -> &str {
        self.alerts
            .first()
            .map(|a| a.name.as_str())
            .unwrap_or("gantry")
    }
}

impl AlertState {
    /// `firing` or `resolved`, as Alertmanager spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl DeliveryError {
    /// Try again later (with the host's backoff).
    pub fn retry(reason: impl Into<String>) -> Self {
        DeliveryError::Retry(Retry {
            reason: reason.into(),
            retry_after_seconds: None,
        })
    }

    /// Try again after `seconds` (a receiver's Retry-After).
    pub fn retry_after(reason: impl Into<String>, seconds: u32) -> Self {
        DeliveryError::Retry(Retry {
            reason: reason.into(),
            retry_after_seconds: Some(seconds),
        })
    }

    /// It can never be delivered.
    pub fn permanent(reason: impl Into<String>) -> Self {
        DeliveryError::Permanent(reason.into())
    }

    /// How a receiver's HTTP answer should be taken: 2xx delivered; 429
    /// and 5xx retried (after `Retry-After` seconds when given); any other
    /// status permanent.
    pub fn from_status(
        receiver: &str,
        status: u16,
        retry_after: Option<&str>,
    ) -> Result<(), DeliveryError> {
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => {
                let reason = format!("{receiver} answered {status}");
                match retry_after.and_then(|v| v.trim().parse::<u32>().ok()) {
                    Some(seconds) => Err(DeliveryError::retry_after(reason, seconds)),
                    None => Err(DeliveryError::retry(reason)),
                }
            }
            _ => Err(DeliveryError::permanent(format!(
                "{receiver} refused the notice with {status}"
            ))),
        }
    }
}
