//! Zero-downtime rollouts with real processes and real sockets: the
//! example auth service under the supervised driver, load from this test
//! while instances are replaced, bad versions rolled back, a killed gantry
//! picked up again.

use gantry_tests::load::Load;
use gantry_tests::{Run, Sandbox, auth_service_bin};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

const CANARY_PASSWORD: &str = "canary-password-for-tests";

struct Fixture {
    sandbox: Sandbox,
    port: u16,
    config: Value,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.sandbox.kill_processes();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Fixture {
    /// A migrated SQLite auth database with a canary account, a deployed
    /// auth.json, and `services.auth` with `instances` supervised instances.
    fn new(instances: u32, rules: Value) -> Fixture {
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

    fn save(&self) {
        self.sandbox.write(
            "deployment_config.json",
            serde_json::to_string_pretty(&self.config).unwrap(),
        );
    }

    fn service(&mut self) -> &mut Value {
        &mut self.config["services"]["auth"]
    }

    fn gantry(&self, args: &[&str]) -> Run {
        self.sandbox.run(args)
    }

    fn status(&self) -> Value {
        let run = self.gantry(&["rollout", "status", "auth", "--json"]);
        run.json()[0].clone()
    }

    /// (name, pid, version) of every running instance.
    fn instances(&self) -> Vec<(String, i64, String)> {
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

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A fresh access token for the canary.
    fn token(&self) -> String {
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

#[test]
fn three_instances_roll_to_a_new_config_under_load_without_a_failed_request() {
    let mut f = Fixture::new(3, json!({}));
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    assert_eq!(before.len(), 3, "{before:?}");
    let token = f.token();

    // Steady state first, for the comparison.
    let steady = Load::start(&f.url("/verify"), Some(token.clone()), 8);
    std::thread::sleep(Duration::from_secs(2));
    let steady = steady.stop();

    // A new config (a new revision), rolled under load.
    f.sandbox.write(
        "config/auth.json",
        r#"{"jwt_secret_key": "a-test-secret-of-at-least-32-bytes-long", "token_expiry_minutes": 45, "rate_limiting_enabled": false}"#,
    );
    f.service()["version"] = json!("v2");
    f.save();
    let load = Load::start(&f.url("/verify"), Some(token), 8);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let roll = f.gantry(&["rollout", "auth"]).expect(0);
    let rolled_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let during = load.stop();
    eprintln!(
        "steady: {:.0} req/s p50 {:.2} ms p99 {:.2} ms; during the roll ({rolled_in:?}): {:.0} req/s p50 {:.2} ms p99 {:.2} ms, {} ok, {} failed",
        steady.per_second,
        steady.p50_ms,
        steady.p99_ms,
        during.per_second,
        during.p50_ms,
        during.p99_ms,
        during.ok,
        during.failed
    );
    assert_eq!(during.failed, 0, "failed requests: {:?}", during.failures);
    assert!(
        during.per_second >= 2000.0,
        "the load was only {:.0} req/s",
        during.per_second
    );
    let after = f.instances();
    assert_eq!(after.len(), 3, "{after:?}\n{}", roll.stdout);
    for (name, pid, version) in &after {
        assert_eq!(version, "v2");
        assert!(
            before.iter().all(|(n, p, _)| n != name && p != pid),
            "{name} was not replaced"
        );
    }
}

#[test]
fn a_version_that_never_becomes_ready_is_stopped_and_the_old_instances_stay() {
    let mut f = Fixture::new(
        3,
        json!({"healthy_deadline_seconds": 1.5, "progress_deadline_seconds": 4}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    let token = f.token();
    f.service()["version"] = json!("v2-unready");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("unready");
    f.save();
    let load = Load::start(&f.url("/verify"), Some(token), 4);
    let run = f.gantry(&["rollout", "auth"]).expect(1);
    let during = load.stop();
    assert!(run.stderr.contains("not healthy within"), "{}", run.stderr);
    assert_eq!(during.failed, 0, "{:?}", during.failures);
    assert_eq!(
        f.instances(),
        before,
        "the three old instances are untouched"
    );
    let status = f.status();
    assert_eq!(status["last_rollout"]["state"], "rolled_back");
    assert!(
        status["last_rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("not healthy"),
        "{status:#}"
    );
}

#[test]
fn a_version_that_crashes_after_passing_once_is_caught_by_min_healthy_time() {
    let mut f = Fixture::new(
        2,
        json!({"min_healthy_time_seconds": 2.0, "healthy_deadline_seconds": 6}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    f.service()["version"] = json!("v2-crashy");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("crash-after=1");
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(1);
    assert!(run.stderr.contains("exited"), "{}", run.stderr);
    assert_eq!(f.instances(), before);
    assert_eq!(f.status()["last_rollout"]["state"], "rolled_back");
}

#[test]
fn passing_the_update_deadline_rolls_back_what_was_already_replaced() {
    // About a second per instance: the first is replaced, then time is up.
    let mut f = Fixture::new(3, json!({"min_healthy_time_seconds": 0.8}));
    f.gantry(&["rollout", "auth"]).expect(0);
    let before: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    assert_eq!(before, ["v1", "v1", "v1"]);
    f.service()["version"] = json!("v2-slow-roll");
    f.service()["rollout"]["max_update_time_minutes"] = json!(0.025);
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(1);
    assert!(run.stderr.contains("max_update_time"), "{}", run.stderr);
    assert!(run.stdout.contains("rolling back to v1"), "{}", run.stdout);
    let versions: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    assert_eq!(versions, ["v1", "v1", "v1"], "every instance is back on v1");
}

#[test]
fn a_killed_gantry_leaves_serving_instances_and_the_next_rollout_finishes() {
    let mut f = Fixture::new(3, json!({}));
    f.gantry(&["rollout", "auth"]).expect(0);
    f.service()["version"] = json!("v2");
    f.save();
    let token = f.token();
    let load = Load::start(&f.url("/verify"), Some(token), 4);
    let child = f
        .sandbox
        .gantry()
        .env("GANTRY_PAUSE_AT", "rollout:replaced-one")
        .args(["rollout", "auth"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        if stat[stat.rfind(')').unwrap() + 2..].starts_with('T') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gantry never reached the pause point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let mut child = child;
    child.wait().unwrap();

    // The instances keep serving; status explains what is half-done.
    std::thread::sleep(Duration::from_millis(500));
    let status = f.gantry(&["rollout", "status", "auth"]).expect(1);
    assert!(status.stdout.contains("interrupted"), "{}", status.stdout);
    assert!(
        status.stdout.contains("gantry rollout auth"),
        "{}",
        status.stdout
    );
    let versions: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    assert_eq!(
        versions.iter().filter(|v| *v == "v2").count(),
        1,
        "{versions:?}"
    );
    assert_eq!(versions.len(), 3, "{versions:?}");

    // The next rollout keeps the replaced one and finishes the rest.
    let run = f.gantry(&["rollout", "auth"]).expect(0);
    assert!(run.stdout.contains("keep 1"), "{}", run.stdout);
    let during = load.stop();
    assert_eq!(during.failed, 0, "{:?}", during.failures);
    let versions: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    assert_eq!(versions, ["v2", "v2", "v2"]);
    let status = f.status();
    assert_eq!(status["interrupted"], false);
}

#[test]
fn bad_rollout_rules_are_refused_naming_the_key() {
    let mut f = Fixture::new(1, json!({}));
    f.service()["rollout"]["progress_deadline_seconds"] = json!(5);
    f.service()["rollout"]["healthy_deadline_seconds"] = json!(8);
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(2);
    assert!(
        run.stderr
            .contains("services.auth.rollout.progress_deadline_seconds"),
        "{}",
        run.stderr
    );
    f.service()["rollout"]["progress_deadline_seconds"] = json!(20);
    f.save();
    assert!(f.instances().is_empty(), "nothing was started");
    f.service()["health_checks"][0]["plugin"] = json!("auth-config-validator");
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(2);
    assert!(run.stderr.contains("health-check plugin"), "{}", run.stderr);
    let run = f.gantry(&["rollout", "nope"]).expect(2);
    assert!(run.stderr.contains("no service `nope`"), "{}", run.stderr);
}
