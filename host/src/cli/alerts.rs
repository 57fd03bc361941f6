//! `gantry alerts list | show | ack | unack | silence | unsilence`: read
//! and change alerts in the state store; a running monitor sees the
//! change at its next evaluation or delivery.

use super::Context;
use crate::clock::when;
use crate::error::{CliResult, Exit, Failure};
use crate::monitor::{acknowledge, silence, unacknowledge, unsilence};
use crate::report::table;
use crate::store::AlertRecord;
use crate::store::AlertState;
use anyhow::anyhow;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Open alerts (pending and firing); --all for resolved ones too
    List {
        #[arg(long)]
        all: bool,
    },
    /// One alert, by id or fingerprint
    Show { id: String },
    /// Acknowledge: stops repeats (not resolved notices) until it resolves or expires
    Ack {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        /// How long the acknowledgement holds: 30m, 2h, 1d
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
    },
    /// Take an acknowledgement back
    Unack { id: String },
    /// Silence alerts whose labels match: --match alertname=AuthErrorRateHigh
    Silence {
        #[arg(long = "match", value_name = "LABEL=VALUE", required = true, value_parser = parse_matcher)]
        matchers: Vec<(String, String)>,
        /// How long: 30m, 2h, 1d
        #[arg(long, value_parser = parse_duration, default_value = "2h")]
        duration: Duration,
        #[arg(long)]
        comment: Option<String>,
    },
    /// End a silence now
    Unsilence { id: String },
}

/// `90s`, `30m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (30s, 15m, 2h, 1d)"))?;
    let seconds = match unit {
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{text:?} must be positive"));
    }
    Ok(crate::clock::seconds(seconds))
}

fn parse_matcher(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not LABEL=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

pub async fn run(ctx: &Context, cmd: AlertsCommand) -> CliResult {
    let store = &ctx.store;
    let who = ctx.settings.actor.clone();
    match cmd {
        AlertsCommand::List { all } => {
            let states: &[AlertState] = if all { &[] } else { AlertState::OPEN };
            let alerts = store.read(async |tx| tx.alerts(states, 1000).await).await?;
            if ctx.out.is_json() {
                ctx.out.json(&alerts)?;
            } else if alerts.is_empty() {
                ctx.out
                    .text(if all { "no alerts" } else { "no open alerts" })?;
            } else {
                print_alerts(ctx, &alerts)?;
            }
        }
        AlertsCommand::Show { id } => {
            let alert = store
                .read(async |tx| tx.alert(&id).await)
                .await?
                .ok_or_else(|| Failure::usage(anyhow!("no alert {id}")))?;
            let notices = store
                .read(async |tx| tx.notices(None, 200).await)
                .await?
                .into_iter()
                .filter(|n| n.alert_ids.contains(&alert.id))
                .collect::<Vec<_>>();
            if ctx.out.is_json() {
                ctx.out
                    .json(&serde_json::json!({"alert": alert, "notices": notices}))?;
            } else {
                print_alerts(ctx, std::slice::from_ref(&alert))?;
                ctx.out.text(format!(
                    "labels: {}\nannotations: {}",
                    alert.labels, alert.annotations
                ))?;
                if let Some(by) = &alert.acked_by {
                    ctx.out.text(format!(
                        "acknowledged by {by} at {} until {}: {}",
                        when(alert.ack_ms),
                        when(alert.ack_expires_ms),
                        alert.ack_comment.as_deref().unwrap_or("")
                    ))?;
                }
                for n in &notices {
                    ctx.out.text(format!(
                        "notice #{} to {} ({}): {} after {} attempt(s){}",
                        n.id,
                        n.receiver,
                        n.kind,
                        n.state,
                        n.attempts,
                        n.last_error
                            .as_deref()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    ))?;
                }
            }
        }
        AlertsCommand::Ack {
            id,
            comment,
            expires,
        } => {
            let alert = acknowledge(store, &id, &who, comment.as_deref(), expires).await?;
            report(
                ctx,
                &alert,
                format!("acknowledged {} ({}) as {who}", alert.id, alert.rule),
            )?;
        }
        AlertsCommand::Unack { id } => {
            let alert = unacknowledge(store, &id).await?;
            report(
                ctx,
                &alert,
                format!("acknowledgement of {} taken back", alert.id),
            )?;
        }
        AlertsCommand::Silence {
            matchers,
            duration,
            comment,
        } => {
            let matchers: BTreeMap<String, String> = matchers.into_iter().collect();
            let s = silence(store, &matchers, &who, comment.as_deref(), duration).await?;
            if ctx.out.is_json() {
                ctx.out.json(&s)?;
            } else {
                ctx.out.text(format!(
                    "silence {} until {}: {}",
                    s.id,
                    when(Some(s.ends_ms)),
                    s.matchers
                ))?;
            }
        }
        AlertsCommand::Unsilence { id } => {
            let s = unsilence(store, &id).await?;
            if ctx.out.is_json() {
                ctx.out.json(&s)?;
            } else {
                ctx.out.text(format!("silence {} ended", s.id))?;
            }
        }
    }
    Ok(Exit::Success)
}

fn report(ctx: &Context, alert: &AlertRecord, line: String) -> CliResult<()> {
    if ctx.out.is_json() {
        ctx.out.json(alert)?;
    } else {
        ctx.out.text(line)?;
    }
    Ok(())
}

fn print_alerts(ctx: &Context, alerts: &[AlertRecord]) -> CliResult<()> {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.rule.clone(),
                a.state.to_string(),
                a.severity.clone(),
                a.value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                when(a.firing_ms.or(Some(a.started_ms))),
                a.acked_by.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.out.text(table(
        &[
            "ID", "RULE", "STATE", "SEVERITY", "VALUE", "SINCE", "ACKED BY",
        ],
        &rows,
    ))?;
    Ok(())
}
