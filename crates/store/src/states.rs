//! Run and task-instance states, as stored.

use std::fmt;

use crate::StoreError;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Corrupt(format!(concat!("unknown ", stringify!($name), " `{}`"), other))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                Self::parse(s)
            }
        }
    };
}

text_enum!(
    /// queued → running → success | failed
    RunState { Queued => "queued", Running => "running", Success => "success", Failed => "failed" }
);

text_enum!(
    /// Scheduled by the clock, triggered by hand, a backfill; started by a webhook's event
    /// (or batch of them), by another DAG's dataset, or by a replay of recorded events.
    RunType {
        Scheduled => "scheduled",
        Manual => "manual",
        Backfill => "backfill",
        Event => "event",
        Dataset => "dataset",
        Replay => "replay",
    }
);

text_enum!(
    /// Where an event came from.
    EventKind { Webhook => "webhook", Dataset => "dataset", Replay => "replay" }
);

text_enum!(
    /// pending → queued → running → success | failed | up_for_retry | skipped | upstream_failed |
    /// awaiting_approval (a return waiting for its plan's approval; then queued or failed)
    TaskState {
        Pending => "pending",
        Queued => "queued",
        Running => "running",
        Success => "success",
        Failed => "failed",
        UpForRetry => "up_for_retry",
        Skipped => "skipped",
        UpstreamFailed => "upstream_failed",
        AwaitingApproval => "awaiting_approval",
    }
);

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }
}

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::Skipped | TaskState::UpstreamFailed
        )
    }
}
