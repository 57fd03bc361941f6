//! Alert administration in the store: acknowledgements and silences.
//! The CLI uses these with no monitor running; a running monitor reads
//! them from the store at its next evaluation.

use super::engine::MonitorError;
use crate::clock::now_ms;
use crate::store::{AlertRecord, AlertState, SilenceRecord, Store};
use std::time::Duration;

/// Acknowledges an alert in the store (the CLI uses this without a
/// running monitor).
pub async fn acknowledge(
    store: &Store,
    id: &str,
    who: &str,
    comment: Option<&str>,
    expires: Option<Duration>,
) -> Result<AlertRecord, MonitorError> {
    let now = now_ms();
    store
        .write(async |tx| {
            let Some(mut alert) = tx.alert(id).await? else {
                return Err(MonitorError::UnknownAlert(id.to_string()));
            };
            if alert.state != AlertState::Firing && alert.state != AlertState::Pending {
                return Err(MonitorError::Config {
                    key: id.to_string(),
                    message: format!(
                        "the alert is {}; only an open alert can be acknowledged",
                        alert.state
                    ),
                });
            }
            alert.acked_by = Some(who.to_string());
            alert.ack_comment = comment.map(String::from);
            alert.ack_ms = Some(now);
            alert.ack_expires_ms = expires.map(|d| now + d.as_millis() as i64);
            alert.updated_ms = now;
            tx.save_alert(&alert).await?;
            Ok(alert)
        })
        .await
}

/// Takes an acknowledgement back.
pub async fn unacknowledge(store: &Store, id: &str) -> Result<AlertRecord, MonitorError> {
    store
        .write(async |tx| {
            let Some(mut alert) = tx.alert(id).await? else {
                return Err(MonitorError::UnknownAlert(id.to_string()));
            };
            alert.acked_by = None;
            alert.ack_comment = None;
            alert.ack_ms = None;
            alert.ack_expires_ms = None;
            alert.updated_ms = now_ms();
            tx.save_alert(&alert).await?;
            Ok(alert)
        })
        .await
}

/// Silences alerts whose labels match every matcher, for `duration`.
pub async fn silence(
    store: &Store,
    matchers: &std::collections::BTreeMap<String, String>,
    who: &str,
    comment: Option<&str>,
    duration: Duration,
) -> Result<SilenceRecord, MonitorError> {
    let now = now_ms();
    let record = SilenceRecord {
        id: format!("s-{}", &crate::identity::token()[..12]),
        matchers: serde_json::to_string(matchers).expect("json"),
        comment: comment.map(String::from),
        created_by: who.to_string(),
        starts_ms: now,
        ends_ms: now + duration.as_millis() as i64,
    };
    store
        .write(async |tx| tx.save_silence(&record).await)
        .await?;
    Ok(record)
}

/// Ends a silence now.
pub async fn unsilence(store: &Store, id: &str) -> Result<SilenceRecord, MonitorError> {
    store
        .write(async |tx| {
            let Some(mut s) = tx.silences().await?.into_iter().find(|s| s.id == id) else {
                return Err(MonitorError::UnknownAlert(format!("silence {id}")));
            };
            s.ends_ms = now_ms();
            tx.save_silence(&s).await?;
            Ok(s)
        })
        .await
}
