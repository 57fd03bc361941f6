//! Receivers: where notices go — a notifier plugin with its settings, the
//! labels it takes, a CA to trust, a fallback. The spec's
//! `monitoring.email_alerts`, when enabled, is a receiver named `email`.

use crate::config::{MonitoringConfig, ReceiverConfig};
use crate::runtime::{PluginKind, Registry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Receiver {
    pub name: String,
    /// Where it is configured (`monitoring.receivers[2]`), for errors.
    pub key: String,
    pub plugin: String,
    /// As configured; `${env:…}` references resolve at each delivery.
    pub settings: BTreeMap<String, String>,
    pub matchers: BTreeMap<String, String>,
    pub ca_file: Option<PathBuf>,
    pub fallback: Option<String>,
    pub send_resolved: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct ReceiverError {
    pub key: String,
    pub message: String,
}

impl Receiver {
    /// True when an alert with `labels` goes to this receiver.
    pub fn takes(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }
}

/// Every receiver, checked: names unique, fallbacks known.
pub fn receivers(config: &MonitoringConfig, base: &Path) -> Result<Vec<Receiver>, ReceiverError> {
    let mut out: Vec<Receiver> = Vec::new();
    if let Some(mail) = &config.email_alerts
        && mail.enabled
    {
        out.push(Receiver {
            name: "email".into(),
            key: "monitoring.email_alerts".into(),
            plugin: "email-notifier".into(),
            settings: [("to".to_string(), mail.to_addresses.join(","))].into(),
            matchers: BTreeMap::new(),
            ca_file: None,
            fallback: None,
            send_resolved: true,
        });
    }
    for (i, r) in config.receivers.iter().enumerate() {
        let key = |f: &str| format!("monitoring.receivers[{i}].{f}");
        let ReceiverConfig {
            name,
            plugin,
            settings,
            matchers,
            ca_file,
            fallback,
            send_resolved,
        } = r;
        if name.trim().is_empty() {
            return Err(ReceiverError {
                key: key("name"),
                message: "a receiver needs a name".into(),
            });
        }
        if out.iter().any(|o| &o.name == name) {
            return Err(ReceiverError {
                key: key("name"),
                message: format!("another receiver is named {name:?}"),
            });
        }
        out.push(Receiver {
            name: name.clone(),
            key: format!("monitoring.receivers[{i}]"),
            plugin: builtin_name(plugin),
            settings: settings.clone(),
            matchers: matchers.clone(),
            ca_file: ca_file.as_ref().map(|p| base.join(p)),
            fallback: fallback.clone(),
            send_resolved: *send_resolved,
        });
    }
    for r in &out {
        if let Some(f) = &r.fallback
            && (!out.iter().any(|o| &o.name == f) || f == &r.name)
        {
            return Err(ReceiverError {
                key: format!("{}.fallback", r.key),
                message: format!("{f:?} is not another receiver"),
            });
        }
    }
    Ok(out)
}

/// Every receiver can work, checked before the monitor starts: its
/// plugin loads and is a notifier, every reference among its settings
/// resolves, the settings are the plugin's, and every URL it would be sent
/// to is within the plugin's grants and the address policy. A monitor that
/// could not deliver is refused at start, naming the receiver's key.
pub fn check_plugins(
    receivers: &[Receiver],
    registry: &Registry,
    secrets_base: &Path,
) -> Result<(), ReceiverError> {
    for r in receivers {
        let fail = |field: &str, message: String| ReceiverError {
            key: format!("{}.{field}", r.key),
            message,
        };
        let plugin = registry
            .plugin(&r.plugin)
            .map_err(|e| fail("plugin", e.to_string()))?;
        if plugin.kind() != PluginKind::Notifier {
            return Err(fail(
                "plugin",
                format!(
                    "{} is a {} plugin, not a notifier",
                    r.plugin,
                    plugin.kind().as_str()
                ),
            ));
        }
        let mut resolved = Vec::new();
        for (k, v) in &r.settings {
            let value = crate::secrets::resolve(v, secrets_base)
                .map_err(|e| fail(&format!("settings.{k}"), e.to_string()))?;
            resolved.push((k.clone(), value));
        }
        let settings = plugin
            .settings(resolved)
            .map_err(|e| fail("settings", e.to_string()))?;
        registry
            .runtime()
            .check_destinations(&plugin, &settings)
            .map_err(|(key, why)| fail(&format!("settings.{key}"), why))?;
        if let Some(ca) = &r.ca_file
            && let Err(e) = std::fs::metadata(ca)
        {
            return Err(fail("ca_file", format!("{}: {e}", ca.display())));
        }
    }
    Ok(())
}

/// `webhook` → `webhook-notifier`: the short names of the built-ins.
fn builtin_name(plugin: &str) -> String {
    crate::runtime::PluginSource::builtin_alias(plugin)
        .map(str::to_string)
        .unwrap_or_else(|| plugin.to_string())
}
