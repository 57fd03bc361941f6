//! `login-smoke-check`: proves the auth service can log a user in.
//!
//! Posts the probe account's credentials to the login endpoint, expects a
//! token at `token_pointer` in the JSON answer, and, when `verify_url` is
//! set, presents the token there as a Bearer credential. The token and the
//! password never appear in the result or the logs.
//!
//! Scaffolded with `gantry plugin new health-check login-smoke-check`, then
//! customised.

use gantry_plugin::check::Thresholds;
use gantry_plugin::http::{Request, describe};
use gantry_plugin::{CheckResult, HealthCheck, HealthStatus, Metric, config, log};

struct LoginSmokeCheck;

impl HealthCheck for LoginSmokeCheck {
    fn check(_target: String) -> CheckResult {
        match run() {
            Ok(result) => result,
            Err(result) => result,
        }
    }
}

gantry_plugin::health_check!(LoginSmokeCheck);

fn run() -> Result<CheckResult, CheckResult> {
    let setting = |key: &str| config::require(key).map_err(CheckResult::unknown);
    let url = setting("url")?;
    let username = setting("username")?;
    let password = setting("password")?;
    let pointer = config::get("token_pointer").unwrap_or_else(|| "/access_token".into());
    let latency = Thresholds {
        warn: config::parse("warn_ms").map_err(CheckResult::unknown)?,
        crit: config::parse("crit_ms").map_err(CheckResult::unknown)?,
    };

    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let response = Request::post(&url)
        .json(body)
        .timeout_ms(5000)
        .send()
        .map_err(|err| CheckResult::critical(format!("login at {url}: {}", describe(&err))))?;
    let took = f64::from(response.elapsed_ms);
    if response.status != 200 {
        return Err(CheckResult::critical(format!(
            "login as {username} answered {} (expected 200)",
            response.status
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| CheckResult::critical(format!("login answer is not JSON: {e}")))?;
    let token = json
        .pointer(&pointer)
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CheckResult::critical(format!("login answer has no token at {pointer}")))?;
    log::debug(&format!("login as {username} took {took} ms"));

    let mut result = CheckResult::ok(format!("{username} logged in in {took} ms")).metric(
        Metric::new("login", took, "ms")
            .thresholds(latency)
            .min(0.0),
    );

    if let Some(verify_url) = config::get("verify_url") {
        let verified = Request::get(&verify_url)
            .header("authorization", format!("Bearer {token}"))
            .timeout_ms(5000)
            .send()
            .map_err(|err| {
                CheckResult::critical(format!("token check at {verify_url}: {}", describe(&err)))
            })?;
        if !(200..300).contains(&verified.status) {
            return Err(CheckResult::critical(format!(
                "the fresh token was refused by {verify_url} ({})",
                verified.status
            )));
        }
        result =
            result.metric(Metric::new("verify", f64::from(verified.elapsed_ms), "ms").min(0.0));
    }

    let status = latency.judge(took);
    if status != HealthStatus::Ok {
        result = result.escalate(status, "login is slow");
    }
    Ok(result)
}
