//! The host core: leases across hosts on one PostgreSQL state store, the
//! config deploy race, kills during rollbacks, closed pipes, JSON lines,
//! the exit-code table, and a state store newer than the binary.

use gantry_tests::paused;
use gantry_tests::pg::TestDb;
use gantry_tests::{Run, Sandbox};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn write_config(sandbox: &Sandbox, config: &Value) {
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(config).unwrap(),
    );
}

fn run(sandbox: &Sandbox, host: &str, args: &[&str]) -> Run {
    Run::from(
        sandbox
            .gantry()
            .env("GANTRY_HOST", host)
            .args(args)
            .output()
            .unwrap(),
    )
}

#[test]
fn leases_tell_a_running_change_from_an_interrupted_one_across_hosts() {
    let db = TestDb::create("lease");
    let sandbox = Sandbox::new();
    write_config(
        &sandbox,
        &json!({
            "state": {"url": db.url(), "lease_seconds": 2},
            "config_deploy": {"validators": []},
            "environments": {"a": {"x": 2}},
        }),
    );
    sandbox.write("base/one.json", r#"{"x": 1}"#);
    let deploy = |dir: &str| {
        vec![
            "config",
            "deploy",
            "--config-file",
            "base/one.json",
            "--environment",
            "a",
            "--config-dir",
        ]
        .into_iter()
        .map(String::from)
        .chain([dir.to_string()])
        .collect::<Vec<_>>()
    };

    // Host A records its change, then stops itself before writing.
    let mut a = sandbox
        .gantry()
        .env("GANTRY_HOST", "host-a")
        .env("GANTRY_PAUSE_AT", "config:recorded")
        .args(deploy("config-a"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    paused::wait_paused(&mut a, "config:recorded");

    // Within its lease, host B sees A's change running, not interrupted.
    let status = run(&sandbox, "host-b", &["status", "--json"]).expect(0);
    let st = status.json();
    assert_eq!(st["interrupted"], json!([]), "{st:#}");
    assert_eq!(st["running"][0]["running"]["host"], "host-a", "{st:#}");
    assert_eq!(st["running"][0]["state"], "in_progress");
    // So does a command on A's own host: the process lives and the lease holds.
    let same_host = run(&sandbox, "host-a", &["status", "--json"]).expect(0);
    assert_eq!(same_host.json()["interrupted"], json!([]));

    // B deploys its own directory; A's live change is left alone.
    let b_deploy: Vec<String> = deploy("config-b");
    let b_args: Vec<&str> = b_deploy.iter().map(String::as_str).collect();
    run(&sandbox, "host-b", &b_args).expect(0);
    let status = run(&sandbox, "host-b", &["status", "--json"]).expect(0);
    assert_eq!(status.json()["running"][0]["running"]["host"], "host-a");

    // Past the lease, the same change reads as interrupted, on host A.
    std::thread::sleep(Duration::from_millis(3000));
    let status = run(&sandbox, "host-b", &["status"]).expect(1);
    assert!(
        status.stdout.contains("interrupted on host host-a"),
        "{}",
        status.stdout
    );
    let st = run(&sandbox, "host-b", &["status", "--json"])
        .expect(1)
        .json();
    assert_eq!(st["interrupted"][0]["host"], "host-a", "{st:#}");

    // A resumes: nobody took its lease over, so it renews and finishes.
    paused::signal(&a, libc::SIGCONT);
    let out = a.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("config-a/one.json")).unwrap(),
        "{\n  \"x\": 2\n}\n"
    );
    let st = run(&sandbox, "host-b", &["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(st["interrupted"], json!([]));
    assert_eq!(st["running"], json!([]));
}

fn race_setup(sandbox: &Sandbox) {
    write_config(
        sandbox,
        &json!({
            "config_deploy": {"validators": []},
            "environments": {
                "base": {},
                "a": {"one.json": {"v": "a"}},
                "b": {"two.json": {"v": "b"}},
            },
        }),
    );
    sandbox.write("base/one.json", r#"{"v": "base"}"#);
    sandbox.write("base/two.json", r#"{"v": "base"}"#);
}

fn deploy_both(env: &str) -> Vec<String> {
    [
        "config",
        "deploy",
        "--config-file",
        "base/one.json",
        "--config-file",
        "base/two.json",
        "--environment",
        env,
    ]
    .map(String::from)
    .to_vec()
}

fn read_pair(dir: &Path) -> (String, String) {
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["v"]
            .as_str()
            .unwrap()
            .to_string()
    };
    (read("one.json"), read("two.json"))
}

#[test]
fn two_deploys_of_different_environments_end_as_one_whole_or_the_other() {
    let sandbox = Sandbox::new();
    race_setup(&sandbox);
    let config = sandbox.path().join("config");
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..16 {
        // From a state where `a` differs in one.json only and `b` in two.json only.
        sandbox.gantry().args(deploy_both("base")).output().unwrap();
        assert_eq!(read_pair(&config), ("base".into(), "base".into()));
        let spawn = |env: &str| {
            sandbox
                .gantry()
                .args(deploy_both(env))
                .arg("--json")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("a"), spawn("b"));
        let (a, b) = (
            Run::from(a.wait_with_output().unwrap()).expect(0),
            Run::from(b.wait_with_output().unwrap()).expect(0),
        );
        let end = read_pair(&config);
        let whole_a = ("a".to_string(), "base".to_string());
        let whole_b = ("base".to_string(), "b".to_string());
        assert!(
            end == whole_a || end == whole_b,
            "round {round}: a mix of both deploys: {end:?}"
        );
        // Each reports what it changed; the second one to run changed both
        // files (it undid the first), the first only its own.
        let changed = |r: &Run| -> Vec<String> {
            r.json()["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["change"] != "unchanged")
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        };
        let (ca, cb) = (changed(&a), changed(&b));
        let last = if end == whole_a { &ca } else { &cb };
        assert_eq!(last.len(), 2, "round {round}: a={ca:?} b={cb:?}");
        *outcomes
            .entry(if end == whole_a { "a" } else { "b" })
            .or_insert(0) += 1;
    }
    eprintln!("outcomes over 16 rounds: {outcomes:?}");
}

#[test]
fn a_rollback_killed_at_any_moment_leaves_whole_files_and_temp_files_go() {
    let sandbox = Sandbox::new();
    race_setup(&sandbox);
    let config = sandbox.path().join("config");
    let g = |args: &[String]| Run::from(sandbox.gantry().args(args).output().unwrap()).expect(0);
    // One file only: the rollback to this state removes two.json.
    g(&[
        "config",
        "deploy",
        "--config-file",
        "base/one.json",
        "--environment",
        "base",
    ]
    .map(String::from));
    let backup = |sandbox: &Sandbox| {
        Run::from(
            sandbox
                .gantry()
                .args(["config", "list-backups", "--json"])
                .output()
                .unwrap(),
        )
        .expect(0)
        .json()
        .as_array()
        .unwrap()
        .last()
        .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut seed = 0x9e3779b97f4a7c15u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    eprintln!("seed {seed}");
    for round in 0..12 {
        g(&deploy_both("a"));
        let before = backup(&sandbox);
        assert!(config.join("two.json").exists());
        // A temp file a killed writer left behind; the next change removes it.
        std::fs::write(config.join(".gantry-left-behind"), "partial").unwrap();
        let mut child = sandbox
            .gantry()
            .args(["config", "rollback", "--backup-id", &before])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros((seed >> 33) % 120_000));
        paused::signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        // Each file wholly before or after the rollback, or absent exactly
        // where the rollback removes it.
        let one = std::fs::read_to_string(config.join("one.json")).unwrap();
        assert!(
            one.contains("\"a\"") || one.contains("\"base\""),
            "round {round}: {one}"
        );
        if let Ok(two) = std::fs::read_to_string(config.join("two.json")) {
            assert!(two.contains("\"base\""), "round {round}: {two}");
        }
        // Finish it: a rollback to the same backup completes and cleans up.
        g(&["config", "rollback", "--backup-id", &before].map(String::from));
        assert!(!config.join("two.json").exists(), "round {round}");
        let leftovers: Vec<_> = std::fs::read_dir(&config)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".gantry-"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
        Run::from(sandbox.gantry().args(["status"]).output().unwrap()).expect(0);
    }
}

fn many_migrations(sandbox: &Sandbox, n: usize) {
    for i in 1..=n {
        sandbox.write(
            &format!("migrations/{i:04}_t{i}.up.sql"),
            format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY);\n"),
        );
        sandbox.write(
            &format!("migrations/{i:04}_t{i}.down.sql"),
            format!("DROP TABLE t{i};\n"),
        );
    }
}

/// Runs `cmd | head -1` in bash; returns gantry's exit code and stderr.
fn into_head(sandbox: &Sandbox, args: &str) -> (i32, String) {
    let script = format!(
        "{} {args} 2>{err} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        gantry_tests::gantry_bin().display(),
        err = sandbox.path().join("stderr.txt").display(),
    );
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(sandbox.path())
        .env("GANTRY_CACHE_DIR", sandbox.path().join(".cache"))
        .env_remove("GANTRY_CONFIG")
        .env_remove("GANTRY_STATE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let code: i32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let stderr = std::fs::read_to_string(sandbox.path().join("stderr.txt")).unwrap_or_default();
    (code, stderr)
}

#[test]
fn closed_pipes_end_quietly_and_the_work_still_finishes() {
    let sandbox = Sandbox::new();
    many_migrations(&sandbox, 300);
    // Hundreds of event lines into a reader that takes one.
    let (code, stderr) = into_head(&sandbox, "migrate --json");
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let status = sandbox
        .run(&["migrate", "status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["summary"], "up-to-date", "every migration applied");
    for args in ["migrate status", "config history", "migrate status --json"] {
        let (code, stderr) = into_head(&sandbox, args);
        assert_eq!(code, 0, "{args}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args}: {stderr}");
    }
}

#[test]
fn migrate_json_streams_one_event_per_line() {
    let sandbox = Sandbox::new();
    many_migrations(&sandbox, 5);
    let run = sandbox.run(&["migrate", "--json"]).expect(0);
    let lines = run.json_lines();
    let events: Vec<&Value> = lines.iter().filter(|l| l.get("event").is_some()).collect();
    assert_eq!(events[0]["event"], "planned");
    assert!(events.iter().all(|e| e["engine"] == "migrate"));
    assert_eq!(
        events.iter().filter(|e| e["event"] == "finished").count(),
        5
    );
    let result = lines.last().unwrap();
    assert_eq!(result["report"]["done"].as_array().unwrap().len(), 5);
    // Config deploys stream theirs too.
    race_setup(&sandbox);
    let deploy = sandbox
        .gantry()
        .args(deploy_both("a"))
        .arg("--json")
        .output()
        .unwrap();
    let lines = Run::from(deploy).expect(0).json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.get("event").and_then(Value::as_str))
        .collect();
    for wanted in [
        "rendered",
        "locked",
        "backed_up",
        "recorded",
        "wrote",
        "completed",
    ] {
        assert!(kinds.contains(&wanted), "{wanted} missing from {kinds:?}");
    }
}

#[test]
fn exit_codes_follow_the_table() {
    let sandbox = Sandbox::new();
    // 0: success.
    sandbox.run(&["status"]).expect(0);
    // 3: inconclusive (migrations pending).
    sandbox.run(&["migrate", "status"]).expect(3);
    // 1: an unreachable state store, an unreachable database.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("postgres://postgres@127.0.0.1:{port}/x");
    let r = sandbox.run(&["status", "--state-url", &dead]).expect(1);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);
    sandbox
        .run(&["migrate", "status", "--database-url", &dead])
        .expect(1);
    // 2: bad input, nothing changed.
    sandbox.write("bad.json", r#"{"monitoring": {"enabeld": true}}"#);
    let r = sandbox.run(&["--config", "bad.json", "status"]).expect(2);
    assert!(r.stderr.contains("monitoring"), "{}", r.stderr);
    sandbox
        .run(&["status", "--state-url", "mysql://x"])
        .expect(2);
    // 1: a validator plugin that fails (times out) is a failure, not bad input.
    let plugins = sandbox.path().join(".gantry/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for ext in ["wasm", "toml"] {
        std::fs::copy(
            gantry_runtime::testing::plugins_dir().join(format!("stuck-validator.{ext}")),
            plugins.join(format!("stuck-validator.{ext}")),
        )
        .unwrap();
    }
    race_setup(&sandbox);
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("deployment_config.json")).unwrap(),
    )
    .unwrap();
    config["config_deploy"]["validators"] = json!(["stuck-validator"]);
    write_config(&sandbox, &config);
    let r = Run::from(sandbox.gantry().args(deploy_both("a")).output().unwrap()).expect(1);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(!sandbox.path().join("config/one.json").exists());
}

#[test]
fn a_state_store_newer_than_the_binary_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.run(&["status"]).expect(0);
    let db = sandbox.path().join(".gantry/state.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("INSERT INTO gantry_store_schema (version, name, applied_at) VALUES (999, 'future', 'x')")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let r = sandbox.run(&["status"]).expect(2);
    assert!(r.stderr.contains("schema version 999"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("version {}", gantry::store::schema::latest())),
        "{}",
        r.stderr
    );
}

/// A local HTTPS server whose CA only the test knows: trusted through
/// `SSL_CERT_FILE` (the platform's way) and through `--ca-file`, refused
/// without either.
#[test]
fn plugin_https_trusts_the_platform_store_and_an_operator_ca_file() {
    let sandbox = Sandbox::new();
    let ca = gantry_tests::tls::TestCa::new(sandbox.path());
    let port = ca.serve(r#"{"ok": true}"#);
    let url = format!("https://localhost:{port}/health");
    let check = |extra: &[&str], cert_file: Option<&Path>| {
        let mut cmd = sandbox.gantry();
        cmd.args(["plugin", "test", "http-check", "--set"])
            .arg(format!("url={url}"))
            .args(extra);
        match cert_file {
            Some(path) => cmd.env("SSL_CERT_FILE", path),
            None => cmd.env_remove("SSL_CERT_FILE"),
        };
        Run::from(cmd.output().unwrap())
    };
    let refused = check(&[], None).expect(1);
    assert!(
        refused.stdout.contains("CRITICAL")
            && refused.stdout.to_lowercase().contains("certificate"),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    let via_env = check(&[], Some(&ca.ca_pem)).expect(0);
    assert!(via_env.stdout.starts_with("OK"), "{}", via_env.stdout);
    let ca_arg = ca.ca_pem.display().to_string();
    let via_file = check(&["--ca-file", &ca_arg], None).expect(0);
    assert!(via_file.stdout.starts_with("OK"), "{}", via_file.stdout);
    let missing = check(&["--ca-file", "/nonexistent/ca.pem"], None).expect(1);
    assert!(
        missing.stdout.contains("cannot read the CA file"),
        "{}",
        missing.stdout
    );
}

/// gantry's state, the auth database of the embedded default and the
/// directory of backups and the installation key are the owner's alone,
/// from the first run; a wider mode found later is narrowed, and said.
#[test]
fn state_auth_database_and_backups_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let mode = |rel: &str| gantry_tests::mode(&sandbox.path().join(rel));
    sandbox.run(&["migrate"]).expect(0);
    sandbox.run(&["status"]);
    assert_eq!(mode(".gantry"), 0o700);
    assert_eq!(mode(".gantry/auth.db"), 0o600);
    assert_eq!(mode(".gantry/state.db"), 0o600);
    assert_eq!(mode(".gantry/backups"), 0o700);
    assert_eq!(mode(".gantry/backups/.hash-key"), 0o600);
    for (rel, wide) in [
        (".gantry/auth.db", 0o644),
        (".gantry/state.db", 0o666),
        (".gantry/backups", 0o755),
    ] {
        std::fs::set_permissions(
            sandbox.path().join(rel),
            std::fs::Permissions::from_mode(wide),
        )
        .unwrap();
    }
    let run = sandbox.run(&["migrate"]).expect(0);
    sandbox.run(&["status"]);
    assert_eq!(mode(".gantry/auth.db"), 0o600);
    assert_eq!(mode(".gantry/state.db"), 0o600);
    assert_eq!(mode(".gantry/backups"), 0o700);
    assert!(
        run.stderr.contains("narrowed mode 644 to 600"),
        "{}",
        run.stderr
    );
}

/// Takers started together from a barrier, on a row nobody holds (the last
/// holder released it): exactly one holds the lease each round, on both
/// stores. (On PostgreSQL two `INSERT … ON CONFLICT DO UPDATE` used to both
/// win when the row was absent.)
#[test]
fn takers_from_a_barrier_end_with_exactly_one_holder() {
    use gantry::db::DbTarget;
    use gantry::store::Store;
    use std::sync::Arc;
    let db = TestDb::create("leaserace");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("state.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    for url in [db.url(), sqlite] {
        const TAKERS: usize = 6;
        const ROUNDS: usize = 60;
        rt.block_on(async {
            let target = DbTarget::parse(&url).unwrap();
            let mut stores = Vec::new();
            for _ in 0..TAKERS {
                stores.push(Store::open(&target).await.unwrap());
            }
            for round in 0..ROUNDS {
                let barrier = Arc::new(tokio::sync::Barrier::new(TAKERS));
                let takers: Vec<_> = stores
                    .iter()
                    .map(|store| {
                        let store = store.clone();
                        let barrier = Arc::clone(&barrier);
                        tokio::spawn(async move {
                            barrier.wait().await;
                            store
                                .try_lease("deploy:race", "test", Duration::from_secs(15))
                                .await
                        })
                    })
                    .collect();
                let mut held = Vec::new();
                for taker in takers {
                    match taker.await.unwrap() {
                        Ok(lease) => held.push(lease),
                        Err(gantry::store::LeaseError::Held { .. }) => {}
                        Err(other) => panic!("round {round} on {url}: {other}"),
                    }
                }
                assert_eq!(
                    held.len(),
                    1,
                    "round {round} on {url}: {} holders",
                    held.len()
                );
                for lease in held {
                    lease.release().await;
                }
            }
        });
    }
}

/// Two `gantry deploy` of one environment started together on a
/// PostgreSQL state store, 100 rounds: whichever takes the lease stops
/// right after (`GANTRY_PAUSE_AT=deploy:leased`), so the other is sure to
/// try while it is held — and refuses, naming the holder, every round.
#[test]
fn two_deploys_at_once_on_postgres_one_refuses_naming_the_holder_every_round() {
    let state = TestDb::create("deployrace");
    let sandbox = Sandbox::new();
    sandbox.write(
        "base/auth.json",
        r#"{"jwt_secret_key": "x", "token_expiry_minutes": 30, "rate_limiting_enabled": true}"#,
    );
    write_config(
        &sandbox,
        &json!({
            "state": {"url": state.url(), "lease_seconds": 5},
            "config_deploy": {"validators": []},
            "environments": {"production": {"jwt_secret_key": "a-production-secret-of-at-least-32-bytes!"}},
            "deployment": {"config_files": ["base/auth.json"], "verify_seconds": 0},
            "monitoring": {"enabled": false},
        }),
    );
    sandbox.run(&["deploy", "-e", "production"]).expect(0);
    for round in 0..100 {
        let start = || {
            sandbox
                .gantry()
                .env("GANTRY_PAUSE_AT", "deploy:leased")
                .args(["deploy", "-e", "production"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut children = [start(), start()];
        let deadline = Instant::now() + Duration::from_secs(30);
        let (held, refused) = loop {
            let holding: Vec<usize> = (0..2)
                .filter(|&i| paused::is_paused(&children[i]))
                .collect();
            assert!(
                holding.len() < 2,
                "round {round}: both deploys hold the lease"
            );
            let exited: Vec<usize> = (0..2)
                .filter(|&i| children[i].try_wait().unwrap().is_some())
                .collect();
            if holding.len() == 1 && exited.len() == 1 {
                break (holding[0], exited[0]);
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: paused {holding:?}, exited {exited:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut loser = std::mem::replace(&mut children[refused], start());
        let status = loser.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(loser.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "round {round}: {stderr}");
        assert!(
            stderr.contains("another deployment of `production` is running")
                && stderr.contains(&format!("pid {}", children[held].id())),
            "round {round}: {stderr}"
        );
        // The replacement started above is one more taker while it is held.
        let extra = &mut children[refused];
        let status = extra.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(2),
            "round {round}: a third taker got in"
        );
        paused::signal(&children[held], libc::SIGCONT);
        let status = children[held].wait().unwrap();
        assert!(status.success(), "round {round}: the holder did not finish");
    }
}

/// `gantry deploy` with no deployment config (outside `gantry up`'s
/// development default), or of an environment the config does not name,
/// is refused — exit 2, naming where gantry looked — and creates nothing.
#[test]
fn a_deploy_of_nothing_is_refused_and_creates_nothing() {
    let sandbox = Sandbox::new();
    let run = sandbox
        .run(&["deploy", "--environment", "production"])
        .expect(2);
    assert!(
        run.stderr.contains("no deployment config")
            && run.stderr.contains("deployment_config.json")
            && run
                .stderr
                .contains(&sandbox.path().canonicalize().unwrap().display().to_string()),
        "{}",
        run.stderr
    );
    let entries: Vec<_> = std::fs::read_dir(sandbox.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".cache")
        .collect();
    assert!(entries.is_empty(), "{entries:?}");

    write_config(&sandbox, &json!({"environments": {"staging": {}}}));
    let run = sandbox.run(&["deploy", "-e", "production"]).expect(2);
    assert!(
        run.stderr
            .contains("`production` is not one of `environments`")
            && run.stderr.contains("staging"),
        "{}",
        run.stderr
    );
    assert!(!sandbox.path().join(".gantry").exists());
}
