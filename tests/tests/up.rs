//! `gantry up`: the README's main job. Deploy, keep hosting (a dead
//! instance is replaced), serve the status page, take a deploy from
//! another gantry while it runs, and stop everything on SIGTERM.

use gantry_tests::auth::{Fixture, free_port};
use gantry_tests::monitor::{get, try_get};
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(child: &mut Child, within: Duration) -> Option<i32> {
    gantry_tests::paused::signal(child, libc::SIGTERM);
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "gantry up did not stop within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_deploys_hosts_replaces_a_dead_instance_takes_a_deploy_and_stops_on_sigterm() {
    let mut f = Fixture::new(2, json!({}));
    let port = free_port();
    f.deployable(json!([{"name": "local", "plugin": "webhook",
                         "settings": {"url": format!("http://127.0.0.1:{port}/v1/inbox")}}]));
    f.config["monitoring"]["api"]["listen"] = json!(format!("127.0.0.1:{port}"));
    f.save();
    let page = format!("http://127.0.0.1:{port}");
    let mut up = f
        .sandbox
        .gantry()
        .args(["up", "-e", "production"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the deployment", Duration::from_secs(60), || {
        let Ok((code, body)) = try_get(&format!("{page}/v1/status")) else {
            return false;
        };
        code == 200
            && serde_json::from_str::<Value>(&body)
                .is_ok_and(|s| s["deployments"][0]["state"] == "succeeded")
    });
    let (code, html) = get(&format!("{page}/"));
    assert_eq!(code, 200);
    for text in [
        "Deployments",
        "succeeded",
        "rollout:auth",
        "Instances",
        "auth-1",
        "Local inbox",
    ] {
        assert!(html.contains(text), "{text} on the page: {html}");
    }
    assert!(
        !f.token().is_empty(),
        "a login against the service up started"
    );
    // The test notice landed in the local inbox, and the page lists it.
    let (_, inbox) = get(&format!("{page}/v1/inbox"));
    assert!(inbox.contains("GantryTestNotice"), "{inbox}");

    // A dead instance is replaced.
    let (_, pid, _) = f.instances()[0].clone();
    // SAFETY: kill(2) on an instance this test's gantry started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until("a replacement", Duration::from_secs(30), || {
        let now = f.instances();
        now.len() == 2 && now.iter().all(|i| i.1 != pid)
    });

    // A deploy from another gantry while up runs.
    f.config["environments"]["production"]["token_expiry_minutes"] = json!(45);
    f.service()["version"] = json!("v2");
    f.save();
    f.gantry(&["deploy", "-e", "production"]).expect(0);
    let versions: Vec<String> = f.instances().into_iter().map(|i| i.2).collect();
    assert_eq!(versions, ["v2", "v2"]);

    // SIGTERM: everything stops, exit 0, nothing left half-done.
    assert_eq!(terminate(&mut up, Duration::from_secs(30)), Some(0));
    assert!(f.instances().is_empty(), "every instance stopped");
    let st = f.gantry(&["status", "--json"]).expect(0);
    let st = st.json();
    assert_eq!(st["deployments"][0]["state"], "succeeded", "{st:#}");
    assert_eq!(st["deployments"][0]["interrupted"], false);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the API is closed"
    );
}

/// The README's main job as a new user runs it (after the build, which
/// the test run has done): the quickstart's own config, unchanged, in a
/// copy laid out like the repository; then a login.
#[test]
fn the_readme_quickstart_runs_gantry_up_on_the_embedded_default() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let command =
        "cargo build && target/debug/gantry --config examples/quickstart/deployment_config.json up";
    assert!(
        readme.contains(command),
        "the README's main command is `{command}`"
    );
    // Make sure the binaries the command runs are fresh.
    let _ = gantry_tests::gantry_bin();
    let _ = gantry_tests::auth_service_bin();

    let home = tempfile::tempdir().unwrap();
    let quickstart = home.path().join("examples/quickstart");
    std::fs::create_dir_all(&quickstart).unwrap();
    for file in ["deployment_config.json", "auth.json", "auth-service.sh"] {
        std::fs::copy(
            root.join("examples/quickstart").join(file),
            quickstart.join(file),
        )
        .unwrap();
    }
    // The quickstart as it is, on ports of the test's own.
    let (api, service) = (
        gantry_tests::auth::free_port(),
        gantry_tests::auth::free_port(),
    );
    let config = std::fs::read_to_string(quickstart.join("deployment_config.json"))
        .unwrap()
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{api}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{service}"));
    std::fs::write(quickstart.join("deployment_config.json"), config).unwrap();
    std::os::unix::fs::symlink(
        gantry_tests::gantry_bin()
            .parent()
            .unwrap()
            .parent()
            .unwrap(),
        home.path().join("target"),
    )
    .unwrap();
    let mut up = std::process::Command::new(home.path().join("target/debug/gantry"))
        .current_dir(home.path())
        .args([
            "--config",
            "examples/quickstart/deployment_config.json",
            "up",
        ])
        .env("GANTRY_CACHE_DIR", home.path().join(".cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stop = scopeguard(&mut up);
    wait_until("the quickstart", Duration::from_secs(90), || {
        let Ok((code, body)) = try_get(&format!("http://127.0.0.1:{api}/v1/status")) else {
            return false;
        };
        code == 200
            && serde_json::from_str::<Value>(&body)
                .is_ok_and(|s| s["deployments"][0]["state"] == "succeeded")
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let login: Value = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{service}/login"))
            .json(&json!({"username": "demo", "password": "demo-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(login["access_token"].is_string(), "{login}");
    assert_eq!(terminate(&mut *stop.0, Duration::from_secs(30)), Some(0));
}

/// Kills the child if the test fails before it stops it.
struct Guard<'a>(&'a mut Child);

fn scopeguard(child: &mut Child) -> Guard<'_> {
    Guard(child)
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            gantry_tests::paused::signal(self.0, libc::SIGTERM);
            let _ = self.0.wait();
        }
    }
}
