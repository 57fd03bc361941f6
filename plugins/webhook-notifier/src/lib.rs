//! `webhook-notifier`: each notification POSTed as Alertmanager's webhook
//! body (version 4: version, groupKey, truncatedAlerts, status, receiver,
//! groupLabels, commonLabels, commonAnnotations, externalURL, alerts[]), so
//! a receiver written for Alertmanager works unchanged. With `hmac_secret`
//! the body is signed (`X-Gantry-Signature: sha256=<hex>`). Every request
//! carries the notice's `Idempotency-Key`. A 429 or 5xx is retried (after
//! Retry-After when given), any other 4xx is permanent.

use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{DeliveryError, Kv, Notification, Notifier, config};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};

struct Webhook;

fn object(pairs: &[Kv]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

/// Alertmanager's body for `n`.
pub fn body(n: &Notification) -> Value {
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.truncated_alerts,
        "status": n.status.as_str(),
        "receiver": n.receiver,
        "groupLabels": object(&n.group_labels),
        "commonLabels": object(&n.common_labels),
        "commonAnnotations": object(&n.common_annotations),
        "externalURL": n.external_url,
        "alerts": n.alerts.iter().map(|a| json!({
            "status": a.status.as_str(),
            "labels": object(&a.labels),
            "annotations": object(&a.annotations),
            "startsAt": a.starts_at,
            // Alertmanager's zero time for an alert that has not ended.
            "endsAt": a.ends_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "generatorURL": a.generator_url,
            "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
}

impl Notifier for Webhook {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let url = config::require("url").map_err(DeliveryError::permanent)?;
        let timeout: u32 =
            config::parse_or("timeout_ms", 10_000).map_err(DeliveryError::permanent)?;
        let text = body(&n).to_string();
        let mut request = Request::post(&url)
            .header("idempotency-key", &n.idempotency_key)
            .timeout_ms(timeout);
        if n.test {
            request = request.header("x-gantry-test", "true");
        }
        if let Some(token) = config::get("bearer_token").filter(|s| !s.is_empty()) {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(secret) = config::get("hmac_secret").filter(|s| !s.is_empty()) {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|e| DeliveryError::permanent(e.to_string()))?;
            mac.update(text.as_bytes());
            let signature = hex::encode(mac.finalize().into_bytes());
            request = request.header("x-gantry-signature", format!("sha256={signature}"));
        }
        let response = request.json(text).send().map_err(|err| match err {
            HttpError::Denied(_) | HttpError::InvalidRequest(_) => {
                DeliveryError::permanent(describe(&err))
            }
            other => DeliveryError::retry(describe(&other)),
        })?;
        DeliveryError::from_status(
            &gantry_plugin::http::origin(&url),
            response.status,
            response.header("retry-after"),
        )
    }
}

gantry_plugin::notifier!(Webhook);
