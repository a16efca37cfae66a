//! How the Redis store names its keys and orders its members.
//!
//! Every key of a partition carries the partition's hash tag
//! (`<namespace>:{p<n>}:…`), so one customer's state, log and events, and
//! the partition's lease whose fencing token guards them, live in one slot
//! and one script changes them atomically. Members of the time-ordered
//! sorted sets all have score 0 and sort by their bytes: they begin with a
//! [`sortable`] time.

use nudge_models::cluster::Partition;
use nudge_models::time::Timestamp;

/// The key names of one store (one namespace).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    namespace: String,
}

impl Keys {
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
        }
    }

    /// The prefix of every key of `partition`.
    pub(super) fn partition(&self, partition: Partition) -> String {
        format!("{}:{{p{}}}", self.namespace, partition.0)
    }

    /// The prefix of the keys without an owner: budgets and model features.
    pub(super) fn shared(&self) -> String {
        format!("{}:{{shared}}", self.namespace)
    }

    /// The lease of the keys under `prefix` (the key a script is routed by).
    pub(super) fn lease(prefix: &str) -> String {
        format!("{prefix}:lease")
    }

    /// Customer id → encoded state.
    pub(super) fn states(prefix: &str) -> String {
        format!("{prefix}:state")
    }

    /// Customer → earliest journey due time (ms), as scores.
    pub(super) fn timers(prefix: &str) -> String {
        format!("{prefix}:timers")
    }

    /// Decision members in time order.
    pub(super) fn decisions(prefix: &str) -> String {
        format!("{prefix}:dlog")
    }

    /// Decision member → encoded decision.
    pub(super) fn records(prefix: &str) -> String {
        format!("{prefix}:dec")
    }

    /// Decision member → its outcomes' frames.
    pub(super) fn outcomes(prefix: &str) -> String {
        format!("{prefix}:out")
    }

    /// Customers with events, in id order.
    pub(super) fn event_customers(prefix: &str) -> String {
        format!("{prefix}:ec")
    }

    /// Event time members in time order.
    pub(super) fn event_times(prefix: &str) -> String {
        format!("{prefix}:et")
    }

    /// One customer's events: ordinal → sortable time and record.
    pub(super) fn customer_events(prefix: &str, customer_id: &str) -> String {
        format!("{prefix}:ev:{customer_id}")
    }

    /// The cluster's live nodes, their addresses and what each serves
    /// (under [`Keys::shared`]).
    pub(super) fn members(prefix: &str) -> [String; 3] {
        [
            format!("{prefix}:members"),
            format!("{prefix}:addresses"),
            format!("{prefix}:serving"),
        ]
    }

    /// Model version → its feature specs (under [`Keys::shared`]).
    pub(super) fn features(prefix: &str) -> String {
        format!("{prefix}:features")
    }
}

/// `at` as 20 digits that sort as the times do (negative times included).
pub(super) fn sortable(at: Timestamp) -> String {
    format!("{:020}", (at.millis() as u64) ^ (1 << 63))
}

/// The inverse of [`sortable`] on a member's first 20 characters.
pub(super) fn time_of(member: &[u8]) -> Option<Timestamp> {
    let digits = std::str::from_utf8(member.get(..20)?).ok()?;
    let flipped: u64 = digits.parse().ok()?;
    Some(Timestamp::from_millis((flipped ^ (1 << 63)) as i64))
}

/// An event ordinal as 20 digits.
pub(super) fn ordinal(ordinal: u64) -> String {
    format!("{ordinal:020}")
}

/// A decision's member: its sortable time, its id's length (4 hex digits),
/// its id and its customer, so members sort by time and a member names its
/// customer.
pub(super) fn decision_member(at: Timestamp, decision_id: &str, customer_id: &str) -> String {
    format!(
        "{}{:04x}{decision_id}{customer_id}",
        sortable(at),
        decision_id.len()
    )
}

/// The smallest member at or after `at` in a time-ordered set (for a
/// `ZRANGE … BYLEX` bound: `[` inclusive).
pub(super) fn lex_from(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| format!("[{}", sortable(at)))
}

/// The bound before `at` (exclusive) in a time-ordered set.
pub(super) fn lex_before(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "+".to_owned(), |at| format!("({}", sortable(at)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sortable_times_sort_as_the_times_do_and_read_back() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_795_435_200_000, i64::MAX];
        let encoded: Vec<String> = times
            .iter()
            .map(|&ms| sortable(Timestamp::from_millis(ms)))
            .collect();
        assert!(encoded.windows(2).all(|pair| pair[0] < pair[1]));
        for (ms, text) in times.iter().zip(&encoded) {
            assert_eq!(text.len(), 20);
            assert_eq!(time_of(text.as_bytes()).unwrap().millis(), *ms);
        }
    }

    #[test]
    fn a_decision_member_sorts_by_time_and_holds_its_id_and_customer() {
        let early = decision_member(Timestamp::from_millis(5), "d|9", "bob");
        let late = decision_member(Timestamp::from_millis(6), "a", "alice");
        assert!(early < late);
        assert_eq!(&early[20..24], "0003");
        assert_eq!(&early[24..27], "d|9");
        assert_eq!(&early[27..], "bob");
        assert_eq!(
            Keys::new("nudge").partition(Partition(7)),
            "nudge:{p7}",
            "one hash tag per partition"
        );
    }
}
