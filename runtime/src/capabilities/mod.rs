//! What the host gives plugins, one module per capability.
//!
//! Each module owns its operator limits, its grant (its key under the
//! manifest's `[capabilities]`), something shared per runtime and a fresh
//! per-call state that implements its WIT host trait (never the whole
//! store). `capabilities!` below is the one list: adding a capability is
//! its file plus one line there. A plugin importing an interface of the
//! contract that is not listed fails to load.

pub mod egress;
pub mod io;
mod unit;

pub use unit::{CallContext, Capability, Collected, NoOperatorGrant};

use serde::Deserialize;
use std::collections::BTreeMap;

macro_rules! capabilities {
    ($($field:ident: $module:ident::$ty:ident),* $(,)?) => {
        $(pub mod $module;)*
        capabilities!(@list $($field: $module::$ty),*);
    };
    (@list $($field:ident: $cap:ty),*) => {
        /// Every capability's per-call state.
        pub struct States {
            $(pub $field: <$cap as Capability>::State,)*
        }

        /// Every capability's per-runtime part.
        pub struct Shared {
            $($field: <$cap as Capability>::Shared,)*
        }

        /// Operator limits, `plugins.capabilities.<name>` in the deployment
        /// config; unknown names and keys are refused.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Limits {
            $(#[serde(default)] pub $field: <$cap as Capability>::Limits,)*
        }

        /// One plugin's `plugins.grants.NAME` table: each capability's
        /// operator entry (unknown keys refused), and narrower limits.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct OperatorGrant {
            $(#[serde(default, skip_serializing_if = "Option::is_none")]
            pub $field: Option<<$cap as Capability>::Operator>,)*
            #[serde(default)]
            pub limits: crate::limits::OperatorLimits,
        }

        /// Narrows `declared` by each capability's operator entry, into
        /// `grants`; the first refused entry as (its key, why).
        pub fn narrow_all(
            declared: &Grants,
            operator: &OperatorGrant,
            grants: &mut Grants,
        ) -> Result<(), (&'static str, String)> {
            $(if let Some(entry) = &operator.$field {
                <$cap>::narrow(declared, entry, grants)
                    .map_err(|why| (<$cap as Capability>::INTERFACE, why))?;
            })*
            Ok(())
        }

        /// What `grants` let a plugin reach, by capability (inspect).
        pub fn summaries(grants: &Grants) -> BTreeMap<&'static str, serde_json::Value> {
            let mut out = BTreeMap::new();
            $(if let Some(shown) = <$cap>::summary(grants) {
                out.insert(<$cap as Capability>::INTERFACE, shown);
            })*
            out
        }

        /// The operator's entries as written, by capability (inspect).
        pub fn operator_entries(operator: &OperatorGrant) -> BTreeMap<&'static str, serde_json::Value> {
            let mut out = BTreeMap::new();
            $(if let Some(entry) = &operator.$field {
                out.insert(
                    <$cap as Capability>::INTERFACE,
                    serde_json::to_value(entry).unwrap_or_default(),
                );
            })*
            out
        }

        /// The `gantry:plugin` interfaces this host implements.
        pub const PROVIDED: &[&str] = &["types", $(<$cap as Capability>::INTERFACE,)*];

        impl Shared {
            pub fn new(limits: &Limits, io: &tokio::runtime::Handle) -> anyhow::Result<Shared> {
                Ok(Shared { $($field: <$cap>::shared(&limits.$field, io)?,)* })
            }

            /// Fresh states for one call.
            pub fn states(&self, call: &CallContext<'_>) -> States {
                States { $($field: <$cap>::state(&self.$field, call),)* }
            }
        }

        impl States {
            /// What the finished call's report shows.
            pub fn collect(&mut self) -> Collected {
                let mut into = Collected::default();
                $(<$cap>::collect(&mut self.$field, &mut into);)*
                into
            }
        }

        /// Links every capability; `T` reaches its states through `HasStates`.
        pub fn add_to_linker<T: HasStates + 'static>(
            linker: &mut wasmtime::component::Linker<T>,
        ) -> wasmtime::Result<()> {
            $(<$cap>::add_to_linker(linker, |t: &mut T| &mut t.states().$field)?;)*
            Ok(())
        }

        /// The interfaces a plugin of `kind` may import: `types`, and each
        /// capability that serves its world.
        pub fn imports_of(kind: crate::kind::PluginKind) -> Vec<&'static str> {
            let mut interfaces = vec!["types"];
            $(if <$cap as Capability>::WORLDS.contains(&kind) {
                interfaces.push(<$cap as Capability>::INTERFACE);
            })*
            interfaces
        }

        /// `Some(granted)` for an interface this host provides.
        pub fn granted(interface: &str, grants: &Grants) -> Option<bool> {
            match interface {
                "types" => Some(true),
                $(i if i == <$cap as Capability>::INTERFACE => Some(<$cap>::granted(grants)),)*
                _ => None,
            }
        }

        /// Checks a manifest `[capabilities]` key; `None` for an unknown key.
        pub fn check_grant(key: &str, value: &GrantValue) -> Option<Result<(), String>> {
            match key {
                $(k if k == <$cap as Capability>::INTERFACE => Some(<$cap>::check_grant(value)),)*
                _ => None,
            }
        }
    };
}

capabilities! {
    log: log::Log,
    config: config::Config,
    http: http::Http,
    tcp: tcp::Tcp,
    sql: sql::Sql,
    smtp: smtp::Smtp,
    provenance: provenance::Provenance,
}

/// A store's data that carries the capability states.
pub trait HasStates {
    fn states(&mut self) -> &mut States;
}

/// Limits for a capability that has none.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoLimits {}

/// One entry under a manifest's `[capabilities]`: a flag (`smtp = true`),
/// a level (`sql = "write"`) or a list of destinations (`http =
/// ["https://api.example.com:443"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantValue {
    Flag(bool),
    Text(String),
    List(Vec<String>),
}

impl GrantValue {
    /// Ok for a flag.
    pub fn flag(&self) -> Result<(), String> {
        match self {
            GrantValue::Flag(_) => Ok(()),
            _ => Err("expected true or false".into()),
        }
    }

    /// Ok for a list whose every entry passes `check`.
    pub fn entries(&self, check: impl Fn(&str) -> Result<(), String>) -> Result<(), String> {
        match self {
            GrantValue::List(list) => list
                .iter()
                .try_for_each(|e| check(e).map_err(|why| format!("entry {e:?}: {why}"))),
            _ => Err("expected a list of destinations".into()),
        }
    }
}

/// What a manifest grants, by capability, with the operator's narrower
/// lists (`plugins.grants.NAME.http`, `.tcp`): a destination must be in
/// both.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub entries: BTreeMap<String, GrantValue>,
    pub narrowed: BTreeMap<String, Vec<String>>,
}

impl Grants {
    /// The list under `key` (empty when absent or a flag).
    pub fn list(&self, key: &str) -> &[String] {
        match self.entries.get(key) {
            Some(GrantValue::List(list)) => list,
            _ => &[],
        }
    }

    /// The operator's list under `key`, when the operator narrowed it.
    pub fn narrowed(&self, key: &str) -> Option<&[String]> {
        self.narrowed.get(key).map(Vec::as_slice)
    }

    /// The flag under `key` (false when absent or a list).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.entries.get(key), Some(GrantValue::Flag(true)))
    }

    /// `key = false` written out: the component imports the interface but
    /// the manifest refuses it, so it loads and every call is refused.
    /// Languages whose tooling imports a whole world (componentize-py)
    /// need this for the interfaces they never call.
    pub fn refused(&self, key: &str) -> bool {
        matches!(self.entries.get(key), Some(GrantValue::Flag(false)))
    }
}

/// True when the whole entry is one `{setting}`.
pub fn is_whole_template(entry: &str) -> bool {
    let t = entry.trim();
    t.starts_with('{') && t.ends_with('}') && t[1..t.len() - 1].find(['{', '}']).is_none()
}

/// Replaces every `{key}` in `entry` with the setting's value; `None` when
/// a named setting is unset, or when a value filling part of an entry
/// would change what the entry names (see [`part_value_problem`]): the
/// entry then grants nothing.
pub fn fill_from<'a>(entry: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let whole = is_whole_template(entry);
    let mut out = String::with_capacity(entry.len());
    let mut rest = entry;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let key = &rest[open + 1..close];
        let value = lookup(key).filter(|v| !v.is_empty())?;
        if !whole {
            let place = Place::of(out.chars().last(), rest[close + 1..].chars().next());
            if let Some(problem) = part_value_problem(value, place) {
                tracing::warn!("the setting `{key}` grants nothing: {problem}");
                return None;
            }
        }
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Where a `{setting}` stands in a grant entry, by the characters around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The whole host: `http://{host}:9000`, `{host}:{port}`.
    Host,
    /// The whole port: `db.internal:{port}`.
    Port,
    /// Beside fixed text within the host: `https://{ws}.slack.com`.
    Label,
}

impl Place {
    fn of(before: Option<char>, after: Option<char>) -> Place {
        let host_starts = matches!(before, None | Some('/'));
        let host_ends = matches!(after, None | Some(':' | '/'));
        if before == Some(':') && matches!(after, None | Some('/')) {
            Place::Port
        } else if host_starts && host_ends {
            Place::Host
        } else {
            Place::Label
        }
    }
}

/// Why `value` cannot stand at `place` in a grant entry, if it cannot: a
/// value fills in what the entry leaves open and may not change the rest.
/// A port is digits (`*` would make it any port); a whole host is a name
/// or an IP address; a part of a host is one name label — `evil.example\`
/// in `https://{ws}.slack.com` makes the host `evil.example` (a URL parser
/// reads `\` as `/`), `com.evil.example` in `api.example.{tld}` leaves the
/// domain; and `@`, `:`, `/`, `?`, `#`, `%` or `*` would move a host or a
/// port anywhere. The value may be the manifest's own default: the plugin
/// author's, not the operator's.
fn part_value_problem(value: &str, place: Place) -> Option<String> {
    let label = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    let ok = match place {
        Place::Port => {
            value.parse::<u16>().is_ok_and(|p| p > 0) && value.chars().all(|c| c.is_ascii_digit())
        }
        Place::Host => {
            value.chars().all(|c| label(c) || c == '.')
                || value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok()
        }
        Place::Label => value.chars().all(label),
    };
    (!ok).then(|| match place {
        Place::Port => "a value that fills a grant's port is a port number".to_string(),
        Place::Host => {
            "a value that fills a grant's host is a host name or an IP address, with no port, path or credentials".to_string()
        }
        Place::Label => {
            "a value that fills part of a grant's host is one name label: letters, digits, `-` and `_`".to_string()
        }
    })
}

/// `{port}`-like stand-ins become `number`, others `word`: for checking the
/// shape of a templated entry at manifest time.
pub fn fill_placeholders(entry: &str, word: &str, number: &str) -> String {
    let mut out = String::new();
    let mut rest = entry;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}').map(|c| c + open) else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = &rest[open + 1..close];
        out.push_str(if key.contains("port") { number } else { word });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A list as a person reads it: its entries, or `none`.
pub fn shown_list(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Whether the manifest's `asked` entries admit everything `entry` does,
/// `within(asked, entry)` deciding two concrete entries. A manifest entry
/// filled from a setting (`{url}`) is decided per call, where both lists
/// must admit the request.
pub fn covered(entry: &str, asked: &[String], within: impl Fn(&str, &str) -> bool) -> bool {
    asked.iter().any(|m| {
        if m == entry || m.contains('{') {
            return true;
        }
        !entry.contains('{') && within(m, entry)
    })
}

/// Narrows a destination list: every operator entry must have the right
/// shape and be covered by the manifest's; the operator's list is then
/// checked at every request beside the manifest's.
pub fn narrow_list(
    key: &str,
    declared: &Grants,
    entries: &[String],
    grants: &mut Grants,
    check: impl Fn(&str) -> Result<(), String>,
    within: impl Fn(&str, &str) -> bool,
) -> Result<(), String> {
    let asked = declared.list(key);
    for entry in entries {
        check(entry).map_err(|why| format!("entry {entry:?}: {why}"))?;
        if !covered(entry, asked, &within) {
            return Err(format!(
                "entry {entry:?} is wider than the manifest, which grants {}",
                shown_list(asked)
            ));
        }
    }
    grants.narrowed.insert(key.to_string(), entries.to_vec());
    Ok(())
}

/// What a destination list lets a plugin reach: the operator's narrower
/// list when there is one.
pub fn list_summary(key: &str, grants: &Grants) -> serde_json::Value {
    serde_json::json!(grants.narrowed(key).unwrap_or(grants.list(key)))
}
