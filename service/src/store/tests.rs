//! The store on its own: durability across reopen, read-your-writes while a
//! write is queued, the decision log join, forget, retention, a failing disk
//! and damaged files.

#![allow(clippy::unwrap_used)]

use super::*;
use nudge_models::customer::{ConsentState, CustomerState};
use nudge_models::profile::Event;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "nudge-store-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const T0: i64 = 1_795_435_200_000;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn state_with(event_ids: &[&str]) -> CustomerState {
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

fn decision(customer: &str, id: &str, offset_ms: i64) -> LogEntry {
    LogEntry::Decision {
        record: DecisionRecord {
            decision_id: id.to_owned(),
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
        },
        feature_names: Some(Arc::from(vec![
            "bias".to_owned(),
            "count(login,7d)".to_owned(),
        ])),
    }
}

fn outcome(customer: &str, id: &str, decision_offset: i64, kind: &str, offset_ms: i64) -> LogEntry {
    LogEntry::Outcome(OutcomeRecord {
        decision_id: id.to_owned(),
        decision_at: at(decision_offset),
        customer_id: customer.to_owned(),
        action_id: "upsell".to_owned(),
        outcome: kind.to_owned(),
        at: at(offset_ms),
        reward: (kind == "conversion").then_some(12.5),
    })
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn write(store: &RedbStore, customer: &str, state: &CustomerState, log: Vec<LogEntry>) {
    block_on(store.write(&Arc::from(customer), state, log).wait()).unwrap();
}

fn exported(store: &RedbStore, range: TimeRange) -> Vec<LoggedDecision> {
    let mut all = Vec::new();
    store
        .export(range, &mut |decision| {
            all.push(decision);
            true
        })
        .unwrap();
    all
}

const EVERYTHING: TimeRange = TimeRange {
    since: None,
    until: None,
};

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
            vec![outcome("alice", "d1", 0, "click", 5_000)],
        );
        store.close().unwrap();
    }
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    let loaded = store.load("alice").unwrap().unwrap();
    assert_eq!(loaded, state);
    assert!(loaded.has_seen("e2"));
    assert_eq!(store.len().unwrap(), 1);
    let log = exported(&store, EVERYTHING);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].record.decision_id, "d1");
    assert_eq!(log[0].feature_names, vec!["bias", "count(login,7d)"]);
    assert_eq!(log[0].outcomes.len(), 1);
    assert_eq!(log[0].outcomes[0].outcome, "click");
}

#[test]
fn a_queued_write_is_what_load_returns() {
    let store = RedbStore::in_memory(StoreOptions::default());
    let customer: Arc<str> = Arc::from("bob");
    let first = state_with(&["e1"]);
    let second = state_with(&["e1", "e2", "e3"]);
    // Not awaited: still queued or just committed, load sees the newest.
    let commit_1 = store.write(&customer, &first, Vec::new());
    let commit_2 = store.write(&customer, &second, Vec::new());
    assert_eq!(store.load("bob").unwrap(), Some(second.clone()));
    block_on(async {
        commit_1.wait().await.unwrap();
        commit_2.wait().await.unwrap();
    });
    store.flush().unwrap();
    assert_eq!(store.committed_state("bob").unwrap(), Some(second));
}

#[test]
fn many_concurrent_writers_are_all_acknowledged_and_stored() {
    let store = Arc::new(RedbStore::in_memory(StoreOptions {
        max_batch_writes: 64,
        ..StoreOptions::default()
    }));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                let commits: Vec<Commit> = (0..250)
                    .map(|index| {
                        let customer: Arc<str> = Arc::from(format!("c{thread}-{index}"));
                        store.write(
                            &customer,
                            &state_with(&[&format!("e{index}")]),
                            vec![decision(&customer, &format!("d{thread}-{index}"), index)],
                        )
                    })
                    .collect();
                block_on(async {
                    for commit in commits {
                        commit.wait().await.unwrap();
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.len().unwrap(), 1_000);
    assert_eq!(exported(&store, EVERYTHING).len(), 1_000);
}

#[test]
fn export_joins_outcomes_orders_by_time_and_honours_the_range() {
    let store = RedbStore::in_memory(StoreOptions::default());
    let state = state_with(&["e1"]);
    write(
        &store,
        "alice",
        &state,
        vec![decision("alice", "late", 60_000)],
    );
    write(&store, "alice", &state, vec![decision("alice", "early", 0)]);
    write(
        &store,
        "alice",
        &state,
        vec![
            outcome("alice", "early", 0, "conversion", 9_000),
            outcome("alice", "early", 0, "impression", 1_000),
        ],
    );
    let all = exported(&store, EVERYTHING);
    let ids: Vec<&str> = all.iter().map(|d| d.record.decision_id.as_str()).collect();
    assert_eq!(ids, ["early", "late"]);
    let kinds: Vec<&str> = all[0].outcomes.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(
        kinds,
        ["impression", "conversion"],
        "in the order they happened"
    );
    assert_eq!(all[0].outcomes[1].reward, Some(12.5));
    assert!(all[1].outcomes.is_empty());
    let window = exported(
        &store,
        TimeRange {
            since: Some(at(1)),
            until: Some(at(60_001)),
        },
    );
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].record.decision_id, "late");
    let mut seen = 0;
    let visited = store
        .export(EVERYTHING, &mut |_| {
            seen += 1;
            false
        })
        .unwrap();
    assert_eq!((visited, seen), (1, 1), "the visitor can stop the export");
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
                outcome(customer, &id, offset, "impression", 2_000),
                outcome(customer, &id, offset, "click", 3_000),
            ],
        );
    }
    let erased = block_on(store.forget(&Arc::from("alice")).wait()).unwrap();
    assert_eq!(
        erased,
        Erased {
            state: true,
            decisions: 1,
            outcomes: 2
        }
    );
    assert_eq!(store.load("alice").unwrap(), None);
    assert_eq!(store.traces_of("alice").unwrap(), Vec::<String>::new());
    assert!(!store.traces_of("bob").unwrap().is_empty());
    let left = exported(&store, EVERYTHING);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.customer_id, "bob");
    assert_eq!(left[0].outcomes.len(), 2);
    let again = block_on(store.forget(&Arc::from("alice")).wait()).unwrap();
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
            vec![outcome("alice", id, offset, "click", offset + 5)],
        );
    }
    let deleted = block_on(store.compact(at(50_000)).wait()).unwrap();
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
    assert_eq!(store.load("alice").unwrap(), Some(state), "state is kept");
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
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
    let error = block_on(store.write(&Arc::from("alice"), &during, Vec::new()).wait())
        .expect_err("the disk is full");
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(error.to_string().contains("No space left"), "{error}");
    assert!(matches!(store.check_writable(), Err(StoreError::Full(_))));
    // Refused at once while failing: nothing is queued.
    let refused = block_on(store.write(&Arc::from("bob"), &before, Vec::new()).wait());
    assert!(matches!(refused, Err(StoreError::Full(_))), "{refused:?}");
    assert_eq!(store.load("bob").unwrap(), None);
    // Reads keep working.
    assert!(store.load("alice").unwrap().is_some());

    switch.set(false);
    wait_until("the store accepts writes again", || {
        store.check_writable().is_ok()
    });
    // The state that failed to commit was retried and is durable now.
    assert_eq!(store.committed_state("alice").unwrap(), Some(during));
    write(&store, "bob", &before, Vec::new());
    store.close().unwrap();
    let reopened = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(reopened.load("bob").unwrap(), Some(before));
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
    assert!(matches!(error, StoreError::Corrupted(_)), "{error:?}");
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
        matches!(error, StoreError::Corrupted(_) | StoreError::Unavailable(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains(DATA_FILE), "{error}");
}

#[test]
fn under_steady_load_with_retention_the_file_stops_growing() {
    let dir = TempDir::new("retention-size");
    let store = RedbStore::open(dir.path(), StoreOptions::default()).unwrap();
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
                store.write(
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
        block_on(store.compact(at(day)).wait()).unwrap();
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    assert_eq!(exported(&store, EVERYTHING).len(), 500, "one round is kept");
    // Freed pages are reused: after the first rounds the file does not grow.
    assert!(
        sizes[7] <= sizes[3],
        "the data file keeps growing under steady load: {sizes:?}"
    );
}
