//! Building check results: statuses, messages and perfdata.

use crate::{CheckResult, HealthStatus, Metric};

impl CheckResult {
    pub fn ok(message: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Ok, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Warning, message)
    }

    pub fn critical(message: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Critical, message)
    }

    pub fn unknown(message: impl Into<String>) -> Self {
        Self::with_status(HealthStatus::Unknown, message)
    }

    pub fn with_status(status: HealthStatus, message: impl Into<String>) -> Self {
        CheckResult {
            status,
            message: message.into(),
            metrics: Vec::new(),
        }
    }

    /// Adds one perfdata figure.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Raises the status to `status` if that is worse; never lowers it.
    pub fn escalate(mut self, status: HealthStatus, reason: impl AsRef<str>) -> Self {
        if severity_rank(status) > severity_rank(self.status) {
            self.status = status;
            self.message = format!("{}; {}", self.message, reason.as_ref());
        }
        self
    }
}

impl Metric {
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    /// Attaches the thresholds the value was judged against.
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.warn = thresholds.warn;
        self.crit = thresholds.crit;
        self
    }

    pub fn min(mut self, min: f64) -> Self {
        self.min = Some(min);
        self
    }
}

/// "Higher is worse" thresholds, as in Nagios plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    pub warn: Option<f64>,
    pub crit: Option<f64>,
}

impl Thresholds {
    /// The status `value` earns: critical at or above `crit`, warning at or
    /// above `warn`, otherwise ok.
    pub fn judge(&self, value: f64) -> HealthStatus {
        match (self.warn, self.crit) {
            (_, Some(crit)) if value >= crit => HealthStatus::Critical,
            (Some(warn), _) if value >= warn => HealthStatus::Warning,
            _ => HealthStatus::Ok,
        }
    }
}

fn severity_rank(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Ok => 0,
        HealthStatus::Warning => 1,
        HealthStatus::Unknown => 2,
        HealthStatus::Critical => 3,
    }
}
