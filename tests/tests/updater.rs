//! `ZeroDowntimeUpdater` as a library: `update_context` undoes the config
//! deployment and the rollout done inside it when its body fails, and a
//! Rust closure added with `add_health_check` gates every new instance.

use gantry::bindings::types::{CheckResult, HealthStatus};
use gantry::rollout::{HealthCheck, Probe, UpdateError, ZeroDowntimeUpdater};
use gantry::runtime::{Registry, Runtime};
use gantry::settings::{Env, Flags, Settings};
use gantry::store::Store;
use gantry_tests::auth::Fixture;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn updater(f: &Fixture) -> ZeroDowntimeUpdater {
    let settings = Settings::resolve(
        Flags {
            config: Some(f.sandbox.path().join("deployment_config.json")),
            ..Flags::default()
        },
        &Env::from_process(),
    )
    .unwrap();
    let store = Store::lazy(&settings.state);
    let runtime = Arc::new(Runtime::new(settings.runtime().unwrap()).unwrap());
    let registry = Arc::new(Registry::new(
        runtime,
        Some(&settings.plugin_dir),
        settings.config.config.plugins.pins.clone(),
    ));
    ZeroDowntimeUpdater::new(settings, store, registry)
}

fn secret_config(expiry: u32) -> String {
    format!(
        r#"{{"jwt_secret_key": "a-test-secret-of-at-least-32-bytes-long", "token_expiry_minutes": {expiry}, "rate_limiting_enabled": false}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_context_restores_the_config_and_rolls_the_service_back() {
    let mut f = Fixture::new(2, json!({}));
    // The deployer's baseline: auth.json deployed from a base file.
    f.sandbox.write("base/auth.json", secret_config(30));
    f.config["environments"] = json!({"development": {}});
    f.save();
    f.gantry(&[
        "config",
        "deploy",
        "--config-file",
        "base/auth.json",
        "--environment",
        "development",
    ])
    .expect(0);
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    let deployed = std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap();

    let updater = updater(&f);
    f.sandbox.write("base/auth.json", secret_config(45));
    let base = f.sandbox.path().join("base/auth.json");
    let outcome = updater
        .update_context("config_update", Duration::from_secs(60), async |ctx| {
            let rolled = ctx
                .update_configuration(std::slice::from_ref(&base), "development")
                .await?;
            assert_eq!(rolled.len(), 1, "the service that reads auth.json rolled");
            assert_eq!(rolled[0].replaced, 2);
            Err::<(), _>(anyhow::anyhow!("the smoke test after the update failed"))
        })
        .await;
    match outcome {
        Err(UpdateError::Failed { reason, undo, .. }) => {
            assert!(reason.contains("smoke test"), "{reason}");
            assert_eq!(undo, "2 change(s) undone");
        }
        other => panic!("expected a failed update, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap(),
        deployed,
        "the config is restored"
    );
    let after = f.instances();
    assert_eq!(after.len(), 2);
    // New processes (rolled twice), on the revision that reads the old config.
    assert!(after.iter().all(|a| before.iter().all(|b| b.1 != a.1)));
    let status = f.status();
    assert_eq!(status["last_rollout"]["state"], "succeeded");
    let revision = |i: &serde_json::Value| i["revision"].as_str().unwrap().to_string();
    let instances = status["instances"].as_array().unwrap();
    assert!(
        instances
            .iter()
            .all(|i| revision(i) == revision(&instances[0]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_health_check_gates_new_instances() {
    let mut f = Fixture::new(
        1,
        json!({"healthy_deadline_seconds": 1.5, "progress_deadline_seconds": 4}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    f.service()["version"] = json!("v2");
    f.save();
    let updater = updater(&f);
    updater.add_health_check(
        "auth",
        HealthCheck::closure(
            "refuses v2",
            Probe::default(),
            Arc::new(|instance| {
                Box::pin(async move {
                    let (status, message) = if instance.version == "v2" {
                        (
                            HealthStatus::Critical,
                            format!("{} runs v2, which we refuse", instance.name),
                        )
                    } else {
                        (HealthStatus::Ok, "fine".to_string())
                    };
                    CheckResult {
                        status,
                        message,
                        metrics: Vec::new(),
                    }
                })
            }),
        ),
    );
    let outcome = updater.rolling_restart(&["auth"]).await;
    let err = outcome.expect_err("the closure refuses v2");
    assert!(
        err.to_string().contains("which we refuse") || err.to_string().contains("not healthy"),
        "{err}"
    );
    assert_eq!(f.instances(), before);
}
