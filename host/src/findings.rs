//! Findings: problems a schema or a config-validator plugin found in a
//! rendered file, with the file, the JSON pointer to the value at fault,
//! a severity and where the finding came from. Plain data; never printed
//! here.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// A problem found in a rendered file, by a schema or a validator plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    /// JSON pointer to the value at fault.
    pub path: String,
    pub severity: Severity,
    pub message: String,
    /// `schema` or the plugin's name.
    pub source: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(
            f,
            "{severity}: {}{path}: {} [{}]",
            self.file, self.message, self.source
        )
    }
}
