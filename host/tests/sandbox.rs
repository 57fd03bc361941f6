//! The sandbox, proven: each hostile guest misbehaves in one way, the
//! runtime turns it into a typed error within its limits, and the same
//! runtime then still serves a good plugin.

use gantry::bindings::types::{CheckResult, HealthStatus};
use gantry::runtime::{
    LoadError, Outcome, Plugin, PluginError, PluginSource, Runtime, RuntimeSettings,
};
use gantry_runtime::testing::test_plugin;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeSettings {
            cache_dir: None,
            ..RuntimeSettings::default()
        })
        .expect("runtime")
    })
}

/// A runtime of its own (no compile cache) with `change` made to the
/// default settings.
fn runtime_with(change: impl FnOnce(&mut RuntimeSettings)) -> Runtime {
    let mut settings = RuntimeSettings {
        cache_dir: None,
        ..RuntimeSettings::default()
    };
    change(&mut settings);
    Runtime::new(settings).expect("runtime")
}

fn source(name: &str) -> PluginSource {
    PluginSource::from_path(&test_plugin(name), None).expect("source")
}

fn load(name: &str) -> Plugin {
    runtime().load(source(name), None).expect("load")
}

/// After every hostile call, a good plugin still answers from the same runtime.
fn assert_runtime_still_serves() {
    let trivial = load("trivial");
    let settings = trivial.settings(Vec::<(String, String)>::new()).unwrap();
    let result = runtime()
        .check(&trivial, &settings, "")
        .into_result()
        .expect("trivial call");
    assert_eq!(result.status, HealthStatus::Ok);
}

/// Runs the hostile guest in `mode`; returns the outcome and the call's wall time.
fn hostile(mode: &str, extra: &[(&str, &str)]) -> (Outcome<CheckResult>, Duration) {
    let plugin = load("hostile");
    let mut given = vec![("mode", mode)];
    given.extend_from_slice(extra);
    let settings = plugin.settings(given).unwrap();
    let started = Instant::now();
    let outcome = runtime().check(&plugin, &settings, "");
    (outcome, started.elapsed())
}

/// A listener on loopback that counts the connections it accepts.
fn counting_listener(reply: &'static str) -> (u16, Arc<AtomicUsize>) {
    counting_listener_on("127.0.0.1:0", reply)
}

/// A listener on `addr` that counts the connections it accepts and
/// answers each with `reply`.
fn counting_listener_on(addr: &str, reply: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (port, count)
}

/// A listener that keeps every request it gets (head and body, as text)
/// and answers each with `reply`.
fn recording_listener(reply: String) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as much body as its content-length says.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
                let s = String::from_utf8_lossy(&text).to_ascii_lowercase();
                if let Some(end) = s.find("\r\n\r\n") {
                    let len = s
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if text.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&text).into_owned());
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (port, requests)
}

#[test]
fn trivial_plugin_answers_ok() {
    assert_runtime_still_serves();
}

/// The hostile guest in `mode` ends as a timeout within its 500 ms limit
/// plus 100 ms, and the runtime serves the next call.
fn assert_times_out_on_time(mode: &str) {
    let (outcome, took) = hostile(mode, &[]);
    match outcome.result {
        Err(PluginError::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_millis(500)),
        other => panic!("{mode}: expected a timeout, got {other:?}"),
    }
    assert!(
        took < Duration::from_millis(600),
        "{mode}: took {took:?}, limit 500 ms + 100 ms"
    );
    assert_runtime_still_serves();
}

#[test]
fn infinite_loop_times_out_within_the_limit() {
    assert_times_out_on_time("loop");
}

/// Epoch interruption cannot reach a guest blocked in a host call; the
/// WASI wait itself ends at the deadline.
#[test]
fn a_guest_asleep_in_a_host_call_times_out_at_its_deadline() {
    assert_times_out_on_time("sleep");
}

/// A server that accepts and never answers: the request ends with the
/// plugin's deadline (500 ms), not the 2 s the guest asked for.
#[test]
fn an_http_server_that_never_answers_ends_the_call_at_its_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let origin = format!("http://127.0.0.1:{port}");
    let (outcome, took) = hostile(
        "fetch",
        &[("url", &format!("{origin}/stall")), ("allowed", &origin)],
    );
    match outcome.result {
        Ok(result) => assert!(result.message.contains("timed out"), "{}", result.message),
        Err(PluginError::Timeout { .. }) => {}
        other => panic!("expected the request or the call to time out, got {other:?}"),
    }
    assert!(
        took < Duration::from_millis(600),
        "took {took:?}, limit 500 ms + 100 ms"
    );
    assert_runtime_still_serves();
}

#[test]
fn memory_growth_past_the_cap_is_out_of_memory() {
    let (outcome, _) = hostile("hog", &[]);
    match outcome.result {
        Err(PluginError::OutOfMemory { limit_mib, .. }) => assert_eq!(limit_mib, 16),
        other => panic!("expected out of memory, got {other:?}"),
    }
    assert_runtime_still_serves();
}

#[test]
fn panic_is_a_trap_carrying_the_message() {
    let (outcome, _) = hostile("panic", &[]);
    match outcome.result {
        Err(PluginError::Trap {
            message, backtrace, ..
        }) => {
            assert!(
                message.contains("hostile plugin panicked on purpose"),
                "{message}"
            );
            assert!(
                message.contains("src/lib.rs"),
                "panic location missing: {message}"
            );
            let backtrace = backtrace.expect("a guest backtrace");
            assert!(backtrace.contains("hostile"), "{backtrace}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_runtime_still_serves();
}

/// The verdict comes from the host's limiter, not from what the guest
/// printed: a guest that writes the allocator's out-of-memory line and
/// panics has trapped.
#[test]
fn a_guest_claiming_out_of_memory_is_a_trap() {
    let (outcome, _) = hostile("fake-oom", &[]);
    match outcome.result {
        Err(PluginError::Trap { message, .. }) => {
            assert!(message.contains("pretends"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_runtime_still_serves();
}

#[test]
fn stack_overflow_is_a_trap() {
    // A Rust guest overflows its shadow stack in linear memory first, which
    // traps as an out-of-bounds access.
    let (outcome, _) = hostile("stack", &[]);
    match outcome.result {
        Err(PluginError::Trap { message, .. }) => {
            assert!(
                message.contains("out of bounds") || message.contains("stack"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_runtime_still_serves();
}

#[test]
fn http_to_an_unlisted_listener_is_denied_without_a_connection() {
    let (port, connections) = counting_listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let url = format!("http://127.0.0.1:{port}/secret");
    let (outcome, _) = hostile("fetch", &[("url", &url)]);
    let result = outcome
        .result
        .expect("the plugin handles the denial itself");
    assert_eq!(result.status, HealthStatus::Critical);
    assert!(result.message.contains("denied"), "{}", result.message);
    assert!(
        result
            .message
            .contains(&format!("\"http://127.0.0.1:{port}\"")),
        "the denial names the entry to add: {}",
        result.message
    );
    assert_eq!(outcome.report.denials.len(), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the listener saw a connection"
    );
    assert_runtime_still_serves();
}

#[test]
fn an_allowed_url_is_fetched() {
    let (port, connections) =
        counting_listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/ok");
    let (outcome, _) = hostile("fetch", &[("url", &url), ("allowed", &origin)]);
    let result = outcome.result.expect("call");
    assert_eq!(result.message, "status 204");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_redirect_to_a_denied_url_is_denied() {
    let (denied_port, denied_connections) =
        counting_listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let redirect: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{denied_port}/x\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (allowed_port, allowed_connections) = counting_listener(redirect);
    let origin = format!("http://127.0.0.1:{allowed_port}");
    let (outcome, _) = hostile(
        "fetch",
        &[("url", &format!("{origin}/start")), ("allowed", &origin)],
    );
    let result = outcome.result.expect("call");
    assert!(result.message.contains("denied"), "{}", result.message);
    assert!(
        result.message.contains(&denied_port.to_string()),
        "{}",
        result.message
    );
    assert_eq!(allowed_connections.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(denied_connections.load(Ordering::SeqCst), 0);
    assert_runtime_still_serves();
}

#[test]
fn a_host_header_other_than_the_urls_is_refused_without_a_connection() {
    let (port, connections) = counting_listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let origin = format!("http://127.0.0.1:{port}");
    // Another host; or two Host headers, even when the first names the
    // URL's own host (servers differ in which of the two they route by).
    for (header, refusal) in [
        ("Host: admin.internal".to_string(), "admin.internal"),
        (
            format!("Host: 127.0.0.1:{port}; Host: admin.internal"),
            "2 Host headers",
        ),
    ] {
        let (outcome, _) = hostile(
            "fetch",
            &[
                ("url", &format!("{origin}/")),
                ("allowed", &origin),
                ("header", &header),
            ],
        );
        let result = outcome.result.expect("call");
        assert!(
            result.message.contains("Host header") && result.message.contains(refusal),
            "{header}: {}",
            result.message
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    // The URL's own host (with or without its port) is fine.
    let (outcome, _) = hostile(
        "fetch",
        &[
            ("url", &format!("{origin}/")),
            ("allowed", &origin),
            ("header", &format!("Host: 127.0.0.1:{port}")),
        ],
    );
    assert_eq!(outcome.result.expect("call").message, "status 200");
}

/// A call makes at most `max_probes_per_call` TCP probes (16 unless the
/// operator says otherwise): each is a connection to the target and a
/// closed socket left on this host.
#[test]
fn a_call_makes_at_most_its_tcp_probes() {
    let (port, connections) = counting_listener("");
    let target = format!("127.0.0.1:{port}");
    let (outcome, _) = hostile("probe-many", &[("probe", &target)]);
    let denials = outcome.report.denials.clone();
    let result = outcome.result.expect("call");
    assert!(
        result.message.starts_with("made 16, then: denied")
            && result.message.contains("max_probes_per_call"),
        "{}",
        result.message
    );
    assert_eq!(denials.len(), 1, "{denials:?}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 16);

    let narrow = runtime_with(|s| s.capabilities.tcp.max_probes_per_call = 3);
    let plugin = narrow.load(source("hostile"), None).expect("load");
    let settings = plugin
        .settings([("mode", "probe-many"), ("probe", target.as_str())])
        .unwrap();
    let result = narrow
        .check(&plugin, &settings, "")
        .into_result()
        .expect("call");
    assert!(
        result.message.starts_with("made 3, then: denied"),
        "{}",
        result.message
    );
}

/// Across origins a redirect carries neither credentials nor the body
/// (both origins granted).
#[test]
fn a_redirect_to_another_origin_drops_credentials_and_the_body() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string();
    let (second, second_saw) = recording_listener(ok);
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{second}/landing\r\ncontent-length: 0\r\n\r\n"
    );
    let (first, first_saw) = recording_listener(redirect);
    let (outcome, _) = hostile(
        "fetch",
        &[
            ("url", &format!("http://127.0.0.1:{first}/start")),
            ("allowed", &format!("http://127.0.0.1:{first}")),
            ("also", &format!("http://127.0.0.1:{second}")),
            ("method", "POST"),
            (
                "header",
                "Authorization: Bearer s3cret-token; Cookie: session=abc; Proxy-Authorization: Basic eA==",
            ),
            ("body", "the-private-body"),
        ],
    );
    assert_eq!(outcome.result.expect("call").message, "status 200");
    let first_saw = first_saw.lock().unwrap().join("\n");
    assert!(first_saw.contains("s3cret-token"), "{first_saw}");
    assert!(first_saw.contains("the-private-body"), "{first_saw}");
    let second_saw = second_saw.lock().unwrap().join("\n");
    assert!(second_saw.contains("/landing"), "{second_saw}");
    for leaked in [
        "s3cret-token",
        "session=abc",
        "Basic eA==",
        "the-private-body",
    ] {
        assert!(
            !second_saw.contains(leaked),
            "{leaked} reached the second origin:\n{second_saw}"
        );
    }
    assert_runtime_still_serves();
}

/// One call sends at most 64 requests (the operator's default), so a
/// check cannot load-test the service it looks at.
#[test]
fn a_call_sends_at_most_its_request_budget() {
    let (port, connections) =
        counting_listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let origin = format!("http://127.0.0.1:{port}");
    let (outcome, _) = hostile(
        "fetch-many",
        &[("url", &format!("{origin}/")), ("allowed", &origin)],
    );
    let result = outcome.result.expect("call");
    assert!(
        result.message.starts_with("made 64, then: denied"),
        "{}",
        result.message
    );
    assert!(
        result.message.contains("max_requests_per_call"),
        "{}",
        result.message
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 64);
    assert_runtime_still_serves();
}

/// Runs `plugin` (hostile) in `fetch-many` mode against `origin`, granted.
fn fetch_many(plugin: &Plugin, origin: &str) -> CheckResult {
    let settings = plugin
        .settings([
            ("mode", "fetch-many"),
            ("url", &format!("{origin}/")),
            ("allowed", origin),
        ])
        .unwrap();
    runtime()
        .check(plugin, &settings, "")
        .into_result()
        .expect("call")
}

/// …and receives at most 16 MiB of bodies over all its requests.
#[test]
fn a_call_receives_at_most_its_byte_budget() {
    let reply: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            1 << 20,
            "x".repeat(1 << 20)
        )
        .into_boxed_str(),
    );
    let (port, _) = counting_listener(reply);
    let origin = format!("http://127.0.0.1:{port}");
    let plugin = load("hostile");
    let result = fetch_many(&plugin, &origin);
    assert!(
        result.message.starts_with("made 16, then: ") && result.message.contains("larger than"),
        "{}",
        result.message
    );
    assert_runtime_still_serves();
}

#[test]
fn a_log_flood_is_bounded() {
    let (outcome, _) = hostile("flood", &[]);
    let result = outcome.result.expect("a flood is not an error");
    assert_eq!(result.message, "flooded");
    assert_eq!(outcome.report.logs.len(), 200);
    assert_eq!(outcome.report.dropped_logs, 100_000 - 200);
    assert_runtime_still_serves();
}

#[test]
fn an_output_flood_is_bounded() {
    let (outcome, _) = hostile("stdout-flood", &[]);
    outcome.result.expect("printing is not an error");
    assert!(outcome.report.stdout.len() <= 64 << 10);
    assert!(outcome.report.stderr.len() <= 64 << 10);
    assert!(outcome.report.dropped_output_bytes > 3_000_000);
    assert_runtime_still_serves();
}

#[test]
fn no_file_env_or_socket_is_visible() {
    let (port, connections) = counting_listener("");
    let addr = format!("127.0.0.1:{port}");
    // Make sure there is something to leak.
    assert!(std::env::vars().count() > 0);
    let (outcome, _) = hostile("snoop", &[("connect", &addr)]);
    let result = outcome.result.expect("call");
    assert_eq!(result.status, HealthStatus::Ok, "{}", result.message);
    assert_eq!(result.message, "nothing opened");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    assert!(!std::path::Path::new("escape.txt").exists());
}

#[test]
fn wrong_world_is_incompatible() {
    let mut source = source("noop-notifier");
    source.manifest.kind = gantry::runtime::PluginKind::HealthCheck;
    match runtime().load(source, None) {
        Err(LoadError::Incompatible {
            expected, found, ..
        }) => {
            assert!(expected.contains("health-check"), "{expected}");
            assert!(found.contains("notifier"), "{found}");
        }
        Err(other) => panic!("expected incompatible, got {other}"),
        Ok(_) => panic!("a notifier loaded as a health check"),
    }
    assert_runtime_still_serves();
}

#[test]
fn truncated_file_is_malformed() {
    let mut source = source("trivial");
    let half = source.bytes.len() / 2;
    source.bytes = source.bytes[..half].to_vec().into();
    match runtime().load(source, None) {
        Err(LoadError::Malformed { plugin, .. }) => assert_eq!(plugin, "trivial"),
        Err(other) => panic!("expected malformed, got {other}"),
        Ok(_) => panic!("half a component loaded"),
    }
    assert_runtime_still_serves();
}

#[test]
fn sha256_pin_mismatch_is_refused() {
    let pin = "0".repeat(64);
    match runtime().load(source("trivial"), Some(&pin)) {
        Err(LoadError::Integrity {
            expected, actual, ..
        }) => {
            assert_eq!(expected, pin);
            assert_ne!(actual, pin);
        }
        Err(other) => panic!("expected an integrity error, got {other}"),
        Ok(_) => panic!("a mismatched pin loaded"),
    }
    assert_runtime_still_serves();
}

#[test]
fn a_mailer_without_a_relay_is_told_so_and_sends_nothing() {
    let mailer = load("mailer");
    let settings = mailer.settings([("to", "ops@example.com")]).unwrap();
    let outcome = runtime().notify(&mailer, &settings, &gantry_runtime::testing::notification());
    match outcome.into_result() {
        Ok(Err(gantry::bindings::types::DeliveryError::Retry(r))) => {
            assert!(r.reason.contains("no SMTP relay"), "{}", r.reason)
        }
        other => panic!("expected a refusal naming the missing relay, got {other:?}"),
    }
    assert_runtime_still_serves();
}

#[test]
fn concurrent_calls_each_get_their_own_store() {
    // The guest keeps a call count and the last target in its memory; a
    // call that met another call's instance, on this thread or another,
    // would say so.
    let plugin = Arc::new(load("hostile"));
    let settings = plugin.settings([("mode", "remember")]).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let plugin = Arc::clone(&plugin);
            let settings = settings.clone();
            std::thread::spawn(move || {
                for call in 0..50 {
                    let target = format!("thread {thread} call {call}");
                    let result = runtime()
                        .check(&plugin, &settings, &target)
                        .into_result()
                        .unwrap();
                    assert_eq!(result.message, "call 1, earlier None", "{target}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_call_never_sees_what_an_earlier_call_left_in_memory() {
    // `plant` leaves 4 MiB of words that name their own address; `scan`
    // grows memory past them and counts any it finds. A memory slot is
    // reused call after call, with its dirty pages reset in place (up to
    // 1 MiB) or released (the rest): neither may leave one behind.
    let plugin = load("hostile");
    let mode = |mode: &str| plugin.settings([("mode", mode)]).unwrap();
    let (plant, scan) = (mode("plant"), mode("scan"));
    let message = |settings| {
        runtime()
            .check(&plugin, settings, "")
            .into_result()
            .unwrap()
            .message
    };
    // The scan can see a planted word: in the call that planted it.
    let both = mode("plant-scan");
    let own = message(&both);
    let seen: u64 = own.trim_start_matches("found ").parse().unwrap();
    assert!(seen >= (4 << 20) / 8, "{own}");
    for round in 0..20 {
        assert_eq!(message(&plant), "planted 524288", "round {round}");
        assert_eq!(message(&scan), "found 0", "round {round}");
    }
}

#[test]
fn importing_a_capability_the_manifest_does_not_grant_fails_to_load() {
    let mut source = source("mailer");
    source.manifest.capabilities.entries.remove("smtp");
    match runtime().load(source, None) {
        Err(LoadError::Denied {
            interface,
            manifest_entry,
            ..
        }) => {
            assert!(interface.contains("smtp"), "{interface}");
            assert!(manifest_entry.contains("smtp = true"), "{manifest_entry}");
        }
        Err(other) => panic!("expected a denial, got {other}"),
        Ok(_) => panic!("an ungranted smtp import loaded"),
    }
}

/// `smtp = false` written out: the import links (componentize-py imports a
/// whole world) and every send is refused in the host.
#[test]
fn an_import_refused_in_the_manifest_loads_and_each_call_is_refused() {
    let mut source = source("mailer");
    source
        .manifest
        .capabilities
        .entries
        .insert("smtp".into(), gantry::capabilities::GrantValue::Flag(false));
    let mailer = runtime().load(source, None).expect("loads");
    let settings = mailer.settings([("to", "ops@example.com")]).unwrap();
    let outcome = runtime().notify(&mailer, &settings, &gantry_runtime::testing::notification());
    match outcome.into_result() {
        Ok(Err(gantry::bindings::types::DeliveryError::Retry(r))) => {
            assert!(r.reason.contains("smtp is not granted"), "{}", r.reason)
        }
        other => panic!("expected a refusal naming the grant, got {other:?}"),
    }
    assert_runtime_still_serves();
}

/// A `.cwasm` is native code: an entry someone else could have written is
/// recompiled and replaced, never loaded.
#[test]
fn an_untrusted_compile_cache_entry_is_recompiled_and_replaced() {
    use gantry::runtime::CacheOutcome;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeSettings {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeSettings::default()
    })
    .unwrap();
    let load = || {
        rt.load(PluginSource::builtin("http-check").unwrap().unwrap(), None)
            .expect("load")
            .cache
    };
    assert_eq!(load(), CacheOutcome::Compiled);
    assert_eq!(load(), CacheOutcome::Hit);
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an entry");

    // Planted: writable by others.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        load(),
        CacheOutcome::Compiled,
        "a world-writable entry is not loaded"
    );
    let mode = std::fs::metadata(&entry).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "replaced by a private entry");
    assert_eq!(load(), CacheOutcome::Hit);

    // Planted: owned by someone else (only root can plant that here).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
        assert_eq!(
            load(),
            CacheOutcome::Compiled,
            "another user's entry is not loaded"
        );
        assert_eq!(std::fs::metadata(&entry).unwrap().uid(), 0);
    }

    // Planted: a symlink to an entry elsewhere.
    let elsewhere = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(&entry, elsewhere.path()).unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &entry).unwrap();
    assert_eq!(
        load(),
        CacheOutcome::Compiled,
        "a symlinked entry is not loaded"
    );
    assert!(
        !std::fs::symlink_metadata(&entry)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// The compile cache remembers a plugin file's sha256 by the file's
/// identity and then skips hashing it; what is remembered only picks a
/// compiled entry, never names a compile of other bytes, and an edit to
/// the file — even one that keeps its size and modification time — is
/// hashed again.
#[test]
fn a_remembered_sha256_picks_an_entry_and_never_outlives_an_edit() {
    use gantry::runtime::CacheOutcome;
    use gantry::runtime::Provenance;
    use gantry_runtime::identity::Stamp;
    use sha2::{Digest, Sha256};
    let cache = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeSettings {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeSettings::default()
    })
    .unwrap();
    let wasm = plugins.path().join("trivial.wasm");
    let manifest = plugins.path().join("trivial.toml");
    std::fs::copy(test_plugin("trivial"), &wasm).unwrap();
    std::fs::copy(test_plugin("trivial").with_extension("toml"), &manifest).unwrap();
    let trivial = std::fs::read(&wasm).unwrap();
    let trivial_sha = hex::encode(Sha256::digest(&trivial));
    let hostile = std::fs::read(test_plugin("hostile")).unwrap();
    let hostile_sha = hex::encode(Sha256::digest(&hostile));
    // Read as if the file were older than the two seconds the cache
    // waits before it trusts a file's identity.
    let read = || {
        let mut source = PluginSource::from_path(&wasm, None).expect("source");
        let Provenance::File(stamp) = source.provenance else {
            panic!("read from a file");
        };
        source.provenance = Provenance::File(Stamp {
            read_at: stamp.read_at + Duration::from_secs(10),
            ..stamp
        });
        source
    };
    let entry = |sha: &str| {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(sha))
    };

    let first = rt.load(read(), None).expect("load");
    assert_eq!(
        (first.cache, first.sha256.as_str()),
        (CacheOutcome::Compiled, trivial_sha.as_str())
    );
    assert!(
        cache.path().join("digests").read_dir().unwrap().count() == 1,
        "the file's sha256 is remembered"
    );

    // Remembered: the bytes are not hashed (other bytes in hand change
    // nothing), the entry of the remembered sha256 is what loads, and the
    // pins hold against that sha256.
    let mut other_bytes = read();
    other_bytes.bytes = hostile.clone().into();
    let again = rt.load(other_bytes, Some(&first.pin)).expect("load");
    assert_eq!(
        (again.cache, again.sha256.as_str()),
        (CacheOutcome::Hit, trivial_sha.as_str())
    );

    // The entry gone, the bytes in hand are hashed and compiled under
    // their own sha256, never the remembered one; the pin then fails.
    std::fs::remove_file(entry(&trivial_sha).expect("an entry")).unwrap();
    let mut other_bytes = read();
    other_bytes.bytes = hostile.clone().into();
    match rt.load(other_bytes, Some(&first.pin)) {
        Err(LoadError::Integrity { actual, .. }) => assert_ne!(actual, first.pin),
        Err(other) => panic!("expected an integrity error, got {other}"),
        Ok(_) => panic!("other bytes loaded under the trivial plugin's pin"),
    }
    let mut other_bytes = read();
    other_bytes.bytes = hostile.clone().into();
    let compiled = rt.load(other_bytes, None).expect("load");
    assert_eq!(compiled.sha256, hostile_sha);
    assert!(
        entry(&trivial_sha).is_none(),
        "no entry under the remembered sha256"
    );
    assert!(entry(&hostile_sha).is_some());

    // Edited in place, same length, modification time put back: the
    // change time moves on, so the file is hashed again — the pin of the
    // edited bytes holds (the remembered sha256 would fail it), and then
    // the bytes are no component.
    let mut edited = trivial.clone();
    edited[0] ^= 0xff;
    gantry_runtime::testing::rewrite_keeping_modified(&wasm, &edited);
    let source = read();
    let edited_pin = source.manifest.pin(&hex::encode(Sha256::digest(&edited)));
    match rt.load(source, Some(&edited_pin)) {
        Err(LoadError::Malformed { plugin, .. }) => assert_eq!(plugin, "trivial"),
        Err(other) => panic!("expected the edited bytes hashed, then malformed; got {other}"),
        Ok(loaded) => panic!("an edited file loaded as {}", loaded.sha256),
    }
}

/// This machine's own name, which its hosts file points at a loopback or
/// private address: a name a grant can hold that lands on the inside.
fn inside_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (name.as_str(), 80)
        .to_socket_addrs()
        .expect("the hostname resolves")
        .collect();
    assert!(
        addrs.iter().all(|a| a.ip().is_loopback()
            || matches!(a.ip(), std::net::IpAddr::V4(v4) if v4.is_private())),
        "this test needs the hostname {name} to resolve inside (it gives {addrs:?})"
    );
    name
}

/// A listener on every interface (the hostname may resolve to any of
/// them) that counts the connections it accepts.
fn counting_listener_everywhere() -> (u16, Arc<AtomicUsize>) {
    counting_listener_on(
        "0.0.0.0:0",
        "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
    )
}

/// A granted name that resolves to a loopback or private address is
/// refused when the client resolves it (the one resolution its connection
/// uses), unless the operator allows private names.
#[test]
fn a_granted_name_that_resolves_inside_is_refused_without_a_connection() {
    let name = inside_name();
    let (port, connections) = counting_listener_everywhere();
    let origin = format!("http://{name}:{port}");
    let url = format!("{origin}/");
    let (outcome, _) = hostile("fetch", &[("url", &url), ("allowed", &origin)]);
    let result = outcome.result.expect("the plugin handles the denial");
    assert!(
        result.message.contains("denied")
            && result.message.contains(&format!("{name} resolves to")),
        "{}",
        result.message
    );
    assert!(
        result.message.contains("allow_private_names"),
        "{}",
        result.message
    );
    assert_eq!(
        outcome.report.denials.len(),
        1,
        "{:?}",
        outcome.report.denials
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    let open = runtime_with(|s| s.capabilities.http.allow_private_names = true);
    let plugin = open.load(source("hostile"), None).unwrap();
    let given = plugin
        .settings([("mode", "fetch"), ("url", &url), ("allowed", &origin)])
        .unwrap();
    let result = open.check(&plugin, &given, "").into_result().expect("call");
    assert_eq!(result.message, "status 204");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// The hostile manifest with `extra` appended to its [limits] table.
fn hostile_with_limits(dir: &tempfile::TempDir, extra: &str) -> PluginSource {
    let manifest =
        std::fs::read_to_string(gantry_runtime::testing::plugins_dir().join("hostile.toml"))
            .unwrap()
            .replace("[limits]\n", &format!("[limits]\n{extra}\n"));
    let path = dir.path().join("hostile.toml");
    std::fs::write(&path, manifest).unwrap();
    PluginSource::from_path(&test_plugin("hostile"), Some(&path)).expect("source")
}

/// A manifest may ask for a larger request budget, up to the operator's
/// limit; past it the plugin does not load, naming both keys.
#[test]
fn a_manifest_asks_for_its_request_budget_up_to_the_operators_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (port, connections) =
        counting_listener("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let origin = format!("http://127.0.0.1:{port}");
    let plugin = runtime()
        .load(
            hostile_with_limits(&dir, "http_requests_per_call = 80"),
            None,
        )
        .expect("80 is within the operator's limit");
    let result = fetch_many(&plugin, &origin);
    assert!(
        result.message.starts_with("made 80, then: denied"),
        "{}",
        result.message
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 80);

    let err = runtime()
        .load(
            hostile_with_limits(&dir, "http_requests_per_call = 5000"),
            None,
        )
        .err()
        .expect("above the operator's limit");
    let text = err.to_string();
    assert!(
        text.contains("limits.http_requests_per_call = 5000")
            && text.contains("max_requests_per_call"),
        "{text}"
    );
}

/// `plugins.grants.NAME` narrows a plugin: a destination its manifest (and
/// settings) grant but the operator's list does not is refused without a
/// connection; a grant wider than the manifest refuses the load.
#[test]
fn operator_grants_narrow_the_manifest() {
    let (granted, granted_seen) =
        counting_listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
    let (other, other_seen) =
        counting_listener("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
    let operator: gantry::runtime::narrow::OperatorGrant = toml::from_str(&format!(
        "http = [\"http://127.0.0.1:{granted}\"]\nlimits = {{ timeout_ms = 400 }}"
    ))
    .unwrap();
    let narrowed = runtime_with(|s| {
        s.grants.insert("hostile".into(), operator);
    });
    let plugin = narrowed
        .load(source("hostile"), None)
        .expect("narrower loads");
    assert_eq!(plugin.manifest.limits.timeout_ms, 400);
    let fetch = |port: u16| {
        let origin = format!("http://127.0.0.1:{port}");
        let given = plugin
            .settings([
                ("mode", "fetch"),
                ("url", &format!("{origin}/")),
                ("allowed", &origin),
            ])
            .unwrap();
        narrowed
            .check(&plugin, &given, "")
            .into_result()
            .expect("call")
    };
    let refused = fetch(other);
    assert!(
        refused
            .message
            .contains("not by the operator (plugins.grants.hostile.http)"),
        "{}",
        refused.message
    );
    assert_eq!(fetch(granted).message, "status 204");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(other_seen.load(Ordering::SeqCst), 0);
    assert_eq!(granted_seen.load(Ordering::SeqCst), 1);

    for (grant, key) in [
        (
            "limits = { timeout_ms = 60000 }",
            "plugins.grants.hostile.limits.timeout_ms",
        ),
        ("smtp = true", "plugins.grants.hostile.smtp"),
    ] {
        let err = runtime_with(|s| {
            s.grants
                .insert("hostile".into(), toml::from_str(grant).unwrap());
        })
        .load(source("hostile"), None)
        .err()
        .expect("wider is refused");
        assert!(
            matches!(err, LoadError::Narrowing { .. }) && err.to_string().contains(key),
            "{grant}: {err}"
        );
    }
}

/// What a plugin returns is bounded where the call ends: the message to
/// 4 KiB and the metrics to 64, each cut saying by how much.
#[test]
fn a_huge_result_is_cut_and_says_so() {
    let (outcome, _) = hostile("huge", &[]);
    let result = outcome.result.expect("call");
    assert!(result.message.len() < 4200, "{}", result.message.len());
    assert!(
        result
            .message
            .contains(&format!("[cut {} bytes]", (2 << 20) - 4096)),
        "{}",
        &result.message[4000..]
    );
    assert!(
        result.message.ends_with("[cut 49936 metrics]"),
        "{}",
        &result.message[4000..]
    );
    assert_eq!(result.metrics.len(), 64);
    assert_runtime_still_serves();
}

/// The TCP probe resolves and checks the same way: a granted name that
/// lands inside is refused before any connection, and probed once the
/// operator allows private names.
#[test]
fn a_tcp_probe_to_a_name_that_resolves_inside_is_refused_without_a_connection() {
    let name = inside_name();
    let (port, connections) = counting_listener_everywhere();
    let target = format!("{name}:{port}");
    let plugin = runtime()
        .load(PluginSource::builtin("tcp-check").unwrap().unwrap(), None)
        .unwrap();
    let settings = plugin.settings(Vec::<(String, String)>::new()).unwrap();
    let outcome = runtime().check(&plugin, &settings, &target);
    assert_eq!(outcome.report.denials.len(), 1, "{:?}", outcome.report);
    let result = outcome.result.expect("call");
    // tcp-check reports a refused target as UNKNOWN: its grant, not the
    // service, is at fault.
    assert_eq!(result.status, HealthStatus::Unknown, "{}", result.message);
    assert!(result.message.contains("resolves to"), "{}", result.message);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    let open = runtime_with(|s| s.capabilities.tcp.allow_private_names = true);
    let plugin = open
        .load(PluginSource::builtin("tcp-check").unwrap().unwrap(), None)
        .unwrap();
    let result = open
        .check(&plugin, &settings, &target)
        .into_result()
        .unwrap();
    assert_eq!(result.status, HealthStatus::Ok, "{}", result.message);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

/// A value resolved from a secret reference is scrubbed wherever it lands,
/// even in a setting whose name says nothing of secrets (a URL with a
/// token in its query), and in every encoding the plugin echoes it in.
#[test]
fn a_resolved_secret_in_a_plain_setting_never_comes_back() {
    let token = "tok-3f9a1c77e2d54b08";
    // SAFETY: set once; no test in this binary reads this variable elsewhere.
    unsafe { std::env::set_var("GANTRY_SANDBOX_URL_TOKEN", token) };
    let url = gantry::secrets::resolve(
        "http://127.0.0.1:9/hook?token=${env:GANTRY_SANDBOX_URL_TOKEN}",
        std::path::Path::new("."),
    )
    .unwrap();
    let (outcome, _) = hostile("fetch", &[("url", &url)]);
    let report = outcome.report;
    let result = outcome
        .result
        .expect("the plugin handles the denial itself");
    assert!(result.message.contains("denied"), "{}", result.message);
    let everything = format!(
        "{} {:?} {:?} {}",
        result.message, report.denials, report.logs, report.stdout
    );
    assert!(!everything.contains(token), "{everything}");
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.message.contains("hook?token=********")),
        "{everything}"
    );
    assert!(everything.contains("********"), "{everything}");
}

/// Cloud metadata services are out of reach even to a grant that names
/// one literally and an operator who opens private names: Alibaba's
/// 100.100.100.200 (once counted "private"), AWS's IPv6 fd00:ec2::254, and
/// 169.254.169.254 hidden in the local NAT64 prefix.
#[test]
fn metadata_services_are_refused_even_when_granted_by_address() {
    let open = runtime_with(|s| s.capabilities.http.allow_private_names = true);
    let plugin = open.load(source("hostile"), None).unwrap();
    for origin in [
        "http://100.100.100.200:80",
        "http://[fd00:ec2::254]:80",
        "http://[64:ff9b:1::a9fe:a9fe]:80",
        "http://169.254.169.254:80",
    ] {
        let url = format!("{origin}/latest/meta-data/iam/");
        let given = plugin
            .settings([
                ("mode", "fetch"),
                ("url", url.as_str()),
                ("allowed", origin),
            ])
            .unwrap();
        let started = Instant::now();
        let outcome = open.check(&plugin, &given, "");
        let result = outcome
            .result
            .expect("the plugin handles the denial itself");
        assert!(
            result.message.contains("denied") && result.message.contains("metadata"),
            "{origin}: {}",
            result.message
        );
        // Refused before any connection was tried (nothing answers here,
        // so a connection attempt would take the fetch's timeout).
        assert!(started.elapsed() < Duration::from_millis(500), "{origin}");
    }
}
