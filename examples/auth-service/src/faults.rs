//! Faults on purpose, for rollout tests: `AUTH_SERVICE_FAULT` is a comma
//! list of `unready` (readiness always fails), `crash-after=SECS` (the
//! process exits with status 70 after SECS), `slow=MS` (every request
//! waits MS first), `fail-login` (logins answer 500), `fail-login=RATE`
//! (that share of logins, 0 to 1, answer 500, at random).

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub unready: bool,
    pub crash_after: Option<Duration>,
    pub slow: Option<Duration>,
    /// The share of logins that fail (0: none).
    pub fail_login: f64,
}

impl Faults {
    pub fn parse(text: &str) -> anyhow::Result<Faults> {
        let mut faults = Faults::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            match name {
                "unready" => faults.unready = true,
                "fail-login" => {
                    let rate: f64 = if value.is_empty() {
                        1.0
                    } else {
                        value.parse()?
                    };
                    anyhow::ensure!(
                        (0.0..=1.0).contains(&rate),
                        "fail-login={value}: the rate is a share from 0 to 1"
                    );
                    faults.fail_login = rate;
                }
                "crash-after" => faults.crash_after = Some(Duration::from_secs_f64(value.parse()?)),
                "slow" => faults.slow = Some(Duration::from_millis(value.parse()?)),
                other => anyhow::bail!(
                    "unknown fault {other:?} (unready, crash-after=SECS, slow=MS, fail-login[=RATE])"
                ),
            }
        }
        Ok(faults)
    }

    /// Whether this login is one the fault fails.
    pub fn login_fails(&self) -> bool {
        if self.fail_login <= 0.0 {
            return false;
        }
        let mut bytes = [0u8; 4];
        if getrandom::fill(&mut bytes).is_err() {
            return true;
        }
        (u32::from_le_bytes(bytes) as f64) < self.fail_login * 4_294_967_296.0
    }
}
