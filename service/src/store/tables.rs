//! Every table of the embedded store, opened once per write transaction,
//! and the writes the writer thread makes to them: journal records and
//! settling, log entries, budget deltas, forget and compaction.

use super::database::{
    BUDGETS, CUSTOMER_DECISIONS, CUSTOMERS, DECISIONS, EVENT_TIMES, EVENTS, Inner, JOURNAL,
    JOURNEY_TIMERS, MODEL_FEATURES, OUTCOMES,
};
use super::journal::{self, Journal};
use super::records::{decode, encode};
use super::{DecisionRecord, Erased, EventRecord, LogEntry, StoreError, TimerWrite};
use nudge_models::time::Timestamp;
use redb::{ReadableTable, Table, WriteTransaction};
use std::collections::HashSet;

/// A journal record the bookkeeping names is not in the table.
fn missing_record(key: u64) -> StoreError {
    #[derive(Debug, thiserror::Error)]
    #[error("journal record {0} with a state is missing")]
    struct Missing(u64);
    StoreError::Undecodable {
        what: "state journal",
        source: std::sync::Arc::new(Missing(key)),
    }
}

/// Every table, opened once per transaction.
pub(super) struct Tables<'t> {
    inner: &'t Inner,
    customers: Table<'t, &'static str, &'static [u8]>,
    decisions: Table<'t, (i64, &'static str), &'static [u8]>,
    outcomes: Table<'t, (i64, &'static str, &'static str, &'static str), &'static [u8]>,
    index: Table<'t, (&'static str, i64, &'static str), ()>,
    models: Table<'t, &'static str, &'static [u8]>,
    budgets: Table<'t, &'static str, u64>,
    journal: Table<'t, u64, &'static [u8]>,
    events: Table<'t, (&'static str, u64), &'static [u8]>,
    event_times: Table<'t, (i64, &'static str, u64), ()>,
    timers: Table<'t, &'static str, i64>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(
        inner: &'t Inner,
        transaction: &'t WriteTransaction,
    ) -> Result<Self, StoreError> {
        let table_error = |error: redb::TableError| inner.error(error);
        Ok(Self {
            inner,
            customers: transaction.open_table(CUSTOMERS).map_err(table_error)?,
            decisions: transaction.open_table(DECISIONS).map_err(table_error)?,
            outcomes: transaction.open_table(OUTCOMES).map_err(table_error)?,
            index: transaction
                .open_table(CUSTOMER_DECISIONS)
                .map_err(table_error)?,
            models: transaction
                .open_table(MODEL_FEATURES)
                .map_err(table_error)?,
            budgets: transaction.open_table(BUDGETS).map_err(table_error)?,
            journal: transaction.open_table(JOURNAL).map_err(table_error)?,
            events: transaction.open_table(EVENTS).map_err(table_error)?,
            event_times: transaction.open_table(EVENT_TIMES).map_err(table_error)?,
            timers: transaction
                .open_table(JOURNEY_TIMERS)
                .map_err(table_error)?,
        })
    }

    /// Sets the customer's entry in the journey timer index.
    pub(super) fn set_timer(
        &mut self,
        customer_id: &str,
        timer: TimerWrite,
    ) -> Result<(), StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        match timer {
            TimerWrite::Untouched => {}
            TimerWrite::Set(due) => {
                self.timers.insert(customer_id, due).map_err(error)?;
            }
            TimerWrite::Clear => {
                self.timers.remove(customer_id).map_err(error)?;
            }
        }
        Ok(())
    }

    pub(super) fn error(&self, error: redb::StorageError) -> StoreError {
        self.inner.error(error)
    }

    /// Adds `delta` to an action's budget counter, never below zero.
    pub(super) fn change_budget(&mut self, action_id: &str, delta: i64) -> Result<(), StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let used = self
            .budgets
            .get(action_id)
            .map_err(error)?
            .map_or(0, |value| value.value());
        let used = used.saturating_add_signed(delta);
        if used == 0 {
            self.budgets.remove(action_id).map_err(error)?;
        } else {
            self.budgets.insert(action_id, used).map_err(error)?;
        }
        Ok(())
    }

    /// Appends a journal record ([`journal::encode`]).
    pub(super) fn append_record(&mut self, key: u64, record: &[u8]) -> Result<(), StoreError> {
        self.journal
            .insert(key, record)
            .map_err(|error| self.inner.error(error))?;
        Ok(())
    }

    /// Settles `customer_id`: writes its latest state — `latest` if given
    /// (newer than any record), else its latest journal record's — to its
    /// snapshot, its logged decisions (the journal's and `decisions`) that
    /// still exist to the index, and deletes its journal records. Nothing
    /// to settle is not an error.
    pub(super) fn settle(
        &mut self,
        journal: &mut Journal,
        customer_id: &str,
        latest: Option<&[u8]>,
        decisions: Vec<(i64, Box<str>)>,
    ) -> Result<(), StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let unsettled = journal.take(customer_id).unwrap_or_default();
        if let Some(state) = latest {
            self.put_state(customer_id, state)?;
        } else if !unsettled.chain.is_empty() {
            let journal = &self.journal;
            let customers = &self.customers;
            let replayed = journal::replay(
                &unsettled.chain,
                |key| {
                    Ok(journal
                        .get(key)
                        .map_err(error)?
                        .map(|record| record.value().to_vec()))
                },
                || {
                    customers
                        .get(customer_id)
                        .map_err(error)?
                        .map(|value| decode("customer state", value.value()))
                        .transpose()
                },
            )?;
            match replayed {
                Some(state) => self.put_state(customer_id, &encode(&state)?)?,
                None => {
                    return Err(missing_record(
                        unsettled.chain.first().copied().unwrap_or(0),
                    ));
                }
            }
        }
        for (at, decision_id) in unsettled.decisions.iter().chain(&decisions) {
            // Compaction may have deleted it since.
            if self
                .decisions
                .get((*at, decision_id.as_ref()))
                .map_err(error)?
                .is_some()
            {
                self.index
                    .insert((customer_id, *at, decision_id.as_ref()), ())
                    .map_err(error)?;
            }
        }
        for key in unsettled.keys {
            self.journal.remove(key).map_err(error)?;
        }
        Ok(())
    }

    fn put_state(&mut self, customer_id: &str, state: &[u8]) -> Result<(), StoreError> {
        self.customers
            .insert(customer_id, state)
            .map_err(|error| self.inner.error(error))?;
        Ok(())
    }

    /// Adds one log entry; returns a model version whose feature names were
    /// stored for the first time.
    pub(super) fn append(
        &mut self,
        entry: LogEntry,
        models: &mut HashSet<String>,
    ) -> Result<Option<String>, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        match entry {
            LogEntry::Decision {
                record,
                feature_names,
            } => {
                let at = record.at.millis();
                let bytes = encode(&record)?;
                // Its index entry waits in the journal until its customer
                // is settled.
                self.decisions
                    .insert((at, record.decision_id.as_str()), bytes.as_slice())
                    .map_err(error)?;
                match (&record.model_version, feature_names) {
                    (Some(version), Some(names)) if !models.contains(version) => {
                        if self.models.get(version.as_str()).map_err(error)?.is_none() {
                            let bytes = encode(&names.to_vec())?;
                            self.models
                                .insert(version.as_str(), bytes.as_slice())
                                .map_err(error)?;
                        }
                        models.insert(version.clone());
                        Ok(Some(version.clone()))
                    }
                    _ => Ok(None),
                }
            }
            LogEntry::Outcome(record) => {
                let bytes = encode(&record)?;
                self.outcomes
                    .insert(
                        (
                            record.decision_at.millis(),
                            record.decision_id.as_str(),
                            record.action_id.as_str(),
                            record.outcome.name(),
                        ),
                        bytes.as_slice(),
                    )
                    .map_err(error)?;
                Ok(None)
            }
            LogEntry::Event(record) => {
                let bytes = encode(&record)?;
                let customer_id = record.customer_id.as_str();
                self.events
                    .insert((customer_id, record.ordinal), bytes.as_slice())
                    .map_err(error)?;
                self.event_times
                    .insert(
                        (record.received_at.millis(), customer_id, record.ordinal),
                        (),
                    )
                    .map_err(error)?;
                Ok(None)
            }
        }
    }

    /// Deletes the outcomes of the decision at (`at`, `decision_id`); returns
    /// how many.
    pub(super) fn delete_outcomes(
        &mut self,
        at: i64,
        decision_id: &str,
    ) -> Result<u64, StoreError> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for entry in self
            .outcomes
            .range((at, decision_id, "", "")..)
            .map_err(|error| self.error(error))?
        {
            let (key, _) = entry.map_err(|error| self.error(error))?;
            let (outcome_at, outcome_decision, action, outcome) = key.value();
            if outcome_at != at || outcome_decision != decision_id {
                break;
            }
            keys.push((action.to_owned(), outcome.to_owned()));
        }
        for (action, outcome) in &keys {
            self.outcomes
                .remove((at, decision_id, action.as_str(), outcome.as_str()))
                .map_err(|error| self.inner.error(error))?;
        }
        Ok(keys.len() as u64)
    }

    /// Deletes one decision with its outcomes and index entry.
    pub(super) fn delete_decision(
        &mut self,
        at: i64,
        decision_id: &str,
        customer_id: &str,
    ) -> Result<(bool, u64), StoreError> {
        let inner = self.inner;
        let removed = self
            .decisions
            .remove((at, decision_id))
            .map_err(|error| inner.error(error))?
            .is_some();
        let outcomes = self.delete_outcomes(at, decision_id)?;
        self.index
            .remove((customer_id, at, decision_id))
            .map_err(|error| inner.error(error))?;
        Ok((removed, outcomes))
    }

    /// Erases the customer's state; whether any was stored.
    pub(super) fn forget_state(&mut self, customer_id: &str) -> Result<bool, StoreError> {
        let inner = self.inner;
        self.timers
            .remove(customer_id)
            .map_err(|error| inner.error(error))?;
        Ok(self
            .customers
            .remove(customer_id)
            .map_err(|error| inner.error(error))?
            .is_some())
    }

    /// Erases the customer's decisions and outcomes.
    pub(super) fn forget_log(&mut self, customer_id: &str) -> Result<Erased, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut erased = Erased::default();
        let mut logged: Vec<(i64, String)> = Vec::new();
        for entry in self
            .index
            .range((customer_id, i64::MIN, "")..)
            .map_err(error)?
        {
            let (key, _) = entry.map_err(error)?;
            let (customer, at, decision_id) = key.value();
            if customer != customer_id {
                break;
            }
            logged.push((at, decision_id.to_owned()));
        }
        for (at, decision_id) in &logged {
            let (removed, outcomes) = self.delete_decision(*at, decision_id, customer_id)?;
            erased.decisions += u64::from(removed);
            erased.outcomes += outcomes;
        }
        Ok(erased)
    }

    /// Erases the customer's logged events; returns how many.
    pub(super) fn forget_events(&mut self, customer_id: &str) -> Result<u64, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut logged: Vec<(u64, i64)> = Vec::new();
        for entry in self
            .events
            .range((customer_id, 0)..=(customer_id, u64::MAX))
            .map_err(error)?
        {
            let (key, value) = entry.map_err(error)?;
            let record: EventRecord = decode("event", value.value())?;
            logged.push((key.value().1, record.received_at.millis()));
        }
        for (ordinal, received_at) in &logged {
            self.events.remove((customer_id, *ordinal)).map_err(error)?;
            self.event_times
                .remove((*received_at, customer_id, *ordinal))
                .map_err(error)?;
        }
        Ok(logged.len() as u64)
    }

    /// Deletes up to `max` events applied before `before`, oldest first;
    /// returns how many.
    pub(super) fn compact_events(
        &mut self,
        before: Timestamp,
        max: usize,
    ) -> Result<u64, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut old: Vec<(i64, String, u64)> = Vec::new();
        for entry in self
            .event_times
            .range(..(before.millis(), "", 0))
            .map_err(error)?
            .take(max)
        {
            let (key, _) = entry.map_err(error)?;
            let (at, customer_id, ordinal) = key.value();
            old.push((at, customer_id.to_owned(), ordinal));
        }
        for (at, customer_id, ordinal) in &old {
            self.events
                .remove((customer_id.as_str(), *ordinal))
                .map_err(error)?;
            self.event_times
                .remove((*at, customer_id.as_str(), *ordinal))
                .map_err(error)?;
        }
        Ok(old.len() as u64)
    }

    /// Deletes up to `max` decisions made before `before`, with their
    /// outcomes and index entries; returns how many decisions.
    pub(super) fn compact(&mut self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        let inner = self.inner;
        let error = |error: redb::StorageError| inner.error(error);
        let mut old: Vec<(i64, String, String)> = Vec::new();
        for entry in self
            .decisions
            .range(..(before.millis(), ""))
            .map_err(error)?
            .take(max)
        {
            let (key, value) = entry.map_err(error)?;
            let (at, decision_id) = key.value();
            let record: DecisionRecord = decode("decision", value.value())?;
            old.push((at, decision_id.to_owned(), record.customer_id));
        }
        for (at, decision_id, customer_id) in &old {
            self.delete_decision(*at, decision_id, customer_id)?;
        }
        Ok(old.len() as u64)
    }
}
