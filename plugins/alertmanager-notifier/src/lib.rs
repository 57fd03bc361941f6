//! `alertmanager-notifier`: forwards each notification's alerts to an
//! existing Alertmanager (`POST {url}/api/v2/alerts`), which then groups
//! and routes them as its own configuration says. A resolved alert is
//! sent with its `endsAt`, which is how Alertmanager learns it ended.

use gantry_plugin::http::{HttpError, Request, describe};
use gantry_plugin::{DeliveryError, Kv, Notification, Notifier, config};
use serde_json::{Map, Value, json};

struct Forward;

fn object(pairs: &[Kv]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

pub fn alerts(n: &Notification) -> Value {
    Value::Array(
        n.alerts
            .iter()
            .map(|a| {
                let mut alert = json!({
                    "labels": object(&a.labels),
                    "annotations": object(&a.annotations),
                    "startsAt": a.starts_at,
                    "generatorURL": a.generator_url,
                });
                if let Some(end) = &a.ends_at {
                    alert["endsAt"] = Value::String(end.clone());
                }
                alert
            })
            .collect(),
    )
}

impl Notifier for Forward {
    fn notify(n: Notification) -> Result<(), DeliveryError> {
        let base = config::require("url").map_err(DeliveryError::permanent)?;
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        let response = Request::post(&url)
            .json(alerts(&n).to_string())
            .timeout_ms(10_000)
            .send()
            .map_err(|err| match err {
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

gantry_plugin::notifier!(Forward);
