//! A notifier that mails every notification through the host's SMTP relay
//! (`copies` times: to prove a call's message limit).

use gantry_plugin::smtp::{self, Message};
use gantry_plugin::{DeliveryError, Notification, Notifier, config};

struct Mailer;

impl Notifier for Mailer {
    fn notify(notification: Notification) -> Result<(), DeliveryError> {
        let first = notification.alerts.first();
        let message = Message {
            to: config::list("to"),
            subject: format!(
                "[{:?}] {}",
                notification.status,
                first.map(|a| a.name.as_str()).unwrap_or("gantry")
            ),
            text_body: first.map(|a| a.description.clone()).unwrap_or_default(),
            html_body: None,
        };
        let copies: u32 = config::get("copies")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        for copy in 0..copies {
            smtp::send(&message)
                .map_err(|e| DeliveryError::retry(format!("sent {copy}, then: {e}")))?;
        }
        Ok(())
    }
}

gantry_plugin::notifier!(Mailer);
