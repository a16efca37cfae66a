//! [`StateDelta`]: what changed from one state of a customer to the next, so a
//! store can append a small change per decision, event or outcome instead of
//! the whole [`CustomerState`] (kilobytes), and rebuild the state from a
//! snapshot and the changes after it.
//!
//! `StateDelta::between(base, new)` describes any change, and `apply` turns
//! `base` into `new` exactly; what is small (~40–200 bytes encoded) is the
//! change the service makes every time:
//!
//! - sequences (the ledger's contacts, an event's hour buckets, the recent
//!   event ids) as the items dropped from the front, the run kept after them
//!   (a kept contact that changed carries only its changed fields, e.g. the
//!   outcome bits), and the items after that run: a decision's new contacts,
//!   an event's new or incremented bucket, its fingerprint (`sequence.rs`);
//! - maps of names (attributes, events, engagement) as the entries added,
//!   changed (an event's buckets, one engagement counter) and removed
//!   (`map.rs`), each change described per field (`parts.rs`);
//! - consent and suppressions, small and rarely changed, whole.
//!
//! The encoded delta is stored, so its field names are short
//! (`#[serde(rename)]`), unchanged parts are left out, and a delta must be
//! encoded with field names (`rmp_serde::to_vec_named`, or JSON): positional
//! encodings cannot leave fields out. Renaming a field changes the stored
//! format. Unknown fields are refused, so a delta written by a newer version
//! is never applied in part.
//!
//! [`StateDelta::apply`] refuses a delta that cannot have been taken from the
//! state it is given (a sequence of another length, a name the state lacks or
//! already has) with a [`DeltaMismatch`] naming the part, and leaves the state
//! untouched: everything is checked before anything is changed. A delta of
//! another state that happens to fit (same lengths and names) is not
//! recognised.

mod map;
mod parts;
mod sequence;

use crate::customer::{ConsentRecord, CustomerState, Suppression};
use crate::journey::CustomerJourneys;
use crate::ledger::Contact;
use parts::ProfileDelta;
use sequence::SeqDelta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What changed from one state of a customer to the next: the part of the
/// state that changed, each part by its own change. Parts that did not change
/// are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDelta {
    /// Attributes, event counters, engagement, first and last seen.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    profile: Option<ProfileDelta>,
    /// The ledger's contacts.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    ledger: Option<SeqDelta<Contact>>,
    /// Consent per channel, whole.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    consent: Option<BTreeMap<String, ConsentRecord>>,
    /// Suppressions, whole.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    suppressions: Option<Vec<Suppression>>,
    /// The fingerprints of the recent event ids.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    recent_event_ids: Option<SeqDelta<u64>>,
    /// Journeys, whole: they change only when a journey moves.
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    journeys: Option<CustomerJourneys>,
}

impl StateDelta {
    /// The change that turns `base` into `new`.
    pub fn between(base: &CustomerState, new: &CustomerState) -> StateDelta {
        // Destructured so that a new part of the state cannot be forgotten here.
        let CustomerState {
            profile,
            ledger,
            consent,
            suppressions,
            recent_event_ids,
            journeys,
        } = new;
        StateDelta {
            profile: change(&base.profile, profile),
            ledger: change(&base.ledger.contacts, &ledger.contacts),
            consent: change(&base.consent, consent),
            suppressions: change(&base.suppressions, suppressions),
            recent_event_ids: change(&base.recent_event_ids, recent_event_ids),
            journeys: change(&base.journeys, journeys),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == StateDelta::default()
    }

    /// Turns `base` into the state the delta was taken to, when `base` is the
    /// state it was taken from. Fails, changing nothing, when the delta cannot
    /// have been taken from `base`: a sequence of another length than the
    /// delta's, a name to change or remove that `base` lacks, or one to add
    /// that it already has. The store refuses the chain of deltas then,
    /// instead of building a wrong state.
    pub fn apply(&self, base: &mut CustomerState) -> Result<(), DeltaMismatch> {
        check_part(&base.profile, self.profile.as_ref(), "profile")?;
        check_part(&base.ledger.contacts, self.ledger.as_ref(), "ledger")?;
        check_part(&base.consent, self.consent.as_ref(), "consent")?;
        check_part(
            &base.suppressions,
            self.suppressions.as_ref(),
            "suppressions",
        )?;
        check_part(
            &base.recent_event_ids,
            self.recent_event_ids.as_ref(),
            "recent_event_ids",
        )?;
        check_part(&base.journeys, self.journeys.as_ref(), "journeys")?;
        patch_part(&mut base.profile, self.profile.as_ref());
        patch_part(&mut base.ledger.contacts, self.ledger.as_ref());
        patch_part(&mut base.consent, self.consent.as_ref());
        patch_part(&mut base.suppressions, self.suppressions.as_ref());
        patch_part(&mut base.recent_event_ids, self.recent_event_ids.as_ref());
        patch_part(&mut base.journeys, self.journeys.as_ref());
        Ok(())
    }
}

/// Why a delta does not fit the state it was applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the delta does not fit this customer's state at {part}: {misfit}")]
pub struct DeltaMismatch {
    /// Where in the state, e.g. `ledger` or `profile.events[login].buckets`.
    pub part: String,
    /// What does not fit.
    pub misfit: Misfit,
}

impl DeltaMismatch {
    /// The same mismatch, seen from the part that holds `part`.
    fn within(mut self, part: &str) -> Self {
        self.part = match self.part.as_str() {
            "" => part.to_owned(),
            inner if inner.starts_with('[') => format!("{part}{inner}"),
            inner => format!("{part}.{inner}"),
        };
        self
    }
}

impl From<Misfit> for DeltaMismatch {
    fn from(misfit: Misfit) -> Self {
        DeltaMismatch {
            part: String::new(),
            misfit,
        }
    }
}

/// What about a part of the state does not fit a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The delta was taken from a sequence of `expected` items; this one has
    /// `found`.
    Length {
        /// Items in the sequence the delta was taken from.
        expected: usize,
        /// Items in this one.
        found: usize,
    },
    /// The delta changes item `index` of a sequence that keeps only `kept`
    /// (a damaged delta).
    Index {
        /// The item's position.
        index: usize,
        /// Items kept.
        kept: usize,
    },
    /// The delta changes or removes a name this map does not have.
    MissingName(String),
    /// The delta adds a name this map already has.
    ExistingName(String),
}

impl fmt::Display for Misfit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misfit::Length { expected, found } => write!(
                formatter,
                "the delta was taken from {expected} items, the state has {found}"
            ),
            Misfit::Index { index, kept } => write!(
                formatter,
                "the delta changes item {index} of the {kept} it keeps"
            ),
            Misfit::MissingName(name) => write!(
                formatter,
                "the delta changes '{name}', which the state does not have"
            ),
            Misfit::ExistingName(name) => write!(
                formatter,
                "the delta adds '{name}', which the state already has"
            ),
        }
    }
}

/// A part of a customer's state whose changes a delta carries (whole, when it
/// is new).
trait Diff: Clone + PartialEq + fmt::Debug + Serialize + DeserializeOwned {
    /// How a value of this part changed.
    type Delta: Clone + PartialEq + fmt::Debug + Serialize + DeserializeOwned;

    /// The change that turns `old` into `new`.
    fn diff(old: &Self, new: &Self) -> Self::Delta;

    /// Whether `delta` can have been taken from `self`.
    fn check(&self, delta: &Self::Delta) -> Result<(), DeltaMismatch>;

    /// Applies a `delta` that [`Diff::check`] accepted.
    fn patch(&mut self, delta: &Self::Delta);
}

/// Parts whose change is their new value, whole.
macro_rules! diff_whole {
    ($($part:ty),* $(,)?) => {$(
        impl Diff for $part {
            type Delta = $part;

            fn diff(_old: &Self, new: &Self) -> Self::Delta {
                new.clone()
            }

            fn check(&self, _delta: &Self::Delta) -> Result<(), DeltaMismatch> {
                Ok(())
            }

            fn patch(&mut self, delta: &Self::Delta) {
                self.clone_from(delta);
            }
        }
    )*};
}

diff_whole!(
    u64,
    (i64, u32),
    crate::profile::Attribute,
    BTreeMap<String, ConsentRecord>,
    Vec<Suppression>,
    CustomerJourneys,
);

/// The change from `old` to `new`, `None` when there is none.
fn change<T: Diff>(old: &T, new: &T) -> Option<T::Delta> {
    (old != new).then(|| T::diff(old, new))
}

/// Checks the change of one named part, if it changed.
fn check_part<T: Diff>(
    current: &T,
    delta: Option<&T::Delta>,
    part: &str,
) -> Result<(), DeltaMismatch> {
    match delta {
        Some(delta) => current
            .check(delta)
            .map_err(|mismatch| mismatch.within(part)),
        None => Ok(()),
    }
}

/// Applies the checked change of one part, if it changed.
fn patch_part<T: Diff>(current: &mut T, delta: Option<&T::Delta>) {
    if let Some(delta) = delta {
        current.patch(delta);
    }
}

/// The new value of a plain field, `None` when it is unchanged.
fn replaced<T: PartialEq + Clone>(old: &T, new: &T) -> Option<T> {
    (old != new).then(|| new.clone())
}

/// Sets a plain field to its new value, if the delta has one.
fn set<T: Clone>(field: &mut T, value: Option<&T>) {
    if let Some(value) = value {
        field.clone_from(value);
    }
}

/// Reads the new value of an optional field (`Option<Option<T>>`): present
/// and nil is `Some(None)`, a cleared field, where serde alone would read
/// `None`, an unchanged one. Used with `default` and
/// `skip_serializing_if = "Option::is_none"`.
fn cleared_or_set<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::BudgetCounters;
    use crate::ledger::OutcomeKind;
    use crate::profile::Event;
    use crate::time::{HOUR_MS, Timestamp};

    const NOW: i64 = 1_800_000_000_000;

    fn event(id: &str, name: &str, at: i64) -> Event {
        Event {
            event_id: id.to_owned(),
            name: name.to_owned(),
            timestamp: Timestamp(at),
            properties: BTreeMap::new(),
        }
    }

    /// Two contacts, two events, one outcome.
    fn state() -> CustomerState {
        let mut state = CustomerState::default();
        let now = Timestamp(NOW);
        state.track(&event("e1", "login", NOW - 3 * HOUR_MS), now);
        state.track(&event("e2", "search", NOW - HOUR_MS), now);
        for (decision, action) in [("d1", "a"), ("d2", "b")] {
            state
                .ledger
                .push(Contact::new(decision, action, "email", "promo", now));
        }
        state
    }

    #[test]
    fn an_outcome_changes_one_contact_in_place() {
        let base = state();
        let mut new = base.clone();
        new.report_outcome(
            "d2",
            "b",
            OutcomeKind::Click,
            Some(2.5),
            Timestamp(NOW),
            &BudgetCounters::default(),
        )
        .expect("served");
        let delta = StateDelta::between(&base, &new);
        let ledger = delta.ledger.as_ref().expect("the ledger changed");
        assert_eq!((ledger.kept, ledger.patched.len()), (2, 1));
        assert!(ledger.tail.is_empty());
        let mut rebuilt = base.clone();
        delta.apply(&mut rebuilt).expect("fits");
        assert_eq!(rebuilt, new);
    }

    #[test]
    fn a_delta_refuses_a_state_it_was_not_taken_from_and_leaves_it_untouched() {
        let base = state();
        let mut new = base.clone();
        new.ledger
            .push(Contact::new("d3", "c", "push", "news", Timestamp(NOW)));
        new.track(&event("e3", "login", NOW), Timestamp(NOW));
        let delta = StateDelta::between(&base, &new);

        // A ledger one contact shorter than the one the delta was taken from.
        let mut shorter = base.clone();
        shorter.ledger.contacts.pop_front();
        let before = shorter.clone();
        let mismatch = delta.apply(&mut shorter).expect_err("does not fit");
        assert_eq!(mismatch.part, "ledger");
        assert_eq!(
            mismatch.misfit,
            Misfit::Length {
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            mismatch.to_string(),
            "the delta does not fit this customer's state at ledger: \
             the delta was taken from 2 items, the state has 1"
        );
        assert_eq!(shorter, before, "nothing changed");

        // A profile without the event whose counters the delta changes;
        // the ledger, checked after the profile, is left as it was too.
        let mut without_login = base.clone();
        without_login.profile.events.remove("login");
        let before = without_login.clone();
        let mismatch = delta.apply(&mut without_login).expect_err("does not fit");
        assert_eq!(mismatch.part, "profile.events");
        assert_eq!(mismatch.misfit, Misfit::MissingName("login".to_owned()));
        assert_eq!(without_login, before, "nothing changed");

        // Hour buckets of another length.
        let mut other_buckets = base.clone();
        if let Some(login) = other_buckets.profile.events.get_mut("login") {
            login.buckets.push_front((0, 1));
        }
        let mismatch = delta.apply(&mut other_buckets).expect_err("does not fit");
        assert_eq!(mismatch.part, "profile.events[login].buckets");

        // The state it was taken from.
        let mut rebuilt = base.clone();
        delta.apply(&mut rebuilt).expect("fits");
        assert_eq!(rebuilt, new);
        // Applied twice, it no longer fits.
        assert!(delta.apply(&mut rebuilt).is_err());
        assert_eq!(rebuilt, new);
    }

    #[test]
    fn a_name_the_state_already_has_is_not_added_again() {
        let base = CustomerState::default();
        let mut new = base.clone();
        new.profile.engagement_mut("email").sends = 1;
        let delta = StateDelta::between(&base, &new);
        let mut rebuilt = base.clone();
        delta.apply(&mut rebuilt).expect("fits");
        let mismatch = delta.apply(&mut rebuilt).expect_err("email is there");
        assert_eq!(mismatch.part, "profile.engagement");
        assert_eq!(mismatch.misfit, Misfit::ExistingName("email".to_owned()));
    }

    #[test]
    fn a_cleared_optional_field_survives_encoding() {
        let base = state();
        let mut new = base.clone();
        new.profile.first_seen = None;
        if let Some(contact) = new.ledger.contacts.front_mut() {
            contact.dismissed_at = Some(Timestamp(NOW));
        }
        let mut cleared = new.clone();
        if let Some(contact) = cleared.ledger.contacts.front_mut() {
            contact.dismissed_at = None;
        }
        for (from, to) in [(&base, &new), (&new, &cleared)] {
            let delta = StateDelta::between(from, to);
            let json = serde_json::to_string(&delta).expect("encodes");
            let decoded: StateDelta = serde_json::from_str(&json).expect("decodes");
            assert_eq!(decoded, delta, "{json}");
            let mut rebuilt = from.clone();
            decoded.apply(&mut rebuilt).expect("fits");
            assert_eq!(&rebuilt, to);
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let refused = serde_json::from_str::<StateDelta>(r#"{"z": 1}"#);
        assert!(refused.is_err());
        let empty: StateDelta = serde_json::from_str("{}").expect("decodes");
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).expect("encodes"), "{}");
    }
}
