//! Alert rules: a metric over a window compared with a threshold, with a
//! `for` duration, resolve hysteresis, a minimum sample count and an
//! explicit no-data behaviour. The spec's four thresholds are the default
//! rules; operators add their own. Bad rules are refused before anything
//! starts, with their key path.

use super::auth_event::Kind;
use super::window::Totals;
use crate::config::{MonitoringConfig, RuleConfig};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    SuccessRate,
    ErrorRate,
    LatencyP50Ms,
    LatencyP95Ms,
    LatencyP99Ms,
    TokenRefreshRate,
    TokenExpirationRate,
    PermissionDenialRate,
    Events,
}

impl Metric {
    const ALL: [(&'static str, Metric); 9] = [
        ("success_rate", Metric::SuccessRate),
        ("error_rate", Metric::ErrorRate),
        ("latency_p50_ms", Metric::LatencyP50Ms),
        ("latency_p95_ms", Metric::LatencyP95Ms),
        ("latency_p99_ms", Metric::LatencyP99Ms),
        ("token_refresh_rate", Metric::TokenRefreshRate),
        ("token_expiration_rate", Metric::TokenExpirationRate),
        ("permission_denial_rate", Metric::PermissionDenialRate),
        ("events", Metric::Events),
    ];

    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, m)| *m)
    }

    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .expect("listed")
    }

    /// A fraction in [0, 1].
    fn is_ratio(self) -> bool {
        matches!(
            self,
            Metric::SuccessRate | Metric::ErrorRate | Metric::PermissionDenialRate
        )
    }

    /// The value over `t` and the samples it rests on; `None` when the
    /// window holds nothing to compute it from.
    pub fn value(self, t: &Totals) -> (Option<f64>, u64) {
        let k = |kind: Kind| t.total[kind as usize];
        let ok = |kind: Kind| t.ok[kind as usize];
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let per_second = |n: u64| Some(n as f64 / t.seconds.max(1) as f64);
        match self {
            Metric::SuccessRate => {
                let attempts = k(Kind::AuthAttempt);
                (ratio(ok(Kind::AuthAttempt), attempts), attempts)
            }
            Metric::ErrorRate => {
                let all = t.events();
                (ratio(k(Kind::ServiceError), all), all)
            }
            Metric::LatencyP50Ms | Metric::LatencyP95Ms | Metric::LatencyP99Ms => {
                let p = match self {
                    Metric::LatencyP50Ms => 0.50,
                    Metric::LatencyP95Ms => 0.95,
                    _ => 0.99,
                };
                (t.percentile_ms(p), t.latency_samples())
            }
            Metric::TokenRefreshRate => (per_second(k(Kind::TokenRefresh)), t.events()),
            Metric::TokenExpirationRate => (per_second(k(Kind::TokenExpiration)), t.events()),
            Metric::PermissionDenialRate => {
                let decisions = k(Kind::AuthAttempt) + k(Kind::PermissionDenial);
                (ratio(k(Kind::PermissionDenial), decisions), decisions)
            }
            Metric::Events => (Some(t.events() as f64), t.events()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// Not enough samples: the condition does not hold (resolves).
    Ok,
    /// Not enough samples is itself the problem.
    Alerting,
    /// Keep whatever state the rule is in.
    Keep,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    pub op: Op,
    pub threshold: f64,
    pub window: Duration,
    pub for_duration: Duration,
    pub resolve_threshold: f64,
    pub resolve_for: Duration,
    pub min_samples: u64,
    pub no_data: NoData,
    pub severity: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A rule refused, with the key at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct RuleError {
    pub key: String,
    pub message: String,
}

pub const WINDOWS: [(&str, u64); 3] = [("1m", 60), ("5m", 300), ("15m", 900)];

impl Rule {
    pub fn from_config(
        config: &RuleConfig,
        key: &str,
        interval: Duration,
    ) -> Result<Rule, RuleError> {
        let fail = |field: &str, message: String| RuleError {
            key: format!("{key}.{field}"),
            message,
        };
        if config.name.trim().is_empty() {
            return Err(fail("name", "a rule needs a name".into()));
        }
        let metric = Metric::parse(&config.metric).ok_or_else(|| {
            fail(
                "metric",
                format!(
                    "unknown metric {:?}; known: {}",
                    config.metric,
                    Metric::ALL.map(|(n, _)| n).join(", ")
                ),
            )
        })?;
        let op = Op::parse(&config.op)
            .ok_or_else(|| fail("op", format!("{:?}: expected <, <=, > or >=", config.op)))?;
        let in_range =
            |v: f64| v.is_finite() && (!metric.is_ratio() || (0.0..=1.0).contains(&v)) && v >= 0.0;
        if !in_range(config.threshold) {
            return Err(fail(
                "threshold",
                format!(
                    "{} is out of range for {}{}",
                    config.threshold,
                    metric.name(),
                    if metric.is_ratio() {
                        " (a fraction, 0 to 1)"
                    } else {
                        " (not negative)"
                    }
                ),
            ));
        }
        let resolve_threshold = config.resolve_threshold.unwrap_or(config.threshold);
        if !in_range(resolve_threshold) {
            return Err(fail(
                "resolve_threshold",
                format!("{resolve_threshold} is out of range"),
            ));
        }
        let seconds = WINDOWS
            .iter()
            .find(|(n, _)| *n == config.window)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                fail(
                    "window",
                    format!("{:?}: expected 1m, 5m or 15m", config.window),
                )
            })?;
        let window = Duration::from_secs(seconds);
        if window < interval {
            return Err(fail(
                "window",
                format!(
                    "{} is shorter than the evaluation interval ({interval:?})",
                    config.window
                ),
            ));
        }
        let duration = |field: &str, s: f64| {
            if s.is_finite() && s >= 0.0 {
                Ok(crate::clock::seconds(s))
            } else {
                Err(fail(field, format!("{s} is not a duration in seconds")))
            }
        };
        let no_data = match config.no_data.as_str() {
            "ok" => NoData::Ok,
            "alerting" => NoData::Alerting,
            "keep" => NoData::Keep,
            other => {
                return Err(fail(
                    "no_data",
                    format!("{other:?}: expected ok, alerting or keep"),
                ));
            }
        };
        if !matches!(config.severity.as_str(), "info" | "warning" | "critical") {
            return Err(fail(
                "severity",
                format!("{:?}: expected info, warning or critical", config.severity),
            ));
        }
        Ok(Rule {
            name: config.name.clone(),
            metric,
            op,
            threshold: config.threshold,
            window,
            for_duration: duration("for_seconds", config.for_seconds)?,
            resolve_threshold,
            resolve_for: duration("resolve_for_seconds", config.resolve_for_seconds)?,
            min_samples: config.min_samples.max(1),
            no_data,
            severity: config.severity.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        })
    }

    /// True when `value` is still on the alerting side for resolving
    /// (the hysteresis band counts as alerting).
    pub fn still_bad(&self, value: f64) -> bool {
        self.op.holds(value, self.resolve_threshold)
    }
}

/// The spec's four rules from its thresholds, then the operator's.
pub fn rules(config: &MonitoringConfig) -> Result<Vec<Rule>, RuleError> {
    let interval = crate::clock::seconds(config.evaluation_interval_seconds.max(0.01));
    if !(config.evaluation_interval_seconds.is_finite() && config.evaluation_interval_seconds > 0.0)
    {
        return Err(RuleError {
            key: "monitoring.evaluation_interval_seconds".into(),
            message: "must be positive".into(),
        });
    }
    let mut out = Vec::new();
    if config.default_rules {
        let default =
            |name: &str, metric: &str, op: &str, threshold: f64, severity: &str, summary: &str| {
                RuleConfig {
                    name: name.into(),
                    metric: metric.into(),
                    op: op.into(),
                    threshold,
                    window: "5m".into(),
                    for_seconds: config.for_seconds,
                    resolve_threshold: None,
                    resolve_for_seconds: config.evaluation_interval_seconds,
                    min_samples: config.min_samples,
                    no_data: "ok".into(),
                    severity: severity.into(),
                    labels: BTreeMap::new(),
                    annotations: [("summary".to_string(), summary.to_string())].into(),
                }
            };
        let spec = [
            (
                default(
                    "AuthSuccessRateLow",
                    "success_rate",
                    "<",
                    config.success_rate_threshold,
                    "critical",
                    "authentication success rate is below the threshold",
                ),
                "monitoring.success_rate_threshold",
            ),
            (
                default(
                    "AuthResponseTimeHigh",
                    "latency_p95_ms",
                    ">",
                    config.response_time_threshold_ms,
                    "warning",
                    "95th-percentile authentication latency is above the threshold",
                ),
                "monitoring.response_time_threshold_ms",
            ),
            (
                default(
                    "AuthErrorRateHigh",
                    "error_rate",
                    ">",
                    config.error_rate_threshold,
                    "critical",
                    "the auth service's error rate is above the threshold",
                ),
                "monitoring.error_rate_threshold",
            ),
            (
                default(
                    "AuthPermissionDenialRateHigh",
                    "permission_denial_rate",
                    ">",
                    config.permission_denial_rate_threshold,
                    "warning",
                    "permission denials are high",
                ),
                "monitoring.permission_denial_rate_threshold",
            ),
        ];
        for (rule, key) in spec {
            out.push(
                Rule::from_config(&rule, key, interval).map_err(|e| RuleError {
                    key: key.to_string(),
                    message: e.message,
                })?,
            );
        }
    }
    for (i, rule) in config.rules.iter().enumerate() {
        let key = format!("monitoring.rules[{i}]");
        let rule = Rule::from_config(rule, &key, interval)?;
        if out.iter().any(|r| r.name == rule.name) {
            return Err(RuleError {
                key: format!("{key}.name"),
                message: format!("another rule is named {:?}", rule.name),
            });
        }
        out.push(rule);
    }
    Ok(out)
}
