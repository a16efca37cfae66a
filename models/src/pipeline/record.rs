//! Recording a decision (PRODUCT §3, step 6): the served actions enter the
//! customer's ledger (their cap slots are taken) and the decision becomes a
//! decision-log entry. [`decide_and_record`] is the one step every caller
//! that decides for real uses — a `Decide` call, and later a journey's send
//! step: filters → score → pick → record → log entry.

use super::{Decision, DecisionRequest, Environment, decide};
use crate::Error;
use crate::catalog::Catalog;
use crate::customer::CustomerState;
use crate::ledger::Contact;
use crate::log::{DecidedFor, DecisionRecord, LogEntry};
use crate::time::Timestamp;

/// Who a recorded decision is logged as.
#[derive(Debug, Clone, Copy)]
pub struct RecordAs<'a> {
    /// The new decision's id.
    pub decision_id: &'a str,
    /// The customer.
    pub customer_id: &'a str,
    /// The experiment variant that decided.
    pub variant: &'a str,
    /// A model that scores the decision silently, its scores logged beside
    /// the serving model's ([`crate::log::ShadowRecord`]).
    pub shadow: Option<&'a crate::model::Model>,
}

/// A decision made by [`decide_and_record`], recorded unless it was a dry
/// run.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The pipeline's answer.
    pub decision: Decision,
    /// The decision-log entry to persist with the customer's new state;
    /// `None` for a dry run.
    pub log: Option<LogEntry>,
    /// The budgeted actions that took a global budget unit, one entry per
    /// unit: what must be made durable with the decision.
    pub budget_taken: Vec<String>,
}

/// Records what a (non-dry-run) decision served in the customer's ledger:
/// one contact per served action (taking its cap slots) and a send on its
/// channel's engagement.
pub fn record(
    state: &mut CustomerState,
    decision_id: &str,
    decision: &Decision,
    catalog: &Catalog,
    now: Timestamp,
) {
    state.ledger.prune(catalog.ledger_horizon(), now);
    for served in &decision.served {
        state.ledger.push(Contact::new(
            decision_id,
            &served.action_id,
            &served.channel,
            &served.category,
            now,
        ));
        state.profile.engagement_mut(&served.channel).sends += 1;
    }
}

/// The served actions of `decision` that carry a global budget: each took a
/// unit when it was picked (unless the request was a dry run).
pub fn budgeted_actions(decision: &Decision, catalog: &Catalog) -> Vec<String> {
    decision
        .served
        .iter()
        .filter(|served| {
            catalog
                .action(&served.action_id)
                .is_some_and(|action| action.budget.is_some())
        })
        .map(|served| served.action_id.clone())
        .collect()
}

/// Decides for `state` and, unless `request.dry_run`, records the decision
/// as `record_as` (ledger and log entry). `still_wanted` is asked once the
/// decision is made and before anything is recorded: when it says no (the
/// caller's deadline passed), the budget units the decision took are given
/// back, nothing is recorded, and the answer is `None`.
///
/// `record_as` must be given exactly when the request is not a dry run.
pub fn decide_and_record(
    env: &Environment<'_>,
    state: &mut CustomerState,
    request: &DecisionRequest<'_>,
    record_as: Option<RecordAs<'_>>,
    still_wanted: impl FnOnce() -> bool,
) -> Result<Option<Recorded>, Error> {
    debug_assert_eq!(record_as.is_none(), request.dry_run);
    let decision = decide(env, state, request)?;
    let budget_taken = if request.dry_run {
        Vec::new()
    } else {
        budgeted_actions(&decision, env.catalog)
    };
    if !still_wanted() {
        for action_id in &budget_taken {
            env.budgets.release(action_id);
        }
        return Ok(None);
    }
    let Some(record_as) = record_as else {
        return Ok(Some(Recorded {
            decision,
            log: None,
            budget_taken,
        }));
    };
    let feature_names = env
        .model
        .filter(|_| decision.model_version.is_some())
        .map(crate::model::Model::feature_names);
    // The record keeps the profile as the pipeline read it: before this
    // decision's serves count on their channels.
    let log = LogEntry::Decision {
        record: DecisionRecord::new(
            record_as.decision_id,
            record_as.customer_id,
            request.now,
            request.placement,
            env.catalog,
            record_as.variant,
            &decision,
            DecidedFor {
                profile: &state.profile,
                context: request.context,
                now: request.now,
                shadow: record_as.shadow,
            },
        ),
        feature_names,
    };
    record(
        state,
        record_as.decision_id,
        &decision,
        env.catalog,
        request.now,
    );
    Ok(Some(Recorded {
        decision,
        log: Some(log),
        budget_taken,
    }))
}
