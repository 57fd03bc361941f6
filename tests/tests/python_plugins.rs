//! Plugins written in Python: `gantry plugin new --lang python`, `gantry
//! plugin build` with componentize-py, and `gantry plugin test` against
//! real servers on 127.0.0.1 — and a hostile Python guest that the sandbox
//! holds as it holds a Rust one.
//!
//! The three components (about 18 MB each, ~20 s of componentize-py each)
//! are built once for the whole binary, side by side.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use gantry::plugin_build::COMPONENTIZE_PY_VERSION;
use gantry_tests::http::TestServer;
use gantry_tests::python::path_with_componentize_py;
use gantry_tests::{Run, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Built {
    /// Holds the folders for the binary's life.
    sandbox: Sandbox,
    check: PathBuf,
    notifier: PathBuf,
    hostile: PathBuf,
}

/// The built folders; a failed build fails every test with its message
/// (once: a panic inside `get_or_init` would rebuild for each test).
fn built() -> &'static Built {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        std::panic::catch_unwind(build_all).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the build panicked".into())
        })
    });
    match built {
        Ok(built) => built,
        Err(why) => panic!("building the Python plugins failed: {why}"),
    }
}

fn build_all() -> Built {
    {
        let path = path_with_componentize_py();
        let sandbox = Sandbox::new();
        sandbox
            .run(&[
                "plugin",
                "new",
                "--lang",
                "python",
                "health-check",
                "py-check",
            ])
            .expect(0);
        sandbox
            .run(&[
                "plugin",
                "new",
                "--lang",
                "python",
                "notifier",
                "py-notifier",
            ])
            .expect(0);
        let hostile = sandbox.path().join("hostile-py");
        gantry_tests::copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("python/hostile"),
            &hostile,
        );
        let folders = [
            sandbox.path().join("py-check"),
            sandbox.path().join("py-notifier"),
            hostile,
        ];
        std::thread::scope(|s| {
            for dir in &folders {
                let sandbox = &sandbox;
                s.spawn(move || {
                    let run = Run::from(
                        sandbox
                            .gantry()
                            .env("PATH", path)
                            .args(["plugin", "build"])
                            .arg(dir)
                            .output()
                            .expect("run gantry"),
                    );
                    run.expect(0);
                });
            }
        });
        let [check, notifier, hostile] = folders;
        Built {
            sandbox,
            check,
            notifier,
            hostile,
        }
    }
}

/// `gantry plugin test DIR args...` in the build sandbox.
fn plugin_test(dir: &Path, args: &[&str]) -> Run {
    let b = built();
    let mut cmd = b.sandbox.gantry();
    cmd.args(["plugin", "test"]).arg(dir).args(args);
    Run::from(cmd.output().expect("run gantry"))
}

fn health_server() -> TestServer {
    TestServer::start(
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow but ok"
                }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }),
            ),
    )
}

#[test]
fn the_scaffold_carries_the_contract_and_says_how_to_build() {
    let dir = &built().check;
    let wit = std::fs::read_to_string(dir.join("wit/plugin.wit")).unwrap();
    let ours =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/plugin.wit"))
            .unwrap();
    assert_eq!(wit, ours, "the folder's WIT is the contract gantry embeds");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for needed in [
        &format!("pip install componentize-py=={COMPONENTIZE_PY_VERSION}"),
        "gantry plugin build .",
        "gantry plugin test .",
    ] {
        assert!(readme.contains(needed), "README lacks {needed}");
    }
    assert!(
        dir.join("py-check.wasm").is_file(),
        "built beside its manifest"
    );
    assert!(!dir.join("py-check.wasm.partial").exists());
}

#[test]
fn a_python_health_check_says_ok_warning_critical_and_unknown() {
    let server = health_server();
    let dir = &built().check;

    let run = plugin_test(dir, &["--set", &format!("url={}", server.url("/health"))]).expect(0);
    assert!(run.stdout.starts_with("OK:"), "{}", run.stdout);
    assert!(run.stdout.contains("answered 200"), "{}", run.stdout);
    assert!(run.stdout.contains("time="), "perfdata: {}", run.stdout);

    let run = plugin_test(
        dir,
        &[
            "--set",
            &format!("url={}", server.url("/slow")),
            "--set",
            "warn_ms=100",
        ],
    )
    .expect(0);
    assert!(run.stdout.starts_with("WARNING:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("warning above 100 ms"),
        "{}",
        run.stdout
    );

    // The target is the URL when `url` is not set.
    let run = plugin_test(dir, &["--target", &server.url("/broken")]).expect(1);
    assert!(run.stdout.starts_with("CRITICAL:"), "{}", run.stdout);
    assert!(run.stdout.contains("answered 500"), "{}", run.stdout);

    let run = plugin_test(dir, &["--set", "url=http://127.0.0.1:1/health"]).expect(1);
    assert!(run.stdout.starts_with("CRITICAL:"), "{}", run.stdout);
    assert!(run.stdout.contains("transport"), "{}", run.stdout);

    let run = plugin_test(dir, &[]).expect(3);
    assert!(run.stdout.starts_with("UNKNOWN:"), "{}", run.stdout);
}

#[test]
fn a_python_notifier_delivers_to_a_webhook_receiver() {
    let (tx, rx) = std::sync::mpsc::channel::<(Option<String>, serde_json::Value)>();
    let tx = Arc::new(Mutex::new(tx));
    let receiver = TestServer::start(
        Router::new()
            .route(
                "/hook",
                post(
                    move |headers: axum::http::HeaderMap,
                          axum::Json(body): axum::Json<serde_json::Value>| {
                        let tx = Arc::clone(&tx);
                        async move {
                            let key = headers
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            tx.lock().unwrap().send((key, body)).unwrap();
                            StatusCode::NO_CONTENT
                        }
                    },
                ),
            )
            .route(
                "/busy",
                post(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "7")],
                        "busy",
                    )
                }),
            )
            .route(
                "/gone",
                post(|| async { (StatusCode::NOT_FOUND, "no such hook") }),
            ),
    );
    let dir = &built().notifier;

    let run = plugin_test(dir, &["--set", &format!("url={}", receiver.url("/hook"))]).expect(0);
    assert!(run.stdout.starts_with("DELIVERED"), "{}", run.stdout);
    let (key, body) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the receiver got the notice");
    assert!(key.is_some_and(|k| !k.is_empty()), "idempotency key sent");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["test"], true);
    assert_eq!(body["alerts"][0]["name"], "GantryPluginTest");

    let run = plugin_test(dir, &["--set", &format!("url={}", receiver.url("/busy"))]).expect(1);
    assert!(run.stdout.contains("retry"), "{}", run.stdout);
    assert!(
        run.stdout.contains("7"),
        "retry-after carried: {}",
        run.stdout
    );

    let run = plugin_test(dir, &["--set", &format!("url={}", receiver.url("/gone"))]).expect(1);
    assert!(run.stdout.contains("answered 404"), "{}", run.stdout);
}

/// A listener that counts connections, to prove a denial never connects.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

fn hostile(mode: &str, extra: &[&str]) -> (Run, Duration) {
    let mut args = vec!["--set".to_string(), format!("mode={mode}")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = &built().hostile;
    let started = Instant::now();
    let run = plugin_test(dir, &args);
    (run, started.elapsed())
}

/// The hostile guest in `mode` is reported as timed out, its call over
/// within the 1.5 s limit plus 100 ms.
fn assert_times_out_on_time(mode: &str) {
    let (run, took) = hostile(mode, &[]);
    let run = run.expect(1);
    assert!(
        run.stderr.contains("timed out after 1.5s"),
        "{mode}: {}",
        run.stderr
    );
    // The report's "(hostile-py 0.1.0 from …, 1503.2 ms)" line.
    let call_ms: f64 = run
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("(hostile-py "))
        .and_then(|l| l.rsplit_once(", "))
        .and_then(|(_, ms)| ms.trim().strip_suffix(" ms)"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{mode}: no call time in {:?}", run.stderr));
    assert!(
        call_ms < 1600.0,
        "{mode}: the call took {call_ms} ms, limit 1500 + 100"
    );
    assert!(took < Duration::from_secs(10), "{mode}: took {took:?}");
}

#[test]
fn a_python_loop_times_out_at_its_limit() {
    assert_times_out_on_time("loop");
}

/// `time.sleep` blocks in a WASI poll, where epoch interruption cannot
/// reach; the wait itself ends at the deadline.
#[test]
fn a_python_sleep_ends_at_its_deadline() {
    assert_times_out_on_time("sleep");
}

#[test]
fn a_python_allocation_without_end_is_out_of_memory() {
    let (run, _) = hostile("hog", &[]);
    let run = run.expect(1);
    assert!(
        run.stderr.contains("ran out of memory (limit 64 MiB)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_python_exception_is_a_trap_with_the_traceback() {
    let (run, _) = hostile("raise", &["--set", "url=the-thing"]);
    let run = run.expect(1);
    assert!(run.stderr.contains("trapped"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ValueError: hostile plugin raised on purpose about the-thing"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("in explode"),
        "the traceback's frames: {}",
        run.stderr
    );
}

#[test]
fn a_python_fetch_of_an_ungranted_url_is_denied_without_a_connection() {
    let (port, connections) = counting_listener();
    let allowed = health_server();
    let (run, _) = hostile(
        "fetch",
        &[
            "--set",
            &format!("url=http://127.0.0.1:{port}/secret"),
            "--set",
            &format!("allowed={}", allowed.url("")),
        ],
    );
    let run = run.expect(1);
    assert!(run.stdout.contains("error:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("not in the allowlist"),
        "{}",
        run.stdout
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection made");

    // The granted origin is reachable from the same guest.
    let (run, _) = hostile(
        "fetch",
        &[
            "--set",
            &format!("url={}", allowed.url("/health")),
            "--set",
            &format!("allowed={}", allowed.url("")),
        ],
    );
    let run = run.expect(0);
    assert!(run.stdout.contains("status 200"), "{}", run.stdout);
}

#[test]
fn a_python_guest_sees_no_file_env_or_socket() {
    let (port, connections) = counting_listener();
    let (run, _) = hostile("snoop", &["--set", &format!("connect=127.0.0.1:{port}")]);
    let run = run.expect(0);
    assert!(run.stdout.contains("nothing opened"), "{}", run.stdout);
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[test]
fn build_without_componentize_py_names_the_install_and_writes_nothing() {
    let sandbox = Sandbox::new();
    sandbox
        .run(&[
            "plugin",
            "new",
            "--lang",
            "python",
            "health-check",
            "lonely",
        ])
        .expect(0);
    let run = Run::from(
        sandbox
            .gantry()
            .env("PATH", "/nonexistent")
            .args(["plugin", "build", "lonely"])
            .output()
            .expect("run gantry"),
    )
    .expect(2);
    assert!(
        run.stderr.contains(&format!(
            "pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
        )),
        "{}",
        run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(sandbox.path().join("lonely"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm") || n.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Testing it before it is built says how to build it.
    let run = sandbox.run(&["plugin", "test", "lonely"]).expect(2);
    assert!(
        run.stderr.contains("gantry plugin build lonely"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_python_syntax_error_fails_the_build_naming_the_line() {
    let sandbox = Sandbox::new();
    sandbox
        .run(&["plugin", "new", "--lang", "python", "notifier", "broken"])
        .expect(0);
    let app = sandbox.path().join("broken/app.py");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, text.replace("def state(", "def state(:")).unwrap();
    let run = Run::from(
        sandbox
            .gantry()
            .env("PATH", path_with_componentize_py())
            .args(["plugin", "build", "broken"])
            .output()
            .expect("run gantry"),
    )
    .expect(2);
    assert!(
        run.stderr.contains("componentize-py failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("app.py"), "{}", run.stderr);
    assert!(run.stderr.contains("SyntaxError"), "{}", run.stderr);
    assert!(!sandbox.path().join("broken/broken.wasm").exists());
}

#[test]
fn install_puts_the_component_where_the_plugin_directory_serves_it() {
    let b = built();
    let plugins = tempfile::tempdir().unwrap();
    let run = Run::from(
        b.sandbox
            .gantry()
            .env("PATH", path_with_componentize_py())
            .env("GANTRY_PLUGIN_DIR", plugins.path())
            .args(["plugin", "build", "--install"])
            .arg(&b.check)
            .output()
            .expect("run gantry"),
    )
    .expect(0);
    assert!(run.stdout.contains("installed:"), "{}", run.stdout);
    assert!(plugins.path().join("py-check.wasm").is_file());
    assert!(plugins.path().join("py-check.toml").is_file());
    let list = Run::from(
        b.sandbox
            .gantry()
            .env("GANTRY_PLUGIN_DIR", plugins.path())
            .args(["--json", "plugin", "list"])
            .output()
            .expect("run gantry"),
    )
    .expect(0);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "py-check")
        .expect("listed");
    assert_eq!(row["status"], "loaded", "{row}");
    assert_eq!(row["kind"], "health-check");
}

/// `plugin test DIR` does not test an old build: an `app.py` changed after
/// the build is refused, saying how to rebuild.
#[test]
fn a_build_older_than_its_source_is_not_tested() {
    let b = built();
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("py-check");
    gantry_tests::copy_dir(&b.check, &dir);
    // The copy made every file new; the build is newest to begin with.
    let wasm_time = std::time::SystemTime::now() + Duration::from_secs(100);
    std::fs::File::options()
        .write(true)
        .open(dir.join("py-check.wasm"))
        .unwrap()
        .set_modified(wasm_time)
        .unwrap();
    let app = std::fs::File::options()
        .write(true)
        .open(dir.join("app.py"))
        .unwrap();
    app.set_modified(wasm_time + Duration::from_secs(10))
        .unwrap();
    let run = sandbox.run(&["plugin", "test", "py-check"]).expect(2);
    assert!(
        run.stderr.contains("app.py changed after")
            && run.stderr.contains("gantry plugin build py-check"),
        "{}",
        run.stderr
    );
    app.set_modified(wasm_time - Duration::from_secs(10))
        .unwrap();
    // Without a URL the check is UNKNOWN (exit 3): it ran.
    sandbox.run(&["plugin", "test", "py-check"]).expect(3);
}
