//! Log lines, sent to the host's log under the plugin's name.

use crate::Level;
use crate::bindings::log as raw;

pub fn log(level: Level, message: &str) {
    raw::log(level, message);
}

pub fn debug(message: &str) {
    raw::log(Level::Debug, message);
}

pub fn info(message: &str) {
    raw::log(Level::Info, message);
}

pub fn warn(message: &str) {
    raw::log(Level::Warn, message);
}

pub fn error(message: &str) {
    raw::log(Level::Error, message);
}
