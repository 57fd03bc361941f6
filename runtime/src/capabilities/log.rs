//! The `log` capability: plugin log lines into the host's `tracing`,
//! tagged with the plugin's name.
//!
//! Bounded: a call keeps at most `max_lines` lines of at most
//! `max_line_bytes` each; the rest are counted and reported once. A plugin
//! can never flood the host's log or memory through this interface.

use crate::kind::PluginKind;
use super::Grants;
use super::unit::{CallContext, Capability, Collected};
use crate::bindings::log as wit;
use crate::bindings::types::Level;
use serde::Serialize;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Operator bounds on plugin logs (`plugins.capabilities.log`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogLimits {
    pub max_lines: usize,
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_lines: 200,
            max_line_bytes: 4096,
        }
    }
}

/// One kept log line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// The capability as a unit: every plugin may log.
pub struct Log;

impl Capability for Log {
    const INTERFACE: &'static str = "log";
    const WORLDS: &'static [PluginKind] = &PluginKind::ALL;
    type Operator = super::NoOperatorGrant;
    type Limits = LogLimits;
    type Shared = LogLimits;
    type State = LogState;

    fn granted(_: &Grants) -> bool {
        true
    }

    fn shared(limits: &LogLimits, _: &tokio::runtime::Handle) -> anyhow::Result<LogLimits> {
        Ok(*limits)
    }

    fn state(limits: &LogLimits, call: &CallContext<'_>) -> LogState {
        let mut state = LogState::new(Arc::clone(call.plugin), *limits);
        state.secrets = Arc::clone(call.secrets);
        state
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<LogState>>(linker, get)
    }

    fn collect(state: &mut LogState, into: &mut Collected) {
        into.logs.append(&mut state.lines);
        into.dropped_logs += state.dropped;
    }
}

pub struct LogState {
    plugin: Arc<str>,
    limits: LogLimits,
    /// The call's secrets, scrubbed from every line before it goes out.
    secrets: Arc<crate::scrub::Scrubber>,
    pub lines: Vec<LogLine>,
    pub dropped: u64,
}

impl LogState {
    pub fn new(plugin: Arc<str>, limits: LogLimits) -> Self {
        LogState {
            plugin,
            limits,
            secrets: Arc::default(),
            lines: Vec::new(),
            dropped: 0,
        }
    }
}

pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl wit::Host for LogState {
    fn log(&mut self, level: Level, mut message: String) -> wasmtime::Result<()> {
        if self.lines.len() >= self.limits.max_lines {
            self.dropped += 1;
            return Ok(());
        }
        self.secrets.scrub_in_place(&mut message);
        if message.len() > self.limits.max_line_bytes {
            let mut cut = self.limits.max_line_bytes;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.plugin;
        // One log line per call to `log`: a plugin cannot forge gantry's
        // lines or move the cursor of whoever reads the log.
        let shown = crate::escape::one_line(&message);
        let message_line = &*shown;
        match level {
            Level::Trace => tracing::trace!(target: "gantry::plugin", plugin, "{message_line}"),
            Level::Debug => tracing::debug!(target: "gantry::plugin", plugin, "{message_line}"),
            Level::Info => tracing::info!(target: "gantry::plugin", plugin, "{message_line}"),
            Level::Warn => tracing::warn!(target: "gantry::plugin", plugin, "{message_line}"),
            Level::Error => tracing::error!(target: "gantry::plugin", plugin, "{message_line}"),
        }
        self.lines.push(LogLine {
            level: level_name(level),
            message,
        });
        Ok(())
    }
}
