//! A notifier that mails every alert through the host's SMTP relay.

use gantry_plugin::smtp::{self, Message};
use gantry_plugin::{Alert, Notifier, config};

struct Mailer;

impl Notifier for Mailer {
    fn notify(alert: Alert) -> Result<(), String> {
        smtp::send(&Message {
            to: config::list("to"),
            subject: format!("[{:?}] {}", alert.severity, alert.name),
            text_body: alert.description,
            html_body: None,
        })
    }
}

gantry_plugin::notifier!(Mailer);
