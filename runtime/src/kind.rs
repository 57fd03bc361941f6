//! The world a plugin targets: its name and what it exports. What it may
//! import is the capabilities' to say (`capabilities::imports_of`).

use serde::Deserialize;
use std::fmt;

/// The world a plugin targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    HealthCheck,
    Notifier,
    ConfigValidator,
    Migration,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::HealthCheck,
        PluginKind::Notifier,
        PluginKind::ConfigValidator,
        PluginKind::Migration,
    ];

    /// The WIT world name.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::HealthCheck => "health-check",
            PluginKind::Notifier => "notifier",
            PluginKind::ConfigValidator => "config-validator",
            PluginKind::Migration => "migration",
        }
    }

    /// The functions a component of this world exports.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            PluginKind::HealthCheck => &["check"],
            PluginKind::Notifier => &["notify"],
            PluginKind::ConfigValidator => &["validate"],
            PluginKind::Migration => &["up", "down"],
        }
    }

    pub fn parse(text: &str) -> Option<PluginKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
