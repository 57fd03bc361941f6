//! Nagios-style rendering of health-check results: status names, the
//! `STATUS: message | perfdata` line, and perfdata itself. Used by
//! `gantry plugin test` and by rollout health gates.

use crate::bindings::types::{CheckResult, HealthStatus, Metric};

pub fn status_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Ok => "ok",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
        HealthStatus::Unknown => "unknown",
    }
}

/// Nagios perfdata: `label=value[unit];warn;crit;min;max`.
pub fn perfdata(metrics: &[Metric]) -> String {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    metrics
        .iter()
        .map(|m| {
            let text = format!(
                "{}={}{};{};{};{};{}",
                crate::escape::one_line(&m.name),
                m.value,
                crate::escape::one_line(&m.unit),
                num(m.warn),
                num(m.crit),
                num(m.min),
                num(m.max)
            );
            text.trim_end_matches(';').to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `OK: message | perfdata`, as Nagios plugins print.
pub fn line(result: &CheckResult) -> String {
    // One line, as Nagios reads it: a message cannot add a line of its own.
    let mut line = format!(
        "{}: {}",
        status_name(result.status).to_uppercase(),
        crate::escape::one_line(&result.message)
    );
    if !result.metrics.is_empty() {
        line.push_str(&format!(" | {}", perfdata(&result.metrics)));
    }
    line
}
