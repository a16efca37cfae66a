//! The state journal: what each commit changed for each customer, appended
//! under a growing key, and the writer's bookkeeping of what the journal
//! holds that the customers' snapshots do not.
//!
//! Why: rewriting a customer's snapshot in the `customers` B-tree on every
//! change copies its leaf page and the branch pages above it, on every
//! commit, for every customer in the commit: tens of kilobytes written per
//! decision for a record of one or two. A journal record goes under the
//! largest key so far instead, so a commit only touches the journal's last
//! pages, whichever customers it holds.
//!
//! A record holds one customer's state after the commit (if it changed) and
//! the decisions logged for the customer in it, which the index `forget`
//! erases by (`customer_decisions`) does not hold yet. The state is kept as
//! its change from the customer's previous state ([`StateDelta`], tens to a
//! couple of hundred bytes) when the writer is sure which state that is (the
//! same activation wrote the previous one, in order), else whole. A
//! customer's state is then its last whole state (a record's, or its
//! snapshot, or the empty state) with the changes after it applied in order
//! — its *chain*. A customer is
//! *settled* — its latest state written to its snapshot, its decisions to
//! the index, its records deleted — when the journal holds more records than
//! its bound (oldest customer first, a bounded number per commit), and before
//! `forget` erases it, so that erasure works on the snapshot and index alone.
//! At open the journal is read back: nothing acknowledged is lost by a crash,
//! and a restart reads at most the bound's worth of records.

use super::StoreError;
use super::records::{self, Reader, decode as decode_value, put_bytes, put_length};
use nudge_models::customer::CustomerState;
use nudge_models::delta::StateDelta;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The version byte that starts every record.
const RECORD_FORMAT: u8 = 1;

/// A state in a record, encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State<'a> {
    /// The whole state ([`super::records::encode`] of a `CustomerState`).
    Whole(&'a [u8]),
    /// Its change from the state before ([`super::records::encode`] of a
    /// `StateDelta`).
    Change(&'a [u8]),
}

/// Whether a record's state is whole or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A whole state.
    Whole,
    /// A change.
    Change,
}

impl State<'_> {
    /// Whole or a change.
    pub(super) fn kind(self) -> Kind {
        match self {
            State::Whole(_) => Kind::Whole,
            State::Change(_) => Kind::Change,
        }
    }
}

/// One customer's changes in one commit, as read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record<'a> {
    /// The customer.
    pub(super) customer_id: &'a str,
    /// The state after the commit, if it changed.
    pub(super) state: Option<State<'a>>,
    /// Decisions logged: (decision time ms, decision id).
    pub(super) decisions: Vec<(i64, &'a str)>,
}

/// Encodes a record: a format byte, then length-prefixed fields (lengths as
/// little-endian u32), so that the state is stored as it was encoded,
/// without a second encoding around it.
pub(super) fn encode(
    customer_id: &str,
    state: Option<State<'_>>,
    decisions: &[(i64, Box<str>)],
) -> Vec<u8> {
    let size = 1
        + 4
        + customer_id.len()
        + 1
        + state.map_or(0, |(State::Whole(state) | State::Change(state))| {
            4 + state.len()
        })
        + 4
        + decisions.iter().map(|(_, id)| 12 + id.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.push(RECORD_FORMAT);
    put_bytes(&mut bytes, customer_id.as_bytes());
    match state {
        None => bytes.push(0),
        Some(State::Whole(state)) => {
            bytes.push(1);
            put_bytes(&mut bytes, state);
        }
        Some(State::Change(delta)) => {
            bytes.push(2);
            put_bytes(&mut bytes, delta);
        }
    }
    put_length(&mut bytes, decisions.len());
    for (at, decision_id) in decisions {
        bytes.extend_from_slice(&at.to_le_bytes());
        put_bytes(&mut bytes, decision_id.as_bytes());
    }
    bytes
}

fn undecodable(problem: &'static str) -> StoreError {
    records::undecodable(WHAT, problem)
}

/// What a record is called in errors.
const WHAT: &str = "journal record";

/// The inverse of [`encode`].
pub(super) fn decode(bytes: &[u8]) -> Result<Record<'_>, StoreError> {
    let mut reader = Reader::new(WHAT, bytes);
    if reader.byte()? != RECORD_FORMAT {
        return Err(undecodable("unknown record format"));
    }
    let customer_id = reader.text()?;
    let state = match reader.byte()? {
        0 => None,
        1 => Some(State::Whole(reader.field()?)),
        2 => Some(State::Change(reader.field()?)),
        _ => return Err(undecodable("unknown state tag")),
    };
    let count = reader.length()?;
    let mut decisions = Vec::with_capacity(count.min(1_024));
    for _ in 0..count {
        let at = reader.integer()?;
        decisions.push((at, reader.text()?));
    }
    if !reader.is_empty() {
        return Err(undecodable("trailing bytes"));
    }
    Ok(Record {
        customer_id,
        state,
        decisions,
    })
}

/// The state `chain` leads to: its first record's whole state — or, when
/// that is a change, `snapshot`'s (the empty state if none) with the change
/// applied — then each later change applied in order. `record` reads a
/// record by key (`None`: not in the journal). `None` when a record of the
/// chain is gone (or the chain is empty): the customer was settled after the
/// chain was read, so its snapshot is up to date. A change that does not fit
/// the state before it is refused as a damaged journal.
pub(super) fn replay(
    chain: &[u64],
    mut record: impl FnMut(u64) -> Result<Option<Vec<u8>>, StoreError>,
    snapshot: impl FnOnce() -> Result<Option<CustomerState>, StoreError>,
) -> Result<Option<CustomerState>, StoreError> {
    let mut snapshot = Some(snapshot);
    let mut state: Option<CustomerState> = None;
    for key in chain {
        let Some(bytes) = record(*key)? else {
            return Ok(None);
        };
        match decode(&bytes)?.state {
            Some(State::Whole(whole)) => state = Some(decode_value("customer state", whole)?),
            Some(State::Change(change)) => {
                let delta: StateDelta = decode_value("state change", change)?;
                let base = match (state.as_mut(), snapshot.take()) {
                    (Some(state), _) => state,
                    (None, Some(snapshot)) => state.insert(snapshot()?.unwrap_or_default()),
                    (None, None) => state.insert(CustomerState::default()),
                };
                delta
                    .apply(base)
                    .map_err(|mismatch| StoreError::Undecodable {
                        what: "state journal",
                        source: Arc::new(mismatch),
                    })?;
            }
            None => {}
        }
    }
    Ok(state)
}

/// What the journal holds for one customer that its snapshot and the index
/// do not.
#[derive(Debug, Default)]
pub(super) struct Unsettled {
    /// Its records' keys, oldest first.
    pub(super) keys: Vec<u64>,
    /// The keys of its state records from the last whole one (or, if none
    /// is whole, from the first): its chain.
    pub(super) chain: Vec<u64>,
    /// The writer of its latest state record and how many writes that
    /// writer had made before it, when known: a change from that writer's
    /// next write fits the chain.
    pub(super) last_write: Option<(u64, u64)>,
    /// Decisions logged in its records, not yet in the index.
    pub(super) decisions: Vec<(i64, Box<str>)>,
}

/// The writer's view of the journal table: its next key and, per customer,
/// what is unsettled. Rebuilt from the table at open and after a failed
/// commit ([`Journal::note`] runs before the commit is known to succeed).
#[derive(Debug, Default)]
pub(super) struct Journal {
    next: u64,
    customers: HashMap<Arc<str>, Unsettled>,
    /// Customers by the key of their oldest record: whom to settle first.
    by_age: BTreeMap<u64, Arc<str>>,
    records: usize,
}

impl Journal {
    /// An empty journal whose first key is `next`.
    pub(super) fn starting_at(next: u64) -> Self {
        Self {
            next,
            ..Self::default()
        }
    }

    /// The key of the next record.
    pub(super) fn next_key(&mut self) -> u64 {
        let key = self.next;
        self.next += 1;
        key
    }

    /// Records in the journal.
    pub(super) fn records(&self) -> usize {
        self.records
    }

    /// Customers with unsettled records.
    pub(super) fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Notes the record `key` of `customer_id`, written (or read back) with
    /// a state (whole or a change) or none, and with `decisions`;
    /// `last_write` as in [`Unsettled::last_write`]. Returns the customer's
    /// chain.
    pub(super) fn note(
        &mut self,
        key: u64,
        customer_id: &Arc<str>,
        state: Option<Kind>,
        last_write: Option<(u64, u64)>,
        decisions: impl IntoIterator<Item = (i64, Box<str>)>,
    ) -> &[u64] {
        self.next = self.next.max(key + 1);
        self.records += 1;
        if !self.customers.contains_key(customer_id) {
            self.by_age.insert(key, customer_id.clone());
        }
        let unsettled = self.customers.entry(customer_id.clone()).or_default();
        unsettled.keys.push(key);
        match state {
            Some(Kind::Whole) => {
                unsettled.chain.clear();
                unsettled.chain.push(key);
            }
            Some(Kind::Change) => unsettled.chain.push(key),
            None => {}
        }
        if state.is_some() {
            unsettled.last_write = last_write;
        }
        unsettled.decisions.extend(decisions);
        &unsettled.chain
    }

    /// What is unsettled for `customer_id`.
    pub(super) fn get(&self, customer_id: &str) -> Option<&Unsettled> {
        self.customers.get(customer_id)
    }

    /// Takes out what is unsettled for `customer_id`: the caller settles it.
    pub(super) fn take(&mut self, customer_id: &str) -> Option<Unsettled> {
        let unsettled = self.customers.remove(customer_id)?;
        if let Some(first) = unsettled.keys.first() {
            self.by_age.remove(first);
        }
        self.records -= unsettled.keys.len();
        Some(unsettled)
    }

    /// The customer whose oldest unsettled record is the oldest.
    pub(super) fn oldest(&self) -> Option<Arc<str>> {
        self.by_age.values().next().cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let decisions: Vec<(i64, Box<str>)> =
            vec![(-5, "d1".into()), (1_795_435_200_000, "é".into())];
        for state in [
            None,
            Some(State::Whole(b"")),
            Some(State::Whole(b"\x80state\xff")),
            Some(State::Change(b"\x81delta")),
        ] {
            let bytes = encode("alice", state, &decisions);
            let record = decode(&bytes).unwrap();
            assert_eq!(record.customer_id, "alice");
            assert_eq!(record.state, state);
            assert_eq!(record.decisions, vec![(-5, "d1"), (1_795_435_200_000, "é")]);
        }
    }

    #[test]
    fn a_damaged_record_is_refused_with_a_clear_error() {
        let bytes = encode("alice", Some(State::Whole(b"state")), &[(1, "d1".into())]);
        for broken in [
            &bytes[..bytes.len() - 1],
            &[&bytes[..], b"x"].concat()[..],
            &[&[9_u8][..], &bytes[1..]].concat()[..],
            &b""[..],
        ] {
            let error = decode(broken).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("journal record cannot be decoded"),
                "{error}"
            );
        }
    }

    #[test]
    fn customers_are_settled_oldest_first_and_counted() {
        let alice: Arc<str> = Arc::from("alice");
        let bob: Arc<str> = Arc::from("bob");
        let mut journal = Journal::starting_at(10);
        let first = journal.next_key();
        journal.note(first, &alice, Some(Kind::Whole), None, [(1, "d1".into())]);
        let second = journal.next_key();
        journal.note(second, &bob, None, None, [(2, "d2".into())]);
        let third = journal.next_key();
        let chain = journal.note(third, &alice, Some(Kind::Change), Some((7, 0)), []);
        assert_eq!(chain, [10, 12]);
        let fourth = journal.next_key();
        journal.note(fourth, &alice, None, None, []);
        assert_eq!((first, second, third, fourth), (10, 11, 12, 13));
        assert_eq!((journal.records(), journal.customers()), (4, 2));
        assert_eq!(journal.oldest().as_deref(), Some("alice"));
        assert_eq!(journal.get("alice").unwrap().last_write, Some((7, 0)));
        let unsettled = journal.take("alice").unwrap();
        assert_eq!(unsettled.keys, vec![10, 12, 13]);
        assert_eq!(unsettled.chain, vec![10, 12], "from the whole state on");
        assert_eq!(unsettled.decisions, vec![(1, "d1".into())]);
        assert_eq!(journal.oldest().as_deref(), Some("bob"));
        assert_eq!(journal.records(), 1);
        assert!(journal.take("alice").is_none());
        // Read back after a restart, keys continue after the largest.
        let mut reread = Journal::default();
        reread.note(41, &bob, Some(Kind::Change), None, []);
        assert_eq!(reread.next_key(), 42);
        // A whole state starts the chain again.
        let chain = reread.note(42, &bob, Some(Kind::Whole), None, []);
        assert_eq!(chain, [42]);
    }
}
