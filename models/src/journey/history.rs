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
        /// The filter reason's code (`quiet_hours`, `cap_channel`, …).
        #[serde(default)]
        cause: String,
    },
    /// A send could not go.
    Blocked {
        /// The send step.
        step: String,
        /// Why.
        reason: String,
        /// The filter reason's code (`opted_out`, `not_eligible`, …).
        #[serde(default)]
        cause: String,
    },
    /// A delivery service reported a send delivered.
    Delivered {
        /// The send step.
        step: String,
        /// The channel.
        channel: String,
    },
    /// A delivery service reported a send failed; it is tried again on
    /// the same channel once, then fails over.
    DeliveryFailed {
        /// The send step.
        step: String,
        /// The channel that failed.
        channel: String,
        /// Which attempt on that channel failed (1: the first).
        attempt: u32,
    },
    /// After its channel failed twice, the send went out on another one.
    FailedOver {
        /// The send step.
        step: String,
        /// The channel that failed.
        from_channel: String,
        /// The new decision's id.
        decision_id: String,
        /// The action sent instead.
        action: String,
        /// Its channel.
        channel: String,
    },
    /// A dispatch left the outbox without an outcome: no delivery service
    /// took it, or none reported what became of it, in time.
    Undelivered {
        /// The send step.
        step: String,
        /// Its channel.
        channel: String,
        /// Whether a delivery service had acknowledged it.
        acknowledged: bool,
    },
    /// A send not yet taken by a delivery service was withdrawn: its run
    /// ended by a goal, an exit event, a cancel or a removal first.
    Withdrawn {
        /// The send step.
        step: String,
        /// Its channel.
        channel: String,
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
        /// The step it was at (an index into its version's steps): past
        /// it for an ending that came by moving on (completed, an exit
        /// step), in it for one that came from outside (a goal, an exit
        /// event, a cancel, a removal).
        #[serde(default)]
        step: usize,
        /// How long it had been at that step, in milliseconds.
        #[serde(default)]
        in_step_ms: i64,
    },
}

impl Ending {
    /// A short code: `completed`, `converted`, `exited`, `exit_step`,
    /// `cancelled`, `removed` or `failed`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Converted { .. } => "converted",
            Self::Exited { .. } => "exited",
            Self::ExitStep => "exit_step",
            Self::Cancelled => "cancelled",
            Self::Removed { .. } => "removed",
            Self::Failed { .. } => "failed",
        }
    }

    /// Whether a send of the run that a delivery service has not taken yet
    /// is withdrawn: the run ended from outside (a goal, an exit event, a
    /// cancel, a removal), so what it was about to say no longer fits.
    /// Runs that end by moving on keep their last sends.
    pub fn withdraws_sends(&self) -> bool {
        match self {
            Self::Converted { .. }
            | Self::Exited { .. }
            | Self::Cancelled
            | Self::Removed { .. } => true,
            Self::Completed | Self::ExitStep | Self::Failed { .. } => false,
        }
    }

    /// What caused it, in words (empty when the code says all).
    pub fn detail(&self) -> String {
        match self {
            Self::Converted { event } | Self::Exited { event } => event.clone(),
            Self::Removed { reason } | Self::Failed { reason } => reason.clone(),
            Self::Completed | Self::ExitStep | Self::Cancelled => String::new(),
        }
    }
}

impl Via {
    /// A short code: `done`, `event`, `timeout`, `case_<n>`, `else`,
    /// `arm_<n>` or `blocked`.
    pub fn code(&self) -> String {
        match self {
            Self::Done => "done".to_owned(),
            Self::Event { .. } => "event".to_owned(),
            Self::Timeout => "timeout".to_owned(),
            Self::Case { index } => format!("case_{index}"),
            Self::Else => "else".to_owned(),
            Self::Arm { index } => format!("arm_{index}"),
            Self::Blocked => "blocked".to_owned(),
        }
    }
}

impl Happened {
    /// A short code for what happened: `started`, `sent`, `deferred`,
    /// `blocked`, `updated`, `rule_failed`, `moved`, `ended`, `delivered`,
    /// `delivery_failed`, `failed_over`, `undelivered` or `withdrawn`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Sent { .. } => "sent",
            Self::Deferred { .. } => "deferred",
            Self::Blocked { .. } => "blocked",
            Self::Updated { .. } => "updated",
            Self::Delivered { .. } => "delivered",
            Self::DeliveryFailed { .. } => "delivery_failed",
            Self::FailedOver { .. } => "failed_over",
            Self::Undelivered { .. } => "undelivered",
            Self::Withdrawn { .. } => "withdrawn",
            Self::RuleFailed { .. } => "rule_failed",
            Self::Moved { .. } => "moved",
            Self::Ended { .. } => "ended",
        }
    }

    /// The step it happened at, when it names one.
    pub fn step(&self) -> Option<&str> {
        match self {
            Self::Started { step, .. }
            | Self::Sent { step, .. }
            | Self::Deferred { step, .. }
            | Self::Blocked { step, .. }
            | Self::Updated { step, .. }
            | Self::Delivered { step, .. }
            | Self::DeliveryFailed { step, .. }
            | Self::FailedOver { step, .. }
            | Self::Undelivered { step, .. }
            | Self::Withdrawn { step, .. } => Some(step),
            Self::Moved { from, .. } => Some(from),
            Self::RuleFailed { .. } | Self::Ended { .. } => None,
        }
    }

    /// One line for people, e.g. `sent trial_checkin_email on email
    /// (decision 3f2a…)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Started { trigger, step } => format!("started by {trigger} at {step}"),
            Self::Sent {
                step,
                decision_id,
                action,
                channel,
            } => format!("{step}: sent {action} on {channel} (decision {decision_id})"),
            Self::Deferred {
                step,
                until,
                reason,
                ..
            } => format!("{step}: deferred until {until} ({reason})"),
            Self::Blocked { step, reason, .. } => format!("{step}: blocked ({reason})"),
            Self::Updated { step, attribute } => format!("{step}: set {attribute}"),
            Self::Delivered { step, channel } => format!("{step}: delivered on {channel}"),
            Self::DeliveryFailed {
                step,
                channel,
                attempt,
            } => format!("{step}: delivery on {channel} failed (attempt {attempt})"),
            Self::Undelivered {
                step,
                channel,
                acknowledged,
            } => {
                if *acknowledged {
                    format!("{step}: no outcome reported for the {channel} send in time")
                } else {
                    format!("{step}: no delivery service took the {channel} send in time")
                }
            }
            Self::Withdrawn { step, channel } => {
                format!(
                    "{step}: the {channel} send was withdrawn before a delivery service took it"
                )
            }
            Self::FailedOver {
                step,
                from_channel,
                decision_id,
                action,
                channel,
            } => format!(
                "{step}: {from_channel} failed; sent {action} on {channel} instead (decision {decision_id})"
            ),
            Self::RuleFailed { rule, reason } => format!("rule `{rule}` failed: {reason}"),
            Self::Moved {
                from,
                to,
                via,
                in_step_ms,
            } => format!(
                "{from} -> {} via {} after {}",
                to.as_deref().unwrap_or("end"),
                via.code(),
                crate::time::Span(*in_step_ms)
            ),
            Self::Ended { ending, .. } => {
                let detail = ending.detail();
                if detail.is_empty() {
                    format!("ended: {}", ending.code())
                } else {
                    format!("ended: {} ({detail})", ending.code())
                }
            }
        }
    }
}
