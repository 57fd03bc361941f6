//! `slack-notifier`: each notification as a Slack message with Block Kit
//! blocks — a header with the status and alert name, a section per alert
//! with its severity, summary and value, its labels as context, who
//! acknowledged it — and a plain `text` fallback for notifications.
//! Resolved notices say so in the header.

use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{AlertState, DeliveryError, Notification, Notifier, config};
use serde_json::{Value, json};

struct Slack;

/// Slack's mrkdwn escapes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Section text is capped at 3,000 characters by Slack.
fn cap(text: String) -> String {
    if text.chars().count() <= 2900 {
        return text;
    }
    let mut cut: String = text.chars().take(2900).collect();
    cut.push('…');
    cut
}

pub fn message(n: &Notification) -> Value {
    let firing = n.firing_count();
    let name = n.name();
    let title = match n.status {
        AlertState::Firing => format!("🔥 FIRING ({firing}): {name}"),
        AlertState::Resolved => format!("✅ RESOLVED: {name}"),
    };
    let title = if n.test {
        format!("[test] {title}")
    } else {
        title
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": title.chars().take(150).collect::<String>(), "emoji": true}
    })];
    for alert in n.alerts.iter().take(20) {
        let severity = alert.severity.as_str();
        let state = alert.status.as_str();
        let mut text = format!(
            "*{}* — {state}, severity *{severity}*\n{}",
            escape(&alert.name),
            escape(&alert.summary)
        );
        if let Some(v) = alert.value {
            text.push_str(&format!("\nvalue `{v:.4}`"));
            if let Some(t) = alert.threshold {
                text.push_str(&format!(" (threshold `{t}`)"));
            }
        }
        if let Some(by) = &alert.acknowledged_by {
            text.push_str(&format!("\n_acknowledged by {}_", escape(by)));
        }
        if !alert.generator_url.is_empty() {
            text.push_str(&format!("\n<{}|details>", alert.generator_url));
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cap(text)}}));
        let labels: Vec<String> = alert
            .labels
            .iter()
            .map(|kv| format!("`{}={}`", escape(&kv.key), escape(&kv.value)))
            .collect();
        if !labels.is_empty() {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": cap(labels.join(" "))}]
            }));
        }
    }
    if n.alerts.len() > 20 || n.truncated_alerts > 0 {
        let more = n.alerts.len().saturating_sub(20) as u32 + n.truncated_alerts;
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("…and {more} more")}]
        }));
    }
    let mut message = json!({ "text": title, "blocks": blocks });
    if let Some(channel) = config::get("channel") {
        message["channel"] = Value::String(channel);
    }
    message
}

impl Notifier for Slack {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let url = config::require("url").map_err(DeliveryError::permanent)?;
        // Slack ignores the key; a proxy in front of it can drop the one
        // duplicate a crash between its 2xx and gantry's commit can cause.
        let response = Request::post(&url)
            .header("idempotency-key", &n.idempotency_key)
            .json(message(&n).to_string())
            .timeout_ms(10_000)
            .send()
            .map_err(|err| match err {
                HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
                    DeliveryError::permanent(describe(&err))
                }
                other => DeliveryError::retry(describe(&other)),
            })?;
        DeliveryError::from_status("Slack", response.status, response.header("retry-after"))
    }
}

gantry_plugin::notifier!(Slack);
