//! The file store with its write-ahead log: what a crash leaves behind comes
//! back whole and is applied once; a torn last frame loses only the batch
//! nobody was told was durable; checkpoints come on their interval; a failed
//! checkpoint loses nothing the log acknowledged; `forget` leaves no trace
//! in the log.
//!
//! A crash is taken as an image: the data file and the log copied while the
//! store is open and idle, after the writes were acknowledged — what the
//! disk holds if the process is killed at that moment.

#![allow(clippy::unwrap_used)]

use super::tests::{
    EVERYTHING, block_on, committing, decision, exported, journal_and_snapshots, journal_records,
    outcome, state_with, wait_until, write, write_chain, write_change,
};
use super::wal::{self, Entry, LOG_FILES, LoggedState, WriteAheadLog};
use super::*;
use crate::testing::TempDir;
use nudge_models::customer::CustomerState;
use nudge_models::ledger::OutcomeKind;
use std::time::Duration;

/// Options whose checkpoints come only when asked for (a flush, a close).
fn no_checkpoint_for_an_hour() -> StoreOptions {
    StoreOptions {
        checkpoint_interval: Duration::from_secs(3_600),
        ..StoreOptions::default()
    }
}

/// A copy of the store's files as they are now.
fn crash_image(dir: &TempDir, tag: &str) -> TempDir {
    let image = TempDir::new(tag);
    std::fs::create_dir_all(image.path()).unwrap();
    for file in [DATA_FILE, LOG_FILES[0], LOG_FILES[1]] {
        std::fs::copy(dir.path().join(file), image.path().join(file)).unwrap();
    }
    image
}

fn budget(action: &str, delta: i64) -> BudgetChange {
    BudgetChange {
        action_id: action.to_owned(),
        delta,
    }
}

/// Four states of one customer, each a few events on from the one before.
fn alice_states() -> Vec<CustomerState> {
    let ids: Vec<String> = (0..40).map(|index| format!("event-{index}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut states = vec![CustomerState::default()];
    states.extend([36, 37, 38].iter().map(|count| state_with(&ids[..*count])));
    states
}

/// A store in `tag` given [`write_history`] with no checkpoint since, and
/// the image a crash right then leaves (`tag-image`); alice's states.
fn crashed_history(tag: &str) -> (TempDir, TempDir, Vec<CustomerState>) {
    let dir = TempDir::new(tag);
    let store = RedbStore::open(dir.path(), no_checkpoint_for_an_hour()).unwrap();
    let states = alice_states();
    write_history(&store, &states);
    assert_eq!(
        store.committed_state("alice").unwrap(),
        None,
        "acknowledged by the log, not yet in the database"
    );
    let image = crash_image(&dir, &format!("{tag}-image"));
    drop(store);
    (dir, image, states)
}

/// Writes alice's changes, bob's state with a decision and its outcome, and
/// three budget changes (+1, +1, -1), each acknowledged.
fn write_history(store: &RedbStore, states: &[CustomerState]) {
    write_chain(store, "alice", states, 7);
    write(
        store,
        "bob",
        &state_with(&["b1"]),
        vec![
            decision("bob", "d1", 0),
            outcome("bob", "d1", 0, OutcomeKind::Click, 500),
        ],
    );
    block_on(
        store
            .record(vec![budget("coupon", 1), budget("coupon", 1)])
            .wait(),
    )
    .unwrap();
    block_on(store.record(vec![budget("coupon", -1)]).wait()).unwrap();
}

#[test]
fn acknowledged_writes_come_back_from_the_log_after_a_crash_and_apply_once() {
    let (_dir, image, states) = crashed_history("wal-crash");

    // The log holds alice's writes as changes: her whole state is not
    // written once.
    // No checkpoint ran: every frame is in the first file.
    let log = WriteAheadLog::open(&image.path().join(LOG_FILES[0]), None).unwrap();
    let entries: Vec<Entry> = log
        .read(None)
        .unwrap()
        .iter()
        .flat_map(|(_, payload)| wal::decode(payload).unwrap())
        .collect();
    let alice: Vec<&LoggedState> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::State {
                customer_id, state, ..
            } if customer_id.as_ref() == "alice" => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(alice.len(), 3);
    assert!(
        alice
            .iter()
            .all(|state| matches!(state, LoggedState::Change { .. })),
        "{alice:?}"
    );
    drop(log);

    for reopening in ["after the crash", "once more"] {
        let store = RedbStore::open(image.path(), no_checkpoint_for_an_hour()).unwrap();
        assert_eq!(
            store.committed_state("alice").unwrap(),
            Some(states[3].clone()),
            "{reopening}: replayed into the database"
        );
        assert_eq!(
            store.load_now("bob").unwrap(),
            Some(state_with(&["b1"])),
            "{reopening}"
        );
        let log = exported(&store, EVERYTHING);
        assert_eq!(log.len(), 1, "{reopening}");
        assert_eq!(log[0].outcomes.len(), 1, "{reopening}");
        assert_eq!(
            BudgetLedger::load(&store).unwrap(),
            [("coupon".to_owned(), 1)],
            "{reopening}: each change counted once"
        );
        store.close().unwrap();
    }
}

#[test]
fn a_torn_last_frame_loses_only_the_batch_that_was_never_acknowledged() {
    let (_dir, image, states) = crashed_history("wal-torn");
    // The crash came while the last frame (the -1) was being written.
    let log_path = image.path().join(LOG_FILES[0]);
    let length = std::fs::metadata(&log_path).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    file.set_len(length - 3).unwrap();
    drop(file);

    let store = RedbStore::open(image.path(), no_checkpoint_for_an_hour()).unwrap();
    assert_eq!(store.load_now("alice").unwrap(), Some(states[3].clone()));
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 2)]
    );
    // Writing goes on after the torn frame.
    block_on(store.record(vec![budget("coupon", 5)]).wait()).unwrap();
    let image = crash_image(&image, "wal-torn-image-2");
    drop(store);
    let store = RedbStore::open(image.path(), no_checkpoint_for_an_hour()).unwrap();
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 7)]
    );
}

#[test]
fn checkpoints_bring_the_log_into_the_database_on_their_interval() {
    let dir = TempDir::new("wal-interval");
    let options = StoreOptions {
        checkpoint_interval: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let store = RedbStore::open(dir.path(), options).unwrap();
    let state = state_with(&["e1", "e2"]);
    write(&store, "alice", &state, vec![decision("alice", "d1", 0)]);
    wait_until("the checkpoint", || {
        store.committed_state("alice").unwrap() == Some(state.clone())
    });
    // Idle since: nothing more is written.
    let commits = store.commits();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(store.commits(), commits);
}

#[test]
fn a_checkpoint_that_fails_loses_nothing_the_log_acknowledged() {
    let dir = TempDir::new("wal-failed-checkpoint");
    let switch = FaultSwitch::default();
    let store =
        RedbStore::open_with_faults(dir.path(), no_checkpoint_for_an_hour(), switch.clone())
            .unwrap();
    let states = alice_states();
    write_history(&store, &states);

    // The disk fills: the checkpoint a flush asks for fails.
    switch.set(true);
    let flushed = StateStore::flush(&store);
    assert!(
        matches!(flushed, Err(StoreError::Full { .. })),
        "{flushed:?}"
    );
    assert!(StateStore::check_writable(&store).is_err());
    // Reads still see every acknowledged write.
    assert_eq!(store.load_now("alice").unwrap(), Some(states[3].clone()));
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 1)]
    );

    switch.set(false);
    wait_until("the store accepts writes again", || {
        StateStore::probe(&store);
        StateStore::check_writable(&store).is_ok()
    });
    assert_eq!(
        store.committed_state("alice").unwrap(),
        Some(states[3].clone())
    );
    assert_eq!(exported(&store, EVERYTHING).len(), 1);
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 1)]
    );
    store.close().unwrap();
    drop(store);
    let store = RedbStore::open(dir.path(), no_checkpoint_for_an_hour()).unwrap();
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 1)],
        "replayed once, not again at open"
    );
    assert_eq!(store.load_now("alice").unwrap(), Some(states[3].clone()));
}

#[test]
fn forget_leaves_no_trace_of_the_customer_in_the_log() {
    let dir = TempDir::new("wal-forget");
    let store = RedbStore::open(dir.path(), no_checkpoint_for_an_hour()).unwrap();
    let id: Arc<str> = Arc::from("alice-7f3c");
    write(
        &store,
        &id,
        &state_with(&["e1"]),
        vec![decision(&id, "d-alice", 0)],
    );
    let mentions = |needle: &str| {
        LOG_FILES.iter().any(|file| {
            let bytes = std::fs::read(dir.path().join(file)).unwrap();
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
    };
    assert!(mentions(&id), "the log holds her write before the erasure");
    block_on(
        StateStore::forget(&store, &id)
            .and(DecisionLog::forget(&store, &id))
            .wait(),
    )
    .unwrap();
    write(&store, "bob", &state_with(&["e1"]), Vec::new());
    assert!(!mentions(&id), "the log was cut with the erasure");
    assert!(mentions("bob"));
    assert_eq!(store.load_now(&id).unwrap(), None);
    assert!(store.traces_of(&id).unwrap().is_empty());
}

#[test]
fn writes_go_on_while_checkpoints_run_and_a_crash_between_them_loses_none() {
    let dir = TempDir::new("wal-alternate");
    let options = StoreOptions {
        checkpoint_interval: Duration::from_millis(1),
        ..StoreOptions::default()
    };
    let store = RedbStore::open(dir.path(), options.clone()).unwrap();
    let ids: Vec<String> = (0..400).map(|index| format!("event-{index}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut states = vec![CustomerState::default()];
    let mut step = 0;
    // Each write: alice's state one event on (as her change), a decision
    // and a budget unit. Until a few checkpoints ran, then some more, so
    // that frames lie in both files, some checkpointed, some not.
    let mut more = 20;
    while store.commits() < 4 || more > 0 {
        if store.commits() >= 4 {
            more -= 1;
        }
        step += 1;
        assert!(step < ids.len(), "no checkpoints after {step} writes");
        states.push(state_with(&ids[..step]));
        write_change(
            &store,
            "alice",
            &states[step - 1],
            &states[step],
            3,
            step as u64 - 1,
        );
        block_on(
            store
                .append(vec![decision("alice", &format!("d{step}"), step as i64)])
                .wait(),
        )
        .unwrap();
        block_on(store.record(vec![budget("coupon", 1)]).wait()).unwrap();
    }
    let image = crash_image(&dir, "wal-alternate-image");
    drop(store);
    let store = RedbStore::open(image.path(), options).unwrap();
    assert_eq!(store.load_now("alice").unwrap(), Some(states[step].clone()));
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), step as u64)]
    );
    assert_eq!(exported(&store, EVERYTHING).len(), step);
}

#[test]
fn a_probe_taken_among_writes_leaves_the_next_failure_able_to_recover() {
    let dir = TempDir::new("wal-probe");
    let switch = FaultSwitch::default();
    let store =
        RedbStore::open_with_faults(dir.path(), StoreOptions::default(), switch.clone()).unwrap();
    // Probes asked for while the store works (the server's probe task can
    // race a recovery) are taken by the writer among ordinary writes.
    for round in 0..20 {
        let commits: Vec<Commit> = (0..20)
            .map(|index| {
                StateStore::probe(&store);
                StateStore::write(
                    &store,
                    &Arc::from(format!("c-{round}-{index}")),
                    &state_with(&["e1"]),
                )
            })
            .collect();
        block_on(async {
            for commit in commits {
                commit.wait().await.unwrap();
            }
        });
    }
    // A failure after them still recovers once probed.
    switch.set(true);
    let failed =
        block_on(StateStore::write(&store, &Arc::from("alice"), &state_with(&["e1"])).wait());
    assert!(matches!(failed, Err(StoreError::Full { .. })), "{failed:?}");
    switch.set(false);
    wait_until("the store accepts writes again", || {
        StateStore::probe(&store);
        StateStore::check_writable(&store).is_ok()
    });
}

#[test]
fn a_log_left_by_a_crash_is_replayed_even_with_the_log_turned_off() {
    let (_dir, image, states) = crashed_history("wal-turned-off");
    let without_log = StoreOptions {
        write_ahead: false,
        ..StoreOptions::default()
    };
    let store = RedbStore::open(image.path(), without_log.clone()).unwrap();
    assert_eq!(
        store.committed_state("alice").unwrap(),
        Some(states[3].clone())
    );
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 1)]
    );
    assert!(
        LOG_FILES
            .iter()
            .all(|file| !image.path().join(file).exists()),
        "the replayed log is removed"
    );
    // Writing without the log goes on, and nothing is replayed twice.
    write(&store, "bob", &state_with(&["b1", "b2"]), Vec::new());
    drop(store);
    let store = RedbStore::open(image.path(), without_log).unwrap();
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        [("coupon".to_owned(), 1)]
    );
    assert_eq!(
        store.load_now("bob").unwrap(),
        Some(state_with(&["b1", "b2"]))
    );
}

#[test]
fn a_checkpoint_writes_snapshots_and_settles_what_a_run_without_the_log_journaled() {
    let dir = TempDir::new("wal-snapshots");
    let states = alice_states();
    let carol = state_with(&["c1"]);
    // Without the log, alice's and carol's writes are journal records.
    {
        let store = RedbStore::open(dir.path(), committing()).unwrap();
        write_chain(&store, "alice", &states[..3], 7);
        write(&store, "carol", &carol, Vec::new());
        store.close().unwrap();
    }
    let customers = |records: &[(u64, String, bool, usize)]| {
        let mut customers: Vec<String> = records.iter().map(|record| record.1.clone()).collect();
        customers.dedup();
        customers
    };
    assert_eq!(customers(&journal_records(&dir)), ["alice", "carol"]);
    // With the log, alice's next change and bob's first state with a
    // decision are checkpointed at close.
    {
        let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.load_now("alice").unwrap(), Some(states[2].clone()));
        write_change(&store, "alice", &states[2], &states[3], 8, 0);
        write(
            &store,
            "bob",
            &state_with(&["b1"]),
            vec![decision("bob", "d1", 0)],
        );
        store.close().unwrap();
    }
    // The checkpoint wrote alice's and bob's snapshots and took alice's
    // old records out; carol's, untouched, stay journaled.
    assert_eq!(customers(&journal_records(&dir)), ["carol"]);
    let (_, snapshots) = journal_and_snapshots(&dir);
    assert!(snapshots.contains(&"alice".to_owned()), "{snapshots:?}");
    assert!(snapshots.contains(&"bob".to_owned()), "{snapshots:?}");
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.load_now("alice").unwrap(), Some(states[3].clone()));
    assert_eq!(store.load_now("bob").unwrap(), Some(state_with(&["b1"])));
    assert_eq!(store.load_now("carol").unwrap(), Some(carol));
    // Bob's decision is indexed under him, so forget finds it.
    let traces = store.traces_of("bob").unwrap();
    assert!(
        traces.contains(&"customer_decisions[d1]".to_owned()),
        "{traces:?}"
    );
}

#[test]
fn while_a_checkpoint_lags_new_changes_are_refused_up_front_until_it_is_done() {
    let dir = TempDir::new("wal-behind");
    // Ten waiting writes start a checkpoint; while it runs, eight more make
    // the store refuse new changes (four fifths of the bound at which the
    // writer would wait for it).
    let options = StoreOptions {
        max_buffered_writes: 10,
        ..no_checkpoint_for_an_hour()
    };
    let store = RedbStore::open(dir.path(), options).unwrap();
    let hold = store.hold_checkpoints();
    let take = |store: &RedbStore| block_on(store.record(vec![budget("coupon", 1)]).wait());
    for _ in 0..10 {
        take(&store).unwrap();
    }
    for _ in 0..7 {
        take(&store).unwrap();
        assert!(StateStore::check_writable(&store).is_ok());
    }
    take(&store).unwrap();
    let error = StateStore::check_writable(&store).unwrap_err();
    assert!(
        matches!(error, StoreError::Behind { buffered: 8 }),
        "{error:?}"
    );
    assert!(error.to_string().contains("catching up"), "{error}");
    assert!(DecisionLog::check_writable(&store).is_err());
    assert!(BudgetLedger::check_writable(&store).is_err());
    // Once the running checkpoint is done, changes are accepted again, and
    // every acknowledged one is kept.
    drop(hold);
    wait_until("the store accepts changes", || {
        StateStore::check_writable(&store).is_ok()
    });
    take(&store).unwrap();
    store.close().unwrap();
    drop(store);
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        BudgetLedger::load(&store).unwrap(),
        vec![("coupon".to_owned(), 19)]
    );
}

/// A state whose one journey run waits until `until` (`None`: ended).
fn in_a_journey(until: Option<Timestamp>) -> CustomerState {
    use nudge_models::journey::{Ending, Run, RunState};
    let mut state = state_with(&["j1"]);
    state.journeys.runs.push(Run {
        journey: "trial".to_owned(),
        version: 1,
        started_at: Timestamp(0),
        step: 0,
        step_entered_at: Timestamp(0),
        state: until.map_or(
            RunState::Ended {
                at: Timestamp(5),
                ending: Ending::Completed,
            },
            |until| RunState::Waiting { until },
        ),
        history: Vec::new(),
    });
    state
}

#[test]
fn the_journey_timer_index_comes_back_from_the_log_and_follows_the_runs() {
    let dir = TempDir::new("wal-timers");
    let store = RedbStore::open(dir.path(), no_checkpoint_for_an_hour()).unwrap();
    let due = Timestamp(86_400_000);
    write(&store, "alice", &in_a_journey(Some(due)), Vec::new());
    write(&store, "bob", &state_with(&["b1"]), Vec::new());
    // Only in the log so far: a crash here replays it into the index.
    let image = crash_image(&dir, "wal-timers-image");
    drop(store);
    let store = RedbStore::open(image.path(), StoreOptions::default()).unwrap();
    let alice: Arc<str> = Arc::from("alice");
    assert_eq!(
        StateStore::journey_timers(&store).unwrap(),
        [(alice.clone(), due)]
    );
    // A later wait moves the entry; a run that ended takes it out.
    let later = Timestamp(2 * 86_400_000);
    write(&store, "alice", &in_a_journey(Some(later)), Vec::new());
    assert_eq!(
        StateStore::journey_timers(&store).unwrap(),
        [(alice.clone(), later)]
    );
    write(&store, "alice", &in_a_journey(None), Vec::new());
    assert!(StateStore::journey_timers(&store).unwrap().is_empty());
    // Forget takes it out with the rest of the customer.
    write(&store, "alice", &in_a_journey(Some(later)), Vec::new());
    block_on(StateStore::forget(&store, &alice).wait()).unwrap();
    assert!(StateStore::journey_timers(&store).unwrap().is_empty());
    assert!(store.traces_of("alice").unwrap().is_empty());
}
