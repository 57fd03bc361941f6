//! `gantry config …` end to end: rendering, validation, backups, atomic
//! writes, rollback, path safety, kill -9, and secrets kept out of
//! everything but their destination.

use gantry_tests::{Run, Sandbox, mode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PROD_SECRET: &str = "kJ8s9dK2mQ7xP4vL1nR6tY3wZ0aB5cE8fG2hJ4kLq";

fn setup(sandbox: &Sandbox) {
    sandbox.write(
        "deployment_config.json",
        r#"{
  "environments": {
    "development": {"jwt_secret_key": "dev-secret-key", "token_expiry_minutes": 1440, "rate_limiting_enabled": false},
    "production": {
      "jwt_secret_key": "${env:GANTRY_TEST_JWT}",
      "token_expiry_minutes": 60,
      "rate_limiting_enabled": true,
      "extensions.json": {"extensions": {"billing": {"enabled": true}}}
    },
    "staging": {}
  }
}"#,
    );
    sandbox.write(
        "base/auth.json",
        r#"{
  "jwt_secret_key": "change-me",
  "jwt_algorithm": "HS256",
  "token_expiry_minutes": 30,
  "rate_limiting_enabled": true,
  "rate_limit_per_minute": 120
}"#,
    );
    sandbox.write(
        "base/extensions.json",
        r#"{"extensions": {"audit": {"enabled": true, "permissions": ["read"]}, "billing": {"enabled": false}}}"#,
    );
    sandbox.write("base/features.toml", "[flags]\nnew_login = false\n");
}

fn config(sandbox: &Sandbox, secret: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = sandbox.gantry();
    match secret {
        Some(secret) => cmd.env("GANTRY_TEST_JWT", secret),
        None => cmd.env_remove("GANTRY_TEST_JWT"),
    };
    Run::from(cmd.arg("config").args(args).output().unwrap())
}

fn deploy_args<'a>(env: &'a str, files: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["deploy", "--environment", env];
    for f in files {
        args.push("--config-file");
        args.push(f);
    }
    args
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every file under `dir` with its bytes, for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.ends_with(".gantry.lock") {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn development_and_production_render_from_one_base() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let files = [
        "base/auth.json",
        "base/extensions.json",
        "base/features.toml",
    ];
    config(&sandbox, None, &deploy_args("development", &files)).expect(0);
    let auth = sandbox.path().join("config/auth.json");
    assert_eq!(
        read_json(&auth),
        json!({"jwt_secret_key": "dev-secret-key", "jwt_algorithm": "HS256", "token_expiry_minutes": 1440,
               "rate_limiting_enabled": false, "rate_limit_per_minute": 120})
    );
    assert_eq!(mode(&auth), 0o600, "a file holding a secret is 0600");
    let extensions = sandbox.path().join("config/extensions.json");
    assert_eq!(
        read_json(&extensions)["extensions"]["billing"]["enabled"],
        false
    );
    assert_eq!(mode(&extensions), 0o644);
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("config/features.toml")).unwrap(),
        "[flags]\nnew_login = false\n"
    );

    config(
        &sandbox,
        Some(PROD_SECRET),
        &deploy_args("production", &files),
    )
    .expect(0);
    assert_eq!(
        read_json(&auth),
        json!({"jwt_secret_key": PROD_SECRET, "jwt_algorithm": "HS256", "token_expiry_minutes": 60,
               "rate_limiting_enabled": true, "rate_limit_per_minute": 120})
    );
    assert_eq!(
        read_json(&extensions),
        json!({"extensions": {"audit": {"enabled": true, "permissions": ["read"]}, "billing": {"enabled": true}}}),
        "the per-file section merges into extensions.json only"
    );
    assert!(read_json(&extensions).get("jwt_secret_key").is_none());
}

#[test]
fn a_placeholder_secret_in_production_is_refused_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let before = snapshot(sandbox.path());
    let run = config(
        &sandbox,
        Some("change-me-please"),
        &deploy_args("production", &["base/auth.json"]),
    )
    .expect(2);
    assert!(
        run.stderr.contains("auth.json/jwt_secret_key"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("placeholder"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("change-me-please"),
        "the secret leaked: {}",
        run.stderr
    );
    let after: Vec<_> = snapshot(sandbox.path())
        .into_iter()
        .filter(|(p, _)| !p.contains(".cache"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.contains(".cache"))
        .collect();
    assert_eq!(after, before, "nothing written, no backup, no state");
    assert!(!sandbox.path().join(".gantry/backups").exists());

    // Outside development, rate limiting off, a week-long token and an
    // auth bypass are refused too.
    sandbox.write(
        "base/loose.json",
        r#"{"jwt_secret_key": "${env:GANTRY_TEST_JWT}", "token_expiry_minutes": 10080, "rate_limiting_enabled": false, "debug": {"auth_bypass": true}}"#,
    );
    let run = config(
        &sandbox,
        Some(PROD_SECRET),
        &[
            "validate",
            "--environment",
            "staging",
            "--config-file",
            "base/loose.json",
        ],
    )
    .expect(2);
    for path in [
        "/token_expiry_minutes",
        "/rate_limiting_enabled",
        "/debug/auth_bypass",
    ] {
        assert!(run.stderr.contains(path), "{path}: {}", run.stderr);
    }
}

#[test]
fn two_deploys_and_a_rollback_in_one_second_keep_every_backup() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let started = Instant::now();
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
    let dev_bytes = std::fs::read(sandbox.path().join("config/auth.json")).unwrap();
    config(
        &sandbox,
        Some(PROD_SECRET),
        &deploy_args("production", &["base/auth.json"]),
    )
    .expect(0);
    let backups = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    let second = backups[1]["id"].as_str().unwrap().to_string();
    config(&sandbox, None, &["rollback", "--backup-id", &second]).expect(0);
    eprintln!("three changes took {:?}", started.elapsed());

    assert_eq!(
        std::fs::read(sandbox.path().join("config/auth.json")).unwrap(),
        dev_bytes,
        "the rollback restored the development file"
    );
    let backups = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    let backups = backups.as_array().unwrap();
    assert_eq!(backups.len(), 3, "{backups:?}");
    let ids: std::collections::HashSet<&str> =
        backups.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "three distinct ids");
    assert!(backups.iter().all(|b| b["verifies"] == true), "{backups:?}");
    for b in backups {
        let dir = Path::new(b["path"].as_str().unwrap());
        assert!(dir.join("manifest.json").is_file());
        assert_eq!(mode(&dir.join("manifest.json")), 0o600);
    }
    let history = config(&sandbox, None, &["history", "--json"])
        .expect(0)
        .json();
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(history[2]["kind"], "rollback");
    assert_eq!(history[2]["restored_from"], second.as_str());
}

#[test]
fn a_file_the_deploy_created_is_gone_after_the_rollback() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json", "base/extensions.json"]),
    )
    .expect(0);
    assert!(sandbox.path().join("config/extensions.json").is_file());
    let backups = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    let before_second = backups[1]["id"].as_str().unwrap().to_string();
    config(&sandbox, None, &["rollback", "--backup-id", &before_second]).expect(0);
    assert!(!sandbox.path().join("config/extensions.json").exists());
    assert!(sandbox.path().join("config/auth.json").is_file());
}

#[test]
fn an_edited_backup_is_refused() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
    config(
        &sandbox,
        Some(PROD_SECRET),
        &deploy_args("production", &["base/auth.json"]),
    )
    .expect(0);
    let backups = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    let id = backups[1]["id"].as_str().unwrap().to_string();
    let copy = Path::new(backups[1]["path"].as_str().unwrap()).join("files/auth.json");
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes.extend_from_slice(b" ");
    std::fs::write(&copy, bytes).unwrap();

    let before = snapshot(&sandbox.path().join("config"));
    let run = config(&sandbox, None, &["rollback", "--backup-id", &id]).expect(2);
    assert!(
        run.stderr.contains("does not verify") && run.stderr.contains("auth.json"),
        "{}",
        run.stderr
    );
    assert_eq!(
        snapshot(&sandbox.path().join("config")),
        before,
        "nothing restored"
    );
    let listed = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    assert_eq!(listed[1]["verifies"], false);
}

#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
    let outside = sandbox.write("outside.json", "{\"untouched\": true}\n");
    sandbox.write("base/malformed.json", "{\n  \"a\": 1,\n  \"b\" 2\n}\n");
    sandbox.write(
        "base/needs-secret.json",
        "{\"key\": \"${env:GANTRY_TEST_NEVER_SET}\"}\n",
    );
    let before = snapshot(sandbox.path());

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["rollback", "--backup-id", "../../etc"],
            "not a backup id",
        ),
        (
            vec!["rollback", "--backup-id", "backup_20240101_000000/../../x"],
            "not a backup id",
        ),
        (
            vec!["rollback", "--backup-id", "backup_20240101_000000"],
            "no backup",
        ),
        (
            deploy_args("development", &["base/malformed.json"]),
            "malformed.json:3:",
        ),
        (
            deploy_args("qa", &["base/auth.json"]),
            "unknown environment `qa`",
        ),
        (
            deploy_args("development", &["base/needs-secret.json"]),
            "${env:GANTRY_TEST_NEVER_SET}",
        ),
        (
            deploy_args("development", &["base/auth.json", "base/auth.json"]),
            "given twice",
        ),
    ];
    for (args, expect) in cases {
        let run = config(&sandbox, None, &args).expect(2);
        assert!(run.stderr.contains(expect), "{args:?}: {}", run.stderr);
        let after = snapshot(sandbox.path());
        let changed: std::collections::BTreeSet<&String> = after
            .iter()
            .chain(&before)
            .filter(|entry| !before.contains(entry) || !after.contains(entry))
            .map(|(path, _)| path)
            .collect();
        assert!(changed.is_empty(), "{args:?} changed {changed:?}");
    }

    // A symlink in the config directory pointing out is never written through.
    std::fs::create_dir_all(sandbox.path().join("config2")).unwrap();
    std::os::unix::fs::symlink(&outside, sandbox.path().join("config2/extensions.json")).unwrap();
    let run = config(
        &sandbox,
        None,
        &[
            "deploy",
            "--environment",
            "development",
            "--config-file",
            "base/extensions.json",
            "--config-dir",
            "config2",
        ],
    )
    .expect(2);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "{\"untouched\": true}\n"
    );
}

#[test]
fn a_second_deployer_waits_for_the_lock_and_then_gives_up() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    sandbox.write(
        "deployment_config.json",
        r#"{"config_deploy": {"lock_timeout_seconds": 1}, "environments": {"development": {"jwt_secret_key": "dev-secret-key"}}}"#,
    );
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/extensions.json"]),
    )
    .expect(0);
    let lock = std::fs::File::open(sandbox.path().join("config/.gantry.lock")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let started = Instant::now();
    let run = config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(1);
    assert!(run.stderr.contains("holds the lock"), "{}", run.stderr);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(!sandbox.path().join("config/auth.json").exists());
    drop(lock);
    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
}

#[test]
fn no_output_log_or_state_row_holds_the_secret() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let files = ["base/auth.json", "base/extensions.json"];
    let mut outputs = String::new();
    let mut run = |args: &[&str], code: i32| {
        let mut all = vec!["-vv"];
        all.extend_from_slice(args);
        let r = config(&sandbox, Some(PROD_SECRET), &all).expect(code);
        outputs.push_str(&r.stdout);
        outputs.push_str(&r.stderr);
    };
    run(&deploy_args("development", &files), 0);
    let mut dry = deploy_args("production", &files);
    dry.push("--dry-run");
    run(&dry, 0);
    dry.push("--json");
    run(&dry, 0);
    run(&deploy_args("production", &files), 0);
    run(&["history", "--json"], 0);
    run(&["list-backups", "--json"], 0);
    let backups = config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json();
    let first = backups[0]["id"].as_str().unwrap().to_string();
    run(
        &["rollback", "--backup-id", &first, "--dry-run", "--json"],
        0,
    );
    run(&["rollback", "--backup-id", &first], 0);
    let status = Run::from(
        sandbox
            .gantry()
            .args(["-vv", "status", "--json"])
            .output()
            .unwrap(),
    )
    .expect(0);
    outputs.push_str(&status.stdout);
    outputs.push_str(&status.stderr);

    assert!(outputs.contains("********"), "the diff masks the secret");
    assert!(
        !outputs.contains(PROD_SECRET),
        "a command printed the secret"
    );
    for entry in std::fs::read_dir(sandbox.path().join(".gantry"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(PROD_SECRET.len())
                    .any(|w| w == PROD_SECRET.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    }
    // The store keeps keyed fingerprints, never a plain sha256 a weak
    // secret could be guessed from offline: not of a deployed file, not of
    // a backup copy.
    let state = std::fs::read(sandbox.path().join(".gantry/state.db")).unwrap();
    let mut copies = vec![sandbox.path().join("config/auth.json")];
    for b in config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
    {
        assert_eq!(b["verifies"], true, "{b}");
        copies.push(Path::new(b["path"].as_str().unwrap()).join("files/auth.json"));
    }
    for copy in copies.iter().filter(|c| c.exists()) {
        use sha2::Digest;
        let plain = hex::encode(sha2::Sha256::digest(std::fs::read(copy).unwrap()));
        assert!(
            !state.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "the state store holds the plain sha256 of {}",
            copy.display()
        );
    }
    // Backups of a file holding a secret are 0600 (they are its other destination).
    for b in config(&sandbox, None, &["list-backups", "--json"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
    {
        let copy = Path::new(b["path"].as_str().unwrap()).join("files/auth.json");
        if copy.exists() {
            assert_eq!(mode(&copy), 0o600, "{}", copy.display());
        }
    }
}

/// A small deterministic generator for kill delays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

#[test]
fn kill_9_during_a_three_file_deploy_leaves_whole_files_and_says_which() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let files = [
        "base/auth.json",
        "base/extensions.json",
        "base/features.toml",
    ];
    let names = ["auth.json", "extensions.json", "features.toml"];
    let read_all = || names.map(|n| std::fs::read(sandbox.path().join("config").join(n)).ok());

    // The two states the loop flips between, each deployed whole once.
    let envs = ["development", "production"];
    config(&sandbox, Some(PROD_SECRET), &deploy_args(envs[0], &files)).expect(0);
    let state_a = read_all();
    let started = Instant::now();
    config(&sandbox, Some(PROD_SECRET), &deploy_args(envs[1], &files)).expect(0);
    let full_run = started.elapsed();
    let state_b = read_all();
    assert_ne!(state_a, state_b);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill seed {seed}, full run {full_run:?}");
    let mut rng = Lcg(seed);
    let window = full_run.as_micros() as u64 + 20_000;
    let mut interrupted_seen = 0;
    for round in 0..24 {
        let (env, new) = if round % 2 == 0 {
            (envs[0], &state_a)
        } else {
            (envs[1], &state_b)
        };
        let old = read_all();
        let last_id = config(&sandbox, None, &["history", "--json"])
            .expect(0)
            .json()
            .as_array()
            .unwrap()
            .last()
            .map(|c| c["id"].as_i64().unwrap())
            .unwrap_or(0);
        let mut child = sandbox
            .gantry()
            .env("GANTRY_TEST_JWT", PROD_SECRET)
            .arg("config")
            .args(deploy_args(env, &files))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round % 4 < 2 {
            // Anywhere in the run.
            std::thread::sleep(Duration::from_micros(rng.next(window)));
        } else {
            // Mid-change: just after the first file is replaced.
            let deadline = Instant::now() + Duration::from_secs(10);
            while read_all() == old && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_micros(rng.next(800)));
        }
        gantry_tests::paused::signal(&child, libc::SIGKILL);
        child.wait().unwrap();

        let now = read_all();
        for (i, name) in names.iter().enumerate() {
            assert!(
                now[i] == old[i] || now[i] == new[i],
                "round {round} (seed {seed}): {name} is neither wholly old nor wholly new"
            );
        }
        let history = config(&sandbox, None, &["history", "--json"])
            .expect(0)
            .json();
        let mine: Vec<Value> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"].as_i64().unwrap() > last_id)
            .cloned()
            .collect();
        assert!(mine.len() <= 1, "one change per run: {mine:?}");
        let unfinished = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "in_progress")
            .count();
        assert!(
            unfinished <= 1,
            "earlier interrupted changes are settled: {history:#}"
        );
        if let Some(last) = mine.first().filter(|c| c["state"] == "in_progress") {
            interrupted_seen += 1;
            let said = &last["files_now"];
            for (i, name) in names.iter().enumerate() {
                // Files the change did not need to touch are not listed.
                let Some(state) = said.get(name) else {
                    continue;
                };
                let expected = if now[i] == new[i] && now[i] != old[i] {
                    "new"
                } else if now[i] == old[i] && now[i] != new[i] {
                    "old"
                } else {
                    continue;
                };
                let sha = |b: &Option<Vec<u8>>| b.as_ref().map(|b| gantry_tests::sha256_hex(b));
                assert_eq!(
                    state,
                    expected,
                    "round {round} (seed {seed}): history says {name} is {state}; now {:?} old {:?} new {:?}; change {last:#}",
                    sha(&now[i]),
                    sha(&old[i]),
                    sha(&new[i])
                );
            }
            let status = Run::from(sandbox.gantry().args(["status"]).output().unwrap()).expect(1);
            assert!(status.stdout.contains("interrupted"), "{}", status.stdout);
        }
        // Finish the round deterministically, so the next starts whole.
        config(&sandbox, Some(PROD_SECRET), &deploy_args(env, &files)).expect(0);
        assert_eq!(&read_all(), new);
    }
    eprintln!("{interrupted_seen} of 24 kills interrupted a change");
    assert!(
        interrupted_seen >= 3,
        "only {interrupted_seen} kills landed mid-change; the test proves too little"
    );
}

#[test]
fn retention_keeps_the_newest_and_the_last_good_deployments_backup() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    let mut config_json: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("deployment_config.json")).unwrap(),
    )
    .unwrap();
    config_json["deployment"] = json!({"max_backups": 1});
    sandbox.write("deployment_config.json", config_json.to_string());
    let ids = |sandbox: &Sandbox| -> Vec<String> {
        config(sandbox, None, &["list-backups", "--json"])
            .expect(0)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    };

    config(
        &sandbox,
        None,
        &deploy_args("development", &["base/auth.json"]),
    )
    .expect(0);
    config(
        &sandbox,
        Some(PROD_SECRET),
        &deploy_args("production", &["base/auth.json"]),
    )
    .expect(0);
    let after_two = ids(&sandbox);
    assert_eq!(after_two.len(), 1, "max_backups = 1: {after_two:?}");
    let last_good = after_two[0].clone();

    // A rollback takes a backup of its own; the newest is that one, but
    // the last good deployment's backup must stay.
    config(&sandbox, None, &["rollback", "--backup-id", &last_good]).expect(0);
    let after_rollback = ids(&sandbox);
    assert_eq!(after_rollback.len(), 2, "{after_rollback:?}");
    assert!(after_rollback.contains(&last_good), "{after_rollback:?}");
    for id in &after_rollback {
        assert!(sandbox.path().join(".gantry/backups").join(id).is_dir());
    }
    // A second rollback: still only the newest one and the last good one.
    config(&sandbox, None, &["rollback", "--backup-id", &last_good]).expect(0);
    let after_second = ids(&sandbox);
    assert_eq!(after_second.len(), 2, "{after_second:?}");
    assert!(after_second.contains(&last_good), "{after_second:?}");
    assert!(
        !after_second.contains(
            &after_rollback
                .iter()
                .find(|id| **id != last_good)
                .unwrap()
                .clone()
        )
    );
    // Backup directories; the installation's hash key sits beside them.
    let on_disk = std::fs::read_dir(sandbox.path().join(".gantry/backups"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(on_disk, 2, "pruned backups are removed from disk too");
}

/// Every form a secret could leave a validator in: as written, JSON-escaped,
/// percent-encoded (either case), base64 (whole, and inside a Basic
/// credential at each offset), hex (either case), `\uXXXX`.
fn secret_forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let json = serde_json::to_string(secret).unwrap();
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let percent_lower: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    vec![
        secret.to_string(),
        json[1..json.len() - 1].to_string(),
        percent_lower,
        percent,
        b64(secret),
        b64(&format!("a:{secret}")),
        b64(&format!("ab:{secret}")),
        b64(&format!("abc:{secret}")),
        hex::encode(secret),
        hex::encode_upper(secret),
        secret
            .encode_utf16()
            .map(|u| format!("\\u{u:04x}"))
            .collect(),
    ]
}

/// A validator receives the resolved secret and tries every way out: a log
/// line, stdout, stderr, findings in four encodings, a panic message. None
/// of them carries it to the output (at -vv, where plugin output is
/// logged) or to the state store.
#[test]
fn a_validator_cannot_leak_the_secret_it_sees() {
    let sandbox = Sandbox::new();
    setup(&sandbox);
    for ext in ["wasm", "toml"] {
        sandbox.write(
            &format!(".gantry/plugins/leaky-validator.{ext}"),
            std::fs::read(
                gantry_runtime::testing::plugins_dir().join(format!("leaky-validator.{ext}")),
            )
            .unwrap(),
        );
    }
    let path = sandbox.path().join("deployment_config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["config_deploy"] = json!({"validators": ["leaky-validator"]});
    std::fs::write(&path, spec.to_string()).unwrap();

    let cases = [
        ("kJ8s/9dK2\"mQ7 x+P4vL=1nR6", 0),
        ("panic-kJ8s/9dK2\"mQ7 x+P4vL", 1),
    ];
    for (secret, code) in cases {
        let mut args = vec!["-vv"];
        args.extend(deploy_args("production", &["base/auth.json"]));
        let run = config(&sandbox, Some(secret), &args).expect(code);
        let output = format!("{}{}", run.stdout, run.stderr);
        if code == 0 {
            assert!(
                output.contains("leaky-validator") && output.contains("plain ********"),
                "the findings are shown, masked: {output}"
            );
            assert!(output.contains("the secret is ********"), "{output}");
        } else {
            assert!(output.contains("leaking in a panic: ********"), "{output}");
        }
        for form in secret_forms(secret) {
            assert!(!output.contains(&form), "{form:?} leaked: {output}");
            for entry in std::fs::read_dir(sandbox.path().join(".gantry"))
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_file())
            {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                    "{} holds {form:?}",
                    entry.path().display()
                );
            }
        }
    }
}
