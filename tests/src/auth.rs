//! The example auth service under gantry, for end-to-end tests: a
//! migrated SQLite auth database with a canary account, a deployed
//! `config/auth.json`, and `services.auth` in the deployment config.
//! Every process the sandbox started is killed when the fixture drops.

use crate::{Run, Sandbox, auth_service_bin};
use serde_json::{Value, json};

pub const CANARY_PASSWORD: &str = "canary-password-for-tests";

pub struct Fixture {
    pub sandbox: Sandbox,
    pub port: u16,
    pub config: Value,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.sandbox.kill_processes();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Fixture {
    /// A migrated SQLite auth database with a canary account, a deployed
    /// auth.json, and `services.auth` with `instances` supervised instances.
    pub fn new(instances: u32, rules: Value) -> Fixture {
        let sandbox = Sandbox::new();
        sandbox.run(&["migrate", "-q"]).expect(0);
        let added = std::process::Command::new(auth_service_bin())
            .current_dir(sandbox.path())
            .env("AUTH_SERVICE_PASSWORD", CANARY_PASSWORD)
            .args(["add-user", "--username", "canary"])
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        sandbox.write(
            "config/auth.json",
            r#"{"jwt_secret_key": "a-test-secret-of-at-least-32-bytes-long", "token_expiry_minutes": 30, "rate_limiting_enabled": false}"#,
        );
        let port = free_port();
        let mut rollout = json!({
            "min_healthy_time_seconds": 0.3,
            "healthy_deadline_seconds": 8,
            "progress_deadline_seconds": 15,
            "health_check_interval_seconds": 0.1,
            "grace_period_seconds": 5,
        });
        for (k, v) in rules.as_object().unwrap() {
            rollout[k] = v.clone();
        }
        let config = json!({
            "config_deploy": {"validators": []},
            "state": {"lease_seconds": 2},
            "services": {"auth": {
                "command": [auth_service_bin(), "--instance", "{instance}", "--version", "{version}", "--drain-ms", "400"],
                "instances": instances,
                "listen": [format!("127.0.0.1:{port}")],
                "version": "v1",
                "config_files": ["auth.json"],
                "env": {"AUTH_SERVICE_LOG": "warn", "CANARY_PASSWORD": CANARY_PASSWORD},
                "health_checks": [
                    {"plugin": "http-check", "settings": {"url": "http://{instance_address}/readyz"}, "period_seconds": 0.1},
                    {"plugin": "auth-smoke-check", "period_seconds": 0.2, "settings": {
                        "url": "http://{instance_address}", "username": "canary", "password": CANARY_PASSWORD}}
                ],
                "rollout": rollout,
            }},
        });
        let fixture = Fixture {
            sandbox,
            port,
            config,
        };
        fixture.save();
        fixture
    }

    /// Makes the fixture a whole deployment for `gantry deploy`: auth.json
    /// rendered from `auth-src/auth.json` with `environments`, a canary
    /// login, a short health verification, and `receivers` for alerts
    /// (test notices). The monitor API listens on a port of its own.
    pub fn deployable(&mut self, receivers: Value) {
        self.sandbox.write(
            "auth-src/auth.json",
            r#"{"jwt_secret_key": "replaced-per-environment", "token_expiry_minutes": 30, "rate_limiting_enabled": false}"#,
        );
        self.config["environments"] = json!({
            "development": {"jwt_secret_key": "a-development-secret-of-at-least-32-bytes", "token_expiry_minutes": 1440},
            "production": {"jwt_secret_key": "a-production-secret-of-at-least-32-bytes!", "token_expiry_minutes": 60},
        });
        self.config["deployment"] = json!({
            "config_files": ["auth-src/auth.json"],
            "verify_seconds": 0.6,
            "verify_interval_seconds": 0.2,
            "timeout_seconds": 120,
            "canary": {"plugin": "auth-smoke-check", "settings": {
                "url": "http://{address}", "username": "canary", "password": CANARY_PASSWORD}},
        });
        self.config["monitoring"] = json!({
            "receivers": receivers,
            "api": {"listen": format!("127.0.0.1:{}", free_port())},
        });
        self.save();
    }

    pub fn save(&self) {
        self.sandbox.write(
            "deployment_config.json",
            serde_json::to_string_pretty(&self.config).unwrap(),
        );
    }

    pub fn service(&mut self) -> &mut Value {
        &mut self.config["services"]["auth"]
    }

    pub fn gantry(&self, args: &[&str]) -> Run {
        self.sandbox.run(args)
    }

    pub fn status(&self) -> Value {
        let run = self.gantry(&["rollout", "status", "auth", "--json"]);
        run.json()[0].clone()
    }

    /// (name, pid, version) of every running instance.
    pub fn instances(&self) -> Vec<(String, i64, String)> {
        self.status()["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["alive"] == true)
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["pid"].as_i64().unwrap(),
                    i["version"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A fresh access token for the canary.
    pub fn token(&self) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let answer: Value = reqwest::Client::new()
                .post(self.url("/login"))
                .json(&json!({"username": "canary", "password": CANARY_PASSWORD}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["access_token"].as_str().unwrap().to_string()
        })
    }
}
