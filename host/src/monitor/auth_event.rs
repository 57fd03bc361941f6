//! Auth events: the five kinds the original monitor tracked, and one event
//! as it arrives from the library, the HTTP API or a scrape.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    AuthAttempt = 0,
    TokenRefresh = 1,
    TokenExpiration = 2,
    PermissionDenial = 3,
    ServiceError = 4,
}

impl Kind {
    pub const COUNT: usize = 5;
    pub const ALL: [Kind; 5] = [
        Kind::AuthAttempt,
        Kind::TokenRefresh,
        Kind::TokenExpiration,
        Kind::PermissionDenial,
        Kind::ServiceError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AuthAttempt => "auth_attempt",
            Kind::TokenRefresh => "token_refresh",
            Kind::TokenExpiration => "token_expiration",
            Kind::PermissionDenial => "permission_denial",
            Kind::ServiceError => "service_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown auth event kind {0:?} (auth_attempt, token_refresh, token_expiration, permission_denial, service_error)"
)]
pub struct UnknownKind(pub String);

impl std::str::FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownKind(text.to_string()))
    }
}

/// One event as the HTTP API takes it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthEvent {
    #[schema(value_type = Kind)]
    pub kind: String,
    #[serde(default = "yes")]
    pub success: bool,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 86_400_000.0)]
    pub response_time_ms: Option<f64>,
    /// Where it came from (an instance name): also counted under the
    /// revision that instance runs.
    #[serde(default)]
    pub instance: Option<String>,
}

/// The longest response time an event may report: a day.
pub const MAX_RESPONSE_MS: f64 = 86_400_000.0;

fn yes() -> bool {
    true
}

impl AuthEvent {
    /// The kind and the response time, checked.
    pub fn parts(&self) -> Result<(Kind, Option<Duration>), String> {
        let kind: Kind = self.kind.parse().map_err(|e: UnknownKind| e.to_string())?;
        let time = match self.response_time_ms {
            None => None,
            Some(ms) if (0.0..=MAX_RESPONSE_MS).contains(&ms) => {
                Some(Duration::from_secs_f64(ms / 1000.0))
            }
            Some(ms) => {
                return Err(format!(
                    "response_time_ms {ms} is not a response time (0 to {MAX_RESPONSE_MS} ms)"
                ));
            }
        };
        Ok((kind, time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_time_out_of_range_is_refused_not_a_panic() {
        let event = |ms: f64| AuthEvent {
            kind: "auth_attempt".into(),
            success: true,
            response_time_ms: Some(ms),
            instance: None,
        };
        assert!(event(12.5).parts().is_ok());
        for bad in [1.8e22, -1.0, f64::INFINITY, f64::NAN, MAX_RESPONSE_MS * 2.0] {
            let err = event(bad).parts().unwrap_err();
            assert!(err.contains("not a response time"), "{bad}: {err}");
        }
    }
}
