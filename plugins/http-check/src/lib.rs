//! `http-check`: one HTTP request, judged by status, body and latency.
//!
//! Critical when the service cannot be reached, answers with an unexpected
//! status, or the body does not match; warning or critical when latency
//! crosses `warn_ms` / `crit_ms`; unknown when the settings are wrong or the
//! destination is not allowed.

use gantry_plugin::check::Thresholds;
use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{CheckResult, HealthCheck, HealthStatus, Metric, config};

struct HttpCheck;

impl HealthCheck for HttpCheck {
    fn check(target: String) -> CheckResult {
        match Settings::read(&target) {
            Ok(settings) => run(&settings),
            Err(why) => CheckResult::unknown(why),
        }
    }
}

gantry_plugin::health_check!(HttpCheck);

struct Settings {
    url: String,
    method: String,
    expect: Vec<(u16, u16)>,
    body_contains: Option<String>,
    json: Option<(String, String)>,
    headers: Vec<(String, String)>,
    latency: Thresholds,
    timeout_ms: u32,
    follow_redirects: bool,
}

impl Settings {
    fn read(target: &str) -> Result<Self, String> {
        let url = match config::get("url") {
            Some(url) => url,
            None if !target.is_empty() => target.to_string(),
            None => return Err("setting `url` is required (or give a target)".into()),
        };
        let json = match (config::get("json_pointer"), config::get("json_equals")) {
            (Some(pointer), Some(expected)) => Some((pointer, expected)),
            (None, None) => None,
            _ => return Err("`json_pointer` and `json_equals` go together".into()),
        };
        Ok(Settings {
            url,
            method: config::get("method").unwrap_or_else(|| "GET".into()),
            expect: parse_statuses(
                &config::get("expect_status").unwrap_or_else(|| "200-399".into()),
            )?,
            body_contains: config::get("body_contains"),
            json,
            headers: parse_headers(&config::get("headers").unwrap_or_default())?,
            latency: Thresholds {
                warn: config::parse("warn_ms")?,
                crit: config::parse("crit_ms")?,
            },
            timeout_ms: config::parse_or("timeout_ms", 10_000)?,
            follow_redirects: config::parse_or("follow_redirects", false)?,
        })
    }
}

fn run(s: &Settings) -> CheckResult {
    let mut request = Request::new(&s.method, &s.url)
        .timeout_ms(s.timeout_ms)
        .follow_redirects(s.follow_redirects);
    for (name, value) in &s.headers {
        request = request.header(name, value);
    }
    let response = match request.send() {
        Ok(response) => response,
        Err(err @ (HttpError::Denied(_) | HttpError::InvalidRequest(_))) => {
            return CheckResult::unknown(format!("{} {}: {}", s.method, s.url, describe(&err)));
        }
        Err(err) => {
            return CheckResult::critical(format!("{} {}: {}", s.method, s.url, describe(&err)));
        }
    };

    let elapsed = f64::from(response.elapsed_ms);
    let mut result = CheckResult::ok(format!(
        "HTTP {} from {} in {} ms",
        response.status, response.final_url, response.elapsed_ms
    ))
    .metric(
        Metric::new("time", elapsed, "ms")
            .thresholds(s.latency)
            .min(0.0),
    )
    .metric(Metric::new("size", response.body.len() as f64, "B").min(0.0));

    if !s
        .expect
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&response.status))
    {
        result = result.escalate(
            HealthStatus::Critical,
            format!("status {} is not among the expected", response.status),
        );
    }
    if let Some(needle) = &s.body_contains
        && !response.text().contains(needle.as_str())
    {
        result = result.escalate(HealthStatus::Critical, format!("body lacks {needle:?}"));
    }
    if let Some((pointer, expected)) = &s.json
        && let Err(why) = json_matches(&response.body, pointer, expected)
    {
        result = result.escalate(HealthStatus::Critical, why);
    }
    let latency = s.latency.judge(elapsed);
    if latency != HealthStatus::Ok {
        result = result.escalate(latency, format!("latency {elapsed} ms"));
    }
    result
}

fn json_matches(body: &[u8], pointer: &str, expected: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let found = doc
        .pointer(pointer)
        .ok_or_else(|| format!("JSON pointer {pointer} not found"))?;
    let text = match found {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text == expected {
        Ok(())
    } else {
        Err(format!("{pointer} is {text:?}, expected {expected:?}"))
    }
}

/// `200,204,300-399` into inclusive ranges.
fn parse_statuses(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let bad = |part: &str| format!("setting `expect_status`: {part:?} is not a status or range");
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u16 = lo.trim().parse().map_err(|_| bad(part))?;
            let hi: u16 = hi.trim().parse().map_err(|_| bad(part))?;
            if lo > hi || !(100..=599).contains(&lo) || hi > 599 {
                return Err(bad(part));
            }
            Ok((lo, hi))
        })
        .collect()
}

/// `Name: value; Other: value` into pairs.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("setting `headers`: {part:?} is not `Name: value`"))
        })
        .collect()
}
