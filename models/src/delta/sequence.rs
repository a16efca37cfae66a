//! The change of a sequence that loses items at its front and gains them at
//! its back, as the ledger (pruned, pushed), an event's hour buckets (pruned,
//! the last one incremented) and the recent event ids (popped, pushed) do:
//!
//! ```text
//! new = old[dropped .. dropped + kept] (some items patched) ++ tail
//! ```
//!
//! Any two sequences have such a description (at worst: keep nothing, send
//! every new item); [`Diff::diff`] looks for the one with the fewest items
//! to send. Each item of the tail is sent as its change from the item before
//! it: whole for plain items (an id, a bucket), only the fields that differ
//! for a contact (a decision's contacts share their decision, time and often
//! channel and category).

use super::{DeltaMismatch, Diff, Misfit};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many leading items of the new sequence are looked for in the old one
/// to find how many items its front lost. The first is enough when it is
/// unchanged; the next ones find the offset when the first was patched.
const PROBES: usize = 4;

/// An item of a sequence that a delta describes.
pub(super) trait Item: Diff {
    /// Whether a kept item that changed is sent as its change in place
    /// (true for items whose change names only the fields that differ: a
    /// contact's outcome) rather than again in the tail, with the kept run
    /// ending before it (false for items whose change is the item itself).
    const PATCH_IN_PLACE: bool;

    /// What the first item of a sequence is sent as a change from.
    fn blank() -> Self;
}

impl Item for u64 {
    const PATCH_IN_PLACE: bool = false;

    fn blank() -> Self {
        0
    }
}

/// An hour bucket of an event's counters.
impl Item for (i64, u32) {
    const PATCH_IN_PLACE: bool = false;

    fn blank() -> Self {
        (0, 0)
    }
}

/// How a sequence changed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// The bounds come from `Diff` (serde would also ask `Default` of the items).
#[serde(deny_unknown_fields, bound = "")]
pub(super) struct SeqDelta<T: Item> {
    /// Items dropped from the front of the old sequence.
    #[serde(rename = "d", default, skip_serializing_if = "is_zero")]
    pub(super) dropped: usize,
    /// Items of the old sequence kept after them: the new one's first items.
    #[serde(rename = "k", default, skip_serializing_if = "is_zero")]
    pub(super) kept: usize,
    /// Items of the old sequence cut after the kept ones, so that `dropped +
    /// kept + cut` is its length: a delta is refused by a sequence of
    /// another length.
    #[serde(rename = "c", default, skip_serializing_if = "is_zero")]
    pub(super) cut: usize,
    /// Kept items that changed, by their position in the new sequence
    /// (below `kept`).
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) patched: Vec<(usize, T::Delta)>,
    /// The new sequence's items after the kept ones, each as its change from
    /// the item before it: the last kept one for the first, or
    /// [`Item::blank`] when none is kept.
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) tail: Vec<T::Delta>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// One way to line the new sequence up with the old one.
#[derive(Debug, Clone, Copy)]
struct Alignment {
    dropped: usize,
    kept: usize,
    patched: usize,
}

impl Alignment {
    /// The new items kept after dropping `dropped` old ones: as many as
    /// overlap when changed items are patched in place, else up to the last
    /// one equal to its old item.
    fn at<T: Item>(old: &VecDeque<T>, new: &VecDeque<T>, dropped: usize) -> Self {
        let overlap = new.len().min(old.len() - dropped);
        let same = |index: usize| new[index] == old[dropped + index];
        let kept = if T::PATCH_IN_PLACE {
            overlap
        } else {
            (0..overlap)
                .rev()
                .find(|&index| same(index))
                .map_or(0, |index| index + 1)
        };
        let patched = (0..kept).filter(|&index| !same(index)).count();
        Alignment {
            dropped,
            kept,
            patched,
        }
    }

    /// Items the delta carries, patched or in the tail, then items
    /// dropped: the lower, the better.
    fn rank(&self, new_len: usize) -> (usize, usize) {
        (self.patched + (new_len - self.kept), self.dropped)
    }
}

impl<T: Item> Diff for VecDeque<T> {
    type Delta = SeqDelta<T>;

    fn diff(old: &Self, new: &Self) -> SeqDelta<T> {
        // Nothing dropped, or as much as puts one of the new sequence's
        // first items where it sits in the old one: the fewest items sent
        // wins, the fewest dropped among equals.
        let mut best = Alignment::at(old, new, 0);
        for (position, item) in new.iter().take(PROBES).enumerate() {
            let Some(dropped) = old.iter().skip(position).position(|old| old == item) else {
                continue;
            };
            let candidate = Alignment::at(old, new, dropped);
            if candidate.rank(new.len()) < best.rank(new.len()) {
                best = candidate;
            }
        }
        let Alignment { dropped, kept, .. } = best;
        let blank = T::blank();
        let mut previous = kept.checked_sub(1).map_or(&blank, |last| &new[last]);
        let mut tail = Vec::with_capacity(new.len() - kept);
        for item in new.range(kept..) {
            tail.push(T::diff(previous, item));
            previous = item;
        }
        SeqDelta {
            dropped,
            kept,
            cut: old.len() - dropped - kept,
            patched: (0..kept)
                .filter(|&index| new[index] != old[dropped + index])
                .map(|index| (index, T::diff(&old[dropped + index], &new[index])))
                .collect(),
            tail,
        }
    }

    fn check(&self, delta: &SeqDelta<T>) -> Result<(), DeltaMismatch> {
        let expected = delta
            .dropped
            .saturating_add(delta.kept)
            .saturating_add(delta.cut);
        if expected != self.len() {
            return Err(Misfit::Length {
                expected,
                found: self.len(),
            }
            .into());
        }
        for (index, change) in &delta.patched {
            if *index >= delta.kept {
                return Err(Misfit::Index {
                    index: *index,
                    kept: delta.kept,
                }
                .into());
            }
            self[delta.dropped + index]
                .check(change)
                .map_err(|mismatch| mismatch.within(&format!("[{index}]")))?;
        }
        Ok(())
    }

    fn patch(&mut self, delta: &SeqDelta<T>) {
        debug_assert!(self.check(delta).is_ok(), "patched with an unchecked delta");
        self.drain(..delta.dropped.min(self.len()));
        self.truncate(delta.kept);
        for (index, change) in &delta.patched {
            if let Some(item) = self.get_mut(*index) {
                item.patch(change);
            }
        }
        let mut previous = self.back().cloned().unwrap_or_else(T::blank);
        for change in &delta.tail {
            previous.patch(change);
            self.push_back(previous.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Contact, OutcomeKind};
    use crate::time::Timestamp;
    use proptest::prelude::*;

    /// `diff` then `check` and `patch` rebuild `new` from `old`.
    fn round_trip<T: Item>(old: &VecDeque<T>, new: &VecDeque<T>) -> Result<(), TestCaseError> {
        let delta = VecDeque::diff(old, new);
        let mut rebuilt = old.clone();
        rebuilt
            .check(&delta)
            .map_err(|mismatch| TestCaseError::fail(mismatch.to_string()))?;
        rebuilt.patch(&delta);
        prop_assert_eq!(&rebuilt, new);
        Ok(())
    }

    /// A contact from a pool of few, so that sequences repeat contacts and
    /// differ in outcomes only.
    fn contact((action, outcome): (u8, Option<usize>)) -> Contact {
        let mut contact = Contact::new("d", &format!("a{action}"), "email", "promo", Timestamp(0));
        if let Some(kind) = outcome {
            contact.mark(OutcomeKind::ALL[kind]);
        }
        contact
    }

    proptest! {
        /// Any two sequences, with repeated items, of plain items and of
        /// items patched in place.
        #[test]
        fn any_two_sequences_have_a_delta(
            old in prop::collection::vec(0..4u64, 0..24),
            new in prop::collection::vec(0..4u64, 0..24),
            old_contacts in prop::collection::vec((0..3u8, prop::option::of(0..2usize)), 0..12),
            new_contacts in prop::collection::vec((0..3u8, prop::option::of(0..2usize)), 0..12),
        ) {
            round_trip(&old.into(), &new.into())?;
            let old_contacts: VecDeque<Contact> = old_contacts.into_iter().map(contact).collect();
            let new_contacts: VecDeque<Contact> = new_contacts.into_iter().map(contact).collect();
            round_trip(&old_contacts, &new_contacts)?;
        }
    }

    fn delta(old: &[u64], new: &[u64]) -> SeqDelta<u64> {
        let (old, new): (VecDeque<u64>, VecDeque<u64>) =
            (old.iter().copied().collect(), new.iter().copied().collect());
        let delta = VecDeque::diff(&old, &new);
        let mut rebuilt = old.clone();
        rebuilt.check(&delta).expect("fits");
        rebuilt.patch(&delta);
        assert_eq!(rebuilt, new);
        delta
    }

    #[test]
    fn popped_and_pushed_items_are_all_a_full_queue_sends() {
        let old: Vec<u64> = (0..1_024).collect();
        let new: Vec<u64> = (1..1_025).collect();
        let delta = delta(&old, &new);
        assert_eq!((delta.dropped, delta.kept, delta.cut), (1, 1_023, 0));
        assert_eq!(delta.tail, [1_024]);
        assert!(delta.patched.is_empty());
    }

    #[test]
    fn a_changed_last_item_is_cut_and_sent_again() {
        let delta = delta(&[5, 6, 7], &[6, 8]);
        assert_eq!((delta.dropped, delta.kept, delta.cut), (1, 1, 1));
        assert_eq!(delta.tail, [8]);
    }

    #[test]
    fn unrelated_and_empty_sequences_are_sent_whole() {
        let delta = delta(&[1, 2, 3], &[4, 5]);
        assert_eq!((delta.dropped, delta.kept, delta.cut), (0, 0, 3));
        assert_eq!(delta.tail, [4, 5]);
        assert_eq!(self::delta(&[], &[1]).tail, [1]);
        assert_eq!(self::delta(&[1, 2], &[]).cut, 2);
        // An item inserted in the middle: what follows is sent again.
        assert_eq!(self::delta(&[1, 2, 3, 4], &[1, 2, 9, 3, 4]).tail, [9, 3, 4]);
    }

    #[test]
    fn a_damaged_delta_is_refused() {
        let old: VecDeque<u64> = VecDeque::from([1, 2, 3]);
        let damaged = SeqDelta {
            dropped: 0,
            kept: 3,
            cut: 0,
            patched: vec![(3, 9)],
            tail: Vec::new(),
        };
        assert_eq!(
            old.check(&damaged).map_err(|mismatch| mismatch.misfit),
            Err(Misfit::Index { index: 3, kept: 3 })
        );
        let overflowing = SeqDelta {
            dropped: usize::MAX,
            kept: 4,
            cut: 0,
            patched: Vec::new(),
            tail: Vec::new(),
        };
        assert!(old.check(&overflowing).is_err());
    }
}
