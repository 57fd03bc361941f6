//! Zero-downtime rollouts with real processes and real sockets: the
//! example auth service under the supervised driver, load from this test
//! while instances are replaced, bad versions rolled back, a killed gantry
//! picked up again.

use gantry_tests::auth::Fixture;
use gantry_tests::auth_service_bin;
use gantry_tests::load::Load;
use gantry_tests::paused;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

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

/// A version whose logins fail (500) never gets a request: it waits for its
/// gate on a private address while the front door sends everything to the
/// old instances, then it is stopped. New-connection clients and paced
/// logins are what a shared socket fails here.
#[test]
fn a_version_whose_logins_fail_never_serves_a_request_in_its_gate() {
    use gantry_tests::load::Spec;
    let mut f = Fixture::new(
        3,
        json!({"healthy_deadline_seconds": 3, "progress_deadline_seconds": 6}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let before = f.instances();
    let token = f.token();
    f.service()["version"] = json!("v2-bad-logins");
    f.service()["env"]["AUTH_SERVICE_FAULT"] = json!("fail-login");
    f.save();
    let verify = Load::start_spec(Spec {
        bearer: Some(token),
        new_connections: true,
        ..Spec::get(&f.url("/verify"), 4)
    });
    let logins = Load::start_spec(Spec {
        method: reqwest::Method::POST,
        json: Some(json!({"username": "canary", "password": gantry_tests::auth::CANARY_PASSWORD})),
        new_connections: true,
        pace: Some(Duration::from_millis(20)),
        // Four workers: a login is an argon2 hash, slow when the suite's
        // other tests share the cores; fifty must run during the gate.
        ..Spec::get(&f.url("/login"), 4)
    });
    let run = f.gantry(&["rollout", "auth"]).expect(1);
    let (verify, logins) = (verify.stop(), logins.stop());
    eprintln!(
        "during the gate: {} verifications ({} failed), {} logins ({} failed)",
        verify.ok, verify.failed, logins.ok, logins.failed
    );
    assert_eq!(verify.failed, 0, "{:?}", verify.failures);
    assert_eq!(logins.failed, 0, "{:?}", logins.failures);
    assert!(logins.ok > 50, "paced logins ran: {}", logins.ok);
    assert!(run.stdout.contains("unhealthy"), "{}", run.stdout);
    assert_eq!(f.instances(), before, "the old instances stay");
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
    let mut child = f
        .sandbox
        .gantry()
        .env("GANTRY_PAUSE_AT", "rollout:replaced-one")
        .args(["rollout", "auth"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    paused::wait_paused(&mut child, "rollout:replaced-one");
    paused::signal(&child, libc::SIGKILL);
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

/// Three hosts made by the test: network namespaces joined to this one by
/// veth pairs, each with one instance of the auth service on its own
/// address. Removed (instances and all) on drop.
struct Hosts {
    names: Vec<String>,
    addresses: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    fn new(count: usize) -> Hosts {
        let tag = std::process::id() % 100_000;
        let net = 200 + (std::process::id() % 50);
        let mut hosts = Hosts {
            names: Vec::new(),
            addresses: Vec::new(),
        };
        for n in 1..=count {
            let ns = format!("g{tag}n{n}");
            let (outside, inside) = (format!("g{tag}h{n}"), format!("g{tag}v{n}"));
            ip(&["netns", "add", &ns]);
            hosts.names.push(ns.clone());
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&[
                "addr",
                "add",
                &format!("10.{net}.{n}.1/24"),
                "dev",
                &outside,
            ]);
            ip(&["link", "set", &outside, "up"]);
            ip(&[
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                &format!("10.{net}.{n}.2/24"),
                "dev",
                &inside,
            ]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inside, "up"]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            hosts.addresses.push(format!("10.{net}.{n}.2:8080"));
        }
        hosts
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            // Every process in the namespace, then the namespace (and its veth).
            if let Ok(out) = std::process::Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: kill(2) on a process in a namespace this test made.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

fn version_at(address: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let answer: Value = reqwest::Client::new()
            .get(format!("http://{address}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer["version"].as_str().map(String::from)
    })
}

#[test]
fn the_exec_driver_rolls_three_hosts_and_a_bad_version_on_the_second_rolls_back_the_first() {
    let hosts = Hosts::new(3);
    let mut f = Fixture::new(1, json!({}));
    // The operator's script: starts and stops an instance inside a host.
    // Version v2 is broken on the second host only (say, a host-specific
    // config problem): it never becomes ready there.
    f.sandbox.write(
        "run.sh",
        format!(
            r#"#!/bin/sh
set -e
cd "$(dirname "$0")"
mkdir -p run logs
case "$1" in
start)
  fault=""
  if [ "$4" = "v2" ] && [ "$2" = "{bad}" ]; then fault="unready"; fi
  AUTH_SERVICE_FAULT="$fault" setsid ip netns exec "$2" {bin} --listen "$5" --instance "$3" --version "$4" --drain-ms 100 > "logs/$3.log" 2>&1 < /dev/null &
  echo $! > "run/$3.pid"
  ;;
stop)
  if [ -f "run/$3.pid" ]; then
    pid=$(cat "run/$3.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "run/$3.pid"
  fi
  ;;
esac
"#,
            bad = hosts.names[1],
            bin = auth_service_bin().display()
        ),
    );
    let slots: Vec<Value> = hosts
        .names
        .iter()
        .zip(&hosts.addresses)
        .enumerate()
        .map(|(i, (ns, address))| json!({"name": format!("auth-{}", i + 1), "host": ns, "address": address}))
        .collect();
    *f.service() = json!({
        "driver": "exec",
        "version": "v1",
        "hosts": slots,
        "exec": {
            "start": "sh run.sh start {host} {instance} {version} {address}",
            "stop": "sh run.sh stop {host} {instance} {version} {address}",
            "timeout_seconds": 20
        },
        "health_checks": [{"plugin": "http-check", "settings": {"url": "http://{address}/readyz"}, "period_seconds": 0.1}],
        "rollout": {"min_healthy_time_seconds": 0.3, "healthy_deadline_seconds": 3, "progress_deadline_seconds": 8, "health_check_interval_seconds": 0.1}
    });
    f.save();

    f.gantry(&["rollout", "auth"]).expect(0);
    for address in &hosts.addresses {
        assert_eq!(version_at(address).as_deref(), Some("v1"), "{address}");
    }

    f.service()["version"] = json!("v2");
    f.save();
    let run = f.gantry(&["rollout", "auth"]).expect(1);
    assert!(run.stderr.contains("auth-2"), "{}", run.stderr);
    assert!(run.stdout.contains("rolling back to v1"), "{}", run.stdout);
    // The first host had moved to v2 and is back on v1; the third never moved.
    for address in &hosts.addresses {
        assert_eq!(
            version_at(address).as_deref(),
            Some("v1"),
            "{address}\n{}",
            run.stdout
        );
    }
    let status = f.status();
    assert_eq!(status["last_rollout"]["state"], "rolled_back", "{status:#}");
}

/// Processes of the example service started from `root` (its working
/// directory), with the instance id each carries.
fn service_processes(root: &std::path::Path) -> Vec<(i32, Option<String>)> {
    let root = root.canonicalize().unwrap();
    let exe = auth_service_bin().canonicalize().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let path = entry.path();
        let (Ok(cwd), Ok(bin)) = (
            std::fs::read_link(path.join("cwd")),
            std::fs::read_link(path.join("exe")),
        ) else {
            continue;
        };
        // A zombie reaped a moment later has no exe link: skipped above.
        if !cwd.starts_with(&root) || bin != exe {
            continue;
        }
        let environ = std::fs::read(path.join("environ")).unwrap_or_default();
        // A process exiting between the reads above and this one has
        // released its memory, and its environment reads empty: it is no
        // longer running (a zombie, or gone).
        if environ.is_empty() && !running(&path) {
            continue;
        }
        let id = environ
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"GANTRY_INSTANCE_ID="))
            .map(|v| {
                String::from_utf8_lossy(v)
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            });
        found.push((pid, id));
    }
    found
}

/// True while the process at `/proc/PID` runs (not a zombie, not gone).
fn running(proc_dir: &std::path::Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the command name's closing parenthesis.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X' | 'x') | None)
}

/// The instance ids the state store records, and whether each has its pid.
fn recorded_ids(f: &Fixture) -> Vec<(String, Option<i64>, String)> {
    let url = format!(
        "sqlite://{}",
        f.sandbox.path().join(".gantry/state.db").display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_as("SELECT coalesce(instance_id, ''), pid, state FROM gantry_instances")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    })
}

/// gantry killed with SIGKILL at each rollout stop point — right after an
/// instance's row is committed, right after its process is spawned, after
/// the first replacement — and at random moments: every process of the
/// service then has a row (by the id it carries), and the next rollout
/// ends with exactly the wanted instances, all at the target and gated.
#[test]
fn gantry_killed_anywhere_in_a_rollout_leaves_no_unrecorded_process() {
    let mut f = Fixture::new(
        2,
        json!({"min_healthy_time_seconds": 0.1, "health_check_interval_seconds": 0.05, "grace_period_seconds": 1}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let points = [
        "rollout:recorded-instance",
        "rollout:spawned",
        "rollout:replaced-one",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
    eprintln!("seed {seed}");
    let rounds = points.len() + 47;
    let mut kills_in_gate = 0;
    for round in 0..rounds {
        let version = format!("v{}", round + 2);
        f.service()["version"] = json!(version);
        f.save();
        let mut command = f.sandbox.gantry();
        command
            .args(["rollout", "auth"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(point) = points.get(round) {
            command.env("GANTRY_PAUSE_AT", point);
        }
        let mut child = command.spawn().unwrap();
        if round < points.len() {
            paused::wait_paused(&mut child, &format!("round {round}: {}", points[round]));
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % 1500));
        }
        paused::signal(&child, libc::SIGKILL);
        let _ = child.wait();
        // Every process of the service is known to the store.
        let recorded = recorded_ids(&f);
        if recorded
            .iter()
            .any(|(_, _, state)| state == "starting" || state == "spawning")
        {
            kills_in_gate += 1;
        }
        for (pid, id) in service_processes(f.sandbox.path()) {
            let id =
                id.unwrap_or_else(|| panic!("round {round}: pid {pid} carries no instance id"));
            assert!(
                recorded.iter().any(|(known, _, _)| *known == id),
                "round {round}: pid {pid} ({id}) has no record: {recorded:?}"
            );
        }
        // The next rollout finishes it: exactly two, at the target, gated.
        let run = f.gantry(&["rollout", "auth"]);
        assert_eq!(run.code, 0, "round {round}: {}{}", run.stdout, run.stderr);
        let status = f.status();
        let live: Vec<&Value> = status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["alive"] == true)
            .collect();
        assert_eq!(live.len(), 2, "round {round}: {status:#}");
        for instance in &live {
            assert_eq!(
                instance["version"],
                json!(version),
                "round {round}: {status:#}"
            );
            assert_eq!(instance["state"], "healthy", "round {round}: {status:#}");
        }
        // Whatever the kill left was drained and stopped by that rollout.
        let processes = service_processes(f.sandbox.path());
        assert_eq!(
            processes.len(),
            2,
            "round {round}: {processes:?}\n{status:#}"
        );
    }
    eprintln!("{rounds} kills, {kills_in_gate} with an instance recorded but not yet gated");
    assert!(
        kills_in_gate >= 3,
        "the kills landed in the gate in {kills_in_gate} rounds only"
    );
}

/// A public address something else holds: the rollout (and a deploy's
/// preflight) refuses with exit 2 naming it, and starts nothing.
#[test]
fn an_address_taken_by_something_else_is_refused_before_anything_starts() {
    let f = Fixture::new(1, json!({}));
    let squatter = std::net::TcpListener::bind(format!("127.0.0.1:{}", f.port)).unwrap();
    let run = f.gantry(&["rollout", "auth"]).expect(2);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{}", f.port)) && run.stderr.contains("is taken"),
        "{}",
        run.stderr
    );
    assert!(service_processes(f.sandbox.path()).is_empty());
    assert!(f.instances().is_empty());
    drop(squatter);
    f.gantry(&["rollout", "auth"]).expect(0);
    // Its own front door holds it now: that is no reason to refuse.
    f.gantry(&["rollout", "auth"]).expect(0);
}
