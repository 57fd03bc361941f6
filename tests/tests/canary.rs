//! Canary steps with the real service under real load: the front door
//! sends each step's share of logins to the new revision, the monitor
//! counts each revision's auth events, the front door each revision's
//! answers, and the step's analysis judges them — a version failing 5 % of
//! logins or adding 80 ms is aborted and rolled back with `RolloutAborted`
//! raised; the same version as its baseline (A/A) passes, and a gantry
//! killed mid-step is resumed at the same step, never at 100 %.

use gantry_tests::auth::Fixture;
use gantry_tests::canary::{
    add_load_user, canary, canary_with, failed_share, logins, progress, spawn_rollout,
    wait_step_under_way,
};
use gantry_tests::paused;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn a_version_failing_five_percent_of_logins_is_aborted_at_the_first_step() {
    let mut c = canary(60);
    c.version("v2", Some("fail-login=0.05"));
    let load = c.logins(4);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let run = c.f.gantry(&["rollout", "auth"]);
    let took = started.elapsed();
    let report = load.stop();
    eprintln!(
        "aborted after {took:?}; {} logins ({:.0}/s), {} failed ({:.3} %)\n{}",
        report.ok + report.failed,
        report.per_second,
        report.failed,
        failed_share(&report) * 100.0,
        run.stdout
    );
    let run = run.expect(1);
    assert!(run.stdout.contains("aborted at step 1"), "{}", run.stdout);
    // The verdict names what decided it: the failed logins, as login
    // outcomes or as the 500s the front door passed on.
    assert!(
        run.stderr.contains("login_success_rate") || run.stderr.contains("http_5xx_rate"),
        "{}",
        run.stderr
    );
    // Caught within the step's pause, long before it would have passed.
    assert!(took < Duration::from_secs(60), "{took:?}");
    // At most 5 % of requests went to it, 5 % of those failed: the whole
    // run's failures stay near 0.25 % (three times that allows for chance
    // over ~150 canary logins; the version rolled out fully would fail 5 %).
    assert!(
        failed_share(&report) <= 0.05 * 0.05 * 3.0,
        "{:.3} % of logins failed",
        failed_share(&report) * 100.0
    );
    assert!(report.failed > 0, "the canary served some logins");
    assert_eq!(c.versions(), ["v1", "v1"]);

    // Status: the step, its verdict and the table; no split left.
    let status = c.f.status();
    let p = progress(&status);
    assert!(
        p["outcome"].as_str().unwrap().starts_with("aborted"),
        "{p:#}"
    );
    assert_eq!(p["steps"][0]["verdict"], "fail", "{p:#}");
    let table = p["steps"][0]["table"].as_array().unwrap().clone();
    let failed: Vec<&Value> = table.iter().filter(|r| r["verdict"] == "fail").collect();
    assert!(!failed.is_empty(), "{table:#?}");
    for row in &failed {
        let metric = row["metric"].as_str().unwrap();
        assert!(
            metric == "login_success_rate" || metric == "http_5xx_rate",
            "{table:#?}"
        );
        // The canary's figure is worse than the baseline's.
        let (b, c) = (
            row["baseline"].as_f64().unwrap(),
            row["canary"].as_f64().unwrap(),
        );
        assert!(
            if metric == "login_success_rate" {
                c < b
            } else {
                c > b
            },
            "{row:#}"
        );
        assert!(
            row["p"].as_f64().unwrap() < row["alpha"].as_f64().unwrap(),
            "{row:#}"
        );
    }
    assert_eq!(status["weights"], json!({}), "{status:#}");
    let text = c.f.gantry(&["rollout", "status", "auth", "--no-checks"]);
    assert!(text.stdout.contains("http_5xx_rate"), "{}", text.stdout);
    assert!(text.stdout.contains("fail"), "{}", text.stdout);

    // The console shows the steps, the table and both revisions plotted.
    let (code, page) = gantry_tests::monitor::get(&format!("{}/console/panels", c.monitor.api));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<h2>Canary</h2>"), "{page}");
    assert!(page.contains("analysis of step 1"), "{page}");
    assert!(page.contains("http_5xx_rate"), "{page}");
    let figure = &page[page
        .find("id=\"plot-canary-auth-5xx\"")
        .expect("the 5xx plot")..];
    let points: usize = figure["data-points=\"".len() + figure.find("data-points=\"").unwrap()..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(points >= 1, "{figure}");
    assert!(
        figure.contains("■ baseline") && figure.contains("■ canary"),
        "{figure}"
    );

    // RolloutAborted went through the receivers.
    let got = c
        .receiver
        .wait_delivered("RolloutAborted", Duration::from_secs(20), |r| {
            r.body.to_string().contains("RolloutAborted")
        });
    assert!(got.body.to_string().contains("step 1"), "{:#}", got.body);
    drop(c.monitor);
}

#[test]
fn a_version_adding_80_ms_is_aborted_on_latency() {
    let mut c = canary(60);
    c.version("v2", Some("slow=80"));
    let load = c.logins(4);
    std::thread::sleep(Duration::from_millis(500));
    let run = c.f.gantry(&["rollout", "auth"]);
    let report = load.stop();
    eprintln!("{}\n{}", run.stdout, run.stderr);
    let _ = run.expect(1);
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    let status = c.f.status();
    let table = progress(&status)["steps"][0]["table"].clone();
    let row = |metric: &str| {
        table
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == metric)
            .unwrap()
            .clone()
    };
    assert_eq!(row("http_latency_ms")["verdict"], "fail", "{table:#}");
    assert!(
        row("http_latency_ms")["canary"].as_f64().unwrap() >= 80.0,
        "{table:#}"
    );
    assert_ne!(row("login_success_rate")["verdict"], "fail", "{table:#}");
    assert_eq!(row("http_5xx_rate")["verdict"], "pass", "{table:#}");
    assert_eq!(c.versions(), ["v1", "v1"]);
}

/// A/A: the same build as a new revision passes its step. Killed mid-step,
/// the split stays; the next gantry resumes the step at the same weight
/// and analysis window, then promotes.
#[test]
fn an_a_a_canary_killed_mid_step_is_resumed_and_passes() {
    let mut c = canary(12);
    c.version("v2", None);
    let load = c.logins(4);
    let mut child = spawn_rollout(&c.f);
    let step_started = wait_step_under_way(&c.f);
    std::thread::sleep(Duration::from_secs(2));
    paused::signal(&child, libc::SIGKILL);
    child.wait().unwrap();

    // The split is kept while no gantry runs; status says how to go on.
    std::thread::sleep(Duration::from_secs(1));
    let status = c.f.status();
    let weights = status["weights"].as_object().unwrap().clone();
    assert_eq!(
        weights.values().filter(|w| *w == 5).count(),
        1,
        "{status:#}"
    );
    let text =
        c.f.gantry(&["rollout", "status", "auth", "--no-checks"])
            .expect(1);
    assert!(text.stdout.contains("canary step 1"), "{}", text.stdout);
    assert_eq!(c.versions(), ["v1", "v1", "v2"]);

    let run = c.f.gantry(&["rollout", "auth"]);
    let report = load.stop();
    eprintln!("{}\n{}", run.stdout, run.stderr);
    let run = run.expect(0);
    assert!(run.stdout.contains("(resumed)"), "{}", run.stdout);
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    let status = c.f.status();
    let p = progress(&status);
    assert_eq!(
        p["steps"][0]["started_ms"], step_started,
        "the same window: {p:#}"
    );
    assert_eq!(p["steps"][0]["verdict"], "pass", "{p:#}");
    assert_eq!(p["outcome"], "promoted", "{p:#}");
    assert_eq!(status["weights"], json!({}));
    assert_eq!(c.versions(), ["v2", "v2"]);
    // Nothing was aborted.
    assert!(
        c.receiver
            .received()
            .iter()
            .all(|r| !r.body.to_string().contains("RolloutAborted"))
    );
}

#[test]
fn bad_steps_and_analyses_are_refused_naming_the_key() {
    let mut f = Fixture::new(1, json!({}));
    let cases = [
        (
            json!({"steps": [{"weight": 50}, {"weight": 20}]}),
            None,
            "services.auth.rollout.steps[1].weight",
        ),
        (
            json!({"steps": [{"weight": 0}]}),
            None,
            "services.auth.rollout.steps[0].weight",
        ),
        (
            json!({"steps": [{"weight": 5, "analysis": "nope"}]}),
            None,
            "services.auth.rollout.steps[0].analysis",
        ),
        (
            json!({"steps": [{"weight": 5, "analysis": "mine"}]}),
            Some(json!({"mine": {"metrics": [{"metric": "login_success_rate"}]}})),
            "analyses.mine.metrics[0].margin",
        ),
        (
            json!({"steps": [{"weight": 5, "analysis": "mine"}]}),
            Some(
                json!({"mine": {"metrics": [{"metric": "http_5xx_rate", "margin": 0.01, "significance": 2}]}}),
            ),
            "analyses.mine.metrics[0].significance",
        ),
    ];
    for (rollout, analyses, key) in cases {
        for (k, v) in rollout.as_object().unwrap() {
            f.service()["rollout"][k] = v.clone();
        }
        match analyses {
            Some(a) => f.config["analyses"] = a,
            None => {
                f.config.as_object_mut().unwrap().remove("analyses");
            }
        }
        f.save();
        let run = f.gantry(&["rollout", "auth"]).expect(2);
        assert!(run.stderr.contains(key), "{key}: {}", run.stderr);
        assert!(
            !f.sandbox.path().join(".gantry/logs/auth").exists(),
            "nothing started"
        );
    }
    // Steps need the front door.
    f.service()["rollout"]["steps"] = json!([{"weight": 5}]);
    f.service()["traffic"] = json!("shared-socket");
    f.config.as_object_mut().unwrap().remove("analyses");
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(2);
    assert!(
        run.stderr.contains("services.auth.rollout.steps"),
        "{}",
        run.stderr
    );
}

/// An operator pauses a step, then promotes it; a later canary whose
/// gantry was killed is aborted by `gantry rollout abort` alone.
#[test]
fn an_operator_pauses_promotes_and_aborts() {
    let mut c = canary(300);
    c.version("v2", None);
    let load = c.logins(2);
    let mut child = spawn_rollout(&c.f);
    wait_step_under_way(&c.f);
    let paused = c.f.gantry(&["rollout", "pause", "auth"]).expect(0);
    assert!(
        paused.stdout.contains("`pause` left for rollout"),
        "{}",
        paused.stdout
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress(&c.f.status())["paused"] != true {
        assert!(Instant::now() < deadline, "the pause was never taken");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.f.gantry(&["rollout", "promote", "auth"]).expect(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "promote did not end the step");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(exited.success(), "{exited:?}");
    let status = c.f.status();
    assert_eq!(
        progress(&status)["steps"][0]["note"],
        "promoted by an operator",
        "{status:#}"
    );
    assert_eq!(c.versions(), ["v2", "v2"]);
    // Nothing is splitting now: the controls say so (exit 2).
    let none = c.f.gantry(&["rollout", "promote", "auth"]).expect(2);
    assert!(none.stderr.contains("splitting traffic"), "{}", none.stderr);

    // v3, killed mid-step: the abort is carried out by the command itself.
    c.version("v3", None);
    let mut child = spawn_rollout(&c.f);
    wait_step_under_way(&c.f);
    paused::signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let aborted = c.f.gantry(&["rollout", "abort", "auth"]);
    let report = load.stop();
    eprintln!("{}\n{}", aborted.stdout, aborted.stderr);
    aborted.expect(0);
    assert_eq!(c.versions(), ["v2", "v2"]);
    assert_eq!(c.f.status()["weights"], json!({}));
    assert_eq!(report.failed, 0, "{:?}", report.failures);
}

/// Inside `gantry deploy`, a failed analysis fails the deployment: rolled
/// back (config and instances), the analysis named in its reason.
#[test]
fn a_deploy_whose_canary_step_fails_is_rolled_back_naming_the_analysis() {
    let mut f = Fixture::new(
        2,
        json!({
            "steps": [
                {"weight": 10, "pause_seconds": 60, "analysis": "answers"},
                {"weight": 100}
            ],
            "analysis_interval_seconds": 1,
        }),
    );
    // Judged on the front door's figures alone: no monitor needed.
    f.config["analyses"] = json!({"answers": {"metrics": [
        {"metric": "http_5xx_rate", "margin": 0.005, "min_samples": 50}
    ]}});
    f.deployable(json!([]));
    add_load_user(&f);
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    let load = logins(&f, 4);
    f.config["environments"]["production"]["token_expiry_minutes"] = json!(45);
    f.service()["version"] = json!("v2");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("fail-login=0.2");
    f.save();
    let failed = f.gantry(&["deploy", "-e", "production"]);
    load.stop();
    eprintln!("{}\n{}", failed.stdout, failed.stderr);
    let failed = failed.expect(1);
    assert!(failed.stdout.contains("rolled back"), "{}", failed.stdout);
    let status = f.gantry(&["status", "--json"]).json();
    let d = &status["deployments"][0];
    assert_eq!(d["state"], "rolled_back", "{d:#}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("analysis answers failed"),
        "{d:#}"
    );
    let mut versions: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    versions.sort();
    assert_eq!(versions, ["v1", "v1"]);
    let auth: Value = serde_json::from_str(
        &std::fs::read_to_string(f.sandbox.path().join("config/auth.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(auth["token_expiry_minutes"], 60, "the config restored");
}

/// Killed at a step past half the traffic, the abort goes straight back
/// to the baseline: no steps of its own (run in reverse they would hand
/// the canary most requests), the canary out, the split cleared.
#[test]
fn an_abort_after_a_kill_past_half_the_traffic_runs_no_steps() {
    let mut c = canary_with(json!([{"weight": 60, "pause_seconds": 300}, {"weight": 100}]));
    c.version("v2", None);
    let mut child = spawn_rollout(&c.f);
    wait_step_under_way(&c.f);
    paused::signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let aborted = c.f.gantry(&["rollout", "abort", "auth"]).expect(0);
    assert!(!aborted.stdout.contains("step 1/"), "{}", aborted.stdout);
    assert_eq!(c.versions(), ["v1", "v1"]);
    assert_eq!(c.f.status()["weights"], json!({}));
}
