//! A notifier that takes every alert and does nothing.

use gantry_plugin::{Alert, Notifier};

struct Noop;

impl Notifier for Noop {
    fn notify(_alert: Alert) -> Result<(), String> {
        Ok(())
    }
}

gantry_plugin::notifier!(Noop);
