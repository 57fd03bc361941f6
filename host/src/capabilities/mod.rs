//! What the host gives plugins, one module per capability.
//!
//! Each module owns its operator settings, its per-plugin grant and its
//! per-call state, and implements its WIT interface's host trait on that
//! state alone (never on the whole store). `CAPABILITIES` lists what this
//! host provides; a plugin importing anything else fails to load.

pub mod config;
pub mod http;
pub mod io;
pub mod log;
pub mod sql;
pub mod tcp;

/// The `gantry:plugin` interfaces this host implements.
pub const PROVIDED: &[&str] = &["types", "log", "config", "http", "tcp", "sql"];

/// Why an interface of the contract is not provided by this host.
pub fn unavailable_reason(interface: &str) -> Option<&'static str> {
    match interface {
        "smtp" => Some("the smtp capability is not available in this gantry host yet"),
        _ => None,
    }
}

/// True when the whole entry is one `{setting}`.
pub fn is_whole_template(entry: &str) -> bool {
    let t = entry.trim();
    t.starts_with('{') && t.ends_with('}') && t[1..t.len() - 1].find(['{', '}']).is_none()
}

/// Replaces every `{key}` in `entry` with the setting's value; `None` when
/// a named setting is unset (the entry then grants nothing).
pub fn fill_from<'a>(entry: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let mut out = String::with_capacity(entry.len());
    let mut rest = entry;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let value = lookup(&rest[open + 1..close]).filter(|v| !v.is_empty())?;
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
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
