//! `decide_and_record`, the one step a Decide call and a journey's send step
//! take: what a recorded decision leaves in the ledger and the decision log,
//! the budget units it reports, and that a caller who gave up changes nothing.

use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::log::LogEntry;
use nudge_models::model::{MODEL_FORMAT, Model, ModelArtifact};
use nudge_models::pipeline::{
    DecisionRequest, Environment, RecordAs, Recorded, Scoring, decide_and_record,
};
use nudge_models::time::Timestamp;
use std::collections::BTreeMap;

const CATALOG: &str = r#"[catalog]
name = "record"
version = "record-1"
timezone = "UTC"

[channels.in_app]

[[actions]]
id = "coupon"
channel = "in_app"
category = "promo"
value = 3.0
budget = 2

[[actions]]
id = "tip"
channel = "in_app"
category = "tips"

[placements.banner]
channels = ["in_app"]
slots = 2
"#;

fn model() -> Model {
    Model::from_artifact(ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version: "record-model-1".to_owned(),
        description: String::new(),
        trained_at: None,
        features: vec!["action_value".to_owned()],
        weights: vec![0.1],
        intercept: 0.0,
        evidence: Default::default(),
    })
    .expect("valid model")
}

/// 2026-11-23 12:00 UTC.
const NOON: Timestamp = Timestamp(1_795_435_200_000);

struct World {
    catalog: Catalog,
    model: Model,
    budgets: BudgetCounters,
}

impl World {
    fn new() -> Self {
        Self {
            catalog: Catalog::from_toml(CATALOG).unwrap_or_else(|problems| panic!("{problems}")),
            model: model(),
            budgets: BudgetCounters::default(),
        }
    }

    fn run(
        &self,
        state: &mut CustomerState,
        dry_run: bool,
        still_wanted: bool,
    ) -> Option<Recorded> {
        let env = Environment {
            catalog: &self.catalog,
            model: Some(&self.model),
            budgets: &self.budgets,
        };
        let context = BTreeMap::new();
        let request = DecisionRequest {
            placement: "banner",
            context: &context,
            candidates: &[],
            limit: 0,
            dry_run,
            scoring: Scoring::Model,
            seed: 7,
            now: NOON,
        };
        let record_as = (!dry_run).then_some(RecordAs {
            shadow: None,
            decision_id: "d1",
            customer_id: "alice",
            variant: "default",
        });
        decide_and_record(&env, state, &request, record_as, || still_wanted)
            .expect("the decision succeeds")
    }
}

#[test]
fn a_recorded_decision_takes_its_cap_slots_and_makes_its_log_entry() {
    let world = World::new();
    let mut state = CustomerState::default();
    let recorded = world.run(&mut state, false, true).expect("still wanted");
    let served: Vec<&str> = recorded
        .decision
        .served
        .iter()
        .map(|served| served.action_id.as_str())
        .collect();
    assert_eq!(served, ["coupon", "tip"]);
    // The ledger holds both contacts, under the decision's id.
    assert_eq!(state.ledger.contacts().count(), 2);
    assert!(state.ledger.contacts().all(|c| c.decision_id == "d1"));
    assert_eq!(state.profile.engagement("in_app").sends, 2);
    // The budgeted action took one unit, reported for the ledger.
    assert_eq!(recorded.budget_taken, ["coupon"]);
    assert_eq!(world.budgets.used("coupon"), 1);
    // The log entry carries the decision and the scoring model's features.
    let Some(LogEntry::Decision {
        record,
        feature_names,
    }) = recorded.log
    else {
        panic!("a decision entry");
    };
    assert_eq!(record.decision_id, "d1");
    assert_eq!(record.customer_id, "alice");
    assert_eq!(record.at, NOON);
    assert_eq!(record.placement, "banner");
    assert_eq!(record.catalog_version, "record-1");
    assert_eq!(record.model_version.as_deref(), Some("record-model-1"));
    assert_eq!(record.fallback, None);
    assert_eq!(record.served.len(), 2);
    assert_eq!(record.served[0].features.len(), 1);
    assert_eq!(
        feature_names.as_deref(),
        Some(&["action_value".to_owned()][..])
    );
}

#[test]
fn a_dry_run_records_nothing_and_takes_no_budget() {
    let world = World::new();
    let mut state = CustomerState::default();
    let recorded = world.run(&mut state, true, true).expect("still wanted");
    assert_eq!(recorded.decision.served.len(), 2);
    assert_eq!(recorded.log, None);
    assert!(recorded.budget_taken.is_empty());
    assert_eq!(world.budgets.used("coupon"), 0);
    assert_eq!(state, CustomerState::default());
}

#[test]
fn a_caller_who_gave_up_changes_nothing_and_gets_the_budget_back() {
    let world = World::new();
    let mut state = CustomerState::default();
    assert_eq!(world.run(&mut state, false, false), None);
    assert_eq!(state, CustomerState::default(), "nothing recorded");
    assert_eq!(world.budgets.used("coupon"), 0, "the unit was given back");
}
