//! A notifier that takes every notification and does nothing.

use gantry_plugin::{DeliveryError, Notification, Notifier};

struct Noop;

impl Notifier for Noop {
    fn notify(_notification: Notification) -> Result<(), DeliveryError> {
        Ok(())
    }
}

gantry_plugin::notifier!(Noop);
