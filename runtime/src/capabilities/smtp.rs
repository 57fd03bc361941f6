//! The `smtp` capability: mail through the operator's relay (lettre). The
//! plugin composes the message (subject, text and HTML bodies); the host
//! holds the relay, the sender address and the credentials, and sends only
//! to the recipients the operator configured. A plugin never sees a
//! password and cannot turn the relay into an open one.
//!
//! The relay is `plugins.capabilities.smtp` in the deployment config, or
//! the spec's `monitoring.email_alerts` (host, port, from, to, username,
//! password by `${env:…}`, `tls`: `starttls` (port 587's default),
//! `tls` (465's), or `none`). TLS trusts the platform's store and, when
//! given, `ca_file`. Gated: `smtp = true` in the manifest.

use crate::kind::PluginKind;
use super::io::{remaining, run_io};
use super::unit::{CallContext, Capability};
use super::{GrantValue, Grants};
use crate::bindings::smtp::{self as wit, Message};
use lettre::message::{MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// Plain text (a relay on loopback).
    None,
}

/// The operator's relay (`plugins.capabilities.smtp`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpLimits {
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// The sender every message carries.
    pub from: Option<String>,
    /// The only recipients a plugin may write to.
    #[serde(default)]
    pub to: Vec<String>,
    pub username: Option<String>,
    /// The password or a `${env:…}` / `${file:…}` reference, resolved at
    /// the first send (so a command that sends no mail never needs it).
    pub password: Option<String>,
    /// Where `${file:…}` references are relative to.
    #[serde(skip)]
    pub secrets_base: std::path::PathBuf,
    /// A CA (PEM) to trust for the relay, beside the platform's store.
    pub ca_file: Option<std::path::PathBuf>,
    /// Seconds a send may take (the plugin's deadline may cut it shorter).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The most messages one call may send, so one notification cannot
    /// flood the operator's inboxes or spend the relay's quota.
    #[serde(default = "default_messages")]
    pub max_messages_per_call: u32,
}

fn default_timeout() -> u64 {
    30
}

/// Messages a call may send unless the operator says otherwise.
pub const DEFAULT_MESSAGES_PER_CALL: u32 = 5;

fn default_messages() -> u32 {
    DEFAULT_MESSAGES_PER_CALL
}

/// No relay: every send is refused, naming the settings that configure one.
impl Default for SmtpLimits {
    fn default() -> Self {
        SmtpLimits {
            host: None,
            port: None,
            tls: SmtpTls::default(),
            from: None,
            to: Vec::new(),
            username: None,
            password: None,
            secrets_base: std::path::PathBuf::new(),
            ca_file: None,
            timeout_seconds: default_timeout(),
            max_messages_per_call: default_messages(),
        }
    }
}

/// The built relay, shared by every call.
pub struct SmtpShared {
    relay: Option<Relay>,
    io: tokio::runtime::Handle,
}

struct Relay {
    limits: SmtpLimits,
    /// Built at the first send.
    transport: std::sync::OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
    allowed: Vec<String>,
    timeout: Duration,
}

impl Relay {
    fn build(limits: &SmtpLimits) -> anyhow::Result<Option<Relay>> {
        if limits.host.is_none() {
            return Ok(None);
        }
        let from = limits
            .from
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the SMTP relay needs a sender (`from`)"))?
            .parse()?;
        Ok(Some(Relay {
            limits: limits.clone(),
            transport: std::sync::OnceLock::new(),
            from,
            allowed: limits.to.iter().map(|a| a.trim().to_ascii_lowercase()).collect(),
            timeout: Duration::from_secs(limits.timeout_seconds),
        }))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        if let Some(t) = self.transport.get() {
            return Ok(t.clone());
        }
        let built = Self::connectable(&self.limits).map_err(|e| format!("the SMTP relay: {e:#}"))?;
        Ok(self.transport.get_or_init(|| built).clone())
    }

    fn connectable(limits: &SmtpLimits) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
        let host = limits.host.as_deref().expect("checked");
        let mut tls = TlsParameters::builder(host.to_string());
        if let Some(ca) = &limits.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", ca.display()))?;
            tls = tls.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        let tls = tls.build()?;
        let (tls, port) = match limits.tls {
            SmtpTls::Starttls => (Tls::Required(tls), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(limits.port.unwrap_or(port))
            .tls(tls)
            .timeout(Some(Duration::from_secs(limits.timeout_seconds)));
        if let (Some(user), Some(password)) = (&limits.username, &limits.password) {
            let password = crate::secrets::resolve(password, &limits.secrets_base)?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(builder.build())
    }
}

pub struct SmtpState {
    shared: std::sync::Arc<SmtpShared>,
    deadline: Instant,
    /// Messages sent during this call, for the report.
    pub sent: u32,
    /// Sends tried during this call (sent or refused by the relay).
    attempts: u32,
    /// The manifest grants `smtp = true`; otherwise it imports the
    /// interface with `smtp = false` and every send is refused.
    granted: bool,
}

/// The capability as a unit: manifest grant `smtp = true`.
pub struct Smtp;

impl Capability for Smtp {
    const INTERFACE: &'static str = "smtp";
    const WORLDS: &'static [PluginKind] = &[PluginKind::Notifier];
    type Limits = SmtpLimits;
    type Shared = std::sync::Arc<SmtpShared>;
    type State = SmtpState;

    fn granted(grants: &Grants) -> bool {
        grants.flag("smtp")
    }

    fn check_grant(value: &GrantValue) -> Result<(), String> {
        value.flag()
    }

    /// `smtp = false` refuses every send; `true` only where the manifest
    /// grants it.
    type Operator = bool;

    fn narrow(declared: &Grants, entry: &bool, grants: &mut Grants) -> Result<(), String> {
        if *entry && !declared.flag("smtp") {
            return Err("= true is wider than the manifest, which does not grant smtp".into());
        }
        if !*entry {
            grants.entries.insert("smtp".into(), GrantValue::Flag(false));
        }
        Ok(())
    }

    fn summary(grants: &Grants) -> Option<serde_json::Value> {
        Some(serde_json::json!(grants.flag("smtp")))
    }

    fn shared(
        limits: &SmtpLimits,
        io: &tokio::runtime::Handle,
    ) -> anyhow::Result<std::sync::Arc<SmtpShared>> {
        Ok(std::sync::Arc::new(SmtpShared {
            relay: Relay::build(limits)?,
            io: io.clone(),
        }))
    }

    fn state(shared: &std::sync::Arc<SmtpShared>, call: &CallContext<'_>) -> SmtpState {
        SmtpState {
            granted: Self::granted(call.grants),
            shared: std::sync::Arc::clone(shared),
            deadline: call.deadline,
            sent: 0,
            attempts: 0,
        }
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut SmtpState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<SmtpState>>(linker, get)
    }
}

impl SmtpState {
    fn send_checked(&mut self, message: Message) -> Result<(), String> {
        if !self.granted {
            return Err("smtp is not granted to this plugin (`smtp = false` in its manifest)".into());
        }
        let Some(relay) = &self.shared.relay else {
            return Err(
                "no SMTP relay is configured (monitoring.email_alerts or plugins.capabilities.smtp)"
                    .into(),
            );
        };
        if message.to.is_empty() {
            return Err("the message has no recipient".into());
        }
        if self.attempts >= relay.limits.max_messages_per_call {
            return Err(format!(
                "this call has sent {} messages, the most one call may (plugins.capabilities.smtp.max_messages_per_call)",
                self.attempts
            ));
        }
        // lettre adds `Date`; the Message-ID is ours, under the sender's
        // domain, so threads and deduplication in mail clients work.
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| format!("no random source: {e}"))?;
        let mut builder = lettre::Message::builder()
            .from(relay.from.clone())
            .message_id(Some(format!(
                "<{}.gantry@{}>",
                hex::encode(id),
                relay.from.email.domain()
            )))
            .subject(message.subject.clone());
        // Each recipient once, however often the message names it.
        let mut seen = std::collections::BTreeSet::new();
        for to in &message.to {
            let address = to.trim().to_ascii_lowercase();
            if !relay.allowed.iter().any(|a| a == &address) {
                return Err(format!(
                    "{to} is not among the recipients the operator configured"
                ));
            }
            if !seen.insert(address) {
                continue;
            }
            builder = builder.to(to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?);
        }
        let email = match &message.html_body {
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(message.text_body.clone()))
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.clone()),
                    ),
            ),
            None => builder.body(message.text_body.clone()),
        }
        .map_err(|e| format!("cannot build the message: {e}"))?;
        let budget = relay.timeout.min(remaining(self.deadline));
        if budget.is_zero() {
            return Err("the plugin's deadline passed before sending".into());
        }
        let transport = relay.transport()?;
        self.attempts += 1;
        let sent = run_io(&self.shared.io, async move {
            tokio::time::timeout(budget, transport.send(email)).await
        });
        match sent {
            Some(Ok(Ok(_))) => {
                self.sent += 1;
                Ok(())
            }
            Some(Ok(Err(e))) => Err(format!("the relay refused: {e}")),
            Some(Err(_)) => Err(format!("the relay did not answer within {budget:?}")),
            None => Err("the host is shutting down".into()),
        }
    }
}

impl wit::Host for SmtpState {
    fn send(&mut self, message: Message) -> wasmtime::Result<Result<(), String>> {
        Ok(self.send_checked(message))
    }
}
