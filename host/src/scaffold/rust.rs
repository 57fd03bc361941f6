//! The Rust plugin crate: `Cargo.toml`, `src/lib.rs`, the manifest.

pub(super) const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
gantry-plugin = { path = "@SDK@" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# A plugin is its own workspace, wherever it is created.
[workspace]
"#;

pub(super) const README: &str = r#"# @NAME@

A gantry plugin.

    cargo build --target wasm32-wasip2 --release
    gantry plugin test . --set url=http://127.0.0.1:8080/health

To install it, copy the component and its manifest into the plugin
directory (`.gantry/plugins` by default, or `plugins.dir` in the config):

    cp target/wasm32-wasip2/release/$(echo @NAME@ | tr - _).wasm .gantry/plugins/@NAME@.wasm
    cp @NAME@.toml .gantry/plugins/@NAME@.toml

`@NAME@.toml` says what the plugin may reach: add destinations under
`[capabilities]`, settings under `[settings.NAME]`.
"#;

pub(super) const HEALTH_CHECK_MANIFEST: &str = r#"name = "@NAME@"
kind = "health-check"
version = "0.1.0"
description = "A health check."

[capabilities]
# Where the plugin may send HTTP requests: scheme://host:port entries, or a
# setting in braces whose value is a URL the operator chose.
http = ["{url}", "{target}"]

[limits]
memory_mib = 16
timeout_ms = 5000

[settings.url]
description = "URL to check; defaults to the target"
"#;

pub(super) const HEALTH_CHECK_LIB: &str = r#"//! `@NAME@`: a gantry health check.

use gantry_plugin::http::{describe, Request};
use gantry_plugin::{config, CheckResult, HealthCheck, Metric};

struct Check;

impl HealthCheck for Check {
    fn check(target: String) -> CheckResult {
        let url = match config::get("url") {
            Some(url) => url,
            None if !target.is_empty() => target,
            None => return CheckResult::unknown("setting `url` is required (or give a target)"),
        };
        match Request::get(&url).timeout_ms(5000).send() {
            Ok(response) if (200..300).contains(&response.status) => CheckResult::ok(format!(
                "{url} answered {} in {} ms",
                response.status, response.elapsed_ms
            ))
            .metric(Metric::new("time", f64::from(response.elapsed_ms), "ms")),
            Ok(response) => CheckResult::critical(format!("{url} answered {}", response.status)),
            Err(err) => CheckResult::critical(format!("{url}: {}", describe(&err))),
        }
    }
}

gantry_plugin::health_check!(Check);
"#;

pub(super) const NOTIFIER_MANIFEST: &str = r#"name = "@NAME@"
kind = "notifier"
version = "0.1.0"
description = "An alert channel."

[capabilities]
http = ["{url}"]

[limits]
memory_mib = 16
timeout_ms = 10000

[settings.url]
description = "where alerts are POSTed"
required = true
"#;

pub(super) const NOTIFIER_LIB: &str = r#"//! `@NAME@`: a gantry notifier that POSTs each notification (a group of
//! alerts, shaped like Alertmanager's webhook payload) as JSON.

use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{config, AlertState, DeliveryError, Notification, Notifier};

struct Channel;

impl Notifier for Channel {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let url = config::require("url").map_err(DeliveryError::permanent)?;
        let state = |s: AlertState| match s {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        let alerts: Vec<String> = n
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{{\"status\":\"{}\",\"name\":{},\"summary\":{},\"fingerprint\":{}}}",
                    state(a.status),
                    quote(&a.name),
                    quote(&a.summary),
                    quote(&a.fingerprint)
                )
            })
            .collect();
        let body = format!(
            "{{\"receiver\":{},\"status\":\"{}\",\"groupKey\":{},\"test\":{},\"alerts\":[{}]}}",
            quote(&n.receiver),
            state(n.status),
            quote(&n.group_key),
            n.test,
            alerts.join(",")
        );
        let response = Request::post(&url)
            .header("idempotency-key", &n.idempotency_key)
            .json(body)
            .send()
            .map_err(|err| match err {
                HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
                    DeliveryError::permanent(describe(&err))
                }
                other => DeliveryError::retry(describe(&other)),
            })?;
        DeliveryError::from_status(&url, response.status, response.header("retry-after"))
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

gantry_plugin::notifier!(Channel);
"#;
