//! `auth-smoke-check`: proves authentication works end to end. Posts the
//! canary account's credentials to the login endpoint, takes the token
//! from the answer, and presents it to the verify endpoint. Critical when
//! the service cannot be reached, refuses the canary, answers without a
//! token, or refuses its own fresh token; warning or critical past the
//! latency thresholds. The password and the token never appear in the
//! result or the logs.

use gantry_plugin::check::Thresholds;
use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{CheckResult, HealthCheck, HealthStatus, Metric, config};

struct AuthSmokeCheck;

impl HealthCheck for AuthSmokeCheck {
    fn check(_target: String) -> CheckResult {
        run().unwrap_or_else(|result| result)
    }
}

gantry_plugin::health_check!(AuthSmokeCheck);

fn run() -> Result<CheckResult, CheckResult> {
    let setting = |key: &str| config::require(key).map_err(CheckResult::unknown);
    let base = setting("url")?;
    let base = base.trim_end_matches('/');
    let username = setting("username")?;
    let password = setting("password")?;
    let login_url = format!("{base}{}", setting("login_path")?);
    let verify_url = format!("{base}{}", setting("verify_path")?);
    let pointer = setting("token_pointer")?;
    let latency = Thresholds {
        warn: config::parse("warn_ms").map_err(CheckResult::unknown)?,
        crit: config::parse("crit_ms").map_err(CheckResult::unknown)?,
    };
    let reach = |what: &str, url: &str, err: HttpError| match err {
        HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
            CheckResult::unknown(format!("{what} at {url}: {}", describe(&err)))
        }
        other => CheckResult::critical(format!("{what} at {url}: {}", describe(&other))),
    };

    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let login = Request::post(&login_url)
        .json(body)
        .timeout_ms(5000)
        .send()
        .map_err(|e| reach("login", &login_url, e))?;
    if login.status != 200 {
        return Err(CheckResult::critical(format!(
            "the canary {username} could not log in: HTTP {} from {login_url}",
            login.status
        )));
    }
    let answer: serde_json::Value = serde_json::from_slice(&login.body)
        .map_err(|e| CheckResult::critical(format!("the login answer is not JSON: {e}")))?;
    let token = answer
        .pointer(&pointer)
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CheckResult::critical(format!("the login answer has no token at {pointer}"))
        })?;

    let verify = Request::get(&verify_url)
        .header("authorization", format!("Bearer {token}"))
        .timeout_ms(5000)
        .send()
        .map_err(|e| reach("verify", &verify_url, e))?;
    if !(200..300).contains(&verify.status) {
        return Err(CheckResult::critical(format!(
            "{verify_url} refused the canary's fresh token: HTTP {}",
            verify.status
        )));
    }
    let total = f64::from(login.elapsed_ms + verify.elapsed_ms);
    let mut result = CheckResult::ok(format!(
        "{username} logged in and the token verified in {total} ms"
    ))
    .metric(Metric::new("login", f64::from(login.elapsed_ms), "ms").min(0.0))
    .metric(Metric::new("verify", f64::from(verify.elapsed_ms), "ms").min(0.0))
    .metric(
        Metric::new("total", total, "ms")
            .thresholds(latency)
            .min(0.0),
    );
    let status = latency.judge(total);
    if status != HealthStatus::Ok {
        result = result.escalate(status, "authentication is slow");
    }
    Ok(result)
}
