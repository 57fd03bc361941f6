//! `gantry deploy | status | rollback` end to end on the example auth
//! service: real instances, a real SQLite or PostgreSQL, a real webhook
//! receiver for the test notices.

use gantry_tests::auth::Fixture;
use gantry_tests::monitor::Receiver;
use serde_json::{Value, json};
use std::time::Duration;

fn status(f: &Fixture) -> Value {
    let run = f.gantry(&["status", "--json"]);
    run.json()
}

fn versions(f: &Fixture) -> Vec<String> {
    let mut v: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    v.sort();
    v
}

fn auth_json(f: &Fixture) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_full_deploy_migrates_deploys_config_rolls_three_instances_checks_and_reports() {
    let mut f = Fixture::new(3, json!({}));
    let hook = Receiver::start();
    f.deployable(json!([{"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}}]));

    let run = f
        .gantry(&["--json", "deploy", "--environment", "production"])
        .expect(0);
    let lines = run.json_lines();
    let report = lines.last().unwrap();
    assert_eq!(report["state"], "succeeded", "{report:#}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "migrate",
            "config",
            "rollout:auth",
            "verify",
            "canary",
            "monitoring"
        ]
    );
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "done")
    );
    // Events streamed, one per line, from every engine.
    for engine in ["deploy", "config", "rollout"] {
        assert!(
            lines.iter().any(|l| l["engine"] == engine),
            "{engine}: {lines:#?}"
        );
    }
    assert_eq!(versions(&f), ["v1", "v1", "v1"]);
    assert_eq!(
        auth_json(&f)["token_expiry_minutes"],
        60,
        "production's values"
    );
    assert!(
        !f.token().is_empty(),
        "the canary logs in through the shared socket"
    );

    // The test notice reached the receiver, marked as a test.
    let notice = hook.wait_delivered("the test notice", Duration::from_secs(10), |r| {
        r.headers.get("x-gantry-test").is_some()
    });
    assert_eq!(notice.body["commonLabels"]["alertname"], "GantryTestNotice");

    // The journal and the logs.
    let id = report["id"].as_str().unwrap();
    let st = status(&f);
    assert_eq!(st["deployments"][0]["id"], id);
    assert_eq!(st["deployments"][0]["state"], "succeeded");
    assert_eq!(st["deployments"][0]["interrupted"], false);
    let logs = f.sandbox.path().join("deployment_logs");
    let update_log = std::fs::read_to_string(logs.join("update_log.json")).unwrap();
    let line: Value = serde_json::from_str(update_log.lines().last().unwrap()).unwrap();
    assert_eq!(line["deployment"], id);
    assert_eq!(line["state"], "succeeded");
    let md = std::fs::read_to_string(logs.join(format!("{id}.md"))).unwrap();
    assert!(md.contains("| rollout:auth | done |"), "{md}");
    for text in [&update_log, &md] {
        assert!(
            !text.contains("a-production-secret"),
            "no secret in the logs"
        );
    }

    // A second deploy with a new version rolls every instance to it.
    f.service()["version"] = json!("v2");
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    assert_eq!(versions(&f), ["v2", "v2", "v2"]);
    let plain = f.gantry(&["status"]).expect(0);
    assert!(plain.stdout.contains("succeeded"), "{}", plain.stdout);
}

/// Deploys v1 of production, the state every failure must come back to.
fn baseline() -> (Fixture, Receiver) {
    let mut f = Fixture::new(3, json!({}));
    let hook = Receiver::start();
    f.deployable(json!([{"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}}]));
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    (f, hook)
}

/// The system is as the baseline left it: three v1 instances answering,
/// production's auth.json, logins working.
fn assert_as_before(f: &Fixture, what: &str) {
    assert_eq!(versions(f), ["v1", "v1", "v1"], "{what}: instances");
    assert_eq!(auth_json(f)["token_expiry_minutes"], 60, "{what}: auth.json");
    assert!(!f.token().is_empty(), "{what}: logins");
}

fn last_deployment(f: &Fixture) -> Value {
    status(f)["deployments"][0].clone()
}

/// Changes the deployment in a way that touches config and instances.
fn change(f: &mut Fixture, version: &str) {
    f.config["environments"]["production"]["token_expiry_minutes"] = json!(45);
    f.service()["version"] = json!(version);
}

fn undo_change(f: &mut Fixture) {
    f.config["environments"]["production"]["token_expiry_minutes"] = json!(60);
    f.service()["version"] = json!("v1");
    f.service()["env"]
        .as_object_mut()
        .unwrap()
        .remove("AUTH_SERVICE_FAULT");
    f.save();
}

#[test]
fn a_failure_at_each_step_leaves_the_system_as_it_was_with_the_reason_recorded() {
    let (mut f, _hook) = baseline();
    let baseline_id = last_deployment(&f)["id"].as_str().unwrap().to_string();

    // Invalid configuration: refused before anything changed (exit 2, no
    // journal row).
    let good = std::fs::read_to_string(f.sandbox.path().join("auth-src/auth.json")).unwrap();
    f.sandbox.write("auth-src/auth.json", "{\"jwt_secret_key\": ");
    let refused = f.gantry(&["deploy", "-e", "production"]).expect(2);
    assert!(
        refused.stderr.contains("auth.json") && refused.stderr.contains("configuration"),
        "{}",
        refused.stderr
    );
    assert_eq!(last_deployment(&f)["id"], baseline_id.as_str(), "nothing journaled");
    f.sandbox.write("auth-src/auth.json", &good);
    assert_as_before(&f, "invalid config");

    // A version that never gets healthy: the rollout fails, the config is
    // restored.
    change(&mut f, "v2-unready");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("unready");
    f.save();
    let failed = f.gantry(&["deploy", "-e", "production"]).expect(1);
    assert!(failed.stdout.contains("rolled back"), "{}", failed.stdout);
    let d = last_deployment(&f);
    assert_eq!(d["state"], "rolled_back", "{d:#}");
    assert!(d["reason"].as_str().unwrap().starts_with("rollout:auth failed"), "{d:#}");
    let config_step = &d["steps"][1];
    assert_eq!(config_step["state"], "undone", "{d:#}");
    assert_as_before(&f, "unhealthy version");
    undo_change(&mut f);

    // A canary that fails after everything rolled: config and all three
    // instances are taken back.
    change(&mut f, "v2");
    f.config["deployment"]["canary"]["settings"]["password"] = json!("not-the-password");
    f.config["deployment"]["canary"]["attempts"] = json!(1);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert!(d["reason"].as_str().unwrap().starts_with("canary failed"), "{d:#}");
    let states: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["done", "undone", "undone", "done", "failed", "pending"], "{d:#}");
    assert_as_before(&f, "failed canary");
    f.config["deployment"]["canary"]["settings"]["password"] =
        json!(gantry_tests::auth::CANARY_PASSWORD);
    undo_change(&mut f);

    // The time limit, passed during health verification.
    change(&mut f, "v2");
    f.config["deployment"]["timeout_seconds"] = json!(4);
    f.config["deployment"]["verify_seconds"] = json!(60);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert!(d["reason"].as_str().unwrap().contains("time limit of 4 s"), "{d:#}");
    assert_as_before(&f, "time limit");
    f.config["deployment"]["timeout_seconds"] = json!(120);
    f.config["deployment"]["verify_seconds"] = json!(0.6);
    undo_change(&mut f);

    // A bad migration: nothing after it runs; the migration's own
    // transaction left the database as it was.
    let dir = f.sandbox.path().join("migrations");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations"),
        &dir,
    );
    std::fs::write(dir.join("sqlite/900_broken.up.sql"), "CREATE TABLE broken (;").unwrap();
    std::fs::write(dir.join("sqlite/900_broken.down.sql"), "DROP TABLE broken;").unwrap();
    f.config["migrations"] = json!({"dir": "migrations"});
    change(&mut f, "v2");
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert!(d["reason"].as_str().unwrap().starts_with("migrate failed"), "{d:#}");
    assert_eq!(d["steps"][1]["state"], "pending", "{d:#}");
    assert_as_before(&f, "bad migration");
    let md = std::fs::read_to_string(
        f.sandbox
            .path()
            .join(format!("deployment_logs/{}.md", d["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(md.contains("rolled_back") && md.contains("900_broken"), "{md}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
