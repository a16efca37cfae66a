//! `StateDelta`, the change between two states of one customer: applied to
//! the state it was taken from it gives the other one, for any two states
//! (related by any stream of changes, or not at all), also after the store's
//! encoding; replaying the delta of every change rebuilds the state; and the
//! delta of what the service does every time (a decision, an event, an
//! outcome) is a small fraction of the state.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::{ConsentState, CustomerState, SuppressionReason, TrackResult};
use nudge_models::delta::StateDelta;
use nudge_models::ledger::{Contact, OutcomeKind};
use nudge_models::model::Model;
use nudge_models::pipeline::{DecisionRequest, Environment, RecordAs, decide_and_record};
use nudge_models::profile::Event;
use nudge_models::synthetic;
use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The synthetic catalog (50 actions on `in_app` and `content`, caps,
/// cooldowns), without rules.
fn catalog() -> &'static Catalog {
    static CATALOG_CELL: OnceLock<Catalog> = OnceLock::new();
    CATALOG_CELL.get_or_init(|| synthetic::catalog(false))
}

fn model() -> &'static Model {
    static MODEL_CELL: OnceLock<Model> = OnceLock::new();
    MODEL_CELL.get_or_init(|| {
        Model::from_artifact(synthetic::model_artifact()).expect("the synthetic model is valid")
    })
}

fn budgets() -> &'static BudgetCounters {
    static BUDGETS_CELL: OnceLock<BudgetCounters> = OnceLock::new();
    BUDGETS_CELL.get_or_init(BudgetCounters::default)
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

/// The store's encoding.
fn encode(delta: &StateDelta) -> Vec<u8> {
    rmp_serde::to_vec_named(delta).expect("a delta encodes")
}

fn decode(bytes: &[u8]) -> StateDelta {
    rmp_serde::from_slice(bytes).expect("an encoded delta decodes")
}

fn encoded_state_len(state: &CustomerState) -> usize {
    rmp_serde::to_vec_named(state)
        .expect("a state encodes")
        .len()
}

// ── Customers driven by random changes ──────────────────────────────────────

const EVENTS: [&str; 4] = ["login", "page_view", "search", "identify"];
/// The catalog's channels and one it does not have.
const CHANNELS: [&str; 3] = ["in_app", "content", "email"];
const REASONS: [SuppressionReason; 4] = [
    SuppressionReason::Bounce,
    SuppressionReason::Complaint,
    SuppressionReason::Legal,
    SuppressionReason::Manual,
];

/// Where a customer's history starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Nothing known.
    Fresh,
    /// `synthetic::customer`: a month of events, three contacts.
    MonthOld,
    /// 1,100 events: the recent event ids are full, each new one pops one.
    ManyEvents,
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        Just(Start::Fresh),
        Just(Start::MonthOld),
        Just(Start::ManyEvents)
    ]
}

/// One change to a customer.
#[derive(Debug, Clone)]
enum Op {
    /// An event `ago` ms before now (negative: ahead of the clock), its id
    /// one of a few hundred so that some repeat; an `identify` sets `plan`
    /// and `seats` when given.
    Track {
        name: usize,
        id: u16,
        ago: i64,
        plan: Option<bool>,
        seats: Option<u8>,
    },
    /// A recorded decision of up to `limit` actions (0: the placement's slots).
    Decide {
        limit: u32,
        seed: u64,
    },
    /// A contact pushed `ago` ms before now (out of time order when later
    /// contacts exist), then the ledger pruned.
    Push {
        action: usize,
        ago: i64,
    },
    /// An outcome of the `pick`-th contact served so far.
    Outcome {
        pick: usize,
        kind: OutcomeKind,
        reward: Option<f64>,
    },
    /// Consent set (opted in or out) or cleared.
    Consent {
        channel: usize,
        state: Option<bool>,
    },
    Suppress {
        channel: Option<usize>,
        reason: usize,
    },
    Unsuppress {
        channel: Option<usize>,
        reason: Option<usize>,
    },
    /// The profile's counters pruned at now.
    Prune,
    Advance {
        millis: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0..EVENTS.len(),
            0..100u16,
            prop_oneof![Just(0i64), 0..2 * HOUR_MS, 0..40 * DAY_MS, -HOUR_MS..0],
            prop::option::of(any::<bool>()),
            prop::option::of(any::<u8>()),
        )
            .prop_map(|(name, id, ago, plan, seats)| Op::Track { name, id, ago, plan, seats }),
        3 => (0..4u32, any::<u64>()).prop_map(|(limit, seed)| Op::Decide { limit, seed }),
        1 => (0..synthetic::ACTIONS, prop_oneof![Just(0i64), 0..DAY_MS, 0..40 * DAY_MS])
            .prop_map(|(action, ago)| Op::Push { action, ago }),
        3 => (
            any::<usize>(),
            prop::sample::select(OutcomeKind::ALL.to_vec()),
            prop::option::of(-10.0..10.0f64),
        )
            .prop_map(|(pick, kind, reward)| Op::Outcome { pick, kind, reward }),
        1 => (0..CHANNELS.len(), prop::option::of(any::<bool>()))
            .prop_map(|(channel, state)| Op::Consent { channel, state }),
        1 => (prop::option::of(0..CHANNELS.len()), 0..REASONS.len())
            .prop_map(|(channel, reason)| Op::Suppress { channel, reason }),
        1 => (prop::option::of(0..CHANNELS.len()), prop::option::of(0..REASONS.len()))
            .prop_map(|(channel, reason)| Op::Unsuppress { channel, reason }),
        1 => Just(Op::Prune),
        2 => prop_oneof![0..2 * HOUR_MS, 0..3 * DAY_MS, Just(31 * DAY_MS)]
            .prop_map(|millis| Op::Advance { millis }),
    ]
}

/// What the random changes reached, so a test can check they exercise the
/// cases that matter.
#[derive(Debug, Clone, Default)]
struct Reached {
    served: usize,
    outcomes: usize,
    duplicates: usize,
    late_contacts: usize,
    identifies: usize,
}

/// One customer, its clock, and the contacts it was served.
#[derive(Debug, Clone)]
struct Customer {
    state: CustomerState,
    now: Timestamp,
    step: usize,
    /// (decision id, action id) of every contact served, oldest first.
    served: Vec<(String, String)>,
    reached: Reached,
}

impl Customer {
    fn new(start: Start) -> Self {
        let now = synthetic::now();
        let state = match start {
            Start::Fresh => CustomerState::default(),
            Start::MonthOld => synthetic::customer(catalog(), now),
            Start::ManyEvents => many_events().clone(),
        };
        let served = state
            .ledger
            .contacts()
            .map(|contact| (contact.decision_id.clone(), contact.action_id.clone()))
            .collect();
        Self {
            state,
            now,
            step: 0,
            served,
            reached: Reached::default(),
        }
    }

    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op);
        }
    }

    fn apply(&mut self, op: &Op) {
        self.step += 1;
        match op {
            Op::Track {
                name,
                id,
                ago,
                plan,
                seats,
            } => {
                let mut properties = BTreeMap::new();
                if EVENTS[*name] == "identify" {
                    self.reached.identifies += 1;
                    if let Some(pro) = plan {
                        let plan = if *pro { "pro" } else { "free" };
                        properties.insert("plan".to_owned(), AttrValue::from(plan));
                    }
                    if let Some(seats) = seats {
                        properties.insert("seats".to_owned(), AttrValue::Num(f64::from(*seats)));
                    }
                }
                let event = Event {
                    event_id: format!("e{id}"),
                    name: EVENTS[*name].to_owned(),
                    timestamp: Timestamp(self.now.0 - ago),
                    properties,
                };
                if self.state.track(&event, self.now) == TrackResult::Duplicate {
                    self.reached.duplicates += 1;
                }
            }
            Op::Decide { limit, seed } => {
                let context = synthetic::context();
                let request = DecisionRequest {
                    limit: *limit,
                    dry_run: false,
                    seed: *seed,
                    ..synthetic::request(&context, self.now)
                };
                let decision_id = format!("decision-{}", self.step);
                for action_id in decide(&mut self.state, &request, &decision_id) {
                    self.served.push((decision_id.clone(), action_id));
                    self.reached.served += 1;
                }
            }
            Op::Push { action, ago } => {
                let action = &catalog().actions[*action];
                let decision_id = format!("pushed-{}", self.step);
                let at = Timestamp(self.now.0 - ago);
                if self.state.ledger.contacts().any(|contact| contact.at > at) {
                    self.reached.late_contacts += 1;
                }
                self.state.ledger.push(Contact::new(
                    &decision_id,
                    &action.id,
                    &action.channel,
                    &action.category,
                    at,
                ));
                self.state
                    .ledger
                    .prune(catalog().ledger_horizon(), self.now);
                self.served.push((decision_id, action.id.to_string()));
            }
            Op::Outcome { pick, kind, reward } => {
                if self.served.is_empty() {
                    return;
                }
                let (decision_id, action_id) = &self.served[pick % self.served.len()];
                // Contacts pruned from the ledger are refused.
                if let Ok(result) = self.state.report_outcome(
                    decision_id,
                    action_id,
                    *kind,
                    *reward,
                    self.now,
                    budgets(),
                ) && result.applied
                {
                    self.reached.outcomes += 1;
                }
            }
            Op::Consent { channel, state } => {
                let state = state.map(|opted_in| {
                    if opted_in {
                        ConsentState::OptedIn
                    } else {
                        ConsentState::OptedOut
                    }
                });
                self.state.set_consent(CHANNELS[*channel], state, self.now);
            }
            Op::Suppress { channel, reason } => {
                let channel = channel.map(|channel| CHANNELS[channel]);
                self.state
                    .suppress(channel, REASONS[*reason], "note", self.now);
            }
            Op::Unsuppress { channel, reason } => {
                let channel = channel.map(|channel| CHANNELS[channel]);
                self.state
                    .unsuppress(channel, reason.map(|reason| REASONS[reason]));
            }
            Op::Prune => self.state.profile.prune(self.now),
            Op::Advance { millis } => self.now = Timestamp(self.now.0 + millis),
        }
    }
}

/// A recorded decision (`decide_and_record`) for `state`: the actions served.
fn decide(
    state: &mut CustomerState,
    request: &DecisionRequest<'_>,
    decision_id: &str,
) -> Vec<String> {
    let env = Environment {
        catalog: catalog(),
        model: Some(model()),
        budgets: budgets(),
    };
    let record_as = RecordAs {
        shadow: None,
        decision_id,
        customer_id: "customer",
        variant: "control",
    };
    let recorded = decide_and_record(&env, state, request, Some(record_as), || true)
        .expect("decides")
        .expect("still wanted");
    recorded
        .decision
        .served
        .into_iter()
        .map(|served| served.action_id)
        .collect()
}

/// A customer with 1,100 events over the last 40 days.
fn many_events() -> &'static CustomerState {
    static MANY_EVENTS_CELL: OnceLock<CustomerState> = OnceLock::new();
    MANY_EVENTS_CELL.get_or_init(|| {
        let now = synthetic::now();
        let mut state = CustomerState::default();
        for index in 0..1_100_i64 {
            let event = Event {
                event_id: format!("history-{index}"),
                name: EVENTS[(index % 3) as usize].to_owned(),
                timestamp: Timestamp(now.0 - (index * 7_919_000) % (40 * DAY_MS)),
                properties: BTreeMap::new(),
            };
            state.track(&event, now);
        }
        state
    })
}

/// `between(base, new)`, encoded and decoded as the store does, turns `base`
/// into `new`, and is empty exactly when they are equal.
fn check_delta(base: &CustomerState, new: &CustomerState) -> Result<(), TestCaseError> {
    let delta = StateDelta::between(base, new);
    prop_assert_eq!(delta.is_empty(), base == new);
    let decoded = decode(&encode(&delta));
    prop_assert_eq!(&decoded, &delta);
    let mut rebuilt = base.clone();
    decoded
        .apply(&mut rebuilt)
        .map_err(|mismatch| TestCaseError::fail(mismatch.to_string()))?;
    prop_assert_eq!(&rebuilt, new);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// A state and a later one of the same customer, after any changes.
    #[test]
    fn a_delta_turns_its_base_into_the_later_state(
        start in start(),
        before in prop::collection::vec(op(), 0..30),
        after in prop::collection::vec(op(), 0..30),
    ) {
        let mut customer = Customer::new(start);
        customer.run(&before);
        let base = customer.state.clone();
        prop_assert!(StateDelta::between(&base, &base).is_empty());
        customer.run(&after);
        check_delta(&base, &customer.state)?;
    }

    /// Any two states, of unrelated customers too, both ways.
    #[test]
    fn any_two_states_have_a_delta(
        left_start in start(),
        left in prop::collection::vec(op(), 0..30),
        right_start in start(),
        right in prop::collection::vec(op(), 0..30),
    ) {
        let mut left_customer = Customer::new(left_start);
        left_customer.run(&left);
        let mut right_customer = Customer::new(right_start);
        right_customer.run(&right);
        check_delta(&left_customer.state, &right_customer.state)?;
        check_delta(&right_customer.state, &left_customer.state)?;
    }

    /// What the store will do: journal the encoded delta of every change and
    /// replay the journal on the snapshot taken before them.
    #[test]
    fn replaying_the_delta_of_every_change_rebuilds_the_state(
        start in start(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut customer = Customer::new(start);
        let snapshot = customer.state.clone();
        let mut journal = Vec::new();
        for op in &ops {
            let before = customer.state.clone();
            customer.apply(op);
            journal.push(encode(&StateDelta::between(&before, &customer.state)));
        }
        let mut rebuilt = snapshot;
        for entry in &journal {
            decode(entry)
                .apply(&mut rebuilt)
                .map_err(|mismatch| TestCaseError::fail(mismatch.to_string()))?;
        }
        prop_assert_eq!(rebuilt, customer.state);
    }
}

/// The properties above are only as good as the changes they make: with
/// proptest's deterministic seed, the streams must serve actions, apply
/// outcomes, repeat event ids, identify, and push contacts out of time order.
#[test]
fn the_random_changes_reach_every_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Reached::default();
    for _ in 0..64 {
        let (start, ops) = (start(), prop::collection::vec(op(), 1..40))
            .new_tree(&mut runner)
            .expect("a stream")
            .current();
        let mut customer = Customer::new(start);
        customer.run(&ops);
        total.served += customer.reached.served;
        total.outcomes += customer.reached.outcomes;
        total.duplicates += customer.reached.duplicates;
        total.late_contacts += customer.reached.late_contacts;
        total.identifies += customer.reached.identifies;
    }
    assert!(
        total.served > 100
            && total.outcomes > 20
            && total.duplicates > 5
            && total.late_contacts > 5
            && total.identifies > 20,
        "{total:?}"
    );
}

// ── Size of the changes the service makes every time ────────────────────────

/// The encoded size of a state and of the deltas of its next decision, event
/// and outcome.
#[derive(Debug)]
struct Sizes {
    state: usize,
    decision: usize,
    event: usize,
    outcome: usize,
}

/// The encoded size of the delta `op` makes, checked to rebuild the state.
fn measure(customer: &mut Customer, op: Op) -> usize {
    let before = customer.state.clone();
    customer.apply(&op);
    let bytes = encode(&StateDelta::between(&before, &customer.state));
    let mut rebuilt = before;
    decode(&bytes).apply(&mut rebuilt).expect("fits");
    assert_eq!(rebuilt, customer.state);
    bytes.len()
}

/// One decision serving 3 actions, one `page_view`, one click on the first
/// action served, each measured as the encoded delta from the state before
/// it.
fn sizes(customer: &mut Customer) -> Sizes {
    let state = encoded_state_len(&customer.state);
    let served_before = customer.served.len();
    let decision = measure(customer, Op::Decide { limit: 0, seed: 7 });
    assert_eq!(customer.served.len() - served_before, 3, "3 actions served");
    let pick = served_before;
    let event = measure(
        customer,
        Op::Track {
            name: 1,
            id: 9_999,
            ago: 0,
            plan: None,
            seats: None,
        },
    );
    let outcome = measure(
        customer,
        Op::Outcome {
            pick,
            kind: OutcomeKind::Click,
            reward: None,
        },
    );
    Sizes {
        state,
        decision,
        event,
        outcome,
    }
}

/// What a decision, an event and an outcome may take, encoded: with room
/// for longer ids than the tests' (a UUID decision id adds 26 bytes).
const DECISION_BOUND: usize = 300;
const EVENT_BOUND: usize = 150;
const OUTCOME_BOUND: usize = 80;

fn assert_small(sizes: &Sizes) {
    assert!(sizes.decision <= DECISION_BOUND, "{sizes:?}");
    assert!(sizes.event <= EVENT_BOUND, "{sizes:?}");
    assert!(sizes.outcome <= OUTCOME_BOUND, "{sizes:?}");
    assert!(sizes.decision * 5 <= sizes.state, "{sizes:?}");
}

#[test]
fn the_changes_of_a_customer_who_decided_three_times_are_small() {
    let mut customer = Customer::new(Start::Fresh);
    for hour in 0..3 {
        customer.apply(&Op::Decide {
            limit: 0,
            seed: hour,
        });
        customer.apply(&Op::Advance { millis: HOUR_MS });
    }
    // Measured: the state 1,538 bytes (9 contacts); the decision 99 (its
    // first contact whole but for the defaults, the next two their action
    // id, one channel's sends); the event 100 (a new event name, whole, and
    // first and last seen); the outcome 37 (a contact's outcome bits, one
    // channel's clicks).
    let sizes = sizes(&mut customer);
    assert_small(&sizes);
}

#[test]
fn the_changes_of_a_month_old_customer_are_small() {
    // Measured: the state 6,304 bytes; the decision 183 (as above, with the
    // first send on `content`, whose engagement is new and sent whole: 70
    // bytes); the event 63 (its current hour's count, total, and the event
    // id's fingerprint); the outcome 37.
    let mut customer = Customer::new(Start::MonthOld);
    let sizes = sizes(&mut customer);
    assert_small(&sizes);
}

#[test]
fn an_event_of_a_customer_whose_recent_event_ids_are_full_is_small() {
    // Measured: the state 14,716 bytes (1,024 fingerprints); the event 77
    // bytes (a new hour bucket, last seen, total, one fingerprint popped and
    // one pushed).
    let mut customer = Customer::new(Start::ManyEvents);
    let sizes = sizes(&mut customer);
    assert!(sizes.event <= EVENT_BOUND, "{sizes:?}");
}

#[test]
fn journeys_travel_whole_and_a_state_without_them_encodes_as_before() {
    use nudge_models::journey::{EntryMemory, Run, RunState};
    let base = CustomerState::default();
    let bytes = rmp_serde::to_vec_named(&base).expect("a state encodes");
    assert!(
        !bytes.windows(8).any(|window| window == b"journeys"),
        "no journeys, no key: stored states keep their encoding"
    );
    let decoded: CustomerState = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(decoded, base);

    let mut new = base.clone();
    new.journeys.memory.insert(
        "trial".to_owned(),
        EntryMemory {
            last_entered: Timestamp(1_000),
            entries: 1,
            converted: false,
        },
    );
    new.journeys.runs.push(Run {
        journey: "trial".to_owned(),
        version: 2,
        started_at: Timestamp(1_000),
        step: 1,
        step_entered_at: Timestamp(1_000),
        state: RunState::Waiting {
            until: Timestamp(1_000 + DAY_MS),
        },
        history: Vec::new(),
    });
    check_delta(&base, &new).expect("a journey's change round-trips");
    check_delta(&new, &base).expect("and so does its removal");
    let stored: CustomerState =
        rmp_serde::from_slice(&rmp_serde::to_vec_named(&new).expect("encodes")).expect("decodes");
    assert_eq!(stored, new);
}
