//! Point-in-time replay: a customer's profile as it was when a logged
//! decision was made, rebuilt from the event log by the same code that
//! built it live ([`Profile::apply_event`]), so that a feature the serving
//! model never had is computed for old decisions exactly as serving would
//! have computed it then.
//!
//! The event log numbers each customer's applied events (their
//! [`EventRecord::ordinal`], from 1) and a decision records how many its
//! profile had applied ([`DecisionRecord::events_applied`]): replaying a
//! decision applies exactly the events numbered up to that count, each at
//! the time the service applied it. What replay cannot rebuild from events
//! — the engagement counts the service's own serves and the reported
//! outcomes made, and the profile scores and tiers as the actor last
//! computed them — the decision record carries as it was.
//!
//! A customer whose oldest events were deleted (retention) cannot be
//! replayed exactly: replay says so ([`ReplayError::Truncated`]) rather
//! than compute features from a partial history.

use crate::log::{DecisionRecord, EventRecord, engagement_from_counts};
use crate::profile::Profile;
use crate::small_map::SmallMap;

/// Why a decision's profile cannot be replayed exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The record predates the event log: it does not say which events its
    /// profile had seen.
    #[error(
        "decision {decision_id} was logged without its event count (written before the event log was kept)"
    )]
    NoEventCount {
        /// The decision.
        decision_id: String,
    },
    /// The customer's event history does not start at their first event
    /// (retention deleted older ones, or the export's time range left them
    /// out).
    #[error(
        "decision {decision_id}: the customer's events start at number {first}, not 1 (older events were deleted by retention or left out of the export)"
    )]
    Truncated {
        /// The decision.
        decision_id: String,
        /// The first event number found.
        first: u64,
    },
    /// Events the decision's profile had seen are not in the log.
    #[error(
        "decision {decision_id} saw {expected} events, but the log has {found} of them in sequence"
    )]
    Missing {
        /// The decision.
        decision_id: String,
        /// The events the decision saw.
        expected: u64,
        /// The events found in sequence from the first.
        found: u64,
    },
}

/// Replays one customer's events for that customer's decisions, in any
/// order (replaying decisions oldest first applies each event once).
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// The customer's events, by ordinal.
    events: Vec<EventRecord>,
    /// Events applied to `profile` so far (a prefix of `events`).
    applied: usize,
    /// The profile after the applied events.
    profile: Profile,
}

impl Replay {
    /// A replay of one customer's `events` (in any order).
    pub fn new(mut events: Vec<EventRecord>) -> Self {
        events.sort_by_key(|event| event.ordinal);
        Self {
            events,
            applied: 0,
            profile: Profile::default(),
        }
    }

    /// The customer's profile when `decision` was made: every event it had
    /// applied, and the engagement it recorded.
    pub fn profile_at(&mut self, decision: &DecisionRecord) -> Result<&Profile, ReplayError> {
        let expected = decision
            .events_applied
            .ok_or_else(|| ReplayError::NoEventCount {
                decision_id: decision.decision_id.clone(),
            })?;
        if (self.applied as u64) > expected {
            // An earlier decision than the last one replayed: start over.
            self.applied = 0;
            self.profile = Profile::default();
        }
        while (self.applied as u64) < expected {
            let Some(event) = self.events.get(self.applied) else {
                break;
            };
            let number = self.applied as u64 + 1;
            if event.ordinal != number {
                if self.applied == 0 {
                    return Err(ReplayError::Truncated {
                        decision_id: decision.decision_id.clone(),
                        first: event.ordinal,
                    });
                }
                break;
            }
            self.profile.apply_event(&event.event, event.received_at);
            self.applied += 1;
        }
        if (self.applied as u64) < expected {
            return Err(ReplayError::Missing {
                decision_id: decision.decision_id.clone(),
                expected,
                found: self.applied as u64,
            });
        }
        let mut engagement = SmallMap::default();
        for (channel, counts) in &decision.engagement {
            engagement.insert(channel, engagement_from_counts(*counts));
        }
        self.profile.engagement = engagement;
        let mut scores = crate::scores::ScoreBoard::default();
        for (id, value) in &decision.scores.values {
            scores.values.insert(id, *value);
        }
        for (id, band) in &decision.scores.tiers {
            scores.tiers.insert(id, band.clone());
        }
        self.profile.scores = scores;
        Ok(&self.profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Event, Window};
    use crate::time::Timestamp;
    use crate::value::AttrValue;
    use std::collections::BTreeMap;

    const HOUR: i64 = 3_600_000;

    fn event(ordinal: u64, name: &str, at: i64) -> EventRecord {
        EventRecord {
            customer_id: "c".to_owned(),
            ordinal,
            received_at: Timestamp::from_millis(at),
            event: Event {
                event_id: format!("e{ordinal}"),
                name: name.to_owned(),
                timestamp: Timestamp::from_millis(at),
                properties: BTreeMap::new(),
            },
        }
    }

    fn decision(id: &str, events_applied: Option<u64>) -> DecisionRecord {
        DecisionRecord {
            decision_id: id.to_owned(),
            customer_id: "c".to_owned(),
            at: Timestamp::from_millis(100 * HOUR),
            placement: "home".to_owned(),
            catalog_version: "v".to_owned(),
            model_version: None,
            variant: "default".to_owned(),
            fallback: None,
            served: Vec::new(),
            context: BTreeMap::new(),
            eligible: Vec::new(),
            events_applied,
            engagement: BTreeMap::from([("email".to_owned(), [3, 2, 1, 0, 0, 0])]),
            shadow: None,
            scores: Default::default(),
        }
    }

    #[test]
    fn a_decision_sees_exactly_the_events_numbered_up_to_its_count() {
        let mut live = Profile::default();
        let events = vec![
            event(3, "login", 50 * HOUR),
            event(1, "login", 10 * HOUR),
            event(2, "pricing_page_view", 20 * HOUR),
        ];
        let mut replay = Replay::new(events.clone());
        let now = Timestamp::from_millis(100 * HOUR);
        for record in &events[1..] {
            live.apply_event(&record.event, record.received_at);
        }
        let profile = replay
            .profile_at(&decision("d2", Some(2)))
            .expect("replays")
            .clone();
        assert_eq!(profile.count("login", Window::Month, now), 1);
        assert_eq!(profile.events, live.events);
        assert_eq!(profile.engagement("email").clicks, 1);
        assert_eq!(profile.engagement("email").sends, 3);
        // A later decision applies the rest; an earlier one starts over.
        let profile = replay
            .profile_at(&decision("d3", Some(3)))
            .expect("replays");
        assert_eq!(profile.count("login", Window::Month, now), 2);
        let profile = replay
            .profile_at(&decision("d0", Some(0)))
            .expect("replays");
        assert_eq!(profile.count("login", Window::Month, now), 0);
        assert_eq!(profile.events_applied(), 0);
    }

    #[test]
    fn attributes_follow_the_applied_identify_events() {
        let mut identify = event(1, "identify", HOUR);
        identify
            .event
            .properties
            .insert("plan".to_owned(), AttrValue::Str("pro".to_owned()));
        let mut replay = Replay::new(vec![identify]);
        let profile = replay.profile_at(&decision("d", Some(1))).expect("replays");
        assert_eq!(
            profile.attribute("plan"),
            Some(&AttrValue::Str("pro".to_owned()))
        );
    }

    #[test]
    fn an_incomplete_history_is_refused_with_the_reason() {
        let mut replay = Replay::new(vec![event(2, "login", HOUR), event(3, "login", HOUR)]);
        assert_eq!(
            replay.profile_at(&decision("d", Some(3))),
            Err(ReplayError::Truncated {
                decision_id: "d".to_owned(),
                first: 2
            })
        );
        let mut replay = Replay::new(vec![event(1, "login", HOUR), event(3, "login", HOUR)]);
        assert_eq!(
            replay.profile_at(&decision("d", Some(3))),
            Err(ReplayError::Missing {
                decision_id: "d".to_owned(),
                expected: 3,
                found: 1
            })
        );
        let mut replay = Replay::new(Vec::new());
        assert_eq!(
            replay.profile_at(&decision("d", None)),
            Err(ReplayError::NoEventCount {
                decision_id: "d".to_owned()
            })
        );
        // Nothing seen, nothing needed.
        assert!(replay.profile_at(&decision("d", Some(0))).is_ok());
    }
}
