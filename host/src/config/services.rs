//! `services`: what gantry runs or restarts, how it checks their health and
//! how it rolls them. Parsed with unknown keys refused; `check` refuses
//! contradictory rollout rules with the key path at fault.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// gantry runs the instances and owns their listening sockets.
    #[default]
    Supervised,
    /// Operator commands start, stop and restart instances gantry does not run.
    Exec,
}

/// How a supervised service's public addresses reach its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    /// gantry's front door owns the addresses and proxies to instances on
    /// private ones, only once they passed their gate.
    #[default]
    FrontDoor,
    /// Every instance accepts on the shared sockets itself (systemd socket
    /// passing): no proxy hop, but an instance takes traffic from the
    /// moment it starts, before its gate.
    SharedSocket,
}

/// `services.NAME.front_door`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FrontDoorConfig {
    /// `http` (requests, routed one by one) or `tcp` (connections).
    #[serde(default)]
    pub mode: FrontDoorMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrontDoorMode {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    #[serde(default)]
    pub driver: DriverKind,
    /// supervised: `front-door` (default) or `shared-socket`.
    #[serde(default)]
    pub traffic: Traffic,
    /// supervised, with the front door: what it carries.
    #[serde(default)]
    pub front_door: FrontDoorConfig,
    /// supervised: the program and its arguments; `{instance}`,
    /// `{version}` and `{service}` are filled per instance.
    #[serde(default)]
    pub command: Vec<String>,
    /// supervised: how many instances.
    #[serde(default = "one")]
    pub instances: u32,
    /// supervised: the service's public addresses. With the front door
    /// (default) it owns them and each instance gets one private socket
    /// (`LISTEN_FDS`, `{instance_address}`); with `shared-socket` every
    /// instance gets these sockets too.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Environment of every instance; `${env:…}` / `${file:…}` allowed.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The version label of what the config describes (the revision's name).
    #[serde(default)]
    pub version: Option<String>,
    /// Deployed config files (names in `config_dir`) the service reads: a
    /// change to one of them is a new revision.
    #[serde(default)]
    pub config_files: Vec<String>,
    /// Working directory of each instance (default: the config's directory).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// exec: the instances, each on its host.
    #[serde(default)]
    pub hosts: Vec<ExecInstance>,
    /// exec: the commands, templated with `{instance}`, `{host}`,
    /// `{address}`, `{version}`, `{service}`.
    #[serde(default)]
    pub exec: Option<ExecCommands>,
    #[serde(default)]
    pub health_checks: Vec<HealthCheckConfig>,
    #[serde(default)]
    pub rollout: RolloutConfig,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecInstance {
    pub name: String,
    pub host: String,
    /// Where its health checks look (`host:port`).
    pub address: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCommands {
    /// Replaces the instance with `{version}` (or stop, then start).
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub stop: Option<String>,
    /// Takes the instance out of its load balancer before the restart.
    #[serde(default)]
    pub drain: Option<String>,
    #[serde(default)]
    pub undrain: Option<String>,
    /// Seconds any one command may take.
    #[serde(default = "command_timeout")]
    pub timeout_seconds: f64,
}

fn command_timeout() -> f64 {
    120.0
}

/// A health check: a health-check plugin with Kubernetes-probe timing.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Its name in reports (default: the plugin's).
    #[serde(default)]
    pub name: Option<String>,
    pub plugin: String,
    /// The plugin's settings; `{instance_address}`, `{address}`, `{host}`,
    /// `{instance}`, `{version}` are filled per instance.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The check's target (same placeholders).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub initial_delay_seconds: f64,
    #[serde(default = "period")]
    pub period_seconds: f64,
    #[serde(default = "timeout")]
    pub timeout_seconds: f64,
    #[serde(default = "one")]
    pub success_threshold: u32,
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// Trust this CA (PEM) for the check's HTTPS too.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn period() -> f64 {
    1.0
}
fn timeout() -> f64 {
    2.0
}
fn three() -> u32 {
    3
}

/// Nomad's update stanza, in seconds.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default = "one")]
    pub max_parallel: u32,
    #[serde(default = "min_healthy")]
    pub min_healthy_time_seconds: f64,
    #[serde(default = "healthy_deadline")]
    pub healthy_deadline_seconds: f64,
    #[serde(default = "progress_deadline")]
    pub progress_deadline_seconds: f64,
    #[serde(default = "one")]
    pub rollback_threshold_failures: u32,
    #[serde(default = "interval")]
    pub health_check_interval_seconds: f64,
    #[serde(default = "grace")]
    pub grace_period_seconds: f64,
    #[serde(default = "max_update")]
    pub max_update_time_minutes: f64,
    /// Roll back by itself when the rollout fails (the default).
    #[serde(default = "yes")]
    pub auto_revert: bool,
    /// Canary steps: the share of requests the new revision takes, each
    /// held for its pause and judged by its analysis; a failed analysis
    /// aborts and rolls back. Empty: every instance is replaced in turn.
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// How often a step's analysis looks at the figures.
    #[serde(default = "analysis_interval")]
    pub analysis_interval_seconds: f64,
}

/// `services.NAME.rollout.steps[i]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Percent of requests the new revision takes (1 to 100).
    pub weight: u32,
    /// How long the step holds before the next [default: 0].
    #[serde(default)]
    pub pause_seconds: f64,
    /// The analysis judging it (a name under `analyses`, or
    /// `auth-default`); none: the pause alone.
    #[serde(default)]
    pub analysis: Option<String>,
    /// How long an inconclusive analysis may wait past the pause before
    /// its verdict stands [default: the pause again, at least 60 s].
    #[serde(default)]
    pub deadline_seconds: Option<f64>,
    /// Overrides the analysis's `inconclusive`.
    #[serde(default)]
    pub inconclusive: Option<super::analysis::Inconclusive>,
}

/// The longest a step may hold (its pause, its deadline): six hours.
const MAX_STEP_SECONDS: f64 = 6.0 * 3600.0;

fn analysis_interval() -> f64 {
    2.0
}

fn min_healthy() -> f64 {
    10.0
}
fn healthy_deadline() -> f64 {
    300.0
}
fn progress_deadline() -> f64 {
    600.0
}
fn interval() -> f64 {
    1.0
}
fn grace() -> f64 {
    30.0
}
fn max_update() -> f64 {
    30.0
}
fn yes() -> bool {
    true
}

impl Default for RolloutConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

impl ServiceConfig {
    /// Canary steps need the front door carrying requests (it splits them
    /// by weight), weights rising from 1 to at most 100.
    fn check_steps(&self, name: &str) -> Result<(), (String, String)> {
        let r = &self.rollout;
        if r.steps.is_empty() {
            return Ok(());
        }
        let key = |k: String| format!("services.{name}.rollout.{k}");
        if self.driver != DriverKind::Supervised
            || self.traffic != Traffic::FrontDoor
            || self.front_door.mode != FrontDoorMode::Http
        {
            return Err((
                key("steps".into()),
                "canary steps need a supervised service whose traffic goes through the front door \
                 in http mode (it splits requests by weight and sees each revision's answers)"
                    .into(),
            ));
        }
        if !(0.2..=60.0).contains(&r.analysis_interval_seconds) {
            return Err((
                key("analysis_interval_seconds".into()),
                format!(
                    "{} is not from 0.2 to 60 seconds",
                    r.analysis_interval_seconds
                ),
            ));
        }
        let mut last = 0;
        for (i, step) in r.steps.iter().enumerate() {
            let at = |f: &str| key(format!("steps[{i}].{f}"));
            if step.weight == 0 || step.weight > 100 {
                return Err((
                    at("weight"),
                    format!("{} is not a percentage from 1 to 100", step.weight),
                ));
            }
            if step.weight <= last {
                return Err((
                    at("weight"),
                    format!(
                        "{} must be more than the step before's ({last})",
                        step.weight
                    ),
                ));
            }
            last = step.weight;
            // A step's figures are kept six hours: no step may outlast them.
            if !(0.0..=MAX_STEP_SECONDS).contains(&step.pause_seconds) {
                return Err((
                    at("pause_seconds"),
                    format!(
                        "{} is not from 0 to {MAX_STEP_SECONDS} seconds",
                        step.pause_seconds
                    ),
                ));
            }
            if let Some(d) = step.deadline_seconds
                && !(d >= step.pause_seconds && d <= MAX_STEP_SECONDS)
            {
                return Err((
                    at("deadline_seconds"),
                    format!(
                        "{d} must be at least pause_seconds ({}) and at most {MAX_STEP_SECONDS}",
                        step.pause_seconds
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses contradictions; the error names the key path.
    pub fn check(&self, name: &str) -> Result<(), (String, String)> {
        let key = |k: &str| format!("services.{name}.{k}");
        let fail = |k: &str, why: String| Err((key(k), why));
        let r = &self.rollout;
        match self.driver {
            DriverKind::Supervised => {
                if self.command.is_empty() {
                    return fail("command", "a supervised service needs its command".into());
                }
                if self.listen.is_empty() {
                    return fail(
                        "listen",
                        "a supervised service needs at least one address to listen on".into(),
                    );
                }
                if self.instances == 0 {
                    return fail("instances", "must be at least 1".into());
                }
            }
            DriverKind::Exec => {
                let Some(exec) = &self.exec else {
                    return fail("exec", "an exec service needs its commands".into());
                };
                if exec.restart.is_none() && (exec.start.is_none() || exec.stop.is_none()) {
                    return fail("exec", "give `restart`, or both `start` and `stop`".into());
                }
                if self.hosts.is_empty() {
                    return fail("hosts", "an exec service needs its instances".into());
                }
                if exec.timeout_seconds <= 0.0 {
                    return fail("exec.timeout_seconds", "must be positive".into());
                }
            }
        }
        if r.max_parallel == 0 {
            return fail("rollout.max_parallel", "must be at least 1".into());
        }
        if r.min_healthy_time_seconds < 0.0 {
            return fail(
                "rollout.min_healthy_time_seconds",
                "must not be negative".into(),
            );
        }
        if r.healthy_deadline_seconds <= r.min_healthy_time_seconds {
            return fail(
                "rollout.healthy_deadline_seconds",
                format!(
                    "{} must be more than min_healthy_time_seconds ({})",
                    r.healthy_deadline_seconds, r.min_healthy_time_seconds
                ),
            );
        }
        if r.progress_deadline_seconds <= r.healthy_deadline_seconds {
            return fail(
                "rollout.progress_deadline_seconds",
                format!(
                    "{} must be more than healthy_deadline_seconds ({})",
                    r.progress_deadline_seconds, r.healthy_deadline_seconds
                ),
            );
        }
        if r.health_check_interval_seconds <= 0.0 {
            return fail(
                "rollout.health_check_interval_seconds",
                "must be positive".into(),
            );
        }
        if r.grace_period_seconds < 0.0 {
            return fail(
                "rollout.grace_period_seconds",
                "must not be negative".into(),
            );
        }
        if r.max_update_time_minutes <= 0.0 {
            return fail("rollout.max_update_time_minutes", "must be positive".into());
        }
        if r.rollback_threshold_failures == 0 {
            return fail(
                "rollout.rollback_threshold_failures",
                "must be at least 1".into(),
            );
        }
        self.check_steps(name)?;
        for (i, check) in self.health_checks.iter().enumerate() {
            let k = |f: &str| format!("health_checks[{i}].{f}");
            if check.period_seconds <= 0.0 {
                return fail(&k("period_seconds"), "must be positive".into());
            }
            if check.timeout_seconds <= 0.0 {
                return fail(&k("timeout_seconds"), "must be positive".into());
            }
            if check.success_threshold == 0 {
                return fail(&k("success_threshold"), "must be at least 1".into());
            }
            if check.failure_threshold == 0 {
                return fail(&k("failure_threshold"), "must be at least 1".into());
            }
            if check.initial_delay_seconds < 0.0 {
                return fail(&k("initial_delay_seconds"), "must not be negative".into());
            }
        }
        Ok(())
    }
}
