//! A notifier that mails every notification through the host's SMTP relay.

use gantry_plugin::smtp::{self, Message};
use gantry_plugin::{DeliveryError, Notification, Notifier, config};

struct Mailer;

impl Notifier for Mailer {
    fn notify(notification: Notification) -> Result<(), DeliveryError> {
        let first = notification.alerts.first();
        smtp::send(&Message {
            to: config::list("to"),
            subject: format!(
                "[{:?}] {}",
                notification.status,
                first.map(|a| a.name.as_str()).unwrap_or("gantry")
            ),
            text_body: first.map(|a| a.description.clone()).unwrap_or_default(),
            html_body: None,
        })
        .map_err(DeliveryError::retry)
    }
}

gantry_plugin::notifier!(Mailer);
