//! Auth events: the five kinds the original monitor tracked, and one event
//! as it arrives from the library, the HTTP API or a scrape.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEvent {
    pub kind: String,
    #[serde(default = "yes")]
    pub success: bool,
    #[serde(default)]
    pub response_time_ms: Option<f64>,
    /// Where it came from (an instance name); kept out of the windows.
    #[serde(default)]
    pub instance: Option<String>,
}

fn yes() -> bool {
    true
}

impl AuthEvent {
    /// The kind and the response time, checked.
    pub fn parts(&self) -> Result<(Kind, Option<Duration>), String> {
        let kind: Kind = self.kind.parse().map_err(|e: UnknownKind| e.to_string())?;
        let time = match self.response_time_ms {
            None => None,
            Some(ms) if ms.is_finite() && ms >= 0.0 => Some(Duration::from_secs_f64(ms / 1000.0)),
            Some(ms) => return Err(format!("response_time_ms {ms} is not a duration")),
        };
        Ok((kind, time))
    }
}
