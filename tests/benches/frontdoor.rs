//! The front door, measured, with the release builds of gantry and the
//! example auth service:
//!
//!   cargo build --release -p gantry -p auth-service
//!   cargo bench -p gantry-tests --bench frontdoor
//!
//! - throughput and latency of `GET /healthz` with wrk (keep-alive) straight
//!   to one instance, through gantry's front door, and through nginx
//!   (Debian's nginx-light) configured as the same reverse proxy to the
//!   same instance; goal: the front door at or above nginx's req/s with a
//!   p99 no worse;
//! - a roll of 3 instances under ≥ 2,000 req/s of new-connection clients:
//!   failed requests (goal 0) and p99 during the roll against steady (goal
//!   ≤ 2×);
//! - an upgrade of the front door (a new gantry binary) under the same
//!   load: refused or failed requests (goal 0);
//! - a kill -9 of the front door: the outage until the next command has it
//!   back, as clients see it.
//!
//! Exits 1 when a goal is missed. Needs wrk and nginx on the PATH.

use gantry_tests::auth::Fixture;
use gantry_tests::load::{Load, Spec};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Wrk {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn wrk(url: &str) -> Wrk {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d8s", "--latency", url])
        .output()
        .expect("wrk (Debian's package) on the PATH");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim_start()[prefix.len()..].trim().to_string())
    };
    let ms = |value: String| -> f64 {
        let value = value.split_whitespace().next().unwrap_or("0").to_string();
        if let Some(v) = value.strip_suffix("us") {
            v.parse::<f64>().unwrap_or(0.0) / 1000.0
        } else if let Some(v) = value.strip_suffix("ms") {
            v.parse().unwrap_or(0.0)
        } else if let Some(v) = value.strip_suffix('s') {
            v.parse::<f64>().unwrap_or(0.0) * 1000.0
        } else {
            0.0
        }
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .flat_map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
        })
        .sum();
    Wrk {
        per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map(ms).unwrap_or(0.0),
        p99_ms: field("99%").map(ms).unwrap_or(0.0),
        errors,
    }
}

fn print(name: &str, w: &Wrk) {
    println!(
        "{name:<34} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
        w.per_second, w.p50_ms, w.p99_ms, w.errors
    );
}

fn main() {
    gantry_tests::require_release_bins();
    let mut missed = Vec::new();
    let mut f = Fixture::new(
        3,
        json!({"min_healthy_time_seconds": 0.5, "health_check_interval_seconds": 0.05}),
    );
    f.gantry(&["rollout", "auth"]).expect(0);
    let status = f.status();
    let instance = status["instances"][0]["health_address"]
        .as_str()
        .unwrap()
        .to_string();

    // The same instance three ways.
    let direct = wrk(&format!("http://{instance}/healthz"));
    print("straight to one instance", &direct);
    // The front door spreads over three; for the same comparison, one.
    let front = wrk(&f.url("/healthz"));
    print("through the front door (3 instances)", &front);
    let dir = tempfile::tempdir().unwrap();
    let nginx_port = gantry_tests::auth::free_port();
    let upstreams: Vec<String> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("server {};", i["health_address"].as_str().unwrap()))
        .collect();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "worker_processes 2;\npid {pid};\nerror_log {err};\ndaemon off;\nevents {{ worker_connections 4096; }}\n\
             http {{ access_log off; upstream auth {{ {ups} keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://auth; proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\"; proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; }} }} }}\n",
            pid = dir.path().join("nginx.pid").display(),
            err = dir.path().join("error.log").display(),
            ups = upstreams.join(" "),
        ),
    )
    .unwrap();
    let mut nginx = Command::new("nginx")
        .args(["-p", dir.path().to_str().unwrap(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (Debian's nginx-light) on the PATH");
    std::thread::sleep(Duration::from_millis(500));
    let proxied = wrk(&format!("http://127.0.0.1:{nginx_port}/healthz"));
    print("through nginx (3 instances)", &proxied);
    let _ = nginx.kill();
    let _ = nginx.wait();
    if front.per_second < proxied.per_second || front.p99_ms > proxied.p99_ms {
        missed.push(format!(
            "front door {:.0} req/s p99 {:.2} ms vs nginx {:.0} req/s p99 {:.2} ms",
            front.per_second, front.p99_ms, proxied.per_second, proxied.p99_ms
        ));
    }

    // A roll under new-connection load.
    let token = f.token();
    let verify_url = f.url("/verify");
    let load = || {
        Load::start_spec(Spec {
            bearer: Some(token.clone()),
            new_connections: true,
            ..Spec::get(&verify_url, 8)
        })
    };
    let steady = load();
    std::thread::sleep(Duration::from_secs(3));
    let steady = steady.stop();
    f.service()["version"] = json!("v2");
    f.save();
    let during = load();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    f.gantry(&["rollout", "auth"]).expect(0);
    let rolled = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let during = during.stop();
    println!(
        "roll of 3 under new-connection load: {rolled:.1?}; steady {:.0} req/s p99 {:.2} ms; during {:.0} req/s p99 {:.2} ms, {} failed",
        steady.per_second, steady.p99_ms, during.per_second, during.p99_ms, during.failed
    );
    if during.failed > 0 {
        missed.push(format!(
            "{} failed during the roll: {:?}",
            during.failed, during.failures
        ));
    }
    if during.per_second < 2000.0 {
        missed.push(format!(
            "the load was {:.0} req/s, not ≥ 2,000",
            during.per_second
        ));
    }
    if during.p99_ms > 2.0 * steady.p99_ms {
        missed.push(format!(
            "p99 during the roll {:.2} ms > 2 × steady {:.2} ms",
            during.p99_ms, steady.p99_ms
        ));
    }

    // An upgrade of the front door: a new binary (its mtime moves).
    let before = f.gantry(&["front-door", "status", "--json"]).json();
    let old_pid = before[0]["front_door"]["pid"].as_i64().unwrap();
    let upgrade = load();
    std::thread::sleep(Duration::from_millis(500));
    let exe = gantry_tests::gantry_bin();
    // Read-only: a running binary cannot be opened for writing.
    let file = std::fs::File::open(&exe).unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    f.gantry(&["rollout", "auth"]).expect(0);
    std::thread::sleep(Duration::from_millis(1500));
    let upgrade = upgrade.stop();
    let after = f.gantry(&["front-door", "status", "--json"]).json();
    let new_pid = after[0]["front_door"]["pid"].as_i64().unwrap();
    println!(
        "front door upgrade (pid {old_pid} → {new_pid}) under load: {} ok, {} failed",
        upgrade.ok, upgrade.failed
    );
    if new_pid == old_pid {
        missed.push("the front door was not upgraded".into());
    }
    if upgrade.failed > 0 {
        missed.push(format!(
            "{} failed across the upgrade: {:?}",
            upgrade.failed, upgrade.failures
        ));
    }

    // A kill -9 of the front door, then the next command.
    let outage_load = load();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the front door this benchmark's fixture started.
    unsafe { libc::kill(new_pid as i32, libc::SIGKILL) };
    let killed = Instant::now();
    f.gantry(&["rollout", "auth"]).expect(0);
    let back_after_command = killed.elapsed();
    let mut served = false;
    while killed.elapsed() < Duration::from_secs(10) {
        if reqwest::blocking_get_ok(&f.url("/healthz")) {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let outage = killed.elapsed();
    let outage_load = outage_load.stop();
    println!(
        "kill -9 of the front door: served again after {outage:.2?} (the next `gantry rollout` took {back_after_command:.2?}); {} requests failed meanwhile",
        outage_load.failed
    );
    if !served {
        missed.push("the front door did not come back".into());
    }
    f.sandbox.kill_processes();
    if !missed.is_empty() {
        for m in &missed {
            eprintln!("MISSED: {m}");
        }
        std::process::exit(1);
    }
}

mod reqwest {
    /// One GET on a new connection: true on a 200.
    pub fn blocking_get_ok(url: &str) -> bool {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut stream) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }
}
