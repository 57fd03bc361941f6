//! The operator's plugin settings (`plugins.*`, and the mail relay of
//! `monitoring.email_alerts`) as the runtime's own settings type.

use super::{Settings, SettingsError};
use crate::capabilities;
use crate::config::EmailAlerts;
use crate::runtime::RuntimeSettings;

impl Settings {
    /// The runtime's settings from the resolved `Settings`;
    /// refuses unknown capability limits, naming the key.
    pub fn runtime(&self) -> Result<RuntimeSettings, SettingsError> {
        let settings = self;
        let plugins = &settings.config.config.plugins;
        let capabilities = match &plugins.capabilities {
            None => capabilities::Limits::default(),
            Some(value) => {
                serde_path_to_error::deserialize(value).map_err(|e| SettingsError::Invalid {
                    source_name: settings.config.name(),
                    message: format!("`plugins.capabilities.{}`: {}", e.path(), e.inner()),
                })?
            }
        };
        let mut capabilities = capabilities;
        capabilities.smtp.secrets_base = settings.secrets_base();
        let smtp_given = plugins
            .capabilities
            .as_ref()
            .is_some_and(|c| c.get("smtp").is_some());
        if !smtp_given
            && let Some(mail) = &settings.config.config.monitoring.email_alerts
            && mail.enabled
        {
            capabilities.smtp = smtp_relay(settings, mail)?;
        }
        let mut runtime = RuntimeSettings {
            cache_dir: settings.cache_dir.clone(),
            capabilities,
            grants: plugins.grants.clone(),
            pins: plugins.pins.clone(),
            ..RuntimeSettings::default()
        };
        if let Some(mib) = plugins.cache_max_mib {
            runtime.cache_max_bytes = mib << 20;
        }
        if let Some(mib) = plugins.max_memory_mib {
            runtime.engine.max_memory_bytes = (mib << 20) as usize;
        }
        Ok(runtime)
    }
}

/// The spec's `monitoring.email_alerts` as the smtp capability's relay
/// (the password reference is resolved at the first send).
fn smtp_relay(
    settings: &Settings,
    mail: &EmailAlerts,
) -> Result<capabilities::smtp::SmtpLimits, SettingsError> {
    use capabilities::smtp::{SmtpLimits, SmtpTls};
    let invalid = |message: String| SettingsError::Invalid {
        source_name: settings.config.name(),
        message,
    };
    let tls = match mail.tls.as_deref() {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            return Err(invalid(format!(
                "`monitoring.email_alerts.tls` = {other:?}: expected starttls, tls or none"
            )));
        }
    };
    Ok(SmtpLimits {
        host: Some(mail.smtp_host.clone()),
        port: Some(mail.smtp_port),
        tls,
        from: Some(mail.from_address.clone()),
        to: mail.to_addresses.clone(),
        username: mail.username.clone(),
        password: mail.password.clone(),
        secrets_base: settings.secrets_base(),
        ca_file: mail.ca_file.as_ref().map(|p| settings.resolve_path(p)),
        timeout_seconds: 30,
        max_messages_per_call: capabilities::smtp::DEFAULT_MESSAGES_PER_CALL,
    })
}
