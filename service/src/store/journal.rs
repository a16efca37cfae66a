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
//! erases by (`customer_decisions`) does not hold yet. A customer is
//! *settled* — its latest state written to its snapshot, its decisions to
//! the index, its records deleted — when the journal holds more records than
//! its bound (oldest customer first, a bounded number per commit), and before
//! `forget` erases it, so that erasure works on the snapshot and index alone.
//! At open the journal is read back: nothing acknowledged is lost by a crash,
//! and a restart reads at most the bound's worth of records.

use super::StoreError;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The version byte that starts every record.
const RECORD_FORMAT: u8 = 1;

/// One customer's changes in one commit, as read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record<'a> {
    /// The customer.
    pub(super) customer_id: &'a str,
    /// The encoded state after the commit, if it changed.
    pub(super) state: Option<&'a [u8]>,
    /// Decisions logged: (decision time ms, decision id).
    pub(super) decisions: Vec<(i64, &'a str)>,
}

/// Encodes a record: a format byte, then length-prefixed fields (lengths as
/// little-endian u32), so that the state is stored as it was encoded,
/// without a second encoding around it.
pub(super) fn encode(
    customer_id: &str,
    state: Option<&[u8]>,
    decisions: &[(i64, Box<str>)],
) -> Vec<u8> {
    let size = 1
        + 4
        + customer_id.len()
        + 1
        + state.map_or(0, |state| 4 + state.len())
        + 4
        + decisions.iter().map(|(_, id)| 12 + id.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.push(RECORD_FORMAT);
    put_bytes(&mut bytes, customer_id.as_bytes());
    match state {
        None => bytes.push(0),
        Some(state) => {
            bytes.push(1);
            put_bytes(&mut bytes, state);
        }
    }
    put_length(&mut bytes, decisions.len());
    for (at, decision_id) in decisions {
        bytes.extend_from_slice(&at.to_le_bytes());
        put_bytes(&mut bytes, decision_id.as_bytes());
    }
    bytes
}

fn put_length(bytes: &mut Vec<u8>, length: usize) {
    // Records are far below 4 GiB: a state, a customer id, decision ids.
    let length = u32::try_from(length).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&length.to_le_bytes());
}

fn put_bytes(bytes: &mut Vec<u8>, field: &[u8]) {
    put_length(bytes, field.len());
    bytes.extend_from_slice(field);
}

/// Reads the fields of an encoded record in turn.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < count {
            return Err(undecodable("the record ends early"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn length(&mut self) -> Result<usize, StoreError> {
        let bytes: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| undecodable("length"))?;
        Ok(u32::from_le_bytes(bytes) as usize)
    }

    fn field(&mut self) -> Result<&'a [u8], StoreError> {
        let length = self.length()?;
        self.take(length)
    }

    fn text(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.field()?).map_err(|_| undecodable("a field is not UTF-8"))
    }

    fn integer(&mut self) -> Result<i64, StoreError> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| undecodable("time"))?;
        Ok(i64::from_le_bytes(bytes))
    }
}

fn undecodable(problem: &'static str) -> StoreError {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Problem(&'static str);
    StoreError::Undecodable {
        what: "journal record",
        source: Arc::new(Problem(problem)),
    }
}

/// The inverse of [`encode`].
pub(super) fn decode(bytes: &[u8]) -> Result<Record<'_>, StoreError> {
    let mut reader = Reader { bytes };
    if reader.byte()? != RECORD_FORMAT {
        return Err(undecodable("unknown record format"));
    }
    let customer_id = reader.text()?;
    let state = match reader.byte()? {
        0 => None,
        1 => Some(reader.field()?),
        _ => return Err(undecodable("unknown state tag")),
    };
    let count = reader.length()?;
    let mut decisions = Vec::with_capacity(count.min(1_024));
    for _ in 0..count {
        let at = reader.integer()?;
        decisions.push((at, reader.text()?));
    }
    if !reader.bytes.is_empty() {
        return Err(undecodable("trailing bytes"));
    }
    Ok(Record {
        customer_id,
        state,
        decisions,
    })
}

/// What the journal holds for one customer that its snapshot and the index
/// do not.
#[derive(Debug, Default)]
pub(super) struct Unsettled {
    /// Its records' keys, oldest first.
    pub(super) keys: Vec<u64>,
    /// The key of its latest record that holds a state.
    pub(super) state: Option<u64>,
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
    /// a state or not and with `decisions`.
    pub(super) fn note(
        &mut self,
        key: u64,
        customer_id: &Arc<str>,
        has_state: bool,
        decisions: impl IntoIterator<Item = (i64, Box<str>)>,
    ) {
        self.next = self.next.max(key + 1);
        self.records += 1;
        let unsettled = match self.customers.get_mut(customer_id) {
            Some(unsettled) => unsettled,
            None => {
                self.by_age.insert(key, customer_id.clone());
                self.customers.entry(customer_id.clone()).or_default()
            }
        };
        unsettled.keys.push(key);
        if has_state {
            unsettled.state = Some(key);
        }
        unsettled.decisions.extend(decisions);
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
        for state in [None, Some(&b""[..]), Some(&b"\x80state\xff"[..])] {
            let bytes = encode("alice", state, &decisions);
            let record = decode(&bytes).unwrap();
            assert_eq!(record.customer_id, "alice");
            assert_eq!(record.state, state);
            assert_eq!(record.decisions, vec![(-5, "d1"), (1_795_435_200_000, "é")]);
        }
    }

    #[test]
    fn a_damaged_record_is_refused_with_a_clear_error() {
        let bytes = encode("alice", Some(b"state"), &[(1, "d1".into())]);
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
        journal.note(first, &alice, true, [(1, "d1".into())]);
        let second = journal.next_key();
        journal.note(second, &bob, false, [(2, "d2".into())]);
        let third = journal.next_key();
        journal.note(third, &alice, false, []);
        assert_eq!((first, second, third), (10, 11, 12));
        assert_eq!((journal.records(), journal.customers()), (3, 2));
        assert_eq!(journal.oldest().as_deref(), Some("alice"));
        let unsettled = journal.take("alice").unwrap();
        assert_eq!(unsettled.keys, vec![10, 12]);
        assert_eq!(unsettled.state, Some(10), "the latest record with a state");
        assert_eq!(unsettled.decisions, vec![(1, "d1".into())]);
        assert_eq!(journal.oldest().as_deref(), Some("bob"));
        assert_eq!(journal.records(), 1);
        assert!(journal.take("alice").is_none());
        // Read back after a restart, keys continue after the largest.
        let mut reread = Journal::default();
        reread.note(41, &bob, true, []);
        assert_eq!(reread.next_key(), 42);
    }
}
