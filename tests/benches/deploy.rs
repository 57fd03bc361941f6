//! Deployment benchmarks with the release builds of gantry and the
//! example auth service:
//!
//!   cargo build --release -p gantry -p auth-service
//!   cargo bench -p gantry-tests --bench deploy
//!
//! - A full deploy of the example system on a fresh SQLite database (the
//!   six built-in migrations, auth.json, 3 instances rolled one at a time,
//!   health verification, the canary login, a test notice): wall time
//!   against the sum of its steps' floors — each step's own work, and for
//!   the rollout what the service itself takes (each instance's start to
//!   its first passing check, plus min_healthy_time each).
//! - `gantry status` on SQLite with 1,000 past deployments (6 steps each):
//!   median wall time; goal ≤ 50 ms.

use gantry::db::DbTarget;
use gantry::store::{DeploymentRecord, StepRecord, Store};
use gantry_runtime::testing::verdict;
use gantry_tests::auth::{CANARY_PASSWORD, Fixture};
use gantry_tests::monitor::Receiver;
use serde_json::{Value, json};
use std::time::Instant;

fn main() {
    gantry_tests::require_release_bins();
    println!(
        "gantry deploy benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    full_deploy();
    status_with_history();
    gantry_runtime::testing::finish();
}

fn secs(step: &Value) -> f64 {
    (step["finished_ms"].as_f64().unwrap_or(0.0) - step["started_ms"].as_f64().unwrap_or(0.0))
        / 1000.0
}

fn full_deploy() {
    let min_healthy = 0.5;
    let verify = 1.0;
    let mut f = Fixture::new(
        3,
        json!({"min_healthy_time_seconds": min_healthy, "health_check_interval_seconds": 0.02}),
    );
    let hook = Receiver::start();
    f.deployable(json!([{"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}}]));
    // A fresh database: the deploy applies the migrations, and the
    // service creates the canary account when it first starts.
    std::fs::remove_file(f.sandbox.path().join(".gantry/auth.db")).unwrap();
    let command = f.service()["command"].as_array().unwrap().clone();
    let mut command: Vec<Value> = command;
    command.extend([json!("--bootstrap-user"), json!("canary")]);
    f.service()["command"] = json!(command);
    f.service()["env"]["AUTH_SERVICE_PASSWORD"] = json!(CANARY_PASSWORD);
    for check in f.service()["health_checks"].as_array_mut().unwrap() {
        check["period_seconds"] = json!(0.02);
    }
    f.config["deployment"]["verify_seconds"] = json!(verify);
    f.config["deployment"]["verify_interval_seconds"] = json!(0.2);
    f.save();
    let started = Instant::now();
    let run = f
        .gantry(&["--json", "deploy", "-e", "production"])
        .expect(0);
    let wall = started.elapsed().as_secs_f64();
    let lines = run.json_lines();
    let report = lines.last().unwrap();
    let steps = report["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .map(secs)
            .unwrap_or(0.0)
    };
    let starts: f64 = lines
        .iter()
        .filter(|e| e["event"] == "healthy")
        .map(|e| e["after_ms"].as_f64().unwrap() / 1000.0 - min_healthy)
        .sum();
    let rollout_floor = starts + 3.0 * min_healthy;
    let floors = step("migrate")
        + step("config")
        + rollout_floor
        + verify
        + step("canary")
        + step("monitoring");
    println!(
        "full deploy (6 migrations, auth.json, 3 instances, verify {verify} s, canary, test notice): wall {wall:.2} s; Σ floors {floors:.2} s = migrate {:.3} + config {:.3} + rollout floor {rollout_floor:.2} (its wall {:.2}) + verify {verify:.1} (its wall {:.2}) + canary {:.3} + monitoring {:.3}; wall / Σ floors = {:.2}; overhead {:.2} s",
        step("migrate"),
        step("config"),
        step("rollout:auth"),
        step("verify"),
        step("canary"),
        step("monitoring"),
        wall / floors,
        wall - floors,
    );
}

fn status_with_history() {
    let mut f = Fixture::new(3, json!({}));
    f.deployable(json!([]));
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    // 999 more, as the journal records them.
    let path = f.sandbox.path().join(".gantry/state.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::lazy(&DbTarget::parse(&format!("sqlite://{}", path.display())).unwrap());
        store
            .write(async |tx| {
                for n in 0..999 {
                    let id = format!("deploy_bench_{n:04}");
                    let names: Vec<String> = [
                        "migrate",
                        "config",
                        "rollout:auth",
                        "verify",
                        "canary",
                        "monitoring",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    let record = DeploymentRecord {
                        id: id.clone(),
                        environment: if n % 2 == 0 { "staging" } else { "qa" }.into(),
                        state: gantry::store::DeploymentState::Succeeded,
                        reason: None,
                        actor: "bench".into(),
                        host: "bench".into(),
                        owner: None,
                        options: "{}".into(),
                        started_ms: 1_700_000_000_000 + n,
                        finished_ms: Some(1_700_000_010_000 + n),
                    };
                    tx.insert_deployment(&record, &names).await?;
                    for (idx, name) in names.iter().enumerate() {
                        tx.save_step(&StepRecord {
                            deployment: id.clone(),
                            idx: idx as i32,
                            name: name.clone(),
                            state: gantry::store::StepState::Done,
                            detail: r#"{"summary": "done"}"#.into(),
                            error: None,
                            started_ms: Some(1_700_000_000_000),
                            finished_ms: Some(1_700_000_001_000),
                        })
                        .await?;
                    }
                }
                Ok::<_, gantry::store::StoreError>(())
            })
            .await
            .unwrap();
        store.close().await;
    });
    let time = |args: &[&str]| {
        let mut samples: Vec<f64> = (0..21)
            .map(|_| {
                let t = Instant::now();
                f.gantry(args);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let floor = time(&["--version"]);
    let status = time(&["status"]);
    let st = f.gantry(&["status", "--json"]).expect(0);
    assert_eq!(st.json()["deployments"].as_array().unwrap().len(), 3);
    println!(
        "gantry status, SQLite, 1,000 past deployments, 3 instances: {status:.1} ms median (process floor, gantry --version: {floor:.1} ms)   {}",
        verdict(status <= 50.0, "≤ 50 ms")
    );
}
