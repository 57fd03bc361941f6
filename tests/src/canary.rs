//! Canary steps with the example service, for the canary tests and
//! benchmark: two instances, one 5 % step judged by `auth-default`, a
//! monitor the service sends its events to, a webhook receiver for
//! `RolloutAborted`, an account cheap to verify for login load.

use crate::auth::{Fixture, free_port};
use crate::auth_service_bin;
use crate::load::{Load, Report, Spec};
use crate::monitor::{MonitorProcess, Receiver};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const LOAD_PASSWORD: &str = "load-password-for-canary-tests";

/// Two instances with one 5 % canary step judged by `auth-default`, a
/// monitor the service sends its events to, a webhook receiver for
/// `RolloutAborted`, and a cheap-to-verify account for login load;
/// v1 rolled out.
pub struct Canary {
    pub f: Fixture,
    pub monitor: MonitorProcess,
    pub receiver: Receiver,
}

pub fn canary(pause_seconds: u32) -> Canary {
    canary_with(json!([
        {"weight": 5, "pause_seconds": pause_seconds, "analysis": "auth-default", "deadline_seconds": (pause_seconds + 30).max(90)},
        {"weight": 100}
    ]))
}

/// The same with `steps` of one's own.
pub fn canary_with(steps: Value) -> Canary {
    let mut f = Fixture::new(2, json!({"steps": steps, "analysis_interval_seconds": 1}));
    add_load_user(&f);
    let receiver = Receiver::start();
    f.config["monitoring"] = json!({
        "default_rules": false,
        "receivers": [{"name": "ops", "plugin": "webhook", "settings": {"url": receiver.url()}}],
        "group_wait_seconds": 0,
        "group_interval_seconds": 1,
        "delivery": {"initial_backoff_seconds": 0.2, "poll_seconds": 0.05},
        "api": {"listen": format!("127.0.0.1:{}", free_port())},
    });
    f.save();
    let monitor = MonitorProcess::start(&f.sandbox, &[]);
    f.sandbox.write(
        "config/auth.json",
        json!({
            "jwt_secret_key": "a-test-secret-of-at-least-32-bytes-long",
            "token_expiry_minutes": 30,
            "rate_limiting_enabled": false,
            "monitor": {"url": format!("{}/v1/events", monitor.api)},
        })
        .to_string(),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    Canary {
        f,
        monitor,
        receiver,
    }
}

/// An account cheap to verify, for hundreds of logins a second.
pub fn add_load_user(f: &Fixture) {
    let added = std::process::Command::new(auth_service_bin())
        .current_dir(f.sandbox.path())
        .env("AUTH_SERVICE_PASSWORD", LOAD_PASSWORD)
        .args([
            "add-user",
            "--username",
            "load",
            "--weak-hash-for-load-tests",
        ])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
}

/// Logins back to back from `workers` clients.
pub fn logins(f: &Fixture, workers: usize) -> Load {
    paced_logins(f, workers, None)
}

/// Logins from `workers` clients, each pausing `pace` after each login.
pub fn paced_logins(f: &Fixture, workers: usize, pace: Option<Duration>) -> Load {
    Load::start_spec(Spec {
        url: f.url("/login"),
        method: reqwest::Method::POST,
        json: Some(json!({"username": "load", "password": LOAD_PASSWORD})),
        bearer: None,
        workers,
        new_connections: false,
        pace,
    })
}

/// `gantry rollout auth` in the background (to be killed or controlled).
pub fn spawn_rollout(f: &Fixture) -> std::process::Child {
    f.sandbox
        .gantry()
        .args(["rollout", "auth"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until step 1 of a rollout run by another process is under way:
/// its start recorded, the split set, a canary instance gated.
pub fn wait_step_under_way(f: &Fixture) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = f.status();
        let canary = progress(&status)["canary"].clone();
        if let Some(started) = progress(&status)["steps"][0]["started_ms"].as_i64()
            && status["weights"].as_object().is_some_and(|w| !w.is_empty())
            && status["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["state"] == "healthy" && i["revision"] == canary)
        {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "the step never started: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Canary {
    /// v2 of the service, with `fault` (AUTH_SERVICE_FAULT) if any.
    pub fn version(&mut self, label: &str, fault: Option<&str>) {
        let service = self.f.service();
        service["version"] = json!(label);
        match fault {
            Some(fault) => service["env"]["AUTH_SERVICE_FAULT"] = json!(fault),
            None => {
                if let Some(env) = service["env"].as_object_mut() {
                    env.remove("AUTH_SERVICE_FAULT");
                }
            }
        }
        self.f.save();
    }

    pub fn logins(&self, workers: usize) -> Load {
        logins(&self.f, workers)
    }

    pub fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.f.instances().into_iter().map(|i| i.2).collect();
        v.sort();
        v
    }
}

pub fn progress(status: &Value) -> &Value {
    &status["steps"]
}

/// The canary's share of what the load sent: failed logins over all.
pub fn failed_share(report: &Report) -> f64 {
    report.failed as f64 / (report.ok + report.failed).max(1) as f64
}
