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
