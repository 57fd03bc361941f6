//! The operator's settings for this plugin.

use crate::bindings::config as raw;
use std::str::FromStr;

/// One setting, or `None` when the operator did not set it.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// Every setting, as key/value pairs.
pub fn all() -> Vec<(String, String)> {
    raw::all()
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

/// A setting that must be present.
pub fn require(key: &str) -> Result<String, String> {
    get(key).ok_or_else(|| format!("setting `{key}` is required"))
}

/// A setting parsed into `T`; `None` when absent.
pub fn parse<T: FromStr>(key: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    match get(key) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("setting `{key}` = {text:?}: {e}")),
    }
}

/// A setting parsed into `T`, or `default` when absent.
pub fn parse_or<T: FromStr>(key: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    Ok(parse(key)?.unwrap_or(default))
}

/// A comma-separated list setting; empty when absent.
pub fn list(key: &str) -> Vec<String> {
    get(key)
        .map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
