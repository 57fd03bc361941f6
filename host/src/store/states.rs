//! Every record's state as a type. Each is stored as today's string
//! through one `as_str` / `FromStr`; serde and sqlx use the same names,
//! so JSON output and the state store read as they always did.

use std::fmt;
use std::str::FromStr;

/// A state the store holds that this build does not know (a newer
/// gantry wrote it, or the row was edited by hand).
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} state {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! states {
    ($(#[$meta:meta])* $name:ident ($kind:literal) {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        // Written out: the derive does not see a macro's `rename`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, value: text.to_string() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownState;
            fn try_from(text: String) -> Result<Self, UnknownState> {
                text.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

    };
}

states! {
    /// A config change's record.
    ChangeState("config change") {
        /// Started and not finished: running while its owner's lease is
        /// alive, interrupted once it is not.
        InProgress = "in_progress",
        Completed = "completed",
        /// Failed, and every file written was put back.
        Failed = "failed",
        /// Never finished; its owner's lease died and a later change on the
        /// same directory superseded it.
        Interrupted = "interrupted",
    }
}

states! {
    /// A deployment's journal row.
    DeploymentState("deployment") {
        Running = "running",
        RollingBack = "rolling_back",
        Succeeded = "succeeded",
        RolledBack = "rolled_back",
        Failed = "failed",
    }
}

impl DeploymentState {
    /// Started and not finished.
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            DeploymentState::Running | DeploymentState::RollingBack
        )
    }

    /// What a finished deployment ended as (an unfinished one as failed:
    /// it is reported only once it has finished).
    pub fn outcome(self) -> DeployOutcome {
        match self {
            DeploymentState::Succeeded => DeployOutcome::Succeeded,
            DeploymentState::RolledBack => DeployOutcome::RolledBack,
            DeploymentState::Running | DeploymentState::RollingBack | DeploymentState::Failed => {
                DeployOutcome::Failed
            }
        }
    }
}

states! {
    /// What a deployment ended as (or, for a dry run, what it would do).
    DeployOutcome("deploy outcome") {
        Planned = "planned",
        Succeeded = "succeeded",
        RolledBack = "rolled_back",
        Failed = "failed",
    }
}

impl DeployOutcome {
    /// A report in this state is a success (exit 0).
    pub fn is_success(self) -> bool {
        matches!(self, DeployOutcome::Planned | DeployOutcome::Succeeded)
    }
}

states! {
    /// One step of a deployment's journal.
    StepState("step") {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Undone = "undone",
        Skipped = "skipped",
    }
}

states! {
    /// An instance of a service, from its record before the process
    /// starts to the moment it is stopped.
    InstanceState("instance") {
        /// Recorded; the process is being started.
        Spawning = "spawning",
        /// Running, in its health gate.
        Starting = "starting",
        Healthy = "healthy",
        Failed = "failed",
        Stopping = "stopping",
        Stopped = "stopped",
        /// Found on a host with no record of how it got there.
        Unknown = "unknown",
    }
}

states! {
    /// A rollout's record.
    RolloutState("rollout") {
        Running = "running",
        Succeeded = "succeeded",
        RolledBack = "rolled_back",
        Failed = "failed",
        Interrupted = "interrupted",
    }
}

states! {
    /// What a rollout ended as (a report holds the first three; a
    /// failure is an error, and its event says which of the last two).
    RolloutOutcome("rollout outcome") {
        /// A dry run: what it would do.
        Planned = "planned",
        /// Every instance already ran the target.
        Unchanged = "unchanged",
        Succeeded = "succeeded",
        /// Failed, and what it had replaced was put back.
        RolledBack = "rolled_back",
        /// Failed, and left as the reason says.
        Failed = "failed",
    }
}

impl RolloutOutcome {
    /// The record's state for an outcome that ends a recorded rollout.
    pub fn record(self) -> RolloutState {
        match self {
            RolloutOutcome::Planned | RolloutOutcome::Unchanged | RolloutOutcome::Succeeded => {
                RolloutState::Succeeded
            }
            RolloutOutcome::RolledBack => RolloutState::RolledBack,
            RolloutOutcome::Failed => RolloutState::Failed,
        }
    }
}

states! {
    /// A key rotation's record and report.
    RotationState("rotation") {
        /// A dry run: what it would do.
        Planned = "planned",
        Running = "running",
        /// Phase 2 done; phase 3 waits for the old key's tokens to expire.
        Waiting = "waiting",
        Done = "done",
        RolledBack = "rolled_back",
    }
}

impl RotationState {
    /// A report in this state is a success (exit 0).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            RotationState::Planned | RotationState::Waiting | RotationState::Done
        )
    }
}

states! {
    /// An alert's lifecycle.
    AlertState("alert") {
        Pending = "pending",
        Firing = "firing",
        Resolved = "resolved",
        /// Pending, and the condition cleared before `for` passed.
        Cancelled = "cancelled",
    }
}

impl AlertState {
    /// Pending or firing.
    pub const OPEN: &'static [AlertState] = &[AlertState::Pending, AlertState::Firing];
}

states! {
    /// A notice in the outbox.
    NoticeState("notice") {
        Pending = "pending",
        Delivering = "delivering",
        Delivered = "delivered",
        Skipped = "skipped",
        Dead = "dead",
        HandedOver = "handed_over",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself_and_serialises_as_its_name() {
        fn check<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + FromStr + serde::Serialize,
            <T as FromStr>::Err: std::fmt::Debug,
        {
            for state in all {
                let text = state.to_string();
                assert_eq!(text.parse::<T>().unwrap(), *state);
                assert_eq!(
                    serde_json::to_value(state).unwrap(),
                    serde_json::json!(text)
                );
            }
        }
        check(ChangeState::ALL);
        check(DeploymentState::ALL);
        check(DeployOutcome::ALL);
        check(StepState::ALL);
        check(InstanceState::ALL);
        check(RolloutState::ALL);
        check(RolloutOutcome::ALL);
        check(RotationState::ALL);
        check(AlertState::ALL);
        check(NoticeState::ALL);
    }

    #[test]
    fn an_unknown_state_is_an_error_naming_it() {
        let err = "exploded".parse::<AlertState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown alert state \"exploded\"");
    }
}
