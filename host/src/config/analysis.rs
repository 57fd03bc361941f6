//! `analyses`: named canary analyses a rollout step runs (`services.NAME.
//! rollout.steps[i].analysis`), each a list of metrics judged on the new
//! revision against the baseline (the revision serving the rest), against
//! an absolute bound, or both. `auth-default` is built in.

use serde::{Deserialize, Serialize};

/// What an analysis looks at, per revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Successful logins among login attempts (auth events).
    LoginSuccessRate,
    /// Failed token refreshes among refreshes (auth events).
    TokenRefreshFailureRate,
    /// Permission denials among all auth events.
    PermissionDenialRate,
    /// Service errors among all auth events.
    ServiceErrorRate,
    /// 5xx answers among every answer the front door passed on.
    #[serde(rename = "http_5xx_rate")]
    Http5xxRate,
    /// Time to the answer's head through the front door, in ms (shown as
    /// its p99; compared with Mann–Whitney U).
    HttpLatencyMs,
    /// The response times auth events report, in ms.
    AuthLatencyMs,
}

impl MetricName {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::LoginSuccessRate => "login_success_rate",
            MetricName::TokenRefreshFailureRate => "token_refresh_failure_rate",
            MetricName::PermissionDenialRate => "permission_denial_rate",
            MetricName::ServiceErrorRate => "service_error_rate",
            MetricName::Http5xxRate => "http_5xx_rate",
            MetricName::HttpLatencyMs => "http_latency_ms",
            MetricName::AuthLatencyMs => "auth_latency_ms",
        }
    }

    /// A latency (ms) rather than a rate (a fraction).
    pub fn is_latency(self) -> bool {
        matches!(self, MetricName::HttpLatencyMs | MetricName::AuthLatencyMs)
    }

    /// A rate where higher is better.
    pub fn higher_is_better(self) -> bool {
        self == MetricName::LoginSuccessRate
    }
}

/// What an analysis concludes when a metric has too few samples by the
/// step's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Inconclusive {
    #[default]
    Fail,
    Pass,
}

/// `analyses.NAME`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    pub metrics: Vec<MetricCheck>,
    /// At the step's deadline, with too few samples [default: fail].
    #[serde(default)]
    pub inconclusive: Inconclusive,
}

/// `analyses.NAME.metrics[i]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricCheck {
    pub metric: MetricName,
    /// The worst the new revision may be against the baseline before it
    /// matters: a rate's fraction (0.005 is half a point) or milliseconds.
    /// Tested at `significance` (a two-proportion test for rates, Mann–
    /// Whitney U for latencies). Absent: no comparison.
    #[serde(default)]
    pub margin: Option<f64>,
    /// The new revision's own limit: a least success rate, a most failure
    /// rate, a most p99 in ms. Absent: none.
    #[serde(default)]
    pub bound: Option<f64>,
    /// Samples each revision needs before this metric is judged.
    #[serde(default = "min_samples")]
    pub min_samples: u64,
    /// The level each comparison is tested at (family-wise per step:
    /// divided over the step's looks and the analysis's comparisons).
    #[serde(default = "significance")]
    pub significance: f64,
    /// Too few samples holds the verdict (inconclusive); when false, a
    /// metric the traffic does not exercise is left out.
    #[serde(default = "yes")]
    pub required: bool,
}

fn min_samples() -> u64 {
    100
}
fn significance() -> f64 {
    0.01
}
fn yes() -> bool {
    true
}

/// The built-in template's name.
pub const AUTH_DEFAULT: &str = "auth-default";

/// `auth-default`: login success may drop by at most half a point, token
/// refresh failures and 5xx answers rise by at most half a point, and
/// answers slow by at most 25 ms — each at p < 0.01.
pub fn auth_default() -> AnalysisConfig {
    let check = |metric, margin, required| MetricCheck {
        metric,
        margin: Some(margin),
        bound: None,
        min_samples: min_samples(),
        significance: significance(),
        required,
    };
    AnalysisConfig {
        metrics: vec![
            check(MetricName::LoginSuccessRate, 0.005, true),
            check(MetricName::TokenRefreshFailureRate, 0.005, false),
            check(MetricName::HttpLatencyMs, 25.0, true),
            check(MetricName::Http5xxRate, 0.005, true),
        ],
        inconclusive: Inconclusive::Fail,
    }
}

impl AnalysisConfig {
    /// Refuses what cannot be judged; the error names the key under
    /// `analyses.NAME`.
    pub fn check(&self, name: &str) -> Result<(), (String, String)> {
        let key = |k: String| format!("analyses.{name}.{k}");
        if self.metrics.is_empty() {
            return Err((
                key("metrics".into()),
                "an analysis needs at least one metric".into(),
            ));
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let at = |f: &str| key(format!("metrics[{i}].{f}"));
            if m.margin.is_none() && m.bound.is_none() {
                return Err((
                    at("margin"),
                    "give a margin against the baseline, a bound, or both".into(),
                ));
            }
            if let Some(margin) = m.margin
                && !(margin.is_finite() && margin >= 0.0 && (m.metric.is_latency() || margin < 1.0))
            {
                return Err((
                    at("margin"),
                    format!(
                        "{margin} is not a margin ({})",
                        if m.metric.is_latency() {
                            "milliseconds, 0 or more"
                        } else {
                            "a fraction from 0 to below 1"
                        }
                    ),
                ));
            }
            if let Some(bound) = m.bound
                && !(bound.is_finite() && bound >= 0.0 && (m.metric.is_latency() || bound <= 1.0))
            {
                return Err((
                    at("bound"),
                    format!("{bound} is not a bound for {}", m.metric.as_str()),
                ));
            }
            if !(m.significance > 0.0 && m.significance < 0.5) {
                return Err((
                    at("significance"),
                    format!("{} must be above 0 and below 0.5", m.significance),
                ));
            }
            if m.min_samples == 0 {
                return Err((at("min_samples"), "must be at least 1".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_reads_back_by_its_own_name() {
        for metric in [
            MetricName::LoginSuccessRate,
            MetricName::TokenRefreshFailureRate,
            MetricName::PermissionDenialRate,
            MetricName::ServiceErrorRate,
            MetricName::Http5xxRate,
            MetricName::HttpLatencyMs,
            MetricName::AuthLatencyMs,
        ] {
            let text = serde_json::to_string(&metric).unwrap();
            assert_eq!(text, format!("\"{}\"", metric.as_str()));
            assert_eq!(serde_json::from_str::<MetricName>(&text).unwrap(), metric);
        }
        assert!(auth_default().check(AUTH_DEFAULT).is_ok());
    }
}
