//! `email-notifier`: each notification as one mail — a subject with the
//! status, count and alert name; a text body and an HTML body listing each
//! alert's severity, summary, description, value, labels and
//! acknowledgement. Sent by the host's `smtp` capability to the operator's
//! relay, which holds the credentials and accepts only the configured
//! recipients.

use gantry_plugin::smtp::{self, Message};
use gantry_plugin::{AlertState, DeliveryError, Notification, Notifier, config};

struct Email;

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn compose(n: &Notification) -> (String, String, String) {
    let firing = n.firing_count();
    let name = n.name();
    let mut subject = match n.status {
        AlertState::Firing => format!("[FIRING:{firing}] {name}"),
        AlertState::Resolved => format!("[RESOLVED] {name}"),
    };
    if n.test {
        subject = format!("[TEST] {subject}");
    }
    let mut text = String::new();
    let mut html = format!(
        "<html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\
         <tr><th>alert</th><th>state</th><th>severity</th><th>summary</th><th>value</th><th>labels</th></tr>",
        html_escape(&subject)
    );
    for a in &n.alerts {
        let state = a.status.as_str();
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        let value = a
            .value
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "{} ({state}, {}): {}\n  {}\n  value {value}{}\n  labels: {}\n",
            a.name,
            a.severity.as_str(),
            a.summary,
            a.description,
            a.threshold
                .map(|t| format!(", threshold {t}"))
                .unwrap_or_default(),
            labels.join(", ")
        ));
        if let Some(by) = &a.acknowledged_by {
            text.push_str(&format!("  acknowledged by {by}\n"));
        }
        if let Some(end) = &a.ends_at {
            text.push_str(&format!("  resolved at {end}\n"));
        }
        if !a.generator_url.is_empty() {
            text.push_str(&format!("  {}\n", a.generator_url));
        }
        text.push('\n');
        html.push_str(&format!(
            "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td></tr>",
            html_escape(&a.name),
            a.severity.as_str(),
            html_escape(&a.summary),
            html_escape(&a.description),
            html_escape(&value),
            html_escape(&labels.join(", "))
        ));
    }
    if n.truncated_alerts > 0 {
        text.push_str(&format!("…and {} more alerts\n", n.truncated_alerts));
    }
    html.push_str("</table></body></html>");
    (subject, text, html)
}

impl Notifier for Email {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let to = config::list("to");
        if to.is_empty() {
            return Err(DeliveryError::permanent("setting `to` names no recipient"));
        }
        let (subject, text_body, html_body) = compose(&n);
        smtp::send(&Message {
            to,
            subject,
            text_body,
            html_body: Some(html_body),
        })
        .map_err(|e| {
            // The relay being down is worth another try; a refused
            // recipient or a missing relay is not.
            if e.contains("not among the recipients") || e.contains("no SMTP relay") {
                DeliveryError::permanent(e)
            } else {
                DeliveryError::retry(e)
            }
        })
    }
}

gantry_plugin::notifier!(Email);
