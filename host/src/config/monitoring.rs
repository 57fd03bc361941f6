//! `monitoring`: the spec's thresholds and email alerts, plus gantry's
//! rules, receivers, grouping, delivery and API. Unknown keys are refused;
//! rules and receivers are checked further by the monitor, with their key
//! path.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The spec's `monitoring` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_success_rate")]
    pub success_rate_threshold: f64,
    #[serde(default = "default_response_time")]
    pub response_time_threshold_ms: f64,
    #[serde(default = "default_error_rate")]
    pub error_rate_threshold: f64,
    /// "High permission denial rates": denials per auth decision.
    #[serde(default = "default_denial_rate")]
    pub permission_denial_rate_threshold: f64,
    #[serde(default)]
    pub email_alerts: Option<EmailAlerts>,
    /// How often rules are evaluated.
    #[serde(default = "default_interval")]
    pub evaluation_interval_seconds: f64,
    /// The spec's four rules, from the thresholds above.
    #[serde(default = "yes")]
    pub default_rules: bool,
    /// Samples a default rule needs before it judges (1 failure in 1
    /// attempt is not a 100 % error rate).
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// How long a default rule's condition must hold before it fires.
    #[serde(default = "default_for")]
    pub for_seconds: f64,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Labels that put alerts in one notification (Alertmanager's group_by).
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    #[serde(default = "default_group_wait")]
    pub group_wait_seconds: f64,
    #[serde(default = "default_group_interval")]
    pub group_interval_seconds: f64,
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval_seconds: f64,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub api: ApiConfig,
    /// Where links in notices point (gantry's page).
    #[serde(default)]
    pub external_url: Option<String>,
    /// The spec's alert log, as JSON lines.
    #[serde(default = "default_alert_log")]
    pub alert_log: PathBuf,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

fn yes() -> bool {
    true
}
fn default_success_rate() -> f64 {
    0.95
}
fn default_response_time() -> f64 {
    1000.0
}
fn default_error_rate() -> f64 {
    0.05
}
fn default_denial_rate() -> f64 {
    0.10
}
fn default_interval() -> f64 {
    5.0
}
fn default_min_samples() -> u64 {
    20
}
fn default_for() -> f64 {
    60.0
}
fn default_group_by() -> Vec<String> {
    vec!["alertname".into()]
}
fn default_group_wait() -> f64 {
    30.0
}
fn default_group_interval() -> f64 {
    300.0
}
fn default_repeat_interval() -> f64 {
    14_400.0
}
fn default_alert_log() -> PathBuf {
    PathBuf::from("deployment_logs/auth_alerts.json")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailAlerts {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub smtp_host: String,
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    pub from_address: String,
    pub to_addresses: Vec<String>,
    pub username: Option<String>,
    /// A secret reference such as `${env:SMTP_PASSWORD}`.
    pub password: Option<String>,
    /// `starttls` (the default), `tls` (SMTPS) or `none`.
    #[serde(default)]
    pub tls: Option<String>,
    /// A CA (PEM) to trust for the relay, beside the platform's store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_smtp_port() -> u16 {
    587
}

/// An operator's rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// `success_rate`, `error_rate`, `latency_p50_ms`, `latency_p95_ms`,
    /// `latency_p99_ms`, `token_refresh_rate`, `token_expiration_rate`,
    /// `permission_denial_rate`, `events`.
    pub metric: String,
    /// `<`, `<=`, `>`, `>=`.
    pub op: String,
    pub threshold: f64,
    /// `1m`, `5m` or `15m`.
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default)]
    pub for_seconds: f64,
    /// Resolve only once the value is back past this (hysteresis).
    #[serde(default)]
    pub resolve_threshold: Option<f64>,
    /// …for this long.
    #[serde(default)]
    pub resolve_for_seconds: f64,
    #[serde(default = "one")]
    pub min_samples: u64,
    /// Without enough samples: `ok` (resolve), `alerting`, or `keep`.
    #[serde(default = "default_no_data")]
    pub no_data: String,
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_window() -> String {
    "5m".into()
}
fn one() -> u64 {
    1
}
fn default_no_data() -> String {
    "ok".into()
}
fn default_severity() -> String {
    "warning".into()
}

/// Where notices go: a notifier plugin with its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// A notifier plugin: `webhook`, `slack`, `email`, `alertmanager`, or yours.
    pub plugin: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Only alerts whose labels have these values.
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Trust this CA (PEM) for the receiver's HTTPS too.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where a notice goes when this receiver has not taken it within
    /// `delivery.max_age_seconds`.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Send resolved notices too.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default = "initial_backoff")]
    pub initial_backoff_seconds: f64,
    #[serde(default = "max_backoff")]
    pub max_backoff_seconds: f64,
    /// After this long undelivered, a notice goes to the fallback receiver
    /// (or is given up, recorded as dead).
    #[serde(default = "max_age")]
    pub max_age_seconds: f64,
    /// How often the worker looks for due notices.
    #[serde(default = "poll")]
    pub poll_seconds: f64,
}

fn initial_backoff() -> f64 {
    1.0
}
fn max_backoff() -> f64 {
    300.0
}
fn max_age() -> f64 {
    3600.0
}
fn poll() -> f64 {
    0.25
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

/// gantry's HTTP API: events in, metrics, alerts and status out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token every route needs (`${env:…}` allowed); none: open.
    #[serde(default)]
    pub token: Option<String>,
    /// Names (besides the listen address, IP literals and `localhost`)
    /// requests may carry in `Host`; others are refused with 421.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_max_body() -> usize {
    16 << 20
}

impl Default for ApiConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}
