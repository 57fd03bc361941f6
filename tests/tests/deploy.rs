//! `gantry deploy | status | rollback` end to end on the example auth
//! service: real instances, a real SQLite or PostgreSQL, a real webhook
//! receiver for the test notices.

use gantry_tests::auth::Fixture;
use gantry_tests::monitor::Receiver;
use gantry_tests::paused;
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
    assert!(
        plain.stdout.contains("  migrations: up to version"),
        "{}",
        plain.stdout
    );
    assert!(
        plain.stdout.contains("  config: change #"),
        "{}",
        plain.stdout
    );
    let checked = f.gantry(&["status", "--check"]).expect(0);
    assert_eq!(
        checked.stdout.matches("healthy (checked now)").count(),
        3,
        "{}",
        checked.stdout
    );
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
    assert_eq!(
        auth_json(f)["token_expiry_minutes"],
        60,
        "{what}: auth.json"
    );
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
    f.sandbox
        .write("auth-src/auth.json", "{\"jwt_secret_key\": ");
    let refused = f.gantry(&["deploy", "-e", "production"]).expect(2);
    assert!(
        refused.stderr.contains("auth.json") && refused.stderr.contains("configuration"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        last_deployment(&f)["id"],
        baseline_id.as_str(),
        "nothing journaled"
    );
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
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("rollout:auth failed"),
        "{d:#}"
    );
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
    assert!(
        d["reason"].as_str().unwrap().starts_with("canary failed"),
        "{d:#}"
    );
    let states: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["done", "undone", "undone", "done", "failed", "pending"],
        "{d:#}"
    );
    assert_as_before(&f, "failed canary");
    f.config["deployment"]["canary"]["settings"]["password"] =
        json!(gantry_tests::auth::CANARY_PASSWORD);
    undo_change(&mut f);

    // A receiver that takes no test notice: the monitoring step fails and
    // everything before it is taken back (alerts that reach nobody are
    // not a finished deployment).
    change(&mut f, "v2");
    let receivers = f.config["monitoring"]["receivers"].clone();
    f.config["monitoring"]["receivers"] = json!([{"name": "nobody", "plugin": "webhook",
        "settings": {"url": format!("http://127.0.0.1:{}/hook", gantry_tests::auth::free_port())}}]);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("monitoring failed") && reason.contains("nobody"),
        "{d:#}"
    );
    assert_as_before(&f, "undelivered test notice");
    f.config["monitoring"]["receivers"] = receivers;
    undo_change(&mut f);

    // The time limit, passed during health verification.
    change(&mut f, "v2");
    f.config["deployment"]["timeout_seconds"] = json!(4);
    f.config["deployment"]["verify_seconds"] = json!(60);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert!(
        d["reason"].as_str().unwrap().contains("time limit of 4 s"),
        "{d:#}"
    );
    assert_as_before(&f, "time limit");
    f.config["deployment"]["timeout_seconds"] = json!(120);
    f.config["deployment"]["verify_seconds"] = json!(0.6);
    undo_change(&mut f);

    // A bad migration: nothing after it runs; the migration's own
    // transaction left the database as it was.
    let dir = f.sandbox.path().join("migrations");
    gantry_tests::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations"),
        &dir,
    );
    std::fs::write(
        dir.join("sqlite/900_broken.up.sql"),
        "CREATE TABLE broken (;",
    )
    .unwrap();
    std::fs::write(dir.join("sqlite/900_broken.down.sql"), "DROP TABLE broken;").unwrap();
    f.config["migrations"] = json!({"dir": "migrations"});
    change(&mut f, "v2");
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert!(
        d["reason"].as_str().unwrap().starts_with("migrate failed"),
        "{d:#}"
    );
    assert_eq!(d["steps"][1]["state"], "pending", "{d:#}");
    assert_as_before(&f, "bad migration");
    let md = std::fs::read_to_string(
        f.sandbox
            .path()
            .join(format!("deployment_logs/{}.md", d["id"].as_str().unwrap())),
    )
    .unwrap();
    assert!(
        md.contains("rolled_back") && md.contains("900_broken"),
        "{md}"
    );
}

/// A small generator for kill moments; the seed is printed so a failing
/// round can be replayed (`GANTRY_KILL_SEED`).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Requests to the shared socket from a thread, until dropped: how many
/// were answered and how many were not.
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

impl Prober {
    fn start(url: String) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let (mut ok, mut failed) = (0, Vec::new());
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    match client
                        .get(&url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => ok += 1,
                        Ok(r) => failed.push(format!("status {}", r.status())),
                        Err(e) => failed.push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (ok, failed)
            })
        });
        Prober {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A deploy's steps, in order.
const STEPS: [&str; 6] = [
    "migrate",
    "config",
    "rollout:auth",
    "verify",
    "canary",
    "monitoring",
];

#[test]
fn a_deploy_killed_at_random_moments_is_explained_and_finished_or_undone() {
    let rounds: u64 = std::env::var("GANTRY_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("GANTRY_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("GANTRY_KILL_SEED={seed} GANTRY_KILL_ROUNDS={rounds}");
    let mut rng = Lcg(seed);
    let (mut f, _hook) = baseline();
    let prober = Prober::start(f.url("/healthz"));
    let mut current = ("v1".to_string(), 60);
    let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();
    let mut landed = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..rounds {
        let target = if current.0 == "v1" {
            (format!("v2-{round}"), 45)
        } else {
            ("v1".to_string(), 60)
        };
        f.config["environments"]["production"]["token_expiry_minutes"] = json!(target.1);
        f.service()["version"] = json!(target.0);
        f.save();
        let before = last_deployment(&f)["id"].clone();
        // Each round aims at one step: the process stops itself as that
        // step begins (its `running` is recorded), then runs on for a
        // moment — none in the first pass over the steps, so every step
        // is hit; a random one after — and is killed.
        let aim = STEPS[round as usize % STEPS.len()];
        let mut child = f
            .sandbox
            .gantry()
            .args(["deploy", "-e", "production"])
            .env("GANTRY_PAUSE_AT", format!("deploy:step:{aim}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        paused::wait_paused(&mut child, &format!("round {round}: deploy:step:{aim}"));
        let delay = if round < STEPS.len() as u64 {
            0
        } else {
            rng.next(1500)
        };
        paused::signal(&child, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let exited = child.wait().unwrap();
        let what = format!("round {round}, killed {delay} ms into or after `{aim}` (seed {seed})");

        // No torn file, whatever the moment.
        let text = std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap();
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{what}: torn auth.json: {e}"));

        let st = f.gantry(&["status", "--json"]);
        let d = st.json()["deployments"][0].clone();
        let undo = rng.next(4) == 0;
        let expect = if d["id"] == before {
            // Killed before the journal row: nothing to finish.
            assert_eq!(st.code, 0, "{what}: {d:#}");
            *outcomes.entry("before the journal").or_default() += 1;
            f.gantry(&["deploy", "-e", "production"]).expect(0);
            target.clone()
        } else if d["state"] == "succeeded" {
            *outcomes.entry("after it finished").or_default() += 1;
            assert!(
                exited.code() == Some(0) || exited.code().is_none(),
                "{what}"
            );
            target.clone()
        } else {
            assert_eq!(d["interrupted"], true, "{what}: {d:#}");
            let running: Vec<&str> = d["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["state"] == "running")
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert!(running.len() <= 1, "{what}: {d:#}");
            if let Some(step) = running.first() {
                *landed.entry(step.to_string()).or_default() += 1;
            }
            assert_eq!(
                st.code, 1,
                "{what}: status exits 1 for an interrupted deployment"
            );
            let advice = d["advice"].as_str().unwrap();
            assert!(
                advice.contains("--resume") && advice.contains("rollback --deployment"),
                "{advice}"
            );
            let plain = f.gantry(&["status"]).expect(1);
            assert!(plain.stdout.contains("INTERRUPTED"), "{}", plain.stdout);
            let id = d["id"].as_str().unwrap();
            if undo {
                *outcomes.entry("rolled back").or_default() += 1;
                f.gantry(&["rollback", "--deployment", id]).expect(0);
                current.clone()
            } else {
                *outcomes.entry("resumed").or_default() += 1;
                f.gantry(&["deploy", "--resume", id]).expect(0);
                target.clone()
            }
        };
        let d = last_deployment(&f);
        assert_eq!(d["interrupted"], false, "{what}: {d:#}");
        assert_eq!(
            versions(&f),
            vec![expect.0.clone(); 3],
            "{what}: instances ({d:#})"
        );
        assert_eq!(auth_json(&f)["token_expiry_minutes"], expect.1, "{what}");
        current = expect;
    }
    let (answered, failed) = prober.finish();
    eprintln!(
        "kill moments: {outcomes:?}; kills inside each step: {landed:?}; requests answered {answered}, failed {}",
        failed.len()
    );
    if rounds >= STEPS.len() as u64 {
        for step in STEPS {
            assert!(
                landed.contains_key(step),
                "no kill landed inside `{step}`: {landed:?} (seed {seed})"
            );
        }
    }
    assert!(answered > 0);
    assert!(
        failed.is_empty(),
        "the service stopped answering: {failed:?}"
    );
}

#[test]
fn on_postgresql_a_full_deploy_works_and_a_second_deploy_at_once_is_refused_naming_the_holder() {
    let state = gantry_tests::pg::TestDb::create("deploy_state");
    let auth = gantry_tests::pg::TestDb::create("deploy_auth");
    let mut f = Fixture::new(3, json!({}));
    f.deployable(json!([]));
    f.config["database"] = json!({"url": auth.url()});
    f.config["state"] = json!({"url": state.url(), "lease_seconds": 2});
    f.service()["env"]["DATABASE_URL"] = json!(auth.url());
    f.save();
    // The canary's account, on the migrated PostgreSQL database.
    f.gantry(&["migrate", "-q"]).expect(0);
    let added = std::process::Command::new(gantry_tests::auth_service_bin())
        .current_dir(f.sandbox.path())
        .env("DATABASE_URL", auth.url())
        .env("AUTH_SERVICE_PASSWORD", gantry_tests::auth::CANARY_PASSWORD)
        .args(["add-user", "--username", "canary"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");

    f.gantry(&["deploy", "-e", "production"]).expect(0);
    assert_eq!(versions(&f), ["v1", "v1", "v1"]);
    assert_eq!(
        state.scalar("SELECT state FROM gantry_deployments ORDER BY seq DESC LIMIT 1"),
        Some("succeeded".into())
    );

    // Two at once: the second refuses, naming the first.
    f.service()["version"] = json!("v2");
    f.config["deployment"]["verify_seconds"] = json!(3);
    f.save();
    let first = f
        .sandbox
        .gantry()
        .args(["deploy", "-e", "production"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = last_deployment(&f);
        if d["state"] == "running" && d["running"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first deploy never ran: {d:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = f.gantry(&["deploy", "-e", "production"]).expect(2);
    assert!(
        second
            .stderr
            .contains("another deployment of `production` is running: pid")
            && second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    assert_eq!(versions(&f), ["v2", "v2", "v2"]);
    assert_eq!(
        state
            .scalar("SELECT count(*)::text FROM gantry_deployments")
            .as_deref(),
        Some("2"),
        "the refused deploy journaled nothing"
    );
}

#[test]
fn rollback_by_backup_id_restores_the_config_and_the_revision_and_says_which_migrations_stay() {
    let (mut f, _hook) = baseline();
    change(&mut f, "v2");
    f.save();
    let run = f
        .gantry(&["--json", "deploy", "-e", "production"])
        .expect(0);
    let report = run.json_lines().last().unwrap().clone();
    let config = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "config")
        .unwrap()
        .clone();
    let detail: Value = serde_json::from_str(config["detail"].as_str().unwrap()).unwrap();
    let backup = detail["backup_id"].as_str().unwrap().to_string();
    assert_eq!(versions(&f), ["v2", "v2", "v2"]);

    let back = f.gantry(&["rollback", "--backup-id", &backup]).expect(0);
    assert!(back.stdout.contains("rolled back"), "{}", back.stdout);
    assert!(
        back.stdout.contains("no migration was applied"),
        "says what became of the migrations: {}",
        back.stdout
    );
    assert_as_before(&f, "rollback --backup-id");
    let d = last_deployment(&f);
    assert_eq!(d["state"], "rolled_back");
    assert!(
        d["reason"].as_str().unwrap().contains("on request"),
        "{d:#}"
    );

    // Rolled back already: refused, nothing changed.
    let again = f
        .gantry(&["rollback", "--deployment", d["id"].as_str().unwrap()])
        .expect(2);
    assert!(
        again.stderr.contains("rolled back already"),
        "{}",
        again.stderr
    );
    f.gantry(&["rollback", "--backup-id", "backup_19990101_000000"])
        .expect(2);
}

#[test]
fn the_time_limit_passed_mid_rollout_takes_back_what_the_cut_rollout_started() {
    let (mut f, _hook) = baseline();
    change(&mut f, "v2-unready");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("unready");
    // Shorter than the rollout's healthy deadline (8 s): the limit cuts
    // the rollout itself, holding its lease, with a new instance started.
    f.config["deployment"]["timeout_seconds"] = json!(3);
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(1);
    let d = last_deployment(&f);
    assert_eq!(d["state"], "rolled_back", "{d:#}");
    assert!(
        d["reason"].as_str().unwrap().contains("time limit of 3 s"),
        "{d:#}"
    );
    assert_as_before(&f, "time limit mid-rollout");
}
