//! Health gates: an instance is healthy when every check passes, without
//! a break, for `min_healthy_time`, within `healthy_deadline`. Checks are
//! health-check plugins (or Rust closures, for library users) with
//! Kubernetes-probe timing: an initial delay, a period, a timeout, and
//! success and failure thresholds. A Nagios `unknown` is inconclusive:
//! it never counts as a pass. An instance whose process exits, or whose
//! check fails after having passed, fails at once.

use crate::bindings::types::{CheckResult, HealthStatus};
use crate::config::HealthCheckConfig;
use crate::runtime::{CallOptions, Plugin, Runtime};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a check sees of the instance it checks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceView {
    pub service: String,
    pub name: String,
    pub host: String,
    /// Where it serves.
    pub address: String,
    /// Where its health checks look (its private socket when supervised).
    pub health_address: String,
    pub version: String,
}

impl InstanceView {
    /// Placeholder values for templated settings and targets.
    pub fn values(&self) -> [(&str, &str); 6] {
        [
            ("instance_address", &self.health_address),
            ("address", &self.address),
            ("host", &self.host),
            ("instance", &self.name),
            ("version", &self.version),
            ("service", &self.service),
        ]
    }
}

/// A Rust check, for library users: `add_health_check(name, check)`.
pub type CheckFn =
    Arc<dyn Fn(InstanceView) -> Pin<Box<dyn Future<Output = CheckResult> + Send>> + Send + Sync>;

enum Kind {
    Plugin {
        runtime: Arc<Runtime>,
        plugin: Arc<Plugin>,
        settings: BTreeMap<String, String>,
        target: Option<String>,
        options: CallOptions,
    },
    Closure(CheckFn),
}

#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

pub struct HealthCheck {
    pub name: String,
    kind: Kind,
    pub probe: Probe,
}

fn secs(s: f64) -> Duration {
    crate::clock::seconds(s)
}

impl HealthCheck {
    /// A health-check plugin as the service config describes it.
    pub fn plugin(
        runtime: Arc<Runtime>,
        plugin: Arc<Plugin>,
        config: &HealthCheckConfig,
        base_dir: &std::path::Path,
    ) -> HealthCheck {
        HealthCheck {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| plugin.name().to_string()),
            probe: Probe {
                initial_delay: secs(config.initial_delay_seconds),
                period: secs(config.period_seconds),
                timeout: secs(config.timeout_seconds),
                success_threshold: config.success_threshold,
                failure_threshold: config.failure_threshold,
            },
            kind: Kind::Plugin {
                runtime,
                plugin,
                settings: config.settings.clone(),
                target: config.target.clone(),
                options: CallOptions {
                    ca_file: config.ca_file.as_ref().map(|p| base_dir.join(p)),
                    ..Default::default()
                },
            },
        }
    }

    /// A Rust check.
    pub fn closure(name: impl Into<String>, probe: Probe, check: CheckFn) -> HealthCheck {
        HealthCheck {
            name: name.into(),
            kind: Kind::Closure(check),
            probe,
        }
    }

    /// One run against `instance`, bounded by the probe's timeout.
    pub async fn run(&self, instance: &InstanceView) -> (HealthStatus, String) {
        let work = async {
            match &self.kind {
                Kind::Closure(check) => {
                    let result = check(instance.clone()).await;
                    (result.status, result.message)
                }
                Kind::Plugin {
                    runtime,
                    plugin,
                    settings,
                    target,
                    options,
                } => {
                    let values = instance.values();
                    let filled: Vec<(String, String)> = settings
                        .iter()
                        .map(|(k, v)| (k.clone(), super::spec::fill(v, &values)))
                        .collect();
                    let settings = match plugin.settings(filled) {
                        Ok(settings) => settings,
                        Err(e) => return (HealthStatus::Unknown, e.to_string()),
                    };
                    let target = target
                        .as_deref()
                        .map(|t| super::spec::fill(t, &values))
                        .unwrap_or_default();
                    let (runtime, plugin, options) =
                        (Arc::clone(runtime), Arc::clone(plugin), options.clone());
                    let outcome = tokio::task::spawn_blocking(move || {
                        runtime.check_with(&plugin, &settings, &target, &options)
                    })
                    .await;
                    match outcome {
                        Ok(outcome) => match outcome.result {
                            Ok(result) => (result.status, result.message),
                            // A plugin that fails is a failed check.
                            Err(e) => (HealthStatus::Critical, e.to_string()),
                        },
                        Err(e) => (HealthStatus::Unknown, format!("the check's thread: {e}")),
                    }
                }
            }
        };
        match tokio::time::timeout(self.probe.timeout, work).await {
            Ok(result) => result,
            Err(_) => (
                HealthStatus::Critical,
                format!("no answer within {:?}", self.probe.timeout),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Healthy { after: Duration },
    Failed { reason: String },
}

/// The gate one instance must pass.
pub struct Gate {
    pub checks: Vec<Arc<HealthCheck>>,
    pub min_healthy: Duration,
    pub deadline: Duration,
    pub interval: Duration,
}

struct CheckState {
    successes: u32,
    failures: u32,
    ever_passed: bool,
    last_run: Option<Instant>,
    last: String,
    inconclusive: bool,
}

impl Gate {
    /// Waits until `instance` is healthy or fails; `alive` says whether its
    /// process still runs (true for instances gantry cannot see).
    pub async fn wait(
        &self,
        instance: &InstanceView,
        alive: &(dyn Fn() -> bool + Sync),
    ) -> GateOutcome {
        let started = Instant::now();
        let mut states: Vec<CheckState> = self
            .checks
            .iter()
            .map(|_| CheckState {
                successes: 0,
                failures: 0,
                ever_passed: false,
                last_run: None,
                last: "not run yet".into(),
                inconclusive: false,
            })
            .collect();
        let mut healthy_since: Option<Instant> = None;
        loop {
            if !alive() {
                return GateOutcome::Failed {
                    reason: format!("{} exited", instance.name),
                };
            }
            for (check, state) in self.checks.iter().zip(states.iter_mut()) {
                let due = started.elapsed() >= check.probe.initial_delay
                    && state
                        .last_run
                        .is_none_or(|at| at.elapsed() >= check.probe.period);
                if !due {
                    continue;
                }
                state.last_run = Some(Instant::now());
                let (status, message) = check.run(instance).await;
                state.inconclusive = status == HealthStatus::Unknown;
                state.last = format!(
                    "{}: {} {}",
                    check.name,
                    crate::nagios::status_name(status).to_uppercase(),
                    message
                );
                match status {
                    HealthStatus::Ok | HealthStatus::Warning => {
                        state.successes += 1;
                        state.failures = 0;
                        if state.successes >= check.probe.success_threshold {
                            state.ever_passed = true;
                        }
                    }
                    HealthStatus::Critical => {
                        state.failures += 1;
                        state.successes = 0;
                    }
                    // Inconclusive: neither a pass nor a failure.
                    HealthStatus::Unknown => state.successes = 0,
                }
                if state.ever_passed && state.failures >= check.probe.failure_threshold {
                    return GateOutcome::Failed {
                        reason: format!("failed after passing: {}", state.last),
                    };
                }
            }
            let passing = self
                .checks
                .iter()
                .zip(&states)
                .all(|(c, s)| s.successes >= c.probe.success_threshold);
            if passing {
                let since = *healthy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.min_healthy {
                    return GateOutcome::Healthy {
                        after: started.elapsed(),
                    };
                }
            } else {
                healthy_since = None;
            }
            if started.elapsed() >= self.deadline {
                let last: Vec<&str> = states.iter().map(|s| s.last.as_str()).collect();
                let inconclusive = states.iter().any(|s| s.inconclusive);
                return GateOutcome::Failed {
                    reason: format!(
                        "not healthy within {:?}{}{}",
                        self.deadline,
                        if inconclusive {
                            " (a check is inconclusive)"
                        } else {
                            ""
                        },
                        if last.is_empty() {
                            String::new()
                        } else {
                            format!("; last: {}", last.join("; "))
                        }
                    ),
                };
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
