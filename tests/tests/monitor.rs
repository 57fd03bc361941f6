//! Monitoring end to end: `gantry monitor` takes auth events over HTTP,
//! fires and resolves alerts, and delivers notices through the built-in
//! notifier plugins to real receivers on 127.0.0.1 — with retries,
//! Retry-After, kills, hot reload, email over STARTTLS, Prometheus
//! metrics, acknowledgements, silences and two monitors on PostgreSQL.

use gantry_tests::Sandbox;
use gantry_tests::monitor::{
    MonitorProcess, Receiver, attempts, body_status, get, post_events, request,
};
use gantry_tests::pg::TestDb;
use gantry_tests::tls::TestCa;
use hmac::Mac;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A fast monitor: rules every 0.2 s, one `success_rate` rule over a
/// minute that needs 10 attempts, short grouping and backoff.
fn monitoring(receivers: Value) -> Value {
    json!({
        "evaluation_interval_seconds": 0.2,
        "default_rules": false,
        "rules": [{
            "name": "LoginsFailing",
            "metric": "success_rate",
            "op": "<",
            "threshold": 0.5,
            "window": "1m",
            "min_samples": 10,
            "severity": "critical",
            "no_data": "keep",
            "annotations": {"summary": "most logins fail"},
        }],
        "receivers": receivers,
        "group_wait_seconds": 0.3,
        "group_interval_seconds": 1,
        "repeat_interval_seconds": 3600,
        "delivery": {"initial_backoff_seconds": 0.2, "poll_seconds": 0.05},
    })
}

fn write_config(sandbox: &Sandbox, config: &Value) {
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(config).unwrap(),
    );
}

fn fire(monitor: &MonitorProcess) {
    let (status, body) = monitor.post(&attempts(100, 100), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 100, "{body}");
}

fn recover(monitor: &MonitorProcess) {
    let (status, body) = monitor.post(&attempts(1000, 0), None);
    assert_eq!(status, 200, "{body}");
}

/// The value of the sample `series` in Prometheus text.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

fn header<'a>(r: &'a gantry_tests::monitor::Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[test]
fn a_burst_fires_once_and_resolves_once_per_receiver_through_retries() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let slack = Receiver::start();
    // The webhook fails once; Slack asks for a second's patience.
    hook.script(&[(503, None)]);
    slack.script(&[(429, Some("1"))]);
    write_config(
        &sandbox,
        &json!({"monitoring": monitoring(json!([
            {"name": "ops-hook", "plugin": "webhook",
             "settings": {"url": hook.url(), "hmac_secret": "${env:HOOK_SECRET}"}},
            {"name": "ops-slack", "plugin": "slack", "settings": {"url": slack.url()}},
        ]))}),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[("HOOK_SECRET", "s3cret-hmac")]);
    fire(&monitor);
    monitor.wait_for("firing", WAIT, |e| {
        e["event"] == "alert" && e["change"] == "firing"
    });
    let firing = hook.wait_delivered("the webhook's firing notice", WAIT, |r| {
        r.body["status"] == "firing"
    });
    // Alertmanager's webhook body, version 4.
    let body = &firing.body;
    assert_eq!(body["version"], "4", "{body:#}");
    assert_eq!(body["receiver"], "ops-hook");
    assert_eq!(body["groupLabels"]["alertname"], "LoginsFailing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "LoginsFailing");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["summary"], "most logins fail");
    assert!(alert["fingerprint"].as_str().is_some_and(|f| !f.is_empty()));
    assert!(alert["startsAt"].as_str().unwrap().ends_with('Z'));
    // Signed (the exact HMAC is checked below, over the raw bytes).
    assert!(header(&firing, "x-gantry-signature").starts_with("sha256="));
    // The failed attempt and the retry carry one idempotency key.
    let attempts_seen: Vec<_> = hook
        .received()
        .into_iter()
        .filter(|r| r.body["status"] == "firing")
        .collect();
    assert_eq!(attempts_seen.len(), 2, "one 503, one retry");
    assert_eq!(attempts_seen[0].answered, 503);
    assert_eq!(
        header(&attempts_seen[0], "idempotency-key"),
        header(&attempts_seen[1], "idempotency-key")
    );
    assert!(!header(&firing, "idempotency-key").is_empty());

    // Slack: Block Kit, and the retry waited out Retry-After.
    let slack_firing = slack.wait_delivered("Slack's firing notice", WAIT, |r| {
        body_status(&r.body) == "firing"
    });
    assert!(
        slack_firing.body["blocks"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    );
    assert!(
        slack_firing.body["text"]
            .as_str()
            .unwrap()
            .contains("FIRING"),
        "{:#}",
        slack_firing.body
    );
    let slack_tries = slack.received();
    assert_eq!(slack_tries[0].answered, 429);
    let waited = slack_tries[1].at - slack_tries[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured (retried after {waited:?})"
    );

    recover(&monitor);
    hook.wait_delivered("the webhook's resolved notice", WAIT, |r| {
        r.body["status"] == "resolved"
    });
    slack.wait_delivered("Slack's resolved notice", WAIT, |r| {
        body_status(&r.body) == "resolved"
    });
    // Nothing more arrives: one firing and one resolved notice each.
    std::thread::sleep(Duration::from_millis(1500));
    for (name, r) in [("webhook", &hook), ("slack", &slack)] {
        assert_eq!(r.delivered("firing").len(), 1, "{name}");
        assert_eq!(r.delivered("resolved").len(), 1, "{name}");
    }
    let resolved = &hook.delivered("resolved")[0].body["alerts"][0];
    assert!(!resolved["endsAt"].as_str().unwrap().starts_with("0001"));

    // The secret never reached the output, and the alert log has both.
    assert_eq!(monitor.terminate(), Some(0));
    let printed = serde_json::to_string(&monitor.events()).unwrap();
    assert!(!printed.contains("s3cret-hmac"));
    let log =
        std::fs::read_to_string(sandbox.path().join("deployment_logs/auth_alerts.json")).unwrap();
    let changes: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(changes.iter().any(|c| c["change"] == "firing"), "{log}");
    assert!(changes.iter().any(|c| c["change"] == "resolved"), "{log}");
    assert!(!log.contains("s3cret-hmac"));
}

#[test]
fn the_signature_is_the_hmac_of_the_body_sent() {
    // A receiver that keeps the raw bytes, to check the HMAC exactly.
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};
    type Signed = Vec<(String, Vec<u8>)>;
    let seen: Arc<Mutex<Signed>> = Arc::default();
    let keep = Arc::clone(&seen);
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let keep = Arc::clone(&keep);
        async move {
            let sig = headers
                .get("x-gantry-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            keep.lock().unwrap().push((sig, body.to_vec()));
            "ok"
        }
    });
    let server = gantry_tests::http::TestServer::start(app);
    let sandbox = Sandbox::new();
    write_config(
        &sandbox,
        &json!({"monitoring": monitoring(json!([
            {"name": "signed", "plugin": "webhook",
             "settings": {"url": server.url("/in"), "hmac_secret": "k3y"}},
        ]))}),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    monitor.wait_for("the delivery", WAIT, |e| e["event"] == "delivered");
    let (signature, body) = seen.lock().unwrap()[0].clone();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k3y").unwrap();
    mac.update(&body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, want);
}

#[test]
fn queued_notices_survive_a_kill_and_are_delivered_once_after_restart() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    hook.answer(503);
    let mut config = monitoring(json!([
        {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
    ]));
    config["delivery"]["initial_backoff_seconds"] = json!(1.0);
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    monitor.wait_for("a refused delivery", WAIT, |e| {
        e["event"] == "delivery_failed"
    });
    monitor.kill();
    let refused = hook.received();
    assert!(refused.iter().all(|r| r.answered == 503));
    let key = header(&refused[0], "idempotency-key").to_string();

    // The notice waited in the store; a new monitor delivers it.
    hook.answer(200);
    let mut again = MonitorProcess::start(&sandbox, &[]);
    let delivered =
        hook.wait_delivered("the queued notice", WAIT, |r| r.body["status"] == "firing");
    assert_eq!(header(&delivered, "idempotency-key"), key);
    again.wait_for("the delivered event", WAIT, |e| e["event"] == "delivered");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(hook.delivered("firing").len(), 1);
    // The new leader took the firing alert over rather than firing again.
    assert!(
        !again
            .events()
            .iter()
            .any(|e| e["event"] == "alert" && e["change"] == "firing"),
        "{:#?}",
        again.events()
    );
    let listed = sandbox.run(&["--json", "alerts", "list"]).expect(0).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["state"], "firing");
}

#[test]
fn a_new_notifier_version_serves_without_a_restart_and_a_broken_one_is_refused() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let plugins = sandbox.path().join(".gantry/plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let install = |wasm: &str, version: &str| {
        let manifest = format!(
            "name = \"pager\"\nkind = \"notifier\"\nversion = \"{version}\"\n\n[capabilities]\nhttp = [\"{{url}}\"]\n\n[settings.url]\nrequired = true\n"
        );
        // The manifest first: the watcher loads when the .wasm changes.
        std::fs::write(plugins.join("pager.toml"), manifest).unwrap();
        let tmp = plugins.join(".pager.wasm.tmp");
        std::fs::copy(gantry_runtime::testing::test_plugin(wasm), &tmp).unwrap();
        std::fs::rename(&tmp, plugins.join("pager.wasm")).unwrap();
    };
    install("webhook-notifier", "1.0.0");
    let mut config = monitoring(json!([
        {"name": "pager", "plugin": "pager", "settings": {"url": hook.url()}},
    ]));
    config["repeat_interval_seconds"] = json!(0.5);
    config["group_interval_seconds"] = json!(0.2);
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    hook.wait_delivered("version 1's notice", WAIT, |r| r.body["version"] == "4");

    // Version 2 (Slack's body, as an operator's rewrite would be).
    let swapped = Instant::now();
    install("slack-notifier", "2.0.0");
    let reloaded = monitor.wait_for("the reload", WAIT, |e| {
        e["event"] == "reloaded" && e["plugin"] == "pager"
    });
    assert!(reloaded["generation"].as_u64().unwrap() >= 2, "{reloaded}");
    let v2 = hook.wait_delivered("version 2's repeat", WAIT, |r| {
        r.at > swapped && r.body.get("blocks").is_some()
    });
    assert!(v2.body["text"].as_str().unwrap().contains("FIRING"));

    // A broken version is refused; version 2 keeps serving.
    let broken_at = Instant::now();
    std::fs::write(plugins.join("pager.wasm"), b"\0asm\x0d\0\x01\0 truncated").unwrap();
    let refused = monitor.wait_for("the refusal", WAIT, |e| {
        e["event"] == "reload_refused" && e["plugin"] == "pager"
    });
    assert!(!refused["error"].as_str().unwrap().is_empty());
    // One change, one reload: reading the files (as the reload itself
    // does, or an operator's `cat`) and the quiet after it reload nothing.
    let reloads = |m: &MonitorProcess| {
        m.events()
            .iter()
            .filter(|e| e["event"] == "reloaded" || e["event"] == "reload_refused")
            .count()
    };
    std::thread::sleep(Duration::from_millis(300));
    let settled = reloads(&monitor);
    for _ in 0..3 {
        let _ = std::fs::read(plugins.join("pager.toml")).unwrap();
        let _ = std::fs::read(plugins.join("pager.wasm")).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        reloads(&monitor),
        settled,
        "reads and quiet time reloaded: {:#?}",
        monitor.events()
    );
    // The same broken bytes written again are refused once, not again.
    std::fs::write(plugins.join("pager.wasm"), b"\0asm\x0d\0\x01\0 truncated").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        reloads(&monitor),
        settled,
        "the same content reloaded again: {:#?}",
        monitor.events()
    );
    hook.wait_delivered("a repeat from the last good version", WAIT, |r| {
        r.at > broken_at + Duration::from_millis(200) && r.body.get("blocks").is_some()
    });
    // Across both swaps no notice was taken twice.
    let mut keys: Vec<String> = hook
        .received()
        .iter()
        .filter(|r| (200..300).contains(&r.answered))
        .map(|r| header(r, "idempotency-key").to_string())
        .collect();
    let taken = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), taken, "a notice was delivered twice");
    // `plugin list` in another process sees the broken file for what it is.
    let list = sandbox.run(&["plugin", "list"]);
    assert!(
        list.stdout.contains("pager")
            && (list.stdout.contains("fail") || list.stdout.contains("error")),
        "{list:?}"
    );
    // The metrics count the swap and the refusal, and the whole page —
    // a firing alert, deliveries, reloads both ways, plugin calls — is
    // what Prometheus reads.
    let (_, metrics) = get(&format!("{}/metrics", monitor.api));
    assert!(sample(&metrics, "gantry_plugin_reloads_total{result=\"swapped\"}") >= 1.0);
    assert!(sample(&metrics, "gantry_plugin_reloads_total{result=\"refused\"}") >= 1.0);
    for family in [
        "gantry_alerts{",
        "gantry_deliveries_total{",
        "gantry_outbox_depth",
        "gantry_plugin_calls_total{",
        "gantry_rule_value{",
        "gantry_auth_events{",
    ] {
        assert!(metrics.contains(family), "{family} is missing:\n{metrics}");
    }
    promtool_passes(&metrics);
}

/// A real SMTP relay (aiosmtpd, STARTTLS required) writing each message
/// it takes into `mail/` under the sandbox: the relay, its port, that
/// folder, and the CA its certificate is signed by.
fn smtp_relay(sandbox: &Sandbox) -> (std::process::Child, u16, std::path::PathBuf, TestCa) {
    let ca = TestCa::new(sandbox.path());
    let (cert, key) = ca.server_files(sandbox.path());
    let mail = sandbox.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let port = gantry_tests::auth::free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smtp_sink.py");
    let mut relay = std::process::Command::new("python3")
        .args([script, cert.to_str().unwrap(), key.to_str().unwrap()])
        .arg(port.to_string())
        .arg(&mail)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with aiosmtpd: `pip install aiosmtpd`)");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(relay.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(
        ready.trim(),
        "ready",
        "the SMTP relay did not start (is aiosmtpd installed?)"
    );
    (relay, port, mail, ca)
}

/// A notifier's call sends at most `max_messages_per_call` messages (5),
/// and each to a recipient once however often the message names it.
#[test]
fn a_notifier_call_sends_at_most_its_messages() {
    use gantry::capabilities::smtp::{SmtpLimits, SmtpTls};
    let sandbox = Sandbox::new();
    let (mut relay, port, mail, ca) = smtp_relay(&sandbox);
    let mut settings = gantry::runtime::RuntimeSettings {
        cache_dir: None,
        ..Default::default()
    };
    settings.capabilities.smtp = SmtpLimits {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls: SmtpTls::Starttls,
        from: Some("gantry@example.test".into()),
        to: vec!["oncall@example.test".into()],
        ca_file: Some(ca.ca_pem.clone()),
        ..SmtpLimits::default()
    };
    let runtime = gantry::runtime::Runtime::new(settings).unwrap();
    let mailer = runtime
        .load(
            gantry::runtime::PluginSource::from_path(
                &gantry_runtime::testing::test_plugin("mailer"),
                None,
            )
            .unwrap(),
            None,
        )
        .unwrap();
    let given = mailer
        .settings([
            ("to", "oncall@example.test, ONCALL@example.test"),
            ("copies", "8"),
        ])
        .unwrap();
    let notification = gantry_runtime::testing::notification();
    let outcome = runtime.notify(&mailer, &given, &notification);
    match outcome.into_result() {
        Ok(Err(gantry::bindings::types::DeliveryError::Retry(r))) => assert!(
            r.reason.starts_with("sent 5, then:") && r.reason.contains("max_messages_per_call"),
            "{}",
            r.reason
        ),
        other => panic!("expected the sixth message refused, got {other:?}"),
    }
    let envelopes: Vec<Value> = (0..5)
        .map(|n| {
            serde_json::from_str(
                &std::fs::read_to_string(mail.join(format!("{n:04}.json"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    for envelope in &envelopes {
        assert_eq!(envelope["to"], json!(["oncall@example.test"]), "{envelope}");
    }
    assert!(!mail.join("0005.json").exists());
    relay.kill().ok();
    relay.wait().ok();
}

#[test]
fn email_goes_through_the_relay_over_starttls() {
    let sandbox = Sandbox::new();
    let (mut relay, port, mail, ca) = smtp_relay(&sandbox);
    let mut config = monitoring(json!([]));
    config["email_alerts"] = json!({
        "enabled": true,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "from_address": "gantry@example.test",
        "to_addresses": ["oncall@example.test"],
        "tls": "starttls",
        "ca_file": ca.ca_pem,
    });
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    let delivered = monitor.wait_for("the mail", WAIT, |e| {
        e["event"] == "delivered" && e["receiver"] == "email"
    });
    assert_eq!(delivered["status"], "firing");
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(mail.join("0000.json")).unwrap()).unwrap();
    assert_eq!(envelope["from"], "gantry@example.test");
    assert_eq!(envelope["to"], json!(["oncall@example.test"]));
    assert_eq!(envelope["tls"], true, "the message crossed in the clear");
    let message = std::fs::read_to_string(mail.join("0000.eml")).unwrap();
    let lower = message.to_lowercase();
    let subject = message
        .lines()
        .find(|l| l.to_lowercase().starts_with("subject:"))
        .unwrap_or_else(|| panic!("no subject:\n{message}"));
    assert!(subject.contains("LoginsFailing"), "{subject}");
    assert!(lower.contains("multipart/alternative"), "{message}");
    assert!(lower.contains("content-type: text/plain"), "{message}");
    assert!(lower.contains("content-type: text/html"), "{message}");
    assert!(lower.contains("to: oncall@example.test"), "{message}");
    let header = |name: &str| {
        message
            .lines()
            .find(|l| l.to_lowercase().starts_with(name))
            .unwrap_or_else(|| panic!("no {name}:\n{message}"))
            .to_string()
    };
    assert!(
        header("message-id:").trim_end().ends_with("@example.test>"),
        "{message}"
    );
    let date = header("date:");
    assert!(
        chrono::DateTime::parse_from_rfc2822(date[5..].trim()).is_ok(),
        "{date}"
    );
    // The mail's link leads to the alert's page.
    let link = message
        .split(['"', ' ', '\n', '\r', '<', '>'])
        .find(|w| w.contains("/alerts/"))
        .unwrap_or_else(|| panic!("no alert link:\n{message}"))
        .to_string();
    let (status, page) = gantry_tests::monitor::get(&link);
    assert_eq!(status, 200, "{link}: {page}");
    assert!(page.contains("LoginsFailing"), "{page}");
    monitor.kill();
    let _ = relay.kill();
    let _ = relay.wait();
}

#[test]
fn the_api_checks_its_input_and_its_metrics_pass_promtool() {
    let sandbox = Sandbox::new();
    let mut config = monitoring(json!([]));
    config["api"] = json!({"token": "${env:INGEST_TOKEN}", "max_body_bytes": 4096});
    write_config(&sandbox, &json!({ "monitoring": config }));
    let monitor = MonitorProcess::start(&sandbox, &[("INGEST_TOKEN", "t0ken")]);

    let (status, _) = monitor.post(&attempts(1, 0), None);
    assert_eq!(status, 401, "events without the token");
    let (status, _) = monitor.post(&attempts(1, 0), Some("wrong"));
    assert_eq!(status, 401);
    // Good events are kept; each refusal names its index.
    let (status, body) = monitor.post(
        &json!([
            {"kind": "auth_attempt", "success": true, "response_time_ms": 250},
            {"kind": "login", "success": true},
            {"kind": "token_refresh", "response_time_ms": -1},
            {"kind": "permission_denial", "success": false},
        ]),
        Some("t0ken"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"], 2, "{body}");
    assert_eq!(body["errors"][0]["index"], 1);
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("login")
    );
    assert_eq!(body["errors"][1]["index"], 2);
    let (status, body) = monitor.post(&json!([{"kind": "nope"}]), Some("t0ken"));
    assert_eq!(status, 400, "{body}");
    let (status, _) = monitor.post(&attempts(500, 0), Some("t0ken"));
    assert_eq!(status, 413, "a body over max_body_bytes");

    // Every route needs the token, not only the one that takes events.
    for path in ["/healthz", "/v1/alerts", "/metrics"] {
        let (status, _) = get(&format!("{}{path}", monitor.api));
        assert_eq!(status, 401, "{path} without the token");
    }
    let bearer = [("authorization", "Bearer t0ken")];
    let (status, _, health) = request("GET", &format!("{}/healthz", monitor.api), &bearer, None);
    assert_eq!(status, 200);
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let (status, _, alerts) = request("GET", &format!("{}/v1/alerts", monitor.api), &bearer, None);
    assert_eq!((status, alerts.as_str()), (200, "[]"));

    let (status, _, metrics) = request("GET", &format!("{}/metrics", monitor.api), &bearer, None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("gantry_auth_events{window=\"1m\",kind=\"auth_attempt\"} 1")
            && metrics.contains("gantry_events_ingested_total 2"),
        "{metrics}"
    );
    promtool_passes(&metrics);
}

/// `promtool check metrics` passes on `metrics`.
fn promtool_passes(metrics: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's `prometheus` package; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_alerts_stop_repeating_until_the_ack_expires_and_silences_hold_notices() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let mut config = monitoring(json!([
        {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
    ]));
    config["repeat_interval_seconds"] = json!(0.5);
    config["group_interval_seconds"] = json!(0.2);
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    let alert = monitor.wait_for("firing", WAIT, |e| {
        e["event"] == "alert" && e["change"] == "firing"
    });
    let id = alert["id"].as_str().unwrap().to_string();
    // Repeats arrive while nobody has acknowledged it.
    let deadline = Instant::now() + WAIT;
    while hook.delivered("firing").len() < 3 {
        assert!(Instant::now() < deadline, "no repeats");
        std::thread::sleep(Duration::from_millis(50));
    }
    sandbox
        .run(&[
            "alerts",
            "ack",
            &id,
            "--comment",
            "on it",
            "--expires",
            "3s",
        ])
        .expect(0);
    let acked_at = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let after_ack = hook.delivered("firing").len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        hook.delivered("firing").len(),
        after_ack,
        "repeats went on after the acknowledgement"
    );
    let shown = sandbox
        .run(&["--json", "alerts", "show", &id])
        .expect(0)
        .json();
    assert_eq!(shown["alert"]["ack_comment"], "on it", "{shown:#}");
    // Expired: repeats resume.
    hook.wait_delivered("a repeat after the ack expired", WAIT, |r| {
        r.at > acked_at + Duration::from_secs(3) && r.body["status"] == "firing"
    });

    // A silence holds every notice for matching alerts, resolved ones too.
    let silenced = sandbox
        .run(&[
            "--json",
            "alerts",
            "silence",
            "--match",
            "alertname=LoginsFailing",
            "--duration",
            "1h",
        ])
        .expect(0)
        .json();
    assert!(silenced["id"].as_str().is_some(), "{silenced:#}");
    std::thread::sleep(Duration::from_millis(700));
    let before = hook.received().len();
    recover(&monitor);
    monitor.wait_for("resolved", WAIT, |e| {
        e["event"] == "alert" && e["change"] == "resolved"
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        hook.received().len(),
        before,
        "a silenced alert was notified"
    );
    assert!(hook.delivered("resolved").is_empty());
    sandbox.run(&["alerts", "ack", &id]).expect(2);
}

#[test]
fn bad_rules_and_receivers_exit_2_naming_the_key_and_write_nothing() {
    let cases = [
        (
            json!({"rules": [{"name": "x", "metric": "sucess_rate", "op": "<", "threshold": 0.5}]}),
            "monitoring.rules[0].metric",
        ),
        (
            json!({"rules": [{"name": "x", "metric": "success_rate", "op": "=<", "threshold": 0.5}]}),
            "monitoring.rules[0].op",
        ),
        (
            json!({"rules": [{"name": "x", "metric": "success_rate", "op": "<", "threshold": 0.5, "window": "7m"}]}),
            "monitoring.rules[0].window",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "pagerduty", "settings": {}}]}),
            "monitoring.receivers[0].plugin",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "http-check", "settings": {}}]}),
            "monitoring.receivers[0].plugin",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "webhook", "fallback": "nobody"}]}),
            "monitoring.receivers[0].fallback",
        ),
        (
            json!({"group_wait_seconds": -1}),
            "monitoring.group_wait_seconds",
        ),
        (json!({"rulez": []}), "rulez"),
        // A receiver that could not deliver is refused before it loses a
        // notice: a reference that does not resolve, a destination the
        // address policy refuses, settings its plugin does not take.
        (
            json!({"receivers": [{"name": "r", "plugin": "webhook",
                "settings": {"url": "http://127.0.0.1:9/", "hmac_secret": "${env:GANTRY_TEST_UNSET_SECRET}"}}]}),
            "monitoring.receivers[0].settings.hmac_secret",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "webhook",
                "settings": {"url": "http://169.254.169.254/latest"}}]}),
            "monitoring.receivers[0].settings.url",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "webhook", "settings": {"url": "not a url"}}]}),
            "monitoring.receivers[0].settings.url",
        ),
        (
            json!({"receivers": [{"name": "r", "plugin": "email"}]}),
            "monitoring.receivers[0].settings",
        ),
    ];
    for (monitoring, key) in cases {
        let sandbox = Sandbox::new();
        write_config(&sandbox, &json!({ "monitoring": monitoring }));
        let run = sandbox
            .run(&["monitor", "--listen", "127.0.0.1:0"])
            .expect(2);
        assert!(run.stderr.contains(key), "{key}: {}", run.stderr);
        let state = sandbox.path().join(".gantry");
        let wrote: Vec<_> = std::fs::read_dir(&state)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            wrote
                .iter()
                .all(|n| !n.to_string_lossy().starts_with("state")),
            "{key}: wrote {wrote:?}"
        );
    }
}

#[test]
fn two_monitors_on_postgres_one_leads_and_the_other_takes_over_when_it_dies() {
    let db = TestDb::create("monitors");
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    write_config(
        &sandbox,
        &json!({
            "state": {"url": db.url(), "lease_seconds": 2},
            "monitoring": monitoring(json!([
                {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
            ])),
        }),
    );
    let a = MonitorProcess::start(&sandbox, &[("GANTRY_HOST", "a")]);
    let b = MonitorProcess::start(&sandbox, &[("GANTRY_HOST", "b")]);
    let leading = |m: &MonitorProcess| {
        get(&format!("{}/healthz", m.api))
            .1
            .contains("\"leading\":true")
    };
    // Exactly one leads. (A leader whose heartbeat was starved past its
    // 2 s lease on a loaded machine can report leading until its next
    // evaluation notices; so wait for one clear answer rather than
    // judge the first sample.)
    let deadline = Instant::now() + WAIT;
    let a_leads = loop {
        let (la, lb) = (leading(&a), leading(&b));
        if la != lb {
            break la;
        }
        assert!(
            Instant::now() < deadline,
            "never exactly one leader (a {la}, b {lb})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut leader, mut follower) = if a_leads { (a, b) } else { (b, a) };
    // Events reach the follower only; the leader sees its published seconds.
    fire(&follower);
    hook.wait_delivered("the firing notice", WAIT, |r| r.body["status"] == "firing");

    leader.kill();
    follower.wait_for("the takeover", WAIT, |e| {
        e["event"] == "leading" && e["leading"] == true
    });
    recover(&follower);
    hook.wait_delivered("the resolved notice", WAIT, |r| {
        r.body["status"] == "resolved"
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        hook.delivered("firing").len(),
        1,
        "fired again after the takeover"
    );
    assert_eq!(hook.delivered("resolved").len(), 1);
    let _ = post_events(&follower.api, &attempts(1, 0), None);
    assert_eq!(follower.terminate(), Some(0));
    // A clean stop released the lease.
    let held = db.scalar("SELECT count(*)::text FROM gantry_leases WHERE name = 'monitor:leader'");
    assert_eq!(held.as_deref(), Some("0"));
}

#[test]
fn a_rule_waits_for_its_minimum_samples_and_no_data_fires_when_asked() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let mut config = monitoring(json!([
        {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
    ]));
    config["rules"].as_array_mut().unwrap().push(json!({
        "name": "NoDenialData",
        "metric": "permission_denial_rate",
        "op": ">",
        "threshold": 0.5,
        "window": "1m",
        "min_samples": 5,
        "no_data": "alerting",
    }));
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    // Nothing recorded: the no-data rule fires, the other stays quiet.
    hook.wait_delivered("the no-data alert", WAIT, |r| {
        r.body["groupLabels"]["alertname"] == "NoDenialData"
    });
    // Five failed logins of five: under LoginsFailing's ten samples.
    let (status, _) = monitor.post(&attempts(5, 5), None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        !monitor
            .events()
            .iter()
            .any(|e| e["name"] == "LoginsFailing"),
        "fired on too few samples: {:#?}",
        monitor.events()
    );
    // Five more reach the minimum: it fires. The decisions now count as
    // data for the other rule, which resolves (no denials).
    let (status, _) = monitor.post(&attempts(5, 5), None);
    assert_eq!(status, 200);
    monitor.wait_for("LoginsFailing firing", WAIT, |e| {
        e["name"] == "LoginsFailing" && e["change"] == "firing"
    });
    monitor.wait_for("NoDenialData resolved", WAIT, |e| {
        e["name"] == "NoDenialData" && e["change"] == "resolved"
    });
}

#[test]
fn the_alertmanager_notifier_forwards_to_a_real_alertmanager() {
    let sandbox = Sandbox::new();
    let port = gantry_tests::auth::free_port();
    sandbox.write(
        "am.yml",
        "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    );
    let mut am = std::process::Command::new("prometheus-alertmanager")
        .current_dir(sandbox.path())
        .args([
            "--config.file=am.yml",
            "--storage.path=am-data",
            "--cluster.listen-address=",
        ])
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian's package)");
    let am_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    write_config(
        &sandbox,
        &json!({"monitoring": monitoring(json!([
            {"name": "am", "plugin": "alertmanager", "settings": {"url": am_url}},
        ]))}),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    monitor.wait_for("the delivery", WAIT, |e| {
        e["event"] == "delivered" && e["status"] == "firing"
    });
    let (status, alerts) = get(&format!("{am_url}/api/v2/alerts"));
    assert_eq!(status, 200);
    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    let ours = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "LoginsFailing")
        .unwrap_or_else(|| panic!("Alertmanager has not got it: {alerts:#}"));
    assert_eq!(ours["labels"]["severity"], "critical");
    assert_eq!(ours["annotations"]["summary"], "most logins fail");
    assert_eq!(ours["status"]["state"], "active");

    recover(&monitor);
    monitor.wait_for("the resolved delivery", WAIT, |e| {
        e["event"] == "delivered" && e["status"] == "resolved"
    });
    let (_, alerts) = get(&format!("{am_url}/api/v2/alerts"));
    let alerts: Value = serde_json::from_str(&alerts).unwrap();
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == "LoginsFailing"),
        "still active in Alertmanager: {alerts:#}"
    );
    let _ = am.kill();
    let _ = am.wait();
}

/// A web page the operator opens cannot talk to the API: a body a browser
/// sends cross-site without asking (`text/plain`, forms) is refused with
/// 415, a name that is not the API's (DNS rebinding) with 421; the page
/// trades the token once for an HttpOnly, SameSite=Strict cookie.
#[test]
fn the_api_refuses_what_a_web_page_could_send() {
    let sandbox = Sandbox::new();
    let mut config = monitoring(json!([]));
    config["api"] = json!({"hosts": ["gantry.internal"]});
    write_config(&sandbox, &json!({ "monitoring": config }));
    let monitor = MonitorProcess::start(&sandbox, &[]);
    let events = format!("{}/v1/events", monitor.api);
    let body = r#"[{"kind": "auth_attempt", "success": false}]"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, _) = request(
            "POST",
            &events,
            &[("content-type", content_type)],
            Some(body),
        );
        assert_eq!(status, 415, "{content_type}");
    }
    let (status, _, _) = request("POST", &events, &[], Some(body));
    assert_eq!(status, 415, "no content type");
    let (status, _, answer) = request(
        "POST",
        &events,
        &[("content-type", "application/json")],
        Some(body),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = request(
        "POST",
        &events,
        &[("content-type", "application/x-ndjson")],
        Some(r#"{"kind": "auth_attempt", "success": true}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let port = monitor.api.rsplit(':').next().unwrap().to_string();
    for host in [
        format!("evil.example:{port}"),
        "127.0.0.1.nip.io".into(),
        format!("localhost.evil.example:{port}"),
    ] {
        let (status, _, _) = request(
            "GET",
            &format!("{}/v1/alerts", monitor.api),
            &[("host", &host)],
            None,
        );
        assert_eq!(status, 421, "{host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("gantry.internal:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let (status, _, _) = request(
            "GET",
            &format!("{}/v1/alerts", monitor.api),
            &[("host", &host)],
            None,
        );
        assert_eq!(status, 200, "{host}");
    }
    let (_, metrics) = get(&format!("{}/metrics", monitor.api));
    assert!(
        metrics.contains("gantry_events_ingested_total 2"),
        "only the JSON posts counted: {metrics}"
    );
    drop(monitor);

    // With a token: the page asks for it once, then a cookie carries it.
    let sandbox = Sandbox::new();
    let mut config = monitoring(json!([]));
    config["api"] = json!({"token": "${env:INGEST_TOKEN}"});
    write_config(&sandbox, &json!({ "monitoring": config }));
    let monitor = MonitorProcess::start(&sandbox, &[("INGEST_TOKEN", "t0ken")]);
    let (status, _, page) = request("GET", &format!("{}/", monitor.api), &[], None);
    assert_eq!(status, 401);
    assert!(page.contains("<form") && !page.contains("t0ken"), "{page}");
    let session = format!("{}/v1/session", monitor.api);
    let json_type = [("content-type", "application/json")];
    let (status, _, _) = request("POST", &session, &json_type, Some(r#"{"token": "nope"}"#));
    assert_eq!(status, 401);
    let (status, headers, _) = request("POST", &session, &json_type, Some(r#"{"token": "t0ken"}"#));
    assert_eq!(status, 200);
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("t0ken"),
        "the cookie is not the token itself: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let (status, _, alerts) = request(
        "GET",
        &format!("{}/v1/alerts", monitor.api),
        &[("cookie", pair)],
        None,
    );
    assert_eq!((status, alerts.as_str()), (200, "[]"));
}

/// Two rules in one group (`team`), firing a second apart.
fn one_group_of_two(receivers: Value) -> Value {
    let rule = |name: &str, threshold: f64, for_seconds: f64| {
        json!({
            "name": name, "metric": "success_rate", "op": "<", "threshold": threshold,
            "window": "1m", "min_samples": 10, "for_seconds": for_seconds,
            "severity": "critical", "labels": {"team": "identity"},
        })
    };
    let mut config = monitoring(receivers);
    config["rules"] = json!([
        rule("LoginsFailing", 0.5, 1.0),
        rule("LoginsMostlyFailing", 0.6, 2.0)
    ]);
    config["group_by"] = json!(["team"]);
    config["group_wait_seconds"] = json!(0.3);
    config["group_interval_seconds"] = json!(5);
    config
}

#[test]
fn a_group_waits_group_interval_after_a_notice_still_in_flight_and_resolves_in_one_notice() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    // The receiver takes 2 s to answer: the first notice is still being
    // delivered when the second alert of its group fires.
    hook.hold(Duration::from_secs(2));
    write_config(
        &sandbox,
        &json!({"monitoring": one_group_of_two(json!([
            {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
        ]))}),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    let both = hook.wait_delivered("the notice with both alerts", WAIT, |r| {
        r.body["status"] == "firing" && r.body["alerts"].as_array().is_some_and(|a| a.len() == 2)
    });
    let received = hook.received();
    let first = &received[0];
    assert_eq!(first.body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(first.body["groupKey"], r#"{}:{team="identity"}"#);
    let gap = both.at - first.at;
    assert!(
        gap >= Duration::from_millis(4900),
        "the group's second notice came {gap:?} after the first (group_interval 5 s)"
    );
    // Both alerts resolve in one evaluation: one notice, group_interval
    // after the last.
    recover(&monitor);
    let resolved = hook.wait_delivered("the resolved notice", WAIT, |r| {
        r.body["status"] == "resolved"
    });
    assert_eq!(
        resolved.body["alerts"].as_array().unwrap().len(),
        2,
        "{:#}",
        resolved.body
    );
    assert!(resolved.at - both.at >= Duration::from_millis(4900));
    std::thread::sleep(Duration::from_secs(3));
    let all = hook.received();
    assert_eq!(
        all.len(),
        3,
        "{:#?}",
        all.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    monitor.kill();
}

#[test]
fn a_notice_claimed_by_a_killed_monitor_is_sent_again_at_once_by_the_next() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    // The receiver holds the request until long after the kill.
    hook.hold(Duration::from_secs(20));
    write_config(
        &sandbox,
        &json!({"monitoring": monitoring(json!([
            {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
        ]))}),
    );
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    fire(&monitor);
    let first = hook.wait_delivered("the notice in flight", WAIT, |r| {
        r.body["status"] == "firing"
    });
    monitor.kill();
    let killed = Instant::now();
    hook.hold(Duration::ZERO);
    let mut again = MonitorProcess::start(&sandbox, &[]);
    let deadline = Instant::now() + WAIT;
    let second = loop {
        let received = hook.received();
        if received.len() >= 2 {
            break received[1].clone();
        }
        assert!(Instant::now() < deadline, "the notice was not sent again");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        second.at - killed < Duration::from_secs(10),
        "sent again {:?} after the kill (the claim lasts 60 s)",
        second.at - killed
    );
    assert_eq!(
        header(&second, "idempotency-key"),
        header(&first, "idempotency-key")
    );
    again.wait_for("the delivery", WAIT, |e| e["event"] == "delivered");
    again.kill();
}

#[test]
fn the_api_describes_itself_and_schemathesis_finds_nothing_outside_it() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let mut config = monitoring(json!([
        {"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}},
    ]));
    config["api"] = json!({"token": "${env:GANTRY_API_TOKEN}"});
    write_config(&sandbox, &json!({ "monitoring": config }));
    let token = "schema-t0ken";
    let mut monitor = MonitorProcess::start(&sandbox, &[("GANTRY_API_TOKEN", token)]);
    let (status, body) = monitor.post(&attempts(100, 100), Some(token));
    assert_eq!(status, 200, "{body}");
    let fired = monitor.wait_for("firing", WAIT, |e| {
        e["event"] == "alert" && e["change"] == "firing"
    });
    let bearer = format!("Bearer {token}");
    let (status, _, doc) = request(
        "GET",
        &format!("{}/v1/openapi.json", monitor.api),
        &[("authorization", bearer.as_str())],
        None,
    );
    assert_eq!(status, 200, "{doc}");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/events",
        "/v1/alerts",
        "/v1/alerts/{id}",
        "/v1/alerts/{id}/ack",
        "/v1/silences",
        "/v1/trend",
        "/v1/session",
        "/metrics",
        "/alerts/{id}",
        "/",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schemathesis.toml");
    let run = std::process::Command::new("schemathesis")
        .args(["--config-file", config, "run"])
        .arg(format!("{}/v1/openapi.json", monitor.api))
        .args(["--header", &format!("Authorization: {bearer}")])
        .args(["--max-examples", "40", "--seed", "1", "--no-color"])
        // Nothing kept between runs (and nothing written into the tree).
        .args(["--generation-database", "none"])
        .env("GANTRY_ALERT_ID", fired["id"].as_str().unwrap())
        .output()
        .expect("schemathesis (`pip install schemathesis`)");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains("passed"), "{out}");
    // A POST to a path that takes none is 405, not a refused body.
    let (status, _, _) = request(
        "POST",
        &format!("{}/healthz", monitor.api),
        &[("authorization", bearer.as_str())],
        None,
    );
    assert_eq!(status, 405);
    monitor.kill();
}

#[test]
fn a_receiver_whose_configuration_breaks_after_start_is_retried_then_handed_to_its_fallback() {
    let sandbox = Sandbox::new();
    let primary = Receiver::start();
    let backup = Receiver::start();
    sandbox.write("hook-secret", "s3cret-from-a-file");
    let mut config = monitoring(json!([
        {"name": "primary", "plugin": "webhook", "fallback": "backup",
         "settings": {"url": primary.url(), "hmac_secret": "${file:hook-secret}"}},
        // Takes nothing directly: only what is handed over.
        {"name": "backup", "plugin": "webhook", "settings": {"url": backup.url()},
         "match": {"route": "fallback-only"}},
    ]));
    config["delivery"]["max_age_seconds"] = json!(3);
    write_config(&sandbox, &json!({ "monitoring": config }));
    let mut monitor = MonitorProcess::start(&sandbox, &[]);
    // The secret's file goes away after the start's check passed.
    std::fs::remove_file(sandbox.path().join("hook-secret")).unwrap();
    fire(&monitor);
    let retried = monitor.wait_for("a retried delivery", WAIT, |e| {
        e["event"] == "delivery_failed" && e["receiver"] == "primary"
    });
    let retried_at = Instant::now();
    assert!(
        retried["retry_in_ms"].is_u64(),
        "the configuration's error was not retried: {retried:#}"
    );
    assert!(
        retried["error"]
            .as_str()
            .unwrap()
            .contains("monitoring.receivers[0].settings.hmac_secret"),
        "{retried:#}"
    );
    let handed = backup.wait_delivered("the fallback's notice", WAIT, |r| {
        r.body["status"] == "firing"
    });
    assert_eq!(handed.body["receiver"], "backup");
    assert!(
        handed.at - retried_at >= Duration::from_millis(2500),
        "handed over before max_age_seconds"
    );
    assert!(primary.received().is_empty(), "sent without its secret");
    let handover = monitor.wait_for("the handover", WAIT, |e| {
        e["event"] == "delivery_failed"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("handed over to backup"))
    });
    assert!(handover["retry_in_ms"].is_null());
    let printed = serde_json::to_string(&monitor.events()).unwrap();
    assert!(!printed.contains("s3cret-from-a-file"));
    monitor.kill();
}
