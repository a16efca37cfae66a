//! What happens to a run, as entries of its history (its audit trail): it
//! started, sent, was deferred or blocked, moved from one step to the next
//! (how, after how long), ended (how). The service counts its journey
//! analytics from the same entries.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// It went past its last step.
    Completed,
    /// A goal event came.
    Converted {
        /// The goal event's name.
        event: String,
    },
    /// An exit event came.
    Exited {
        /// The exit event's name.
        event: String,
    },
    /// It reached an `exit` step.
    ExitStep,
    /// An operator cancelled it.
    Cancelled,
    /// The customer opted out of, or was suppressed on, a channel the
    /// journey sends on.
    Removed {
        /// Why, e.g. `opted out of email`.
        reason: String,
    },
    /// It could not go on (its journey version is no longer known).
    Failed {
        /// Why.
        reason: String,
    },
}

/// How a run left a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Via {
    /// The step was done (sent, waited, updated).
    Done,
    /// The event a `wait_for` awaited came.
    Event {
        /// Its name.
        event: String,
    },
    /// A `wait_for` timed out.
    Timeout,
    /// A branch case held.
    Case {
        /// Its position.
        index: usize,
    },
    /// No branch case held.
    Else,
    /// A split's arm.
    Arm {
        /// Its position.
        index: usize,
    },
    /// A send could not go.
    Blocked,
}

/// One line of a run's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When.
    pub at: Timestamp,
    /// What.
    pub what: Happened,
}

/// What happened to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Happened {
    /// The run began at its first step.
    Started {
        /// The trigger event's name.
        trigger: String,
        /// The first step.
        step: String,
    },
    /// A send went out.
    Sent {
        /// The send step.
        step: String,
        /// The decision's id.
        decision_id: String,
        /// The action sent.
        action: String,
        /// Its channel.
        channel: String,
    },
    /// A send was put off.
    Deferred {
        /// The send step.
        step: String,
        /// When it is tried again.
        until: Timestamp,
        /// Why.
        reason: String,
    },
    /// A send could not go.
    Blocked {
        /// The send step.
        step: String,
        /// Why.
        reason: String,
    },
    /// An update step set an attribute.
    Updated {
        /// The step.
        step: String,
        /// The attribute.
        attribute: String,
    },
    /// A rule could not be evaluated and was taken as false.
    RuleFailed {
        /// The rule as written.
        rule: String,
        /// Why.
        reason: String,
    },
    /// The run left a step.
    Moved {
        /// The step left.
        from: String,
        /// The step entered; `None`: past the last.
        to: Option<String>,
        /// How.
        via: Via,
        /// How long the run was in `from`, in milliseconds.
        in_step_ms: i64,
    },
    /// The run ended.
    Ended {
        /// How.
        ending: Ending,
    },
}
