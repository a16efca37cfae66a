//! Everything nudge knows about one customer, and the state changes that events,
//! decisions, outcomes, consent and suppression make to it. One customer actor
//! owns one [`CustomerState`] and applies every change through these methods.

use crate::Error;
use crate::budget::BudgetCounters;
use crate::journey::CustomerJourneys;
use crate::ledger::{Ledger, OutcomeKind};
use crate::profile::{Event, Profile};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many recent event ids each customer remembers for de-duplication.
pub const RECENT_EVENT_IDS: usize = 1_024;

/// A customer's recorded consent on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentState {
    /// Explicitly opted in.
    OptedIn,
    /// Explicitly opted out.
    OptedOut,
}

/// A consent choice and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The choice.
    pub state: ConsentState,
    /// When it was recorded.
    pub updated_at: Timestamp,
}

/// Why a channel is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SuppressionReason {
    /// Hard bounce.
    Bounce,
    /// Spam complaint.
    Complaint,
    /// Legal hold.
    Legal,
    /// Set by an operator.
    Manual,
}

impl SuppressionReason {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Legal => "legal",
            SuppressionReason::Manual => "manual",
        }
    }
}

/// One suppression: a channel (or every channel) that must not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// The channel, or `None` for every channel.
    pub channel: Option<String>,
    /// Why.
    pub reason: SuppressionReason,
    /// Since when.
    pub since: Timestamp,
    /// Operator's note.
    pub note: String,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackResult {
    /// The event changed the profile.
    Applied,
    /// The event id was seen before: nothing changed.
    Duplicate,
}

/// What reporting an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeResult {
    /// False if the same outcome was already reported.
    pub applied: bool,
    /// True if a `failed` outcome gave the cap slot back.
    pub slot_released: bool,
}

/// The state of one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Live profile.
    pub profile: Profile,
    /// Contact ledger.
    pub ledger: Ledger,
    /// Consent per channel (absent: the channel's default).
    pub consent: BTreeMap<String, ConsentRecord>,
    /// Active suppressions.
    pub suppressions: Vec<Suppression>,
    /// Fingerprints ([`event_fingerprint`]) of the most recent event ids,
    /// oldest first, at most [`RECENT_EVENT_IDS`]: 8 bytes each instead of
    /// the id, and a scan of at most 1,024 integers to find one. Crate-visible
    /// for [`crate::delta`].
    pub(crate) recent_event_ids: VecDeque<u64>,
    /// The customer's journeys: runs in progress (and the last few ended)
    /// and what the entry rules remember. Absent from a stored state that
    /// has none.
    #[serde(default, skip_serializing_if = "CustomerJourneys::is_empty")]
    pub journeys: CustomerJourneys,
}

/// The 64-bit FNV-1a fingerprint of an event id, by which duplicates are
/// recognised. Stable across processes and versions (it is stored). Two
/// different ids among one customer's last 1,024 share a fingerprint with a
/// probability of about 1,024 / 2⁶⁴ per event.
pub fn event_fingerprint(event_id: &str) -> u64 {
    crate::hash::fnv1a(event_id.bytes())
}

impl CustomerState {
    /// Whether `event_id` was applied recently.
    pub fn has_seen(&self, event_id: &str) -> bool {
        self.recent_event_ids.contains(&event_fingerprint(event_id))
    }

    /// Applies an event unless its id was seen before.
    pub fn track(&mut self, event: &Event, now: Timestamp) -> TrackResult {
        let fingerprint = event_fingerprint(&event.event_id);
        if self.recent_event_ids.contains(&fingerprint) {
            return TrackResult::Duplicate;
        }
        if self.recent_event_ids.len() >= RECENT_EVENT_IDS {
            self.recent_event_ids.pop_front();
        }
        self.recent_event_ids.push_back(fingerprint);
        self.profile.apply_event(event, now);
        TrackResult::Applied
    }

    /// Records a consent choice (`None` clears it); returns the previous one.
    pub fn set_consent(
        &mut self,
        channel: &str,
        state: Option<ConsentState>,
        now: Timestamp,
    ) -> Option<ConsentState> {
        let previous = match state {
            Some(state) => self.consent.insert(
                channel.to_owned(),
                ConsentRecord {
                    state,
                    updated_at: now,
                },
            ),
            None => self.consent.remove(channel),
        };
        previous.map(|record| record.state)
    }

    /// The consent recorded for `channel`.
    pub fn consent(&self, channel: &str) -> Option<ConsentState> {
        self.consent.get(channel).map(|record| record.state)
    }

    /// Adds a suppression; false if the same channel and reason already was.
    pub fn suppress(
        &mut self,
        channel: Option<&str>,
        reason: SuppressionReason,
        note: &str,
        now: Timestamp,
    ) -> bool {
        let exists = self
            .suppressions
            .iter()
            .any(|s| s.channel.as_deref() == channel && s.reason == reason);
        if !exists {
            self.suppressions.push(Suppression {
                channel: channel.map(str::to_owned),
                reason,
                since: now,
                note: note.to_owned(),
            });
        }
        !exists
    }

    /// Lifts suppressions of `channel` (`None`: the all-channel ones) for
    /// `reason` (`None`: every reason); true if any was lifted.
    pub fn unsuppress(&mut self, channel: Option<&str>, reason: Option<SuppressionReason>) -> bool {
        let before = self.suppressions.len();
        self.suppressions
            .retain(|s| !(s.channel.as_deref() == channel && reason.is_none_or(|r| r == s.reason)));
        self.suppressions.len() != before
    }

    /// The suppression that blocks `channel`, if any.
    pub fn suppression_of(&self, channel: &str) -> Option<&Suppression> {
        self.suppressions.iter().find(|s| {
            s.channel
                .as_deref()
                .is_none_or(|suppressed| suppressed == channel)
        })
    }

    /// Applies an outcome of an action served by `decision_id`, with an
    /// optional reward (e.g. revenue). A `failed` outcome gives back the cap slot
    /// and the action's global budget unit.
    pub fn report_outcome(
        &mut self,
        decision_id: &str,
        action_id: &str,
        outcome: OutcomeKind,
        reward: Option<f64>,
        at: Timestamp,
        budgets: &BudgetCounters,
    ) -> Result<OutcomeResult, Error> {
        let contact = self
            .ledger
            .find_mut(decision_id, action_id)
            .ok_or_else(|| Error::UnknownServedAction {
                decision_id: decision_id.to_owned(),
                action_id: action_id.to_owned(),
            })?;
        if !contact.mark(outcome) {
            return Ok(OutcomeResult {
                applied: false,
                slot_released: false,
            });
        }
        contact.reward += reward.unwrap_or(0.0);
        let channel = contact.channel.clone();
        let mut slot_released = false;
        match outcome {
            OutcomeKind::Dismiss => contact.dismissed_at = Some(at),
            OutcomeKind::Failed if !contact.released => {
                contact.released = true;
                slot_released = true;
                budgets.release(action_id);
            }
            _ => {}
        }
        let engagement = self.profile.engagement_mut(&channel);
        match outcome {
            OutcomeKind::Impression => engagement.impressions += 1,
            OutcomeKind::Click => engagement.clicks += 1,
            OutcomeKind::Conversion => engagement.conversions += 1,
            OutcomeKind::Dismiss => engagement.dismisses += 1,
            OutcomeKind::Failed => engagement.failures += 1,
            OutcomeKind::Delivered => {}
        }
        Ok(OutcomeResult {
            applied: true,
            slot_released,
        })
    }

    /// Whether nothing at all is known about the customer.
    pub fn is_empty(&self) -> bool {
        self.profile == Profile::default()
            && self.ledger.is_empty()
            && self.consent.is_empty()
            && self.suppressions.is_empty()
            && self.recent_event_ids.is_empty()
            && self.journeys.is_empty()
    }
}
