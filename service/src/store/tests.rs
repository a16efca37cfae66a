//! The store on its own: durability across reopen, read-your-writes while a
//! write is queued, the decision log join, forget, retention, a failing disk
//! and damaged files.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::TempDir;
use nudge_models::customer::{ConsentState, CustomerState};
use nudge_models::ledger::OutcomeKind;
use nudge_models::profile::Event;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_435_200_000;

pub(super) fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

pub(super) fn state_with(event_ids: &[&str]) -> CustomerState {
    let mut state = CustomerState::default();
    for (index, id) in event_ids.iter().enumerate() {
        state.track(
            &Event {
                event_id: (*id).to_owned(),
                name: "login".to_owned(),
                timestamp: at(index as i64 * 1_000),
                properties: BTreeMap::new(),
            },
            at(10_000),
        );
    }
    state.set_consent("email", Some(ConsentState::OptedIn), at(20_000));
    state
}

pub(super) fn decision(customer: &str, id: &str, offset_ms: i64) -> LogEntry {
    contract::sample_decision(customer, id, offset_ms)
}

pub(super) fn outcome(
    customer: &str,
    id: &str,
    decision_offset: i64,
    kind: OutcomeKind,
    offset_ms: i64,
) -> LogEntry {
    contract::sample_outcome(customer, id, decision_offset, kind, offset_ms)
}

pub(super) fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// The customer's state and log entries, as an actor writes them.
pub(super) fn write_both(
    store: &RedbStore,
    customer: &str,
    state: &CustomerState,
    log: Vec<LogEntry>,
) -> Commit {
    StateStore::write(store, &Arc::from(customer), state).and(store.append(log))
}

pub(super) fn write(store: &RedbStore, customer: &str, state: &CustomerState, log: Vec<LogEntry>) {
    block_on(write_both(store, customer, state, log).wait()).unwrap();
}

pub(super) fn exported(store: &RedbStore, range: TimeRange) -> Vec<LoggedDecision> {
    let mut all = Vec::new();
    store
        .export(range, &mut |decision| {
            all.push(decision);
            true
        })
        .unwrap();
    all
}

pub(super) const EVERYTHING: TimeRange = TimeRange {
    since: None,
    until: None,
};

fn stores(store: RedbStore) -> Stores {
    Stores::from(Arc::new(store))
}

#[test]
fn the_in_memory_store_keeps_the_contract() {
    contract::state_store(&stores(RedbStore::in_memory(StoreOptions::default())).state);
    contract::decision_log(&stores(RedbStore::in_memory(StoreOptions::default())).log);
    contract::event_log(&stores(RedbStore::in_memory(StoreOptions::default())).log);
    contract::budget_ledger(&stores(RedbStore::in_memory(StoreOptions::default())).budgets);
}

#[test]
fn the_durable_store_keeps_the_contract() {
    let open =
        |dir: &TempDir| stores(RedbStore::open(dir.path(), StoreOptions::default()).unwrap());
    let dir = TempDir::new("contract-state");
    contract::state_store(&open(&dir).state);
    let dir = TempDir::new("contract-log");
    contract::decision_log(&open(&dir).log);
    let dir = TempDir::new("contract-events");
    contract::event_log(&open(&dir).log);
    let dir = TempDir::new("contract-budgets");
    contract::budget_ledger(&open(&dir).budgets);
    let dir = TempDir::new("contract-reopen");
    contract::survives_reopen(&|| open(&dir));
}

/// The options of a file store without the write-ahead log: every batch is
/// a database commit (what the journal's tests look at).
pub(super) fn committing() -> StoreOptions {
    StoreOptions {
        write_ahead: false,
        ..StoreOptions::default()
    }
}

#[test]
fn the_durable_store_keeps_the_contract_without_the_write_ahead_log() {
    let open = |dir: &TempDir| stores(RedbStore::open(dir.path(), committing()).unwrap());
    let dir = TempDir::new("committing-state");
    contract::state_store(&open(&dir).state);
    let dir = TempDir::new("committing-log");
    contract::decision_log(&open(&dir).log);
    let dir = TempDir::new("committing-budgets");
    contract::budget_ledger(&open(&dir).budgets);
    let dir = TempDir::new("committing-reopen");
    contract::survives_reopen(&|| open(&dir));
}

#[test]
fn the_durable_store_keeps_the_contract_when_every_commit_settles() {
    // A journal bound of one record settles customers on nearly every
    // commit: the contract holds whichever path a state takes. (With the
    // log, checkpoints write snapshots and the journal stays empty.)
    let open = |dir: &TempDir| {
        let options = StoreOptions {
            journal_records: 1,
            ..committing()
        };
        stores(RedbStore::open(dir.path(), options).unwrap())
    };
    let dir = TempDir::new("settling-state");
    contract::state_store(&open(&dir).state);
    let dir = TempDir::new("settling-log");
    contract::decision_log(&open(&dir).log);
    let dir = TempDir::new("settling-reopen");
    contract::survives_reopen(&|| open(&dir));
}

/// The number of journal records and the customers with a snapshot in the
/// closed store in `dir`.
pub(super) fn journal_and_snapshots(dir: &TempDir) -> (usize, Vec<String>) {
    let database = redb::Database::open(dir.path().join(DATA_FILE)).unwrap();
    let read = redb::ReadableDatabase::begin_read(&database).unwrap();
    let journal = read.open_table(database::JOURNAL).unwrap();
    let records = redb::ReadableTable::iter(&journal).unwrap().count();
    let customers = read.open_table(database::CUSTOMERS).unwrap();
    let snapshots = redb::ReadableTable::iter(&customers)
        .unwrap()
        .map(|entry| entry.unwrap().0.value().to_owned())
        .collect();
    (records, snapshots)
}

#[test]
fn the_journal_is_read_back_at_open_and_settled_past_its_bound() {
    let dir = TempDir::new("journal");
    let options = StoreOptions {
        journal_records: 4,
        ..committing()
    };
    let states: Vec<CustomerState> = (1..=6)
        .map(|count| state_with(&["e1", "e2", "e3", "e4", "e5", "e6"][..count]))
        .collect();
    {
        // Under a bound of 100: three customers make three to six records
        // (a state and its decision may commit apart), nothing is settled.
        let roomy = StoreOptions {
            journal_records: 100,
            ..committing()
        };
        let store = RedbStore::open(dir.path(), roomy).unwrap();
        for (index, customer) in ["alice", "bob", "carol"].iter().enumerate() {
            write(
                &store,
                customer,
                &states[index],
                vec![decision(customer, &format!("d-{customer}"), index as i64)],
            );
        }
        assert_eq!(store.len().unwrap(), 3, "journaled customers count");
        store.close().unwrap();
    }
    let (records, snapshots) = journal_and_snapshots(&dir);
    assert!((3..=6).contains(&records), "{records} records");
    assert!(snapshots.is_empty(), "close does not settle: {snapshots:?}");
    {
        let store = RedbStore::open(dir.path(), options.clone()).unwrap();
        assert_eq!(store.load_now("bob").unwrap(), Some(states[1].clone()));
        assert_eq!(store.len().unwrap(), 3);
        // Opened with a bound of four, more records pass it: the oldest
        // customers are settled into their snapshots in the same commit.
        write(&store, "bob", &states[4], Vec::new());
        write(&store, "dave", &states[5], Vec::new());
        assert_eq!(
            store.committed_state("alice").unwrap(),
            Some(states[0].clone())
        );
        assert_eq!(
            store.committed_state("bob").unwrap(),
            Some(states[4].clone())
        );
        assert_eq!(store.len().unwrap(), 4);
        store.close().unwrap();
    }
    let (records, snapshots) = journal_and_snapshots(&dir);
    assert!(records <= 4, "{records} records");
    assert!(snapshots.contains(&"alice".to_owned()), "{snapshots:?}");
    let store = RedbStore::open(dir.path(), options).unwrap();
    for (customer, state) in [
        ("alice", &states[0]),
        ("bob", &states[4]),
        ("carol", &states[2]),
        ("dave", &states[5]),
    ] {
        assert_eq!(
            store.load_now(customer).unwrap().as_ref(),
            Some(state),
            "{customer}"
        );
    }
    // Settled or not, forget finds every decision and leaves no trace.
    for customer in ["alice", "carol"] {
        let erased = block_on(
            StateStore::forget(&store, &Arc::from(customer))
                .and(DecisionLog::forget(&store, &Arc::from(customer)))
                .wait(),
        )
        .unwrap();
        assert!(erased.state, "{customer}");
        assert_eq!(erased.decisions, 1, "{customer}");
        assert!(store.traces_of(customer).unwrap().is_empty(), "{customer}");
        assert_eq!(store.load_now(customer).unwrap(), None);
    }
    assert_eq!(store.load_now("bob").unwrap(), Some(states[4].clone()));
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(
        ids_of(&exported(&store, EVERYTHING)),
        ["d-bob"],
        "only bob's decision is left"
    );
}

fn ids_of(log: &[LoggedDecision]) -> Vec<&str> {
    log.iter()
        .map(|logged| logged.record.decision_id.as_str())
        .collect()
}

/// Writes `to` with its change from `from`, as an actor does.
pub(super) fn write_change(
    store: &RedbStore,
    customer: &str,
    from: &CustomerState,
    to: &CustomerState,
    writer: u64,
    previous_writes: u64,
) {
    let delta = nudge_models::delta::StateDelta::between(from, to);
    let change = StateChange {
        delta: &delta,
        writer,
        previous_writes,
    };
    block_on(StateStore::write_change(store, &Arc::from(customer), to, change).wait()).unwrap();
}

/// Writes `states[1..]` for `customer`, each as its change from the one
/// before, all by the activation `writer` (its first write on `states[0]`,
/// the state it loaded).
pub(super) fn write_chain(
    store: &RedbStore,
    customer: &str,
    states: &[CustomerState],
    writer: u64,
) {
    for step in 1..states.len() {
        write_change(
            store,
            customer,
            &states[step - 1],
            &states[step],
            writer,
            step as u64 - 1,
        );
    }
}

/// Every journal record of the closed store in `dir`: (key, customer,
/// whether its state is a change, its size).
pub(super) fn journal_records(dir: &TempDir) -> Vec<(u64, String, bool, usize)> {
    let database = redb::Database::open(dir.path().join(DATA_FILE)).unwrap();
    let read = redb::ReadableDatabase::begin_read(&database).unwrap();
    let table = read.open_table(database::JOURNAL).unwrap();
    redb::ReadableTable::iter(&table)
        .unwrap()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            let record = journal::decode(value.value()).unwrap();
            (
                key.value(),
                record.customer_id.to_owned(),
                matches!(record.state, Some(journal::State::Change(_))),
                value.value().len(),
            )
        })
        .collect()
}

#[test]
fn changes_are_journaled_small_and_read_back_after_reopen_and_settling() {
    let dir = TempDir::new("changes");
    let ids: Vec<String> = (0..40).map(|index| format!("event-{index}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    // The first write changes the state an actor loads for a new customer.
    let mut states = vec![CustomerState::default()];
    states.extend(
        [36, 37, 38, 39]
            .iter()
            .map(|count| state_with(&ids[..*count])),
    );
    {
        let store = RedbStore::open(dir.path(), committing()).unwrap();
        write_chain(&store, "alice", &states[..4], 7);
        store.close().unwrap();
    }
    let whole = records::encode(&states[3]).unwrap().len();
    let records = journal_records(&dir);
    assert_eq!(records.len(), 3, "{records:?}");
    for (_, customer, change, size) in &records[1..] {
        assert_eq!(customer, "alice");
        assert!(*change, "kept as a change");
        assert!(size * 4 < whole, "{size} bytes for a state of {whole}");
    }
    {
        let store = RedbStore::open(dir.path(), committing()).unwrap();
        assert_eq!(store.load_now("alice").unwrap(), Some(states[3].clone()));
        // The next activation changes the state it loaded.
        write_change(&store, "alice", &states[3], &states[4], 8, 0);
        assert_eq!(store.load_now("alice").unwrap(), Some(states[4].clone()));
        store.close().unwrap();
    }
    assert!(journal_records(&dir).iter().all(|record| record.2));
    // A bound of one record settles alice when bob is written: her snapshot
    // is the end of her chain.
    let options = StoreOptions {
        journal_records: 1,
        ..committing()
    };
    let store = RedbStore::open(dir.path(), options).unwrap();
    write(&store, "bob", &states[1], Vec::new());
    store.close().unwrap();
    drop(store);
    let records = journal_records(&dir);
    assert!(
        records.iter().all(|record| record.1 == "bob"),
        "{records:?}"
    );
    let (_, snapshots) = journal_and_snapshots(&dir);
    assert!(snapshots.contains(&"alice".to_owned()));
    let store = RedbStore::open(dir.path(), committing()).unwrap();
    assert_eq!(store.load_now("alice").unwrap(), Some(states[4].clone()));
}

#[test]
fn while_commits_run_back_to_back_they_start_at_least_the_interval_apart() {
    let dir = TempDir::new("interval");
    let interval = Duration::from_millis(50);
    let options = StoreOptions {
        commit_interval: interval,
        ..committing()
    };
    let store = RedbStore::open(dir.path(), options).unwrap();
    let state = state_with(&["e1"]);
    // A lone writer: each write commits on its own.
    for index in 0..3 {
        write(&store, &format!("lone-{index}"), &state, Vec::new());
    }
    assert_eq!(store.commits(), 3);
    // Writes queued faster than commits run: the writer is never idle, so
    // commits start an interval apart and each takes what arrived.
    let started = Instant::now();
    let commits: Vec<Commit> = (0..3_000)
        .map(|index| {
            let customer: Arc<str> = Arc::from(format!("busy-{}", index % 100));
            StateStore::write(
                &store,
                &customer,
                &state_with(&["e1", "e2"][..1 + index % 2]),
            )
        })
        .collect();
    block_on(async {
        for commit in commits {
            commit.wait().await.unwrap();
        }
    });
    let intervals = started.elapsed().as_millis() / interval.as_millis();
    let made = store.commits() - 3;
    assert!(
        made <= 2 + intervals as u64,
        "{made} commits in {intervals} intervals"
    );
    // The last write of each customer wins.
    assert_eq!(
        store.load_now("busy-99").unwrap(),
        Some(state_with(&["e1", "e2"]))
    );
    assert_eq!(
        store.load_now("busy-98").unwrap(),
        Some(state_with(&["e1"]))
    );
}

#[test]
fn a_change_that_does_not_fit_its_state_is_refused_as_damage() {
    let dir = TempDir::new("misfit");
    let ids = ["e1", "e2", "e3"];
    {
        let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
        write(&store, "alice", &state_with(&ids[..1]), Vec::new());
        store.close().unwrap();
    }
    {
        // A change from a state alice never had (two events, not one).
        let database = redb::Database::open(dir.path().join(DATA_FILE)).unwrap();
        let delta = nudge_models::delta::StateDelta::between(
            &state_with(&ids[..2]),
            &state_with(&ids[..3]),
        );
        let record = journal::encode(
            "alice",
            Some(journal::State::Change(&records::encode(&delta).unwrap())),
            &[],
        );
        let transaction = database.begin_write().unwrap();
        transaction
            .open_table(database::JOURNAL)
            .unwrap()
            .insert(1_000, record.as_slice())
            .unwrap();
        transaction.commit().unwrap();
    }
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    let error = store.load_now("alice").unwrap_err();
    assert!(matches!(error, StoreError::Undecodable { .. }), "{error:?}");
    assert!(
        error.to_string().contains("state journal") && error.to_string().contains("does not fit"),
        "{error}"
    );
}

#[test]
fn a_file_of_the_previous_layout_opens_with_its_customers() {
    let dir = TempDir::new("layout-1");
    let state = state_with(&["e1", "e2"]);
    std::fs::create_dir_all(dir.path()).unwrap();
    {
        // What layout version 1 wrote: no journal, states in `customers`.
        let database = redb::Database::create(dir.path().join(DATA_FILE)).unwrap();
        let transaction = database.begin_write().unwrap();
        {
            let mut customers = transaction.open_table(database::CUSTOMERS).unwrap();
            let bytes = records::encode(&state).unwrap();
            customers.insert("alice", bytes.as_slice()).unwrap();
            let mut meta = transaction.open_table(database::META).unwrap();
            meta.insert("schema_version", 1).unwrap();
        }
        transaction.commit().unwrap();
    }
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.load_now("alice").unwrap(), Some(state.clone()));
    write(
        &store,
        "alice",
        &state_with(&["e1", "e2", "e3"]),
        Vec::new(),
    );
    store.close().unwrap();
    drop(store);
    let database = redb::Database::open(dir.path().join(DATA_FILE)).unwrap();
    let read = redb::ReadableDatabase::begin_read(&database).unwrap();
    let meta = read.open_table(database::META).unwrap();
    assert_eq!(
        meta.get("schema_version").unwrap().unwrap().value(),
        database::SCHEMA_VERSION
    );
}

#[test]
fn state_and_log_are_read_back_after_close_and_reopen() {
    let dir = TempDir::new("roundtrip");
    let state = state_with(&["e1", "e2"]);
    {
        let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
        write(&store, "alice", &state, vec![decision("alice", "d1", 0)]);
        write(
            &store,
            "alice",
            &state,
            vec![outcome("alice", "d1", 0, OutcomeKind::Click, 5_000)],
        );
        store.close().unwrap();
    }
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    let loaded = store.load_now("alice").unwrap().unwrap();
    assert_eq!(loaded, state);
    assert!(loaded.has_seen("e2"));
    assert_eq!(store.len().unwrap(), 1);
    let log = exported(&store, EVERYTHING);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].record.decision_id, "d1");
    assert_eq!(log[0].feature_names, vec!["bias", "count(login,7d)"]);
    assert_eq!(log[0].outcomes.len(), 1);
    assert_eq!(log[0].outcomes[0].outcome, OutcomeKind::Click);
}

#[test]
fn forget_erases_every_trace_and_nothing_else() {
    let store = RedbStore::in_memory(StoreOptions::default());
    let state = state_with(&["e1"]);
    for (customer, offset) in [("alice", 0), ("bob", 1)] {
        let id = format!("{customer}-d");
        write(
            &store,
            customer,
            &state,
            vec![decision(customer, &id, offset)],
        );
        write(
            &store,
            customer,
            &state,
            vec![
                outcome(customer, &id, offset, OutcomeKind::Impression, 2_000),
                outcome(customer, &id, offset, OutcomeKind::Click, 3_000),
            ],
        );
    }
    let alice: Arc<str> = Arc::from("alice");
    let erased = block_on(
        StateStore::forget(&store, &alice)
            .and(DecisionLog::forget(&store, &alice))
            .wait(),
    )
    .unwrap();
    assert_eq!(
        erased,
        Erased {
            state: true,
            decisions: 1,
            outcomes: 2,
            events: 0
        }
    );
    assert_eq!(store.load_now("alice").unwrap(), None);
    assert_eq!(store.traces_of("alice").unwrap(), Vec::<String>::new());
    assert!(!store.traces_of("bob").unwrap().is_empty());
    let left = exported(&store, EVERYTHING);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.customer_id, "bob");
    assert_eq!(left[0].outcomes.len(), 2);
    let again = block_on(
        StateStore::forget(&store, &alice)
            .and(DecisionLog::forget(&store, &alice))
            .wait(),
    )
    .unwrap();
    assert_eq!(
        again,
        Erased::default(),
        "forgetting twice erases nothing more"
    );
}

#[test]
fn retention_deletes_old_decisions_with_their_outcomes() {
    let store = RedbStore::in_memory(StoreOptions::default());
    let state = state_with(&["e1"]);
    for (id, offset) in [("old-1", 0), ("old-2", 10), ("new", 100_000)] {
        write(&store, "alice", &state, vec![decision("alice", id, offset)]);
        write(
            &store,
            "alice",
            &state,
            vec![outcome("alice", id, offset, OutcomeKind::Click, offset + 5)],
        );
    }
    let deleted = block_on(store.compact(at(50_000), COMPACTION_CHUNK).wait()).unwrap();
    assert_eq!(deleted.decisions, 2);
    let left = exported(&store, EVERYTHING);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.decision_id, "new");
    assert_eq!(left[0].outcomes.len(), 1);
    let traces = store.traces_of("alice").unwrap();
    assert!(
        traces.iter().all(|trace| !trace.contains("old")),
        "{traces:?}"
    );
    assert_eq!(
        store.load_now("alice").unwrap(),
        Some(state),
        "state is kept"
    );
}

pub(super) fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not true after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let dir = TempDir::new("faults");
    let switch = FaultSwitch::default();
    let store =
        RedbStore::open_with_faults(dir.path(), StoreOptions::default(), switch.clone()).unwrap();
    let before = state_with(&["e1"]);
    write(&store, "alice", &before, Vec::new());

    switch.set(true);
    let during = state_with(&["e1", "e2"]);
    let error = block_on(StateStore::write(&store, &Arc::from("alice"), &during).wait())
        .expect_err("the disk is full");
    assert!(matches!(error, StoreError::Full { .. }), "{error:?}");
    assert!(error.to_string().contains("No space left"), "{error}");
    assert!(matches!(
        StateStore::check_writable(&store),
        Err(StoreError::Full { .. })
    ));
    let budget = block_on(
        store
            .record(vec![BudgetChange {
                action_id: "coupon".to_owned(),
                delta: 1,
            }])
            .wait(),
    );
    assert!(matches!(budget, Err(StoreError::Full { .. })), "{budget:?}");
    // Refused at once while failing: nothing is queued.
    let refused = block_on(StateStore::write(&store, &Arc::from("bob"), &before).wait());
    assert!(
        matches!(refused, Err(StoreError::Full { .. })),
        "{refused:?}"
    );
    assert_eq!(store.load_now("bob").unwrap(), None);
    // Reads keep working.
    assert!(store.load_now("alice").unwrap().is_some());

    switch.set(false);
    assert!(
        StateStore::check_writable(&store).is_err(),
        "nothing retries before a probe"
    );
    wait_until("the store accepts writes again", || {
        // The server probes on its clock; here the test does.
        StateStore::probe(&store);
        StateStore::check_writable(&store).is_ok()
    });
    // The state that failed to commit was retried and is durable now.
    assert_eq!(store.committed_state("alice").unwrap(), Some(during));
    write(&store, "bob", &before, Vec::new());
    store.close().unwrap();
    let reopened = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(reopened.load_now("bob").unwrap(), Some(before));
}

#[test]
fn a_compaction_that_fails_on_a_full_disk_does_not_leave_the_store_refusing_writes() {
    let dir = TempDir::new("compaction-fault");
    let switch = FaultSwitch::default();
    let store =
        RedbStore::open_with_faults(dir.path(), StoreOptions::default(), switch.clone()).unwrap();
    write(
        &store,
        "alice",
        &state_with(&["e1"]),
        vec![decision("alice", "d1", 0)],
    );
    switch.set(true);
    let failed = block_on(store.compact(at(100_000), COMPACTION_CHUNK).wait());
    assert!(matches!(failed, Err(StoreError::Full { .. })), "{failed:?}");
    assert!(StateStore::check_writable(&store).is_err());
    switch.set(false);
    wait_until("the store accepts writes again", || {
        // The server probes on its clock; here the test does.
        StateStore::probe(&store);
        StateStore::check_writable(&store).is_ok()
    });
    write(&store, "bob", &state_with(&["e2"]), Vec::new());
    let deleted = block_on(store.compact(at(100_000), COMPACTION_CHUNK).wait()).unwrap();
    assert_eq!(
        deleted.decisions, 1,
        "the compaction runs once space is back"
    );
}

fn open_error(dir: &TempDir) -> StoreError {
    RedbStore::open(dir.path(), StoreOptions::default()).expect_err("a damaged file")
}

#[test]
fn damaged_files_are_refused_with_a_clear_error() {
    // Garbage.
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join(DATA_FILE), vec![0x5a_u8; 64 * 1024]).unwrap();
    let error = open_error(&dir);
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    assert!(error.to_string().contains(DATA_FILE), "{error}");

    // Emptied.
    let dir = TempDir::new("empty");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join(DATA_FILE), b"").unwrap();
    let error = open_error(&dir);
    assert!(error.to_string().contains("empty"), "{error}");

    // Truncated to half of a real store.
    let dir = TempDir::new("truncated");
    {
        let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
        for index in 0..200 {
            let customer = format!("c{index}");
            write(
                &store,
                &customer,
                &state_with(&["e1", "e2", "e3"]),
                vec![decision(&customer, &format!("d{index}"), index)],
            );
        }
        store.close().unwrap();
    }
    let file = dir.path().join(DATA_FILE);
    let length = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let error = open_error(&dir);
    assert!(
        matches!(error, StoreError::Damaged { .. } | StoreError::Io { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(DATA_FILE), "{error}");
}

#[test]
fn under_steady_load_with_retention_the_file_stops_growing() {
    let dir = TempDir::new("retention-size");
    // The journal grows to its bound, then stays there: a bound of two
    // rounds' records makes the steady state come within the test.
    let options = StoreOptions {
        journal_records: 1_000,
        ..StoreOptions::default()
    };
    let store = RedbStore::open(dir.path(), options).unwrap();
    let state = state_with(&["e1"]);
    let file = dir.path().join(DATA_FILE);
    let mut sizes = Vec::new();
    // Each round logs a day's decisions and retention deletes the previous
    // day's: the log always holds about one round.
    for round in 0..8_i64 {
        let day = round * 86_400_000;
        let commits: Vec<Commit> = (0..500)
            .map(|index| {
                let customer: Arc<str> = Arc::from(format!("c{index}"));
                write_both(
                    &store,
                    &customer,
                    &state,
                    vec![decision(
                        &customer,
                        &format!("d{round}-{index}"),
                        day + index,
                    )],
                )
            })
            .collect();
        block_on(async {
            for commit in commits {
                commit.wait().await.unwrap();
            }
        });
        block_on(store.compact(at(day), COMPACTION_CHUNK).wait()).unwrap();
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    assert_eq!(exported(&store, EVERYTHING).len(), 500, "one round is kept");
    // Freed pages are reused: after the first rounds the file does not grow.
    assert!(
        sizes[7] <= sizes[3],
        "the data file keeps growing under steady load: {sizes:?}"
    );
}

#[test]
fn the_log_keeps_feature_values_exactly_in_fewer_bytes() {
    let store = RedbStore::in_memory(StoreOptions::default());
    let features = vec![
        0.0,
        1.0,
        -3.0,
        365.0,
        0.5,
        0.300_000_011_920_928_96,
        3.367_295_829_986_474,
        -0.0,
        1e300,
        9_007_199_254_740_993.0,
        f64::MIN_POSITIVE,
    ];
    let LogEntry::Decision {
        mut record,
        feature_names,
    } = decision("alice", "d1", 0)
    else {
        unreachable!("a decision")
    };
    record.served[0].features = features.clone();
    // Uncompressed: what the narrowing itself saves.
    let encoded = rmp_serde::to_vec_named(&record).unwrap().len();
    let mut wide = record.clone();
    wide.served[0].features = vec![0.1; features.len()];
    // Six of the eleven are whole numbers (one to three bytes instead of
    // nine), one is a single-precision float (five).
    assert!(
        encoded + 40 <= rmp_serde::to_vec_named(&wide).unwrap().len(),
        "{encoded} bytes"
    );
    block_on(
        store
            .append(vec![LogEntry::Decision {
                record,
                feature_names,
            }])
            .wait(),
    )
    .unwrap();
    let logged = exported(&store, EVERYTHING);
    let read: Vec<u64> = logged[0].record.served[0]
        .features
        .iter()
        .map(|value| value.to_bits())
        .collect();
    let written: Vec<u64> = features.iter().map(|value| value.to_bits()).collect();
    assert_eq!(read, written, "every value reads back bit for bit");
}
