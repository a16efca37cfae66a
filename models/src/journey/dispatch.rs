//! Dispatches: what a journey's sends hand to delivery services, kept in
//! the customer's state until a delivery service reports them delivered or
//! failed — the outbox.
//!
//! A send that went out becomes a [`Dispatch`], due at once. Each time it is
//! handed to a delivery service its due moment moves on by the
//! acknowledgement timeout, doubled on each redelivery up to a bound: one
//! not acknowledged by then is handed out again (the outbox is part of the
//! customer's durable state and its due moments are timers, so this holds
//! across restarts). A dispatch due while no delivery service takes its
//! channel is *held*: not handed out, tried again after the same kind of
//! backoff, or as soon as one subscribes. An acknowledged dispatch waits
//! for its outcome and is never handed out again. `delivered` closes it; `failed` tries the same
//! channel once more, then fails over: the send step decides again without
//! the channels that failed, so consent, caps and quiet hours choose the
//! next channel. A dispatch nobody took, or whose outcome never came,
//! leaves the outbox after [`DispatchPolicy::expire_after`]. Every step of
//! that is in the run's history.

use crate::time::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Deliveries tried on one channel before the send fails over.
pub const ATTEMPTS_PER_CHANNEL: u32 = 2;

/// How dispatches are handed out and given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchPolicy {
    /// How long a delivery service has to acknowledge a dispatch before it
    /// is handed out again (doubled on each redelivery).
    pub ack_timeout: Span,
    /// The longest wait between two redeliveries.
    pub longest_backoff: Span,
    /// How long after it was made a dispatch nobody took, or whose outcome
    /// never came, leaves the outbox.
    pub expire_after: Span,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        Self {
            ack_timeout: Span(30_000),
            longest_backoff: Span::hours(1),
            expire_after: Span::days(1),
        }
    }
}

/// One send handed to delivery services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// Unique per attempt: the decision id, then `<decision id>.<attempt>`
    /// for a retry.
    pub id: String,
    /// The decision that chose it.
    pub decision_id: String,
    /// The journey.
    pub journey: String,
    /// Its version.
    pub version: u32,
    /// The send step.
    pub step: String,
    /// The action.
    pub action: String,
    /// Its channel.
    pub channel: String,
    /// Its personalization payload.
    pub payload: BTreeMap<String, String>,
    /// Which attempt on this channel (1: the first).
    pub attempt: u32,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it is handed out (again) unless acknowledged; once
    /// acknowledged, when it expires without an outcome.
    pub due: Timestamp,
    /// Times it was handed out.
    #[serde(default)]
    pub handed_out: u32,
    /// Times in a row it was due while no delivery service took its
    /// channel (0: not held).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held: u32,
    /// A delivery service acknowledged it: it waits for the outcome.
    pub acknowledged: bool,
    /// Channels that failed for this send before, in order.
    pub failed_channels: Vec<String>,
}

impl Dispatch {
    /// The id of attempt `attempt` of the send decided as `decision_id`.
    pub fn attempt_id(decision_id: &str, attempt: u32) -> String {
        if attempt <= 1 {
            decision_id.to_owned()
        } else {
            format!("{decision_id}.{attempt}")
        }
    }

    /// Whether it is due at `now` (to be handed out, or to expire).
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.due <= now
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Timestamp, policy: &DispatchPolicy) -> bool {
        self.created_at.plus(policy.expire_after) <= now
    }

    /// Marks it handed out at `now`: due again after the acknowledgement
    /// timeout, doubled for each earlier time, at most the longest backoff,
    /// and never past its expiry.
    pub fn hand_out(&mut self, now: Timestamp, policy: &DispatchPolicy) {
        self.due = self.backoff(now, self.handed_out, policy);
        self.handed_out = self.handed_out.saturating_add(1);
        self.held = 0;
    }

    /// Marks it held at `now` (no delivery service takes its channel): due
    /// again after the acknowledgement timeout, doubled for each hold in a
    /// row, at most the longest backoff, and never past its expiry.
    pub fn hold(&mut self, now: Timestamp, policy: &DispatchPolicy) {
        self.due = self.backoff(now, self.held, policy);
        self.held = self.held.saturating_add(1);
    }

    /// `now` plus the acknowledgement timeout doubled `times` times, at
    /// most the longest backoff, and never past the expiry.
    fn backoff(&self, now: Timestamp, times: u32, policy: &DispatchPolicy) -> Timestamp {
        let doubling = 1_i64 << times.min(20);
        let wait = policy
            .ack_timeout
            .0
            .saturating_mul(doubling)
            .min(policy.longest_backoff.0);
        now.plus(Span(wait))
            .min(self.created_at.plus(policy.expire_after))
    }
}

/// serde's `skip_serializing_if` passes a reference.
fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// What acknowledging a dispatch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledged {
    /// It is now waiting for its outcome.
    Taken,
    /// It was acknowledged before.
    Already,
    /// No dispatch in the outbox has this id (closed, or never made).
    Unknown,
}
