//! The behaviour every storage backend must show, as functions generic over
//! the traits: a backend's tests call each of them on fresh stores (the
//! embedded store's in `store/tests.rs`, a later Redis backend's in its own).
//! Each function panics with what was wrong.
//!
//! - [`state_store`]: missing is `None`, read-your-writes before the commit
//!   resolves, the last write wins, forget erases and says so, concurrent
//!   writers of many customers are all acknowledged and readable, writes
//!   with changes read back as the latest state (in order, queued together,
//!   after a gap, from a new writer);
//! - [`decision_log`]: export in decision-time order with outcomes joined in
//!   the order they happened, time ranges, early stop, feature names per
//!   model, forget of one customer only, compaction oldest first in chunks;
//! - [`event_log`]: events exported customer by customer in number order,
//!   time ranges by the time applied, forget of one customer only,
//!   compaction by the time applied;
//! - [`budget_ledger`]: deltas add up, never below zero, queued changes count;
//! - [`survives_reopen`]: what was acknowledged is there after the store is
//!   closed and opened again (for durable backends).

#![allow(clippy::expect_used)]

use super::{
    BudgetChange, BudgetLedger, DecisionLog, DecisionRecord, Erased, EventRecord, LogEntry,
    LoggedDecision, OutcomeRecord, ServedRecord, StateChange, StateStore, Stores, TimeRange,
};
use nudge_models::customer::{ConsentState, CustomerState};
use nudge_models::delta::StateDelta;
use nudge_models::ledger::OutcomeKind;
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-11-23 12:00 UTC, the base of every time in the suite.
const T0: i64 = 1_795_435_200_000;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// A customer state that saw `events` logins and opted in to email.
pub fn sample_state(events: usize) -> CustomerState {
    let mut state = CustomerState::default();
    for index in 0..events {
        state.track(
            &Event {
                event_id: format!("e{index}"),
                name: "login".to_owned(),
                timestamp: at(index as i64 * 1_000),
                properties: BTreeMap::new(),
            },
            at(100_000),
        );
    }
    state.set_consent("email", Some(ConsentState::OptedIn), at(200_000));
    state
}

/// A decision of `customer` at `offset_ms`, scored by model `m1`.
pub fn sample_decision(customer: &str, decision_id: &str, offset_ms: i64) -> LogEntry {
    LogEntry::Decision {
        record: DecisionRecord {
            decision_id: decision_id.to_owned(),
            customer_id: customer.to_owned(),
            at: at(offset_ms),
            placement: "home_banner".to_owned(),
            catalog_version: "c1".to_owned(),
            model_version: Some("m1".to_owned()),
            variant: "default".to_owned(),
            fallback: None,
            served: vec![ServedRecord {
                action_id: "upsell".to_owned(),
                channel: "in_app".to_owned(),
                category: "growth".to_owned(),
                rank: 1,
                score: 0.5,
                propensity: 0.25,
                selection_probability: 0.9,
                features: vec![1.0, 2.0],
            }],
            context: BTreeMap::from([
                ("page".to_owned(), AttrValue::Str("pricing".to_owned())),
                ("cart_value".to_owned(), AttrValue::Num(49.5)),
            ]),
            eligible: vec!["upsell".to_owned(), "webinar".to_owned()],
            events_applied: Some(7),
            engagement: BTreeMap::from([("in_app".to_owned(), [4, 3, 1, 0, 1, 0])]),
            shadow: Some(nudge_models::log::ShadowRecord {
                model_version: "m2".to_owned(),
                propensities: vec![0.125],
                choice: Some("webinar".to_owned()),
                choice_propensity: 0.375,
            }),
            scores: Default::default(),
        },
        feature_names: Some(Arc::from(vec![
            "bias".to_owned(),
            "count(login,7d)".to_owned(),
        ])),
    }
}

/// An outcome of the decision `decision_id` of `customer` made at
/// `decision_offset`.
pub fn sample_outcome(
    customer: &str,
    decision_id: &str,
    decision_offset: i64,
    outcome: OutcomeKind,
    offset_ms: i64,
) -> LogEntry {
    LogEntry::Outcome(OutcomeRecord {
        decision_id: decision_id.to_owned(),
        decision_at: at(decision_offset),
        customer_id: customer.to_owned(),
        action_id: "upsell".to_owned(),
        outcome,
        at: at(offset_ms),
        reward: (outcome == OutcomeKind::Conversion).then_some(12.5),
    })
}

fn exported(log: &dyn DecisionLog, range: TimeRange) -> Vec<LoggedDecision> {
    let mut all = Vec::new();
    log.export(range, &mut |decision| {
        all.push(decision);
        true
    })
    .expect("export");
    all
}

fn ids(decisions: &[LoggedDecision]) -> Vec<&str> {
    decisions
        .iter()
        .map(|decision| decision.record.decision_id.as_str())
        .collect()
}

const EVERYTHING: TimeRange = TimeRange {
    since: None,
    until: None,
};

/// The [`StateStore`] contract, on an empty store.
pub fn state_store(store: &Arc<dyn StateStore>) {
    let alice: Arc<str> = Arc::from("contract-alice");
    assert_eq!(block_on(store.load(&alice)).expect("load"), None);

    // Read-your-writes: the queued state is what load returns at once.
    let first = store.write(&alice, &sample_state(1));
    let second = store.write(&alice, &sample_state(2));
    assert_eq!(
        block_on(store.load(&alice)).expect("load"),
        Some(sample_state(2)),
        "a queued write is visible to load before it commits"
    );
    block_on(first.wait()).expect("first write durable");
    block_on(second.wait()).expect("second write durable");
    assert_eq!(
        block_on(store.load(&alice)).expect("load"),
        Some(sample_state(2)),
        "the last write wins"
    );
    assert!(!store.is_empty().expect("len"));

    // Forget says whether anything was stored.
    let erased = block_on(store.forget(&alice).wait()).expect("forget");
    assert!(
        erased.state,
        "forgetting a stored customer erases its state"
    );
    assert_eq!(block_on(store.load(&alice)).expect("load"), None);
    let again = block_on(store.forget(&alice).wait()).expect("forget again");
    assert_eq!(again, Erased::default(), "nothing is left to erase");

    // Concurrent writers of many customers: every write acknowledged, every
    // customer readable with its own last state.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let store = store.clone();
            scope.spawn(move || {
                let commits: Vec<_> = (0..50)
                    .map(|customer| {
                        let id: Arc<str> = Arc::from(format!("contract-{thread}-{customer}"));
                        store.write(&id, &sample_state(customer % 5))
                    })
                    .collect();
                for commit in commits {
                    block_on(commit.wait()).expect("concurrent write durable");
                }
            });
        }
    });
    for thread in 0..4 {
        for customer in 0..50 {
            let id = format!("contract-{thread}-{customer}");
            assert_eq!(
                block_on(store.load(&id)).expect("load"),
                Some(sample_state(customer % 5)),
                "{id}"
            );
        }
    }
    assert_eq!(store.len().expect("len"), 200);
    store.flush().expect("flush");
    state_changes(store);
}

/// Writes with changes ([`StateStore::write_change`]) read back as the
/// latest state, whether the store keeps the changes or not: in order,
/// several queued at once, after a write the store never saw (a gap in the
/// writer's count), and from a new writer's first write on the state it
/// loaded.
fn state_changes(store: &Arc<dyn StateStore>) {
    let bob: Arc<str> = Arc::from("contract-bob");
    let states: Vec<CustomerState> = (0..8).map(sample_state).collect();
    let write = |from: usize, to: usize, writer: u64, previous_writes: u64| {
        let delta = StateDelta::between(&states[from], &states[to]);
        let change = StateChange {
            delta: &delta,
            writer,
            previous_writes,
        };
        store.write_change(&bob, &states[to], change)
    };
    let load = || block_on(store.load(&bob)).expect("load");
    // The first writer's first write changes the state it loaded: none.
    let empty = CustomerState::default();
    let delta = StateDelta::between(&empty, &states[1]);
    let first = store.write_change(
        &bob,
        &states[1],
        StateChange {
            delta: &delta,
            writer: 7,
            previous_writes: 0,
        },
    );
    block_on(first.wait()).expect("first change durable");
    block_on(write(1, 2, 7, 1).wait()).expect("change durable");
    assert_eq!(load(), Some(states[2].clone()), "changes in order");
    // Two queued before either commits.
    let third = write(2, 3, 7, 2);
    let fourth = write(3, 4, 7, 3);
    block_on(third.wait()).expect("change durable");
    block_on(fourth.wait()).expect("change durable");
    assert_eq!(load(), Some(states[4].clone()), "changes queued together");
    // Write 4 (from state 4 to 5) never reached the store: the next change
    // is from a state the store does not have.
    block_on(write(5, 6, 7, 5).wait()).expect("change durable");
    assert_eq!(load(), Some(states[6].clone()), "a change after a gap");
    // A new writer (the next activation) changes the state it loaded.
    block_on(write(6, 7, 8, 0).wait()).expect("change durable");
    assert_eq!(load(), Some(states[7].clone()), "a new writer's change");
    store.flush().expect("flush");
    assert_eq!(load(), Some(states[7].clone()));
}

/// The [`DecisionLog`] contract, on an empty log.
pub fn decision_log(log: &Arc<dyn DecisionLog>) {
    // Appended out of time order, from two customers; outcomes out of order.
    let commit = log
        .append(vec![
            sample_decision("alice", "late", 60_000),
            sample_decision("alice", "early", 0),
            sample_decision("bob", "middle", 30_000),
        ])
        .and(log.append(vec![
            sample_outcome("alice", "early", 0, OutcomeKind::Conversion, 9_000),
            sample_outcome("alice", "early", 0, OutcomeKind::Impression, 1_000),
            sample_outcome("bob", "middle", 30_000, OutcomeKind::Click, 31_000),
        ]))
        .and(log.append(Vec::new()));
    block_on(commit.wait()).expect("append durable");

    let all = exported(log.as_ref(), EVERYTHING);
    assert_eq!(
        ids(&all),
        ["early", "middle", "late"],
        "decision-time order"
    );
    let early = &all[0];
    let kinds: Vec<OutcomeKind> = early.outcomes.iter().map(|o| o.outcome).collect();
    assert_eq!(
        kinds,
        [OutcomeKind::Impression, OutcomeKind::Conversion],
        "outcomes joined in the order they happened"
    );
    assert_eq!(early.feature_names, ["bias", "count(login,7d)"]);
    assert_eq!(early.record.served[0].features, [1.0, 2.0]);
    assert!(all[2].outcomes.is_empty());

    // Ranges: since inclusive, until exclusive.
    let range = TimeRange {
        since: Some(at(30_000)),
        until: Some(at(60_000)),
    };
    assert_eq!(ids(&exported(log.as_ref(), range)), ["middle"]);

    // Early stop.
    let mut seen = 0;
    let visited = log
        .export(EVERYTHING, &mut |_| {
            seen += 1;
            false
        })
        .expect("export");
    assert_eq!((visited, seen), (1, 1), "export stops when visit says so");

    // Forget one customer: its decisions and outcomes only.
    let erased = block_on(log.forget(&Arc::from("alice")).wait()).expect("forget");
    assert_eq!((erased.decisions, erased.outcomes), (2, 2));
    let left = exported(log.as_ref(), EVERYTHING);
    assert_eq!(ids(&left), ["middle"]);
    assert_eq!(left[0].outcomes.len(), 1, "bob's outcome stays");

    // Compaction: oldest first, at most `max` per call, outcomes with them.
    let many: Vec<LogEntry> = (0..5)
        .map(|index| sample_decision("carol", &format!("old{index}"), -100_000 + index))
        .collect();
    block_on(log.append(many).wait()).expect("append");
    block_on(
        log.append(vec![sample_outcome(
            "carol",
            "old0",
            -100_000,
            OutcomeKind::Impression,
            -99_000,
        )])
        .wait(),
    )
    .expect("append");
    let first = block_on(log.compact(at(0), 3).wait()).expect("compact");
    assert_eq!(first.decisions, 3, "at most max per call");
    let second = block_on(log.compact(at(0), 3).wait()).expect("compact");
    assert_eq!(second.decisions, 2, "fewer than max: nothing older is left");
    assert_eq!(ids(&exported(log.as_ref(), EVERYTHING)), ["middle"]);
    log.flush().expect("flush");
}

/// The `ordinal`-th applied event of `customer`, applied at `offset_ms`.
pub fn sample_event(customer: &str, ordinal: u64, offset_ms: i64) -> LogEntry {
    LogEntry::Event(EventRecord {
        customer_id: customer.to_owned(),
        ordinal,
        received_at: at(offset_ms),
        event: Event {
            event_id: format!("{customer}-{ordinal}"),
            name: "identify".to_owned(),
            timestamp: at(offset_ms - 500),
            properties: BTreeMap::from([
                ("plan".to_owned(), AttrValue::Str("pro".to_owned())),
                ("seats".to_owned(), AttrValue::Num(12.0)),
                ("trial".to_owned(), AttrValue::Bool(false)),
            ]),
        },
    })
}

fn exported_events(log: &dyn DecisionLog, range: TimeRange) -> Vec<(String, u64)> {
    let mut events = Vec::new();
    log.export_events(range, &mut |record| {
        events.push((record.customer_id, record.ordinal));
        true
    })
    .expect("export events");
    events
}

/// The event-log side of the [`DecisionLog`] contract, on an empty log.
pub fn event_log(log: &Arc<dyn DecisionLog>) {
    // Appended out of order, from two customers, beside a decision.
    let commit = log
        .append(vec![
            sample_event("bob", 1, 5_000),
            sample_event("alice", 2, 20_000),
            sample_decision("alice", "d1", 25_000),
        ])
        .and(log.append(vec![
            sample_event("alice", 1, 10_000),
            sample_event("alice", 3, 30_000),
        ]));
    block_on(commit.wait()).expect("append durable");

    let mut first = None;
    log.export_events(EVERYTHING, &mut |record| {
        first.get_or_insert(record);
        true
    })
    .expect("export events");
    let LogEntry::Event(expected) = sample_event("alice", 1, 10_000) else {
        unreachable!("an event entry")
    };
    assert_eq!(first, Some(expected), "an event reads back as appended");
    assert_eq!(
        exported_events(log.as_ref(), EVERYTHING),
        [
            ("alice".to_owned(), 1),
            ("alice".to_owned(), 2),
            ("alice".to_owned(), 3),
            ("bob".to_owned(), 1)
        ],
        "customer by customer, in number order"
    );
    let range = TimeRange {
        since: Some(at(10_000)),
        until: Some(at(30_000)),
    };
    assert_eq!(
        exported_events(log.as_ref(), range),
        [("alice".to_owned(), 1), ("alice".to_owned(), 2)],
        "ranges by the time applied: since inclusive, until exclusive"
    );
    let mut seen = 0;
    let visited = log
        .export_events(EVERYTHING, &mut |_| {
            seen += 1;
            false
        })
        .expect("export events");
    assert_eq!((visited, seen), (1, 1), "export stops when visit says so");

    // Compaction by the time applied, at most `max` per call.
    let compacted = block_on(log.compact(at(15_000), 1).wait()).expect("compact");
    assert_eq!(compacted.events, 1, "at most max per call");
    let compacted = block_on(log.compact(at(15_000), 10).wait()).expect("compact");
    assert_eq!(compacted.events, 1, "fewer than max: nothing older is left");
    assert_eq!(
        exported_events(log.as_ref(), EVERYTHING),
        [("alice".to_owned(), 2), ("alice".to_owned(), 3)]
    );

    // Forget one customer: its events, decisions and outcomes.
    block_on(log.append(vec![sample_event("bob", 2, 40_000)]).wait()).expect("append");
    let erased = block_on(log.forget(&Arc::from("alice")).wait()).expect("forget");
    assert_eq!((erased.events, erased.decisions), (2, 1));
    assert_eq!(
        exported_events(log.as_ref(), EVERYTHING),
        [("bob".to_owned(), 2)],
        "bob's events stay"
    );
    log.flush().expect("flush");
}

/// The [`BudgetLedger`] contract, on an empty ledger.
pub fn budget_ledger(ledger: &Arc<dyn BudgetLedger>) {
    assert!(ledger.load().expect("load").is_empty());
    let change = |action: &str, delta: i64| BudgetChange {
        action_id: action.to_owned(),
        delta,
    };
    let queued = ledger.record(vec![change("coupon", 1), change("coupon", 1)]);
    let more = ledger.record(vec![change("coupon", 1), change("trial", 1)]);
    assert_eq!(
        ledger.load().expect("load"),
        [("coupon".to_owned(), 3), ("trial".to_owned(), 1)],
        "queued changes count at once"
    );
    block_on(queued.and(more).wait()).expect("durable");
    block_on(
        ledger
            .record(vec![change("coupon", -1), change("trial", -5)])
            .wait(),
    )
    .expect("durable");
    assert_eq!(
        ledger.load().expect("load"),
        [("coupon".to_owned(), 2)],
        "a counter never goes below zero; zero is not listed"
    );
    block_on(ledger.record(Vec::new()).wait()).expect("nothing to record");
    ledger.flush().expect("flush");
}

/// What was acknowledged survives closing and reopening: `open` opens the
/// same durable store each time (and the previous one is dropped first).
pub fn survives_reopen(open: &dyn Fn() -> Stores) {
    {
        let stores = open();
        let alice: Arc<str> = Arc::from("reopen-alice");
        let commit = stores
            .state
            .write(&alice, &sample_state(3))
            .and(stores.log.append(vec![
                sample_event("reopen-alice", 1, -1_000),
                sample_decision("reopen-alice", "d1", 0),
            ]))
            .and(stores.budgets.record(vec![BudgetChange {
                action_id: "coupon".to_owned(),
                delta: 1,
            }]));
        block_on(commit.wait()).expect("durable");
    }
    let stores = open();
    assert_eq!(
        block_on(stores.state.load("reopen-alice")).expect("load"),
        Some(sample_state(3))
    );
    let decisions = exported(stores.log.as_ref(), EVERYTHING);
    assert_eq!(ids(&decisions), ["d1"]);
    let LogEntry::Decision { record, .. } = sample_decision("reopen-alice", "d1", 0) else {
        unreachable!("a decision entry")
    };
    assert_eq!(decisions[0].record, record, "every field reads back");
    assert_eq!(
        exported_events(stores.log.as_ref(), EVERYTHING),
        [("reopen-alice".to_owned(), 1)]
    );
    assert_eq!(
        stores.budgets.load().expect("load"),
        [("coupon".to_owned(), 1)]
    );
}
