//! The changes of the parts a delta describes field by field: a contact (an
//! outcome sets a few of its fields), an event's counters, a channel's
//! engagement counters, and the profile holding them. Each `diff`
//! destructures the new value, so a field added to one of these types cannot
//! be forgotten here.

use super::map::MapDelta;
use super::sequence::{Item, SeqDelta};
use super::{DeltaMismatch, Diff, check_part, cleared_or_set, patch_part, replaced, set};
use crate::ledger::Contact;
use crate::profile::{Attribute, ChannelEngagement, EventStats, Profile};
use crate::scores::board::ScoreBoard;
use crate::send_time::clock::EngagementClock;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The fields of a contact that changed (usually by an outcome: its outcome
/// bits, reward, release or dismissal). Each field is the new value of the
/// contact's field of the same name, absent when unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContactDelta {
    #[serde(rename = "di", default, skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    #[serde(rename = "ai", default, skip_serializing_if = "Option::is_none")]
    action_id: Option<String>,
    #[serde(rename = "ch", default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(rename = "ca", default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    at: Option<Timestamp>,
    #[serde(rename = "rl", default, skip_serializing_if = "Option::is_none")]
    released: Option<bool>,
    #[serde(
        rename = "dm",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cleared_or_set"
    )]
    dismissed_at: Option<Option<Timestamp>>,
    #[serde(rename = "rw", default, skip_serializing_if = "Option::is_none")]
    reward: Option<f64>,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    outcomes: Option<u8>,
}

impl Diff for Contact {
    type Delta = ContactDelta;

    fn diff(old: &Self, new: &Self) -> ContactDelta {
        let Contact {
            decision_id,
            action_id,
            channel,
            category,
            at,
            released,
            dismissed_at,
            reward,
            outcomes,
        } = new;
        ContactDelta {
            decision_id: replaced(&old.decision_id, decision_id),
            action_id: replaced(&old.action_id, action_id),
            channel: replaced(&old.channel, channel),
            category: replaced(&old.category, category),
            at: replaced(&old.at, at),
            released: replaced(&old.released, released),
            dismissed_at: replaced(&old.dismissed_at, dismissed_at),
            reward: replaced(&old.reward, reward),
            outcomes: replaced(&old.outcomes, outcomes),
        }
    }

    fn check(&self, _delta: &ContactDelta) -> Result<(), DeltaMismatch> {
        Ok(())
    }

    fn patch(&mut self, delta: &ContactDelta) {
        set(&mut self.decision_id, delta.decision_id.as_ref());
        set(&mut self.action_id, delta.action_id.as_ref());
        set(&mut self.channel, delta.channel.as_ref());
        set(&mut self.category, delta.category.as_ref());
        set(&mut self.at, delta.at.as_ref());
        set(&mut self.released, delta.released.as_ref());
        set(&mut self.dismissed_at, delta.dismissed_at.as_ref());
        set(&mut self.reward, delta.reward.as_ref());
        set(&mut self.outcomes, delta.outcomes.as_ref());
    }
}

impl Item for Contact {
    const PATCH_IN_PLACE: bool = true;

    fn blank() -> Self {
        Contact::new("", "", "", "", Timestamp(0))
    }
}

/// How an event's counters changed: its hour buckets (the current one
/// incremented or added, old ones pruned), last occurrence and total, each
/// absent when unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventStatsDelta {
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    buckets: Option<SeqDelta<(i64, u32)>>,
    #[serde(
        rename = "l",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cleared_or_set"
    )]
    last_seen: Option<Option<Timestamp>>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

impl Diff for EventStats {
    type Delta = EventStatsDelta;

    fn diff(old: &Self, new: &Self) -> EventStatsDelta {
        let EventStats {
            buckets,
            last_seen,
            total,
        } = new;
        EventStatsDelta {
            buckets: super::change(&old.buckets, buckets),
            last_seen: replaced(&old.last_seen, last_seen),
            total: replaced(&old.total, total),
        }
    }

    fn check(&self, delta: &EventStatsDelta) -> Result<(), DeltaMismatch> {
        check_part(&self.buckets, delta.buckets.as_ref(), "buckets")
    }

    fn patch(&mut self, delta: &EventStatsDelta) {
        patch_part(&mut self.buckets, delta.buckets.as_ref());
        set(&mut self.last_seen, delta.last_seen.as_ref());
        set(&mut self.total, delta.total.as_ref());
    }
}

/// The engagement counters of a channel that changed (a send, an
/// impression, a click, ...): each the counter's new value, absent when
/// unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngagementDelta {
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    sends: Option<u32>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    impressions: Option<u32>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    clicks: Option<u32>,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    conversions: Option<u32>,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    dismisses: Option<u32>,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    failures: Option<u32>,
}

impl Diff for ChannelEngagement {
    type Delta = EngagementDelta;

    fn diff(old: &Self, new: &Self) -> EngagementDelta {
        let ChannelEngagement {
            sends,
            impressions,
            clicks,
            conversions,
            dismisses,
            failures,
        } = new;
        EngagementDelta {
            sends: replaced(&old.sends, sends),
            impressions: replaced(&old.impressions, impressions),
            clicks: replaced(&old.clicks, clicks),
            conversions: replaced(&old.conversions, conversions),
            dismisses: replaced(&old.dismisses, dismisses),
            failures: replaced(&old.failures, failures),
        }
    }

    fn check(&self, _delta: &EngagementDelta) -> Result<(), DeltaMismatch> {
        Ok(())
    }

    fn patch(&mut self, delta: &EngagementDelta) {
        set(&mut self.sends, delta.sends.as_ref());
        set(&mut self.impressions, delta.impressions.as_ref());
        set(&mut self.clicks, delta.clicks.as_ref());
        set(&mut self.conversions, delta.conversions.as_ref());
        set(&mut self.dismisses, delta.dismisses.as_ref());
        set(&mut self.failures, delta.failures.as_ref());
    }
}

/// How the profile changed: its maps by name, first and last seen, each
/// absent when unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProfileDelta {
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    attributes: Option<MapDelta<Attribute>>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    events: Option<MapDelta<EventStats>>,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    engagement: Option<MapDelta<ChannelEngagement>>,
    #[serde(
        rename = "f",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cleared_or_set"
    )]
    first_seen: Option<Option<Timestamp>>,
    #[serde(
        rename = "l",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cleared_or_set"
    )]
    last_seen: Option<Option<Timestamp>>,
    /// The score board, whole, when it changed.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    scores: Option<ScoreBoard>,
    /// The engagement clock, whole, when it changed.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    send_times: Option<EngagementClock>,
}

impl Diff for Profile {
    type Delta = ProfileDelta;

    fn diff(old: &Self, new: &Self) -> ProfileDelta {
        let Profile {
            attributes,
            events,
            engagement,
            first_seen,
            last_seen,
            scores,
            send_times,
        } = new;
        ProfileDelta {
            attributes: super::change(&old.attributes, attributes),
            events: super::change(&old.events, events),
            engagement: super::change(&old.engagement, engagement),
            first_seen: replaced(&old.first_seen, first_seen),
            last_seen: replaced(&old.last_seen, last_seen),
            scores: replaced(&old.scores, scores),
            send_times: replaced(&old.send_times, send_times),
        }
    }

    fn check(&self, delta: &ProfileDelta) -> Result<(), DeltaMismatch> {
        check_part(&self.attributes, delta.attributes.as_ref(), "attributes")?;
        check_part(&self.events, delta.events.as_ref(), "events")?;
        check_part(&self.engagement, delta.engagement.as_ref(), "engagement")
    }

    fn patch(&mut self, delta: &ProfileDelta) {
        patch_part(&mut self.attributes, delta.attributes.as_ref());
        patch_part(&mut self.events, delta.events.as_ref());
        patch_part(&mut self.engagement, delta.engagement.as_ref());
        set(&mut self.first_seen, delta.first_seen.as_ref());
        set(&mut self.last_seen, delta.last_seen.as_ref());
        set(&mut self.scores, delta.scores.as_ref());
        set(&mut self.send_times, delta.send_times.as_ref());
    }
}
