//! Faults on purpose, for rollout tests: `AUTH_SERVICE_FAULT` is a comma
//! list of `unready` (readiness always fails), `crash-after=SECS` (the
//! process exits with status 70 after SECS), `slow=MS` (every request
//! waits MS first), `fail-login` (logins answer 500).

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub unready: bool,
    pub crash_after: Option<Duration>,
    pub slow: Option<Duration>,
    pub fail_login: bool,
}

impl Faults {
    pub fn parse(text: &str) -> anyhow::Result<Faults> {
        let mut faults = Faults::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            match name {
                "unready" => faults.unready = true,
                "fail-login" => faults.fail_login = true,
                "crash-after" => faults.crash_after = Some(Duration::from_secs_f64(value.parse()?)),
                "slow" => faults.slow = Some(Duration::from_millis(value.parse()?)),
                other => anyhow::bail!(
                    "unknown fault {other:?} (unready, crash-after=SECS, slow=MS, fail-login)"
                ),
            }
        }
        Ok(faults)
    }
}
