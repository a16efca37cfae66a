//! The changes a customer's actor applies and the engine answers once they
//! are durable: events, outcomes, consent, suppression, forget.

use super::Engine;
use crate::actors::customer::{ChangeSuppression, Forget, ReportOutcome, SetConsent, Track};
use crate::error::{BudgetedCall, ServiceError};
use crate::requests::{Deadline, OutcomeInput, SuppressionInput};
use crate::store::{Commit, Erased};
use nudge_models::customer::{ConsentState, OutcomeResult, TrackResult};
use nudge_models::profile::Event;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Engine {
    /// Applies events of one customer, in order, within the smaller of
    /// `client_deadline` and the service budget; answers once they are
    /// durable. When the budget runs out first the error is
    /// [`ServiceError::BudgetExhausted`]: RESOURCE_EXHAUSTED while the events
    /// were not applied, UNAVAILABLE while they were being stored (they may
    /// still be). Either way a retry with the same event ids is safe: an
    /// event id is applied once.
    pub async fn track_within(
        &self,
        customer_id: &str,
        events: Vec<Event>,
        client_deadline: Option<Duration>,
    ) -> Result<Vec<TrackResult>, ServiceError> {
        let deadline = Deadline::new(Instant::now(), client_deadline, self.shared.config.budget());
        let events: Arc<[Event]> = events.into();
        self.call_durable_within(customer_id, deadline, BudgetedCall::Track, |_| Track {
            events: events.clone(),
            deadline: Some(deadline),
        })
        .await
    }

    /// Applies events of one customer, in order; answers once they are
    /// durable, however long that takes (no budget: for library callers;
    /// the `Track` call uses [`Engine::track_within`]).
    pub async fn track(
        &self,
        customer_id: &str,
        events: Vec<Event>,
    ) -> Result<Vec<TrackResult>, ServiceError> {
        let (results, commit) = self.track_deferred(customer_id, events).await?;
        commit.wait().await?;
        Ok(results)
    }

    /// Applies events of one customer, in order, without waiting for them to
    /// be durable: the returned [`Commit`] resolves when they are. For
    /// streams, which keep many commits in flight and acknowledge at the end.
    pub async fn track_deferred(
        &self,
        customer_id: &str,
        events: Vec<Event>,
    ) -> Result<(Vec<TrackResult>, Commit), ServiceError> {
        let events: Arc<[Event]> = events.into();
        let durable = self
            .call(customer_id, |_| Track {
                events: events.clone(),
                deadline: None,
            })
            .await??;
        Ok((durable.value, durable.commit))
    }

    /// Applies an outcome within the smaller of `client_deadline` and the
    /// service budget; answers once it is durable. When the budget runs out
    /// first, the error is as for [`Engine::track_within`], and a retry is
    /// safe: an outcome is applied once per decision, action and kind.
    pub async fn report_outcome(
        &self,
        input: OutcomeInput,
        client_deadline: Option<Duration>,
    ) -> Result<OutcomeResult, ServiceError> {
        let deadline = Deadline::new(Instant::now(), client_deadline, self.shared.config.budget());
        let OutcomeInput {
            customer_id,
            decision_id,
            action_id,
            outcome,
            reward,
            at,
            dispatch_id,
        } = input;
        self.call_durable_within(&customer_id, deadline, BudgetedCall::Outcome, |_| {
            ReportOutcome {
                decision_id: decision_id.clone(),
                action_id: action_id.clone(),
                outcome,
                reward,
                at,
                dispatch_id: dispatch_id.clone(),
                deadline,
            }
        })
        .await
    }

    /// Refuses a channel the running catalog does not have, naming the
    /// request's `field`.
    pub(super) fn check_channel(&self, field: &str, channel: &str) -> Result<(), ServiceError> {
        if self.catalog().channel(channel).is_none() {
            return Err(ServiceError::invalid(
                field,
                format!("'{channel}' is not in the catalog"),
            ));
        }
        Ok(())
    }

    /// Records consent; returns the previous state.
    pub async fn set_consent(
        &self,
        customer_id: &str,
        channel: &str,
        state: Option<ConsentState>,
    ) -> Result<Option<ConsentState>, ServiceError> {
        self.check_channel("channel", channel)?;
        self.call_durable(customer_id, |_| SetConsent {
            channel: channel.to_owned(),
            state,
        })
        .await
    }

    /// Adds or lifts a suppression; returns whether anything changed.
    pub async fn change_suppression(&self, input: SuppressionInput) -> Result<bool, ServiceError> {
        if let Some(channel) = &input.channel {
            self.check_channel("channel", channel)?;
        }
        let SuppressionInput {
            customer_id,
            channel,
            reason,
            note,
            lift,
        } = input;
        self.call_durable(&customer_id, |_| ChangeSuppression {
            channel: channel.clone(),
            reason,
            note: note.clone(),
            lift,
        })
        .await
    }

    /// Erases every trace of the customer: live state, stored state, decision
    /// and outcome log entries. Answers once the erasure is durable.
    pub async fn forget(&self, customer_id: &str) -> Result<Erased, ServiceError> {
        let durable = self.call(customer_id, |_| Forget).await??;
        let had_state = durable.value;
        let mut erased = durable.commit.wait().await?;
        erased.state |= had_state;
        Ok(erased)
    }
}
