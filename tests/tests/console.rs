//! The console in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) opens `gantry monitor`'s page behind its API
//! token, finds the last hour's plots drawn with data and the rule's
//! threshold, sees them refreshed without a reload, follows the alert's
//! link to its timeline — the page every notice links to — and
//! acknowledges it there. Screenshots are kept in `target/test-artifacts/`
//! (`console.png`, `console-alert.png`).

use fantoccini::{ClientBuilder, Locator};
use gantry_tests::Sandbox;
use gantry_tests::monitor::{MonitorProcess, Receiver, attempts, get, request};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "console-t0ken-for-tests";
const WAIT: Duration = Duration::from_secs(40);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, ready.
fn chromedriver() -> (Driver, String) {
    let port = gantry_tests::auth::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: apt-get install chromium chromium-driver)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while gantry_tests::monitor::try_get(&format!("{url}/status")).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Driver(child), url)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_console_draws_the_hour_links_the_alert_and_acknowledges_it_in_a_browser() {
    let sandbox = Sandbox::new();
    let hook = Receiver::start();
    let config = json!({"monitoring": {
        "evaluation_interval_seconds": 0.2,
        "default_rules": false,
        "rules": [{
            "name": "LoginsFailing", "metric": "success_rate", "op": "<", "threshold": 0.5,
            "window": "1m", "min_samples": 10, "severity": "critical", "no_data": "keep",
        }],
        "receivers": [{"name": "ops", "plugin": "webhook", "settings": {"url": hook.url()}}],
        "group_wait_seconds": 0.3,
        "delivery": {"initial_backoff_seconds": 0.2, "poll_seconds": 0.05},
        "api": {"token": "${env:GANTRY_API_TOKEN}"},
    }});
    sandbox.write(
        "deployment_config.json",
        serde_json::to_string_pretty(&config).unwrap(),
    );
    let monitor = MonitorProcess::start(&sandbox, &[("GANTRY_API_TOKEN", TOKEN)]);
    let api = monitor.api.clone();
    let (status, body) = monitor.post(&attempts(100, 90), Some(TOKEN));
    assert_eq!(status, 200, "{body}");

    // The notice's link is the alert's page (behind the token).
    let notice = hook.wait_delivered("the firing notice", WAIT, |r| r.body["status"] == "firing");
    let link = notice.body["alerts"][0]["generatorURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!("{api}/alerts/")), "{link}");
    let external = notice.body["externalURL"].as_str().unwrap();
    assert_eq!(external, api);
    assert_eq!(get(&link).0, 401, "the alert page asks for the token");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let (status, _, page) = request("GET", &link, &auth, None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("LoginsFailing"), "{page}");
    // Its timeline as JSON: pending, firing, the delivered notice.
    let id = link.rsplit('/').next().unwrap();
    let (status, _, timeline) = request("GET", &format!("{api}/v1/alerts/{id}"), &auth, None);
    assert_eq!(status, 200, "{timeline}");
    let timeline: Value = serde_json::from_str(&timeline).unwrap();
    let whats: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(whats.starts_with(&["pending", "firing"]), "{whats:?}");
    assert!(
        timeline["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "notice" && e["receiver"] == "ops" && e["result"] == "delivered"),
        "{timeline:#}"
    );
    assert_eq!(timeline["alert"]["labels"]["alertname"], "LoginsFailing");

    // Wait for the trend's first slice with the events in it.
    wait_until("a point with data", || {
        let (_, _, trend) = request("GET", &format!("{api}/v1/trend"), &auth, None);
        serde_json::from_str::<Value>(&trend).is_ok_and(|t| {
            t["points"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| !p["values"][0].is_null()))
        })
    });

    let (_driver, webdriver) = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--window-size=1400,1800",
            ]}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .expect("a Chromium session");
        browser.goto(&format!("{api}/")).await.unwrap();
        // The token prompt, then the console.
        browser
            .find(Locator::Css("#t"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        browser
            .find(Locator::Css("#f button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let plots = browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#plots figure.plot svg"))
            .await
            .expect("the plots");
        drop(plots);
        let svgs = browser
            .find_all(Locator::Css("#plots figure.plot svg"))
            .await
            .unwrap();
        assert_eq!(svgs.len(), 5, "five plots");
        let points: u32 = browser
            .find(Locator::Css("#plot-success svg"))
            .await
            .unwrap()
            .attr("data-points")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert!(points >= 1, "the success plot has no data");
        let drawn = browser
            .find_all(Locator::Css(
                "#plot-success svg polyline, #plot-success svg circle",
            ))
            .await
            .unwrap();
        assert!(!drawn.is_empty(), "nothing drawn on the success plot");
        browser
            .find(Locator::Css("#plot-success line.threshold"))
            .await
            .expect("the rule's threshold on the plot");

        // Live: the plots are fetched again without reloading the page.
        browser
            .execute("window.__kept = 42; document.getElementById('plots').dataset.old = 'yes'; document.getElementById('plots').innerHTML = '';", vec![])
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let refreshed = browser
                .execute(
                    "return [window.__kept, document.querySelectorAll('#plots svg').length];",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(refreshed[0], 42, "the page reloaded");
            if refreshed[1].as_u64() == Some(5) {
                break;
            }
            assert!(Instant::now() < deadline, "the plots were not refreshed");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let home = browser.screenshot().await.unwrap();
        // The alert's link leads to its timeline; ack it there.
        browser
            .find(Locator::Css("#alerts a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#timeline tr[data-what=firing]"))
            .await
            .expect("the alert's timeline");
        assert!(
            browser.current_url().await.unwrap().path().starts_with("/alerts/"),
            "not on the alert's page"
        );
        browser
            .find(Locator::Css("#timeline tr[data-what=notice]"))
            .await
            .expect("the notice in the timeline");
        browser
            .find(Locator::Css("button[data-action=ack]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#timeline tr[data-what=acknowledged]"))
            .await
            .expect("the acknowledgement in the timeline");
        let shot = browser.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("console.png"), home).unwrap();
        std::fs::write(dir.join("console-alert.png"), shot).unwrap();
        browser.close().await.unwrap();
    });

    // The acknowledgement is in the store, by the console.
    let listed = sandbox.run(&["--json", "alerts", "list"]).expect(0).json();
    assert!(
        listed[0]["acked_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("console@")),
        "{listed:#}"
    );
    assert!(listed[0]["labels"].is_object(), "{listed:#}");
}
