//! `gantry plugin …` end to end: the real binary, real HTTP servers, real
//! plugin crates built with cargo.

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use gantry_tests::http::TestServer;
use gantry_tests::{Sandbox, plugin_cargo};
use std::path::Path;

fn health_server() -> TestServer {
    TestServer::start(
        Router::new()
            .route(
                "/health",
                get(|| async { Json(serde_json::json!({"status": "up", "db": {"ok": true}})) }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                    "slow but fine"
                }),
            ),
    )
}

#[test]
fn list_shows_the_builtins() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["plugin", "list"]).expect(0);
    assert!(run.stdout.contains("http-check"), "{}", run.stdout);
    assert!(run.stdout.contains("tcp-check"), "{}", run.stdout);

    let json = sandbox.run(&["plugin", "list", "--json"]).expect(0).json();
    let http = json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http-check")
        .expect("http-check listed");
    assert_eq!(http["kind"], "health-check");
    assert_eq!(http["status"], "loaded");
    assert_eq!(http["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn list_reports_a_broken_plugin_and_keeps_going() {
    let sandbox = Sandbox::new();
    sandbox.write(".gantry/plugins/broken.wasm", b"\0asm not really");
    sandbox.write(
        ".gantry/plugins/broken.toml",
        "name = \"broken\"\nkind = \"health-check\"\nversion = \"1\"\n",
    );
    sandbox.write(".gantry/plugins/nomanifest.wasm", b"\0asm");
    let json = sandbox.run(&["plugin", "list", "--json"]).expect(0).json();
    let rows = json.as_array().unwrap();
    let broken = rows.iter().find(|p| p["name"] == "broken").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{broken}"
    );
    let nomanifest = rows.iter().find(|p| p["name"] == "nomanifest").unwrap();
    assert!(
        nomanifest["error"]
            .as_str()
            .unwrap()
            .contains("no manifest"),
        "{nomanifest}"
    );
    assert!(
        rows.iter()
            .any(|p| p["name"] == "http-check" && p["status"] == "loaded")
    );
}

#[test]
fn http_check_judges_status_body_json_and_latency() {
    let server = health_server();
    let sandbox = Sandbox::new();
    let url = server.url("/health");

    let ok = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--set",
            &format!("url={url}"),
        ])
        .expect(0);
    assert!(ok.stdout.starts_with("OK: HTTP 200"), "{}", ok.stdout);
    assert!(ok.stdout.contains("time="), "perfdata: {}", ok.stdout);

    sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--target",
            &server.url("/broken"),
        ])
        .expect(1);

    let json = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--json",
            "--set",
            &format!("url={url}"),
            "--set",
            "json_pointer=/db/ok",
            "--set",
            "json_equals=true",
            "--set",
            "body_contains=up",
        ])
        .expect(0)
        .json();
    assert_eq!(json["status"], "ok", "{json}");

    let mismatch = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--json",
            "--set",
            &format!("url={url}"),
            "--set",
            "json_pointer=/status",
            "--set",
            "json_equals=down",
        ])
        .expect(1)
        .json();
    assert!(
        mismatch["message"]
            .as_str()
            .unwrap()
            .contains("expected \\\"down\\\"")
            || mismatch["message"]
                .as_str()
                .unwrap()
                .contains("expected \"down\""),
        "{mismatch}"
    );

    let slow = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--json",
            "--set",
            &format!("url={}", server.url("/slow")),
            "--set",
            "warn_ms=50",
        ])
        .expect(0)
        .json();
    assert_eq!(slow["status"], "warning", "{slow}");
    assert_eq!(slow["metrics"][0]["warn"], 50.0);

    let timeout = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--json",
            "--set",
            &format!("url={}", server.url("/slow")),
            "--set",
            "timeout_ms=20",
        ])
        .expect(1)
        .json();
    assert!(
        timeout["message"].as_str().unwrap().contains("timed out"),
        "{timeout}"
    );
}

#[test]
fn http_check_on_a_closed_port_is_critical() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sandbox = Sandbox::new();
    let run = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--set",
            &format!("url=http://127.0.0.1:{port}/"),
        ])
        .expect(1);
    assert!(run.stdout.starts_with("CRITICAL:"), "{}", run.stdout);
    assert!(run.stdout.contains("cannot connect"), "{}", run.stdout);
}

#[test]
fn tcp_check_measures_connect_latency() {
    let server = health_server();
    let sandbox = Sandbox::new();
    let json = sandbox
        .run(&[
            "plugin",
            "test",
            "tcp-check",
            "--json",
            "--target",
            &server.addr.to_string(),
        ])
        .expect(0)
        .json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["metrics"][0]["name"], "connect");
}

#[test]
fn bad_usage_exits_2_and_names_what_is_wrong() {
    let sandbox = Sandbox::new();
    let unknown_setting = sandbox
        .run(&["plugin", "test", "http-check", "--set", "urll=http://x"])
        .expect(2);
    assert!(
        unknown_setting.stderr.contains("`urll`"),
        "{}",
        unknown_setting.stderr
    );
    assert!(
        unknown_setting.stderr.contains("http-check"),
        "{}",
        unknown_setting.stderr
    );

    let unknown_plugin = sandbox.run(&["plugin", "test", "no-such-plugin"]).expect(2);
    assert!(
        unknown_plugin.stderr.contains("no-such-plugin"),
        "{}",
        unknown_plugin.stderr
    );

    sandbox
        .run(&["plugin", "test", "http-check", "--set", "novalue"])
        .expect(2);

    // An unset url and no target: the check cannot say, exit 3.
    sandbox.run(&["plugin", "test", "http-check"]).expect(3);
}

#[test]
fn a_bad_config_key_names_file_line_and_key() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        "{\n  \"plugins\": {\n    \"dri\": \"x\"\n  }\n}\n",
    );
    let run = sandbox.run(&["plugin", "list"]).expect(2);
    assert!(
        run.stderr.contains("deployment_config.json:3:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("plugins.dri"), "{}", run.stderr);
}

#[test]
fn a_bad_manifest_names_its_line() {
    let sandbox = Sandbox::new();
    std::fs::copy(
        gantry_runtime::testing::test_plugin("trivial"),
        sandbox.path().join("t.wasm"),
    )
    .unwrap();
    sandbox.write(
        "t.toml",
        "name = \"t\"\nkind = \"health-check\"\nversion = \"1\"\n[limits]\ntimeout = 5\n",
    );
    let run = sandbox.run(&["plugin", "test", "t.wasm"]).expect(2);
    assert!(run.stderr.contains("t.toml:5:1"), "{}", run.stderr);
    assert!(run.stderr.contains("timeout"), "{}", run.stderr);
}

#[test]
fn inspect_describes_world_imports_and_manifest() {
    let sandbox = Sandbox::new();
    let wasm = gantry_runtime::testing::test_plugin("hostile");
    let json = sandbox
        .run(&["plugin", "inspect", wasm.to_str().unwrap(), "--json"])
        .expect(0)
        .json();
    assert_eq!(json["world"], "health-check");
    assert_eq!(json["loads"], true);
    let imports: Vec<&str> = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(imports.contains(&"gantry:plugin/http@0.2.0"), "{imports:?}");
    assert_eq!(json["manifest"]["name"], "hostile");

    let mailer = gantry_runtime::testing::test_plugin("mailer");
    let json = sandbox
        .run(&["plugin", "inspect", mailer.to_str().unwrap(), "--json"])
        .expect(0)
        .json();
    assert_eq!(json["world"], "notifier");
    assert_eq!(json["loads"], true, "{json}");
    assert_eq!(json["manifest"]["smtp"], true, "{json}");
}

#[test]
fn a_pinned_sha256_that_does_not_match_refuses_the_plugin() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        format!(
            "{{\"plugins\": {{\"pins\": {{\"http-check\": \"{}\"}}}}}}",
            "ab".repeat(32)
        ),
    );
    let run = sandbox
        .run(&[
            "plugin",
            "test",
            "http-check",
            "--target",
            "http://127.0.0.1:1/",
        ])
        .expect(2);
    assert!(run.stderr.contains("integrity"), "{}", run.stderr);
}

/// A pin covers the component and its manifest: editing the manifest
/// (here, widening its grants) refuses the pinned plugin.
#[test]
fn a_pin_covers_the_manifest_too() {
    let sandbox = Sandbox::new();
    let wasm = sandbox.write(
        ".gantry/plugins/trivial.wasm",
        std::fs::read(gantry_runtime::testing::test_plugin("trivial")).unwrap(),
    );
    let manifest_path = gantry_runtime::testing::plugins_dir().join("trivial.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    sandbox.write(".gantry/plugins/trivial.toml", &manifest);
    let info = sandbox
        .run(&["--json", "plugin", "inspect", wasm.to_str().unwrap()])
        .expect(0)
        .json();
    let pin = info["pin"]
        .as_str()
        .expect("inspect prints the pin")
        .to_string();
    let component_only = info["sha256"].as_str().unwrap().to_string();
    assert_ne!(pin, component_only);
    let text = sandbox
        .run(&["plugin", "inspect", wasm.to_str().unwrap()])
        .expect(0);
    assert!(
        text.stdout.contains(&format!("pin: {pin}")),
        "{}",
        text.stdout
    );

    let pinned = |value: &str| {
        sandbox.write(
            "deployment_config.json",
            format!("{{\"plugins\": {{\"pins\": {{\"trivial\": \"{value}\"}}}}}}"),
        );
        sandbox.run(&["plugin", "test", "trivial"])
    };
    pinned(&pin).expect(0);

    // The component's own sha256 is not the pin.
    let run = pinned(&component_only).expect(2);
    assert!(run.stderr.contains("operator's pin"), "{}", run.stderr);

    // A widened manifest under the same pin is refused.
    sandbox.write(
        ".gantry/plugins/trivial.toml",
        format!("{manifest}\n[capabilities]\nhttp = [\"https://anywhere.example:443\"]\n"),
    );
    let run = pinned(&pin).expect(2);
    assert!(
        run.stderr.contains("integrity") && run.stderr.contains(&pin),
        "{}",
        run.stderr
    );
}

fn build_plugin_crate(dir: &Path) {
    let out = plugin_cargo(dir)
        .args(["build", "--target", "wasm32-wasip2", "--release", "--quiet"])
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_scaffolded_plugin_builds_and_runs() {
    let server = health_server();
    let sandbox = Sandbox::new();
    sandbox
        .run(&["plugin", "new", "health-check", "my-check"])
        .expect(0);
    let dir = sandbox.path().join("my-check");
    assert!(dir.join("my-check.toml").is_file());
    let built = Run_in(&sandbox, &["plugin", "build", "my-check"]).expect(0);
    assert!(
        built.stdout.contains("built my-check (Rust health-check)"),
        "{}",
        built.stdout
    );

    let run = Run_in(
        &sandbox,
        &[
            "plugin",
            "test",
            "my-check",
            "--set",
            &format!("url={}", server.url("/health")),
        ],
    );
    let run = run.expect(0);
    assert!(run.stdout.starts_with("OK:"), "{}", run.stdout);

    // The same crate, pointed at a broken endpoint, says critical.
    Run_in(
        &sandbox,
        &[
            "plugin",
            "test",
            "my-check",
            "--target",
            &server.url("/broken"),
        ],
    )
    .expect(1);

    // A second scaffold into the same place is refused, nothing touched.
    let again = sandbox
        .run(&["plugin", "new", "notifier", "my-check"])
        .expect(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

/// Runs gantry with the plugin cargo target dir, so `plugin test DIR` finds
/// the component where the test built it.
#[expect(non_snake_case, reason = "reads like the helper it wraps")]
fn Run_in(sandbox: &Sandbox, args: &[&str]) -> gantry_tests::Run {
    gantry_tests::Run::from(
        sandbox
            .gantry()
            .env("CARGO_TARGET_DIR", gantry_tests::plugin_target_dir())
            .args(args)
            .output()
            .expect("run gantry"),
    )
}

#[test]
fn a_vendored_notifier_scaffold_builds_and_delivers() {
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(tx));
    let receiver = TestServer::start(Router::new().route(
        "/hook",
        post(move |Json(body): Json<serde_json::Value>| {
            let tx = std::sync::Arc::clone(&tx);
            async move {
                tx.lock().unwrap().send(body).unwrap();
                StatusCode::NO_CONTENT
            }
        }),
    ));
    let sandbox = Sandbox::new();
    sandbox
        .run(&["plugin", "new", "notifier", "my-notifier", "--vendor-sdk"])
        .expect(0);
    let dir = sandbox.path().join("my-notifier");
    assert!(
        dir.join("gantry-plugin/wit/plugin.wit").is_file(),
        "the SDK is vendored"
    );
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("path = \"gantry-plugin\""),
        "{cargo_toml}"
    );
    build_plugin_crate(&dir);

    let run = Run_in(
        &sandbox,
        &[
            "plugin",
            "test",
            "my-notifier",
            "--set",
            &format!("url={}", receiver.url("/hook")),
        ],
    )
    .expect(0);
    assert!(run.stdout.starts_with("DELIVERED"), "{}", run.stdout);
    let body = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the receiver got the alert");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["test"], true);
    assert_eq!(body["alerts"][0]["name"], "GantryPluginTest");
}

#[test]
fn the_example_plugin_logs_in_and_verifies_its_token() {
    async fn login(Json(body): Json<serde_json::Value>) -> (StatusCode, Json<serde_json::Value>) {
        if body["username"] == "probe" && body["password"] == "s3cret-probe" {
            (
                StatusCode::OK,
                Json(serde_json::json!({"access_token": "tok-123"})),
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "bad credentials"})),
            )
        }
    }
    async fn me(headers: HeaderMap) -> StatusCode {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer tok-123") => StatusCode::OK,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
    let server = TestServer::start(
        Router::new()
            .route("/login", post(login))
            .route("/me", get(me)),
    );
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/custom-health-check");
    build_plugin_crate(&example);
    let sandbox = Sandbox::new();
    let example = example.to_str().unwrap();
    let url = format!("url={}", server.url("/login"));
    let verify = format!("verify_url={}", server.url("/me"));

    let ok = Run_in(
        &sandbox,
        &[
            "plugin",
            "test",
            example,
            "--set",
            &url,
            "--set",
            "username=probe",
            "--set",
            "password=s3cret-probe",
            "--set",
            &verify,
        ],
    )
    .expect(0);
    assert!(ok.stdout.contains("probe logged in"), "{}", ok.stdout);
    assert!(!ok.stdout.contains("s3cret-probe") && !ok.stderr.contains("s3cret-probe"));
    assert!(!ok.stdout.contains("tok-123"));

    let refused = Run_in(
        &sandbox,
        &[
            "plugin",
            "test",
            example,
            "--set",
            &url,
            "--set",
            "username=probe",
            "--set",
            "password=wrong",
        ],
    )
    .expect(1);
    assert!(refused.stdout.contains("401"), "{}", refused.stdout);
}

/// `plugins.grants.NAME` in the deployment config: `plugin inspect NAME`
/// shows manifest, operator and effective grants side by side, and a grant
/// wider than the manifest refuses the plugin (exit 2, naming the key).
#[test]
fn operator_grants_are_shown_and_wider_ones_refused() {
    let sandbox = Sandbox::new();
    sandbox.write(
        ".gantry/plugins/hostile.wasm",
        std::fs::read(gantry_runtime::testing::test_plugin("hostile")).unwrap(),
    );
    sandbox.write(
        ".gantry/plugins/hostile.toml",
        std::fs::read_to_string(gantry_runtime::testing::plugins_dir().join("hostile.toml"))
            .unwrap(),
    );
    sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"grants": {"hostile": {"http": ["http://127.0.0.1:9"], "limits": {"timeout_ms": 300}}}}}"#,
    );
    let shown = sandbox.run(&["plugin", "inspect", "hostile"]).expect(0);
    let row = |name: &str| {
        shown
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {}", shown.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        shown.stdout.contains("operator (plugins.grants)"),
        "{}",
        shown.stdout
    );
    assert_eq!(row("timeout"), "timeout 500 ms 300 ms 300 ms");
    assert_eq!(
        row("http "),
        "http {allowed}, {also} http://127.0.0.1:9 http://127.0.0.1:9"
    );
    let json = sandbox
        .run(&["--json", "plugin", "inspect", "hostile"])
        .expect(0)
        .json();
    assert_eq!(json["effective"]["timeout_ms"], 300);
    assert_eq!(json["operator"]["http"][0], "http://127.0.0.1:9");

    sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"grants": {"hostile": {"limits": {"timeout_ms": 60000}}}}}"#,
    );
    let run = sandbox
        .run(&["plugin", "test", "hostile", "--set", "mode=loop"])
        .expect(2);
    assert!(
        run.stderr
            .contains("plugins.grants.hostile.limits.timeout_ms")
            && run.stderr.contains("above the manifest's 500"),
        "{}",
        run.stderr
    );
}

/// `plugin test` prints a bounded result, not megabytes.
#[test]
fn plugin_test_prints_a_bounded_result() {
    let sandbox = Sandbox::new();
    let wasm = gantry_runtime::testing::test_plugin("hostile");
    let run = sandbox
        .run(&[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--set",
            "mode=huge",
        ])
        .expect(0);
    assert!(run.stdout.len() < 16 << 10, "{} bytes", run.stdout.len());
    assert!(
        run.stdout.contains("[cut 49936 metrics]"),
        "{}",
        &run.stdout[..200]
    );
}

/// A pin or grant under a name no plugin has is pointed out by `plugin
/// list` (a typo would otherwise silently do nothing).
#[test]
fn plugin_list_points_out_pins_and_grants_that_match_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"pins": {"http-chek": "00"}, "grants": {"http-check": {"smtp": false}, "webhok": {}}}}"#,
    );
    let run = sandbox.run(&["plugin", "list"]).expect(0);
    assert!(
        run.stderr
            .contains("plugins.pins.http-chek names no plugin here")
            && run
                .stderr
                .contains("plugins.grants.webhok names no plugin here"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("plugins.grants.http-check "),
        "{}",
        run.stderr
    );
}

/// A built-in is inspected by name too, with the operator's grants.
#[test]
fn a_builtin_is_inspected_by_name_with_its_operator_grants() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "deployment_config.json",
        r#"{"plugins": {"grants": {"http-check": {"limits": {"timeout_ms": 2000}}}}}"#,
    );
    let json = sandbox
        .run(&["--json", "plugin", "inspect", "http-check"])
        .expect(0)
        .json();
    assert_eq!(json["world"], "health-check");
    assert_eq!(json["manifest"]["timeout_ms"], 30000);
    assert_eq!(json["effective"]["timeout_ms"], 2000);
    assert_eq!(json["loads"], true);
    sandbox
        .run(&["plugin", "inspect", "no-such-plugin"])
        .expect(2);
}

/// A plugin's text cannot repaint the operator's terminal or forge
/// gantry's lines: ANSI escapes, carriage returns and bidi overrides are
/// shown escaped, a one-line field's newlines too; `--json` keeps the text.
#[test]
fn a_plugins_text_cannot_repaint_the_terminal_or_forge_lines() {
    let sandbox = Sandbox::new();
    sandbox.write(
        ".gantry/plugins/hostile.wasm",
        std::fs::read(gantry_runtime::testing::test_plugin("hostile")).unwrap(),
    );
    sandbox.write(
        ".gantry/plugins/hostile.toml",
        std::fs::read_to_string(gantry_runtime::testing::plugins_dir().join("hostile.toml"))
            .unwrap(),
    );
    let run = sandbox
        .gantry()
        .env("RUST_LOG", "gantry=info")
        .args(["-v", "plugin", "test", "hostile", "--set", "mode=paint"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains('\u{1b}'), "ESC on {name}: {text:?}");
        assert!(!text.contains('\r'), "CR on {name}: {text:?}");
        assert!(
            !text.contains('\u{202e}'),
            "bidi override on {name}: {text:?}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("OK: all good")
                    || l.trim_start()
                        .starts_with("INFO gantry: deployment succeeded")
                    || l.trim_start().starts_with("forged=1")),
            "a forged line on {name}: {text}"
        );
    }
    assert!(
        stdout.contains("CRITICAL: database down\\r\\u{1b}[2K"),
        "{stdout}"
    );
    // JSON keeps the text, escaped by JSON.
    let json = sandbox
        .run(&["--json", "plugin", "test", "hostile", "--set", "mode=paint"])
        .json();
    assert!(
        json.to_string().contains("database down\\r\\u001b[2K"),
        "{json}"
    );
}
