//! Send-time optimization in the actor ([`nudge_models::send_time`]): the
//! customer's engagements counted on their clock (and the population's), and
//! the suggested send time of each outbound action a decision serves.

use super::CustomerActor;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::Decision;
use nudge_models::send_time::{self, SendTime};
use nudge_models::time::Timestamp;

impl CustomerActor {
    /// Counts an applied event that shows when the customer engages.
    pub(super) fn note_event_for_send_times(
        &mut self,
        catalog: &Catalog,
        name: &str,
        at: Timestamp,
    ) {
        let engages = catalog
            .send_time
            .as_ref()
            .is_some_and(|settings| settings.is_engagement(name));
        if engages {
            self.record_engagement(catalog, at);
        }
    }

    /// Counts an impression or click of an action on a send-time channel.
    pub(super) fn note_outcome_for_send_times(
        &mut self,
        catalog: &Catalog,
        action_id: &str,
        outcome: OutcomeKind,
        at: Timestamp,
    ) {
        let engages = matches!(outcome, OutcomeKind::Impression | OutcomeKind::Click)
            && catalog.send_time.as_ref().is_some_and(|settings| {
                catalog
                    .action(action_id)
                    .is_some_and(|action| settings.covers(&action.channel))
            });
        if engages {
            self.record_engagement(catalog, at);
        }
    }

    fn record_engagement(&mut self, catalog: &Catalog, at: Timestamp) {
        if let Some(hour) = send_time::record_engagement(catalog, &mut self.state.profile, at) {
            self.shared.population.record(hour);
        }
    }

    /// The suggested send time of each action `decision` served, in order,
    /// against `before` (the state before the decision; the actor's own
    /// for a dry run, which changed nothing); empty when none is outbound.
    pub(super) fn send_times(
        &self,
        catalog: &Catalog,
        before: Option<&CustomerState>,
        decision: &Decision,
        now: Timestamp,
    ) -> Vec<Option<SendTime>> {
        let Some(settings) = &catalog.send_time else {
            return Vec::new();
        };
        if !decision
            .served
            .iter()
            .any(|served| settings.covers(&served.channel))
        {
            return Vec::new();
        }
        let state = before.unwrap_or(&self.state);
        let population = self.shared.population.snapshot();
        decision
            .served
            .iter()
            .map(|served| {
                let action = catalog.action(&served.action_id)?;
                send_time::suggest(catalog, state, action, &population, now, None)
            })
            .collect()
    }
}
