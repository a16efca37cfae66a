//! `Decide` on the customer's actor: the pipeline on the customer's own
//! state, its profile scores refreshed first when stale, suggested send
//! times for outbound actions, and the decision's durable write.

use super::{CustomerActor, Durable, budget_changes, scores};
use crate::error::{BudgetedCall, ServiceError, Stage};
use crate::requests::{Deadline, DecideInput, DecideReply};
use crate::store::Commit;
use actix::prelude::*;
use nudge_models::pipeline::{
    self, DecisionRequest, Environment, FallbackReason, RecordAs, Recorded, Scoring,
};
use nudge_models::scores::RefreshPath;
use nudge_models::time::Timestamp;
use std::sync::Arc;
use std::time::Instant;

/// Decide for this customer.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable<DecideReply>, ServiceError>")]
pub struct Decide {
    /// The validated request.
    pub input: Arc<DecideInput>,
    /// When the answer is due, and whose deadline that is.
    pub deadline: Deadline,
    /// Model, or fallback because the mailbox was saturated.
    pub scoring: Scoring,
}

impl Handler<Decide> for CustomerActor {
    type Result = Result<Durable<DecideReply>, ServiceError>;

    fn handle(&mut self, message: Decide, context: &mut Self::Context) -> Self::Result {
        let now = self.touch();
        let arrived = Instant::now();
        self.check_loaded(context)?;
        let deadline = message.deadline;
        if deadline.passed(arrived) {
            return Err(deadline.exceeded(BudgetedCall::Decide, Stage::Queued));
        }
        if !message.input.dry_run {
            self.check_writable()?;
        }
        let headroom = std::time::Duration::from_millis(self.shared.config.fallback_headroom_ms);
        let scoring = match message.scoring {
            Scoring::Model if deadline.remaining(arrived) < headroom => {
                Scoring::Fallback(FallbackReason::Deadline)
            }
            scoring => scoring,
        };
        let input = &message.input;
        let catalog = self.shared.catalog.load_full();
        let serving = self.shared.models.serving();
        let (variant, model) = serving.for_customer(&self.customer_id);
        let decision_id = (!input.dry_run).then(|| uuid::Uuid::new_v4().simple().to_string());
        let seed = seed_of(decision_id.as_deref().unwrap_or(&input.request_id), now);
        let environment = Environment {
            catalog: &catalog,
            model: model.map(|model| &**model),
            budgets: &self.shared.budgets,
        };
        let request = DecisionRequest {
            placement: &input.placement,
            context: &input.context,
            candidates: &input.candidates,
            limit: input.limit,
            dry_run: input.dry_run,
            scoring,
            seed,
            now,
        };
        let record_as = decision_id.as_deref().map(|decision_id| RecordAs {
            decision_id,
            customer_id: &self.customer_id,
            variant,
            shadow: serving.shadow().map(|model| &**model),
        });
        // A caller that has given up gets nothing recorded, and the budget
        // units the decision took are given back: a late answer changes
        // nothing.
        let before = (!input.dry_run).then(|| self.state.clone());
        // Stale profile scores are refreshed first (and written with the
        // decision); a dry run refreshes a copy, changing nothing.
        let scores_due = catalog.scores.refresh_due(
            &serving.score_models,
            &self.state.profile.scores,
            now,
            RefreshPath::Decision,
        );
        let mut dry_copy = (scores_due.is_some() && input.dry_run).then(|| self.state.clone());
        let state = dry_copy.as_mut().unwrap_or(&mut self.state);
        if let Some(reason) = scores_due {
            scores::refresh_scores_of(
                &self.shared,
                state,
                &catalog,
                &serving.score_models,
                now,
                (RefreshPath::Decision, reason),
            );
        }
        let recorded =
            pipeline::decide_and_record(&environment, state, &request, record_as, || {
                !deadline.passed(Instant::now())
            })?;
        let Some(Recorded {
            decision,
            log,
            budget_taken,
        }) = recorded
        else {
            return Err(deadline.exceeded(BudgetedCall::Decide, Stage::Queued));
        };
        // Suggested send times, against the state before this decision (its
        // own contact does not count against its caps and cooldown).
        let send_at = self.send_times(&catalog, before.as_ref(), &decision, now);
        let commit = match (log, before) {
            (Some(log), Some(before)) => {
                self.persist(&before, vec![log], budget_changes(budget_taken, 1))
            }
            _ => Commit::none(),
        };
        self.shared
            .record_decision(&catalog, &input.placement, variant, &decision);
        if let (Some(trial), Some(_)) = (serving.trial(), &decision_id) {
            trial.served(&self.customer_id, decision.served.len());
        }
        Ok(Durable {
            value: DecideReply {
                decision_id,
                decision,
                catalog_version: catalog.version.clone(),
                variant: variant.to_owned(),
                dry_run: input.dry_run,
                send_at,
            },
            commit,
        })
    }
}

/// A 64-bit seed from the decision id and time (FNV-1a).
fn seed_of(text: &str, now: Timestamp) -> u64 {
    nudge_models::hash::fnv1a(text.bytes().chain(now.millis().to_le_bytes()))
}
