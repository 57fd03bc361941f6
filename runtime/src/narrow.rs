//! Grants belong to the operator: `plugins.grants.NAME` in the deployment
//! config narrows what a plugin's manifest asks for.
//!
//! The effective grant is the intersection, and each capability says how
//! its entry narrows (`Capability::narrow`): an operator list (`http`,
//! `tcp`) is checked at every request together with the manifest's (both
//! must admit it); `sql` is the narrower level; `smtp = false` refuses
//! every send. Limits are the smaller. An operator grant wider than the
//! manifest — an origin, target, level or limit the manifest never asked
//! for — refuses the load, naming the key.

use super::manifest::{Limits, Manifest};
use crate::capabilities::Grants;
use crate::capabilities::http;

pub use crate::capabilities::OperatorGrant;
pub use crate::capabilities::sql::SqlLevel;
pub use crate::limits::OperatorLimits;

/// Why an operator grant cannot apply: the key under
/// `plugins.grants.NAME` and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wider {
    pub key: String,
    pub why: String,
}

/// The manifest's grants and limits narrowed by the operator's.
pub fn narrow(manifest: &Manifest, operator: &OperatorGrant) -> Result<(Grants, Limits), Wider> {
    let wider = |key: &str, why: String| Wider {
        key: key.to_string(),
        why,
    };
    let mut grants = manifest.capabilities.clone();
    crate::capabilities::narrow_all(&manifest.capabilities, operator, &mut grants)
        .map_err(|(key, why)| wider(key, why))?;

    let mut limits = manifest.limits;
    let bounded = |key: &str, asked: u64, given: Option<u64>| match given {
        Some(0) => Err(wider(key, "= 0: give at least 1".into())),
        Some(given) if given > asked => Err(wider(
            key,
            format!("= {given} is above the manifest's {asked}"),
        )),
        Some(given) => Ok(given),
        None => Ok(asked),
    };
    let ops = &operator.limits;
    limits.memory_mib = bounded("limits.memory_mib", limits.memory_mib, ops.memory_mib)?;
    limits.timeout_ms = bounded("limits.timeout_ms", limits.timeout_ms, ops.timeout_ms)?;
    if let Some(n) = ops.http_requests_per_call {
        // A manifest that asks nothing has the default budget.
        let asked = limits
            .http_requests_per_call
            .unwrap_or(http::DEFAULT_REQUESTS_PER_CALL);
        limits.http_requests_per_call = Some(bounded(
            "limits.http_requests_per_call",
            asked.into(),
            Some(n.into()),
        )? as u32);
    }
    if let Some(n) = ops.http_bytes_per_call {
        let asked = limits
            .http_bytes_per_call
            .unwrap_or(http::DEFAULT_BYTES_PER_CALL);
        limits.http_bytes_per_call = Some(bounded("limits.http_bytes_per_call", asked, Some(n))?);
    }
    Ok((grants, limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
name = "demo"
kind = "notifier"
version = "1"
[capabilities]
http = ["https://hooks.example.com:443", "http://127.0.0.1:*"]
smtp = true
[limits]
memory_mib = 32
timeout_ms = 5000
"#,
            Path::new("demo.toml"),
        )
        .unwrap()
    }

    fn grant(toml_text: &str) -> OperatorGrant {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn narrower_grants_apply() {
        let (grants, limits) = narrow(
            &manifest(),
            &grant(
                "http = [\"http://127.0.0.1:8080\"]\nsmtp = false\nlimits = { timeout_ms = 1000 }",
            ),
        )
        .unwrap();
        assert_eq!(grants.narrowed["http"], vec!["http://127.0.0.1:8080"]);
        assert!(!grants.flag("smtp") && grants.refused("smtp"));
        assert_eq!(limits.timeout_ms, 1000);
        assert_eq!(limits.memory_mib, 32);
        let (_, limits) = narrow(
            &manifest(),
            &grant("limits = { http_requests_per_call = 10 }"),
        )
        .unwrap();
        assert_eq!(limits.http_requests_per_call, Some(10));
    }

    #[test]
    fn wider_grants_are_refused_naming_the_key() {
        for (text, key) in [
            ("http = [\"https://evil.example.com:443\"]", "http"),
            ("http = [\"https://hooks.example.com:*\"]", "http"),
            ("tcp = [\"db:5432\"]", "tcp"),
            ("sql = \"read\"", "sql"),
            ("limits = { memory_mib = 64 }", "limits.memory_mib"),
            ("limits = { timeout_ms = 60000 }", "limits.timeout_ms"),
            // Asking nothing, the manifest has the default 64.
            (
                "limits = { http_requests_per_call = 100 }",
                "limits.http_requests_per_call",
            ),
        ] {
            let err = narrow(&manifest(), &grant(text)).unwrap_err();
            assert_eq!(err.key, key, "{text}: {err:?}");
        }
    }
}
