//! `tcp-check`: connect to `host:port`, judge the connect latency.

use gantry_plugin::check::Thresholds;
use gantry_plugin::{CheckResult, HealthCheck, HealthStatus, Metric, config, tcp};
use std::time::Duration;

struct TcpCheck;

impl HealthCheck for TcpCheck {
    fn check(target: String) -> CheckResult {
        match run(&target) {
            Ok(result) => result,
            Err(why) => CheckResult::unknown(why),
        }
    }
}

gantry_plugin::health_check!(TcpCheck);

fn run(target: &str) -> Result<CheckResult, String> {
    let (host, port) = address(target)?;
    let latency = Thresholds {
        warn: config::parse("warn_ms")?,
        crit: config::parse("crit_ms")?,
    };
    let timeout = Duration::from_millis(config::parse_or("timeout_ms", 5000)?);

    let took = match tcp::probe(&host, port, timeout) {
        Ok(took) => took,
        Err(why) if why.starts_with("denied") => return Err(format!("{host}:{port}: {why}")),
        Err(why) => return Ok(CheckResult::critical(format!("{host}:{port}: {why}"))),
    };
    let ms = took.as_secs_f64() * 1000.0;
    let mut result = CheckResult::ok(format!("{host}:{port} accepted a connection in {ms:.1} ms"))
        .metric(
            Metric::new("connect", ms, "ms")
                .thresholds(latency)
                .min(0.0),
        );
    let status = latency.judge(ms);
    if status != HealthStatus::Ok {
        result = result.escalate(status, "connect latency over threshold");
    }
    Ok(result)
}

/// Host and port from the settings, else from a `host:port` target.
fn address(target: &str) -> Result<(String, u16), String> {
    let (target_host, target_port) = match target.rsplit_once(':') {
        Some((h, p)) => (
            Some(h.trim_matches(['[', ']']).to_string()),
            p.parse::<u16>().ok(),
        ),
        None if !target.is_empty() => (Some(target.to_string()), None),
        None => (None, None),
    };
    let host = config::get("host")
        .or(target_host)
        .ok_or("setting `host` is required (or give a host:port target)")?;
    let port = match config::parse::<u16>("port")? {
        Some(port) => port,
        None => target_port.ok_or("setting `port` is required (or give a host:port target)")?,
    };
    Ok((host, port))
}
