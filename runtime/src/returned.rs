//! What a plugin hands back, made fit to keep: every resolved secret
//! scrubbed, every value bounded.
//!
//! Applied once, where a call ends, so the daemon, the state store, the
//! notices and every printer see the same bounded, scrubbed values. A cut
//! says so in the value itself (`… [cut 8388608 bytes]`, `[cut 199936
//! metrics]`), never silently.

use crate::bindings::types::{CheckResult, DeliveryError, Finding, FindingSeverity};
use crate::scrub::Scrubber;

/// Bytes of a message, reason or error string kept.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Bytes of a name, unit or JSON pointer kept.
pub const MAX_NAME_BYTES: usize = 256;
/// Metrics kept from one check.
pub const MAX_METRICS: usize = 64;
/// Findings kept from one validation.
pub const MAX_FINDINGS: usize = 256;

/// Cuts `text` to `max` bytes (on a character boundary), saying how much
/// went. True when it cut.
pub fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let gone = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(" … [cut {gone} bytes]"));
    true
}

/// A value a plugin returned.
pub trait Returned {
    /// Scrubs `secrets` out of it, then bounds it.
    fn tidy(&mut self, secrets: &Scrubber);
}

fn tidy_text(text: &mut String, secrets: &Scrubber, max: usize) {
    secrets.scrub_in_place(text);
    cut(text, max);
}

impl Returned for CheckResult {
    fn tidy(&mut self, secrets: &Scrubber) {
        tidy_text(&mut self.message, secrets, MAX_MESSAGE_BYTES);
        if self.metrics.len() > MAX_METRICS {
            let gone = self.metrics.len() - MAX_METRICS;
            self.metrics.truncate(MAX_METRICS);
            self.message.push_str(&format!(" [cut {gone} metrics]"));
        }
        for metric in &mut self.metrics {
            tidy_text(&mut metric.name, secrets, MAX_NAME_BYTES);
            tidy_text(&mut metric.unit, secrets, MAX_NAME_BYTES);
        }
    }
}

impl Returned for Vec<Finding> {
    fn tidy(&mut self, secrets: &Scrubber) {
        if self.len() > MAX_FINDINGS {
            // The note keeps the worst severity of what was cut, so a cut
            // never turns a blocking result into a passing one.
            let cut_off = self.split_off(MAX_FINDINGS - 1);
            let worst = cut_off
                .iter()
                .map(|f| f.severity)
                .min_by_key(|s| match s {
                    FindingSeverity::Error => 0,
                    FindingSeverity::Warning => 1,
                    FindingSeverity::Info => 2,
                })
                .unwrap_or(FindingSeverity::Info);
            self.push(Finding {
                path: String::new(),
                severity: worst,
                message: format!(
                    "[cut {} findings; the plugin returned {}]",
                    cut_off.len(),
                    MAX_FINDINGS - 1 + cut_off.len()
                ),
            });
        }
        for finding in self.iter_mut() {
            tidy_text(&mut finding.path, secrets, MAX_NAME_BYTES);
            tidy_text(&mut finding.message, secrets, MAX_MESSAGE_BYTES);
        }
    }
}

impl Returned for DeliveryError {
    fn tidy(&mut self, secrets: &Scrubber) {
        match self {
            DeliveryError::Retry(retry) => tidy_text(&mut retry.reason, secrets, MAX_MESSAGE_BYTES),
            DeliveryError::Permanent(why) => tidy_text(why, secrets, MAX_MESSAGE_BYTES),
        }
    }
}

impl Returned for String {
    fn tidy(&mut self, secrets: &Scrubber) {
        tidy_text(self, secrets, MAX_MESSAGE_BYTES);
    }
}

impl Returned for () {
    fn tidy(&mut self, _: &Scrubber) {}
}

impl<T: Returned, E: Returned> Returned for Result<T, E> {
    fn tidy(&mut self, secrets: &Scrubber) {
        match self {
            Ok(value) => value.tidy(secrets),
            Err(err) => err.tidy(secrets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{HealthStatus, Metric};

    #[test]
    fn a_huge_check_result_is_cut_with_a_note() {
        let mut result = CheckResult {
            status: HealthStatus::Ok,
            message: "é".repeat(4 << 20),
            metrics: (0..200_000)
                .map(|i| Metric {
                    name: format!("m{i}"),
                    value: 1.0,
                    unit: String::new(),
                    warn: None,
                    crit: None,
                    min: None,
                    max: None,
                })
                .collect(),
        };
        result.tidy(&Scrubber::default());
        assert!(result.message.len() < MAX_MESSAGE_BYTES + 64);
        assert!(
            result.message.contains("[cut 8384512 bytes]"),
            "{}",
            &result.message[4000..]
        );
        assert!(result.message.ends_with("[cut 199936 metrics]"));
        assert_eq!(result.metrics.len(), MAX_METRICS);
    }

    #[test]
    fn cut_findings_keep_their_worst_severity() {
        let mut findings: Vec<Finding> = (0..1000)
            .map(|i| Finding {
                path: format!("/{i}"),
                severity: if i == 999 {
                    FindingSeverity::Error
                } else {
                    FindingSeverity::Info
                },
                message: "x".into(),
            })
            .collect();
        findings.tidy(&Scrubber::default());
        assert_eq!(findings.len(), MAX_FINDINGS);
        let note = findings.last().unwrap();
        assert_eq!(note.severity, FindingSeverity::Error);
        assert!(
            note.message.contains("cut 745 findings"),
            "{}",
            note.message
        );
    }

    #[test]
    fn secrets_are_scrubbed_before_cutting() {
        let mut why: Result<(), String> = Err("token=hunter22hunter22 refused".into());
        why.tidy(&Scrubber::new(["hunter22hunter22"]));
        assert_eq!(why, Err("token=******** refused".to_string()));
    }
}
