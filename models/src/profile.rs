//! The live profile of one customer, built from behavioural events and outcomes.
//!
//! Event counters keep one bucket per hour in which the event happened, for the
//! last 30 days: a window count (`1d`, `7d`, `30d`) is the sum of the buckets of the
//! last 24, 168 or 720 hours including the current one, so counts are precise to
//! the hour. Late and out-of-order events land in their own hour's bucket; events
//! older than 30 days update `last_seen` but no counter.

use crate::scores::board::ScoreBoard;
use crate::send_time::clock::EngagementClock;
use crate::small_map::SmallMap;
use crate::time::Timestamp;
use crate::value::AttrValue;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The event whose properties set profile attributes.
pub const IDENTIFY_EVENT: &str = "identify";
/// Attribute holding the customer's IANA timezone.
pub const TIMEZONE_ATTRIBUTE: &str = "timezone";
/// Attribute holding the signup instant (RFC 3339 text or epoch milliseconds).
pub const SIGNUP_ATTRIBUTE: &str = "signup_at";
/// Hours of counter history kept (30 days).
pub const COUNTER_HORIZON_HOURS: i64 = 30 * 24;
/// What `days_since_*` reports for something that never happened.
pub const NEVER_DAYS: f64 = 3_650.0;

/// Whether `name` is an IANA timezone, as the `timezone` attribute must be.
pub fn is_valid_timezone(name: &str) -> bool {
    name.parse::<chrono_tz::Tz>().is_ok()
}

/// A counting window of the event counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Window {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 3] = [Window::Day, Window::Week, Window::Month];

    /// The hours the window spans.
    pub fn hours(self) -> i64 {
        match self {
            Window::Day => 24,
            Window::Week => 7 * 24,
            Window::Month => COUNTER_HORIZON_HOURS,
        }
    }

    /// The window as written in feature specs and rules: `1d`, `7d`, `30d`.
    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "1d",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    /// Parses `1d`, `7d` or `30d`.
    pub fn parse(text: &str) -> Option<Self> {
        Window::ALL
            .into_iter()
            .find(|window| window.label() == text)
    }
}

/// One behavioural event, already validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Producer-chosen idempotency key.
    pub event_id: String,
    /// Event name, e.g. `login`.
    pub name: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Typed properties; for `identify`, the attributes to set.
    pub properties: BTreeMap<String, AttrValue>,
}

/// Counts and recency of one event name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventStats {
    /// `(hour index, count)` buckets, oldest first, within the counter horizon.
    /// Crate-visible for [`crate::delta`].
    pub(crate) buckets: VecDeque<(i64, u32)>,
    /// The latest occurrence, however old.
    pub last_seen: Option<Timestamp>,
    /// Occurrences ever applied.
    pub total: u64,
}

impl EventStats {
    /// Records one occurrence at `at`, given the current time `now`.
    fn record(&mut self, at: Timestamp, now: Timestamp) {
        self.total += 1;
        if self.last_seen.is_none_or(|last| at > last) {
            self.last_seen = Some(at);
        }
        let hour = at.hour_index();
        let oldest_kept = now.hour_index() - COUNTER_HORIZON_HOURS + 1;
        if hour >= oldest_kept {
            match self
                .buckets
                .binary_search_by_key(&hour, |(bucket, _)| *bucket)
            {
                Ok(position) => {
                    self.buckets[position].1 = self.buckets[position].1.saturating_add(1)
                }
                Err(position) => self.buckets.insert(position, (hour, 1)),
            }
        }
        self.prune(now);
    }

    /// Drops buckets that fell out of the horizon.
    fn prune(&mut self, now: Timestamp) {
        let oldest_kept = now.hour_index() - COUNTER_HORIZON_HOURS + 1;
        while self
            .buckets
            .front()
            .is_some_and(|(hour, _)| *hour < oldest_kept)
        {
            self.buckets.pop_front();
        }
    }

    /// Occurrences within `window` of `now` (to the hour).
    pub fn count(&self, window: Window, now: Timestamp) -> u32 {
        let oldest = now.hour_index() - window.hours() + 1;
        self.buckets
            .iter()
            .rev()
            .take_while(|(hour, _)| *hour >= oldest)
            .map(|(_, count)| *count)
            .fold(0u32, u32::saturating_add)
    }
}

/// Days since the last occurrence `stats` recorded, or [`NEVER_DAYS`] when
/// there is none.
pub fn days_since_last(stats: Option<&EventStats>, now: Timestamp) -> f64 {
    stats
        .and_then(|stats| stats.last_seen)
        .map_or(NEVER_DAYS, |last| now.days_since(last).max(0.0))
}

/// Contacts and responses on one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEngagement {
    /// Actions served on the channel (not dry runs).
    pub sends: u32,
    /// Impressions reported.
    pub impressions: u32,
    /// Clicks reported.
    pub clicks: u32,
    /// Conversions reported.
    pub conversions: u32,
    /// Dismissals reported.
    pub dismisses: u32,
    /// Delivery failures reported.
    pub failures: u32,
}

impl ChannelEngagement {
    /// Clicks per impression, or per send when no impressions were reported.
    pub fn click_rate(&self) -> f64 {
        let shown = if self.impressions > 0 {
            self.impressions
        } else {
            self.sends
        };
        if shown == 0 {
            0.0
        } else {
            f64::from(self.clicks) / f64::from(shown)
        }
    }
}

/// One attribute and the event time that set it, so a late `identify` cannot
/// overwrite a newer value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// The value.
    pub value: AttrValue,
    /// The timestamp of the event that set it.
    pub set_at: Timestamp,
}

/// The actor's live view of one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Attributes from `identify` events: plan, tier, timezone, ...
    pub attributes: SmallMap<Attribute>,
    /// Counters and recency per event name.
    pub events: SmallMap<EventStats>,
    /// Engagement per channel.
    pub engagement: SmallMap<ChannelEngagement>,
    /// The earliest event time seen.
    pub first_seen: Option<Timestamp>,
    /// The latest event time seen.
    pub last_seen: Option<Timestamp>,
    /// Scores and tiers derived from the rest ([`crate::scores`]), as last
    /// computed.
    #[serde(default, skip_serializing_if = "ScoreBoard::is_empty")]
    pub scores: ScoreBoard,
    /// When the customer engages, by local hour of week (the catalog's
    /// engagement events, clicks and impressions on its send-time
    /// channels): what a suggested send time follows.
    #[serde(default, skip_serializing_if = "EngagementClock::is_empty")]
    pub send_times: EngagementClock,
}

impl Profile {
    /// Applies one event: counters, recency and, for `identify`, attributes.
    pub fn apply_event(&mut self, event: &Event, now: Timestamp) {
        self.events
            .get_or_default(&event.name)
            .record(event.timestamp, now);
        if self.first_seen.is_none_or(|first| event.timestamp < first) {
            self.first_seen = Some(event.timestamp);
        }
        if self.last_seen.is_none_or(|last| event.timestamp > last) {
            self.last_seen = Some(event.timestamp);
        }
        if event.name == IDENTIFY_EVENT {
            for (name, value) in &event.properties {
                let newer = self
                    .attributes
                    .get(name)
                    .is_none_or(|current| event.timestamp >= current.set_at);
                if newer {
                    self.attributes.insert(
                        name,
                        Attribute {
                            value: value.clone(),
                            set_at: event.timestamp,
                        },
                    );
                }
            }
        }
    }

    /// Events applied so far over the customer's life (duplicates are not
    /// applied): the ordinal of the next event is this plus one. The event
    /// log numbers each event by it and a decision records it, so a replay
    /// knows exactly which events its profile had seen.
    pub fn events_applied(&self) -> u64 {
        self.events.iter().map(|(_, stats)| stats.total).sum()
    }

    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.get(name).map(|attribute| &attribute.value)
    }

    /// Occurrences of `event` within `window` of `now`.
    pub fn count(&self, event: &str, window: Window, now: Timestamp) -> u32 {
        self.events
            .get(event)
            .map_or(0, |stats| stats.count(window, now))
    }

    /// Days since `event` last happened, or [`NEVER_DAYS`].
    pub fn days_since(&self, event: &str, now: Timestamp) -> f64 {
        days_since_last(self.events.get(event), now)
    }

    /// Days since signup: the `signup_at` attribute (RFC 3339 or epoch
    /// milliseconds), else the first event seen, else 0 (a brand-new customer).
    pub fn tenure_days(&self, now: Timestamp) -> f64 {
        let signup = self
            .attribute(SIGNUP_ATTRIBUTE)
            .and_then(|value| match value {
                AttrValue::Str(text) => Timestamp::parse_rfc3339(text),
                AttrValue::Num(millis) => Some(Timestamp::from_millis(*millis as i64)),
                AttrValue::Bool(_) => None,
            });
        signup
            .or(self.first_seen)
            .map_or(0.0, |start| now.days_since(start).max(0.0))
    }

    /// Engagement on `channel`.
    pub fn engagement(&self, channel: &str) -> ChannelEngagement {
        self.engagement.get(channel).copied().unwrap_or_default()
    }

    /// Mutable engagement on `channel`.
    pub fn engagement_mut(&mut self, channel: &str) -> &mut ChannelEngagement {
        self.engagement.get_or_default(channel)
    }

    /// Drops counter buckets older than the horizon.
    pub fn prune(&mut self, now: Timestamp) {
        for stats in self.events.values_mut() {
            stats.prune(now);
        }
    }

    /// The derived values rules and features see, e.g. `days_since_signup`,
    /// `days_since_login`, for `known_events` and every event seen.
    pub fn derived(&self, known_events: &[String], now: Timestamp) -> BTreeMap<String, f64> {
        let mut derived = BTreeMap::new();
        derived.insert("days_since_signup".to_owned(), self.tenure_days(now));
        let last_seen = self
            .last_seen
            .map_or(NEVER_DAYS, |last| now.days_since(last).max(0.0));
        derived.insert("days_since_last_seen".to_owned(), last_seen);
        for event in known_events
            .iter()
            .map(String::as_str)
            .chain(self.events.keys())
        {
            derived.insert(format!("days_since_{event}"), self.days_since(event, now));
        }
        derived
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY_MS, HOUR_MS};

    fn event(name: &str, at: i64) -> Event {
        Event {
            event_id: format!("{name}-{at}"),
            name: name.to_owned(),
            timestamp: Timestamp(at),
            properties: BTreeMap::new(),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn windows_count_to_the_hour() {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        for days_ago in [0, 2, 6, 8, 29, 31] {
            profile.apply_event(&event("login", NOW - days_ago * DAY_MS), now);
        }
        assert_eq!(profile.count("login", Window::Day, now), 1);
        assert_eq!(profile.count("login", Window::Week, now), 3);
        assert_eq!(profile.count("login", Window::Month, now), 5);
        assert_eq!(profile.events["login"].total, 6);
        // Six days later only the newest is still inside the 7-day window.
        let later = Timestamp(NOW + 6 * DAY_MS);
        assert_eq!(profile.count("login", Window::Week, later), 1);
        assert_eq!(profile.count("missing", Window::Week, later), 0);
    }

    #[test]
    fn late_events_land_in_their_own_bucket_and_keep_recency() {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        profile.apply_event(&event("page_view", NOW - HOUR_MS), now);
        profile.apply_event(&event("page_view", NOW - 3 * DAY_MS), now);
        assert_eq!(
            profile.events["page_view"].last_seen,
            Some(Timestamp(NOW - HOUR_MS))
        );
        assert_eq!(profile.count("page_view", Window::Day, now), 1);
        assert_eq!(profile.count("page_view", Window::Week, now), 2);
        assert!((profile.days_since("page_view", now) - 1.0 / 24.0).abs() < 1e-9);
        assert_eq!(profile.days_since("never", now), NEVER_DAYS);
    }

    #[test]
    fn a_late_identify_does_not_overwrite_a_newer_attribute() {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        let mut newer = event(IDENTIFY_EVENT, NOW);
        newer.properties.insert("plan".into(), "pro".into());
        let mut older = event(IDENTIFY_EVENT, NOW - DAY_MS);
        older.properties.insert("plan".into(), "free".into());
        older.properties.insert("tier".into(), "smb".into());
        profile.apply_event(&newer, now);
        profile.apply_event(&older, now);
        assert_eq!(profile.attribute("plan"), Some(&AttrValue::from("pro")));
        assert_eq!(profile.attribute("tier"), Some(&AttrValue::from("smb")));
    }

    #[test]
    fn tenure_prefers_signup_attribute() {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        profile.apply_event(&event("login", NOW - 2 * DAY_MS), now);
        assert!((profile.tenure_days(now) - 2.0).abs() < 1e-9);
        let mut identify = event(IDENTIFY_EVENT, NOW);
        identify.properties.insert(
            SIGNUP_ATTRIBUTE.into(),
            AttrValue::Num((NOW - 10 * DAY_MS) as f64),
        );
        profile.apply_event(&identify, now);
        assert!((profile.tenure_days(now) - 10.0).abs() < 1e-9);
    }
}
