//! The `tcp` capability: connect probes to allowlisted `host:port` targets.
//!
//! Deny by default: a probe to a target the manifest does not allow is
//! refused before any socket is opened. A probe connects and closes at
//! once; no bytes are exchanged, and it never outlives the plugin's
//! deadline.

use crate::kind::PluginKind;
use super::io::{remaining, run_io};
use super::unit::{CallContext, Capability, Collected};
use super::egress::AddressPolicy;
use super::{GrantValue, Grants};
use crate::bindings::tcp as wit;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// One allowed target. `port: None` means any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// Checks the shape of a manifest entry (templates filled with stand-ins).
    pub fn check_entry(entry: &str) -> Result<(), String> {
        if super::is_whole_template(entry) {
            return Ok(());
        }
        Self::parse_entry(&super::fill_placeholders(entry, "placeholder", "1")).map(|_| ())
    }

    /// `host:port`, `host:*` or `[v6]:port`.
    pub fn parse_entry(entry: &str) -> Result<Target, String> {
        let (host, port) = entry.rsplit_once(':').ok_or("expected host:port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("bad host {host:?}"));
        }
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
        };
        Ok(Target {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

/// Resolves manifest entries against the call's settings.
pub fn resolve<'a>(entries: &[String], lookup: impl Fn(&str) -> Option<&'a str>) -> Vec<Target> {
    entries
        .iter()
        .filter_map(|entry| super::fill_from(entry, &lookup))
        .filter_map(|filled| Target::parse_entry(&filled).ok())
        .collect()
}

/// The capability as a unit: manifest grant `tcp = ["host:port", …]`.
pub struct Tcp;

impl Capability for Tcp {
    const INTERFACE: &'static str = "tcp";
    const WORLDS: &'static [PluginKind] = &[PluginKind::HealthCheck];
    type Limits = TcpLimits;
    type Shared = TcpShared;
    type State = TcpState;

    fn granted(_: &Grants) -> bool {
        true
    }

    fn check_grant(value: &GrantValue) -> Result<(), String> {
        value.entries(Target::check_entry)
    }

    /// `tcp = ["host:port", …]`, each within a manifest entry.
    type Operator = Vec<String>;

    fn narrow(declared: &Grants, entries: &Vec<String>, grants: &mut Grants) -> Result<(), String> {
        super::narrow_list("tcp", declared, entries, grants, Target::check_entry, |m, e| {
            match (Target::parse_entry(m), Target::parse_entry(e)) {
                (Ok(m), Ok(e)) => m.host == e.host && (m.port.is_none() || m.port == e.port),
                _ => false,
            }
        })
    }

    fn summary(grants: &Grants) -> Option<serde_json::Value> {
        Some(super::list_summary("tcp", grants))
    }

    fn shared(limits: &TcpLimits, _: &tokio::runtime::Handle) -> anyhow::Result<TcpShared> {
        Ok(TcpShared {
            policy: AddressPolicy {
                allow_private_names: limits.allow_private_names,
                key: "plugins.capabilities.tcp",
            },
            max_probes: limits.max_probes_per_call,
        })
    }

    fn state(shared: &TcpShared, call: &CallContext<'_>) -> TcpState {
        TcpState {
            allow: resolve(call.grants.list("tcp"), |k| call.lookup(k)),
            plugin: std::sync::Arc::clone(call.plugin),
            within: call
                .grants
                .narrowed("tcp")
                .map(|list| resolve(list, |k| call.lookup(k))),
            policy: shared.policy,
            probes: 0,
            max_probes: shared.max_probes,
            io: call.io.clone(),
            deadline: call.deadline,
            denials: Vec::new(),
        }
    }

    fn add_to_linker<T: 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut TcpState,
    ) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<TcpState>>(linker, get)
    }

    fn collect(state: &mut TcpState, into: &mut Collected) {
        into.denials.append(&mut state.denials);
    }
}

/// Operator bounds on plugin TCP probes (`plugins.capabilities.tcp`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpLimits {
    /// Names may resolve to loopback and private ranges (see `egress`).
    pub allow_private_names: bool,
    /// The most probes one call may make (each a name lookup and a
    /// connection), so one health check cannot flood its target or use up
    /// this host's ports with closed connections.
    pub max_probes_per_call: u32,
}

/// Probes a call may make unless the operator says otherwise.
pub const DEFAULT_PROBES_PER_CALL: u32 = 16;

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            allow_private_names: false,
            max_probes_per_call: DEFAULT_PROBES_PER_CALL,
        }
    }
}

/// The capability's per-runtime part: the address policy and the limit.
pub struct TcpShared {
    policy: AddressPolicy,
    max_probes: u32,
}

pub struct TcpState {
    allow: Vec<Target>,
    /// The plugin's name, for messages.
    plugin: std::sync::Arc<str>,
    /// The operator's narrower list (`plugins.grants.NAME.tcp`), if any.
    within: Option<Vec<Target>>,
    policy: AddressPolicy,
    /// Probes made in this call, and the most it may make.
    probes: u32,
    max_probes: u32,
    io: tokio::runtime::Handle,
    deadline: Instant,
    /// Targets refused during this call, for the call's report.
    pub denials: Vec<String>,
}

impl TcpState {
    fn probe_checked(&mut self, host: String, port: u16, timeout_ms: u32) -> Result<u64, String> {
        if !self.allow.iter().any(|t| t.allows(&host, port)) {
            let why = format!(
                "denied: {host}:{port} is not in the allowlist; add \"{host}:{port}\" to capabilities.tcp in the plugin's manifest"
            );
            self.denials.push(why.clone());
            return Err(why);
        }
        if let Some(within) = &self.within
            && !within.iter().any(|t| t.allows(&host, port))
        {
            let why = format!(
                "denied: {host}:{port} is granted by the manifest but not by the operator (plugins.grants.{}.tcp)",
                self.plugin
            );
            self.denials.push(why.clone());
            return Err(why);
        }
        if self.probes >= self.max_probes {
            let why = format!(
                "denied: this call has made {} probes, the most one call may (plugins.capabilities.tcp.max_probes_per_call)",
                self.probes
            );
            self.denials.push(why.clone());
            return Err(why);
        }
        self.probes += 1;
        let budget = Duration::from_millis(timeout_ms.into()).min(remaining(self.deadline));
        if budget.is_zero() {
            return Err("timed out before connecting".into());
        }
        let policy = self.policy;
        let result = run_io(&self.io, async move {
            let started = Instant::now();
            // Resolved once and checked; the connect goes to those addresses.
            let connect = async {
                let addrs = policy.resolve(&host, port).await.map_err(|r| r.0)?;
                tokio::net::TcpStream::connect(&addrs[..])
                    .await
                    .map_err(|e| e.to_string())
            };
            match tokio::time::timeout(budget, connect).await {
                Ok(Ok(stream)) => {
                    let took = started.elapsed();
                    drop(stream);
                    Ok(u64::try_from(took.as_micros()).unwrap_or(u64::MAX))
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("timed out after {} ms", budget.as_millis())),
            }
        })
        .unwrap_or_else(|| Err("the host is shutting down".into()));
        if let Err(why) = &result
            && why.starts_with("denied: ")
        {
            self.denials.push(why.clone());
        }
        result
    }
}

impl wit::Host for TcpState {
    fn probe(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, String>> {
        Ok(self.probe_checked(host, port, timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_host_and_port() {
        let any = Target::parse_entry("db.internal:*").unwrap();
        let one = Target::parse_entry("127.0.0.1:5432").unwrap();
        assert!(any.allows("DB.internal", 1));
        assert!(one.allows("127.0.0.1", 5432));
        assert!(!one.allows("127.0.0.1", 5433));
        assert!(Target::parse_entry("nohost").is_err());
        assert!(Target::parse_entry("h:70000").is_err());
    }

    #[test]
    fn templates_resolve_from_settings() {
        let entries = vec!["{host}:{port}".to_string(), "{target}".to_string()];
        let targets = resolve(&entries, |k| match k {
            "host" => Some("127.0.0.1"),
            "port" => Some("9"),
            _ => None,
        });
        assert_eq!(
            targets,
            vec![Target {
                host: "127.0.0.1".into(),
                port: Some(9)
            }]
        );
        let fill = |host: &'static str, port: &'static str| {
            resolve(&entries[..1], move |k| match k {
                "host" => Some(host),
                "port" => Some(port),
                _ => None,
            })
        };
        assert_eq!(fill("::1", "5432").len(), 1);
        assert_eq!(fill("db.internal", "5432").len(), 1);
        // A port is a port: `*` would grant every one.
        assert!(fill("db.internal", "*").is_empty());
        assert!(fill("db.internal", "+5432").is_empty());
        assert!(fill("evil.example:22 x", "5432").is_empty());
        let region = vec!["{region}.db.example.com:5432".to_string()];
        assert!(resolve(&region, |_| Some("eu-west")).len() == 1);
        assert!(resolve(&region, |_| Some("evil.example:22#")).is_empty());
    }
}
