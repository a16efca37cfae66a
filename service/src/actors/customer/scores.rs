//! How the actor keeps its customer's profile scores fresh
//! ([`nudge_models::scores`]): an event or outcome a score reads marks them
//! stale and refreshes them off the decision path unless the throttle holds
//! the refresh back; a decision or a journey step refreshes them first only
//! when they are stale, aged or computed under other definitions or models.

use super::CustomerActor;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::scores::{RefreshPath, ScoreModels, Staleness};
use nudge_models::time::Timestamp;

impl CustomerActor {
    /// Marks the scores stale when an event named `name` can change them.
    pub(super) fn note_event_for_scores(
        &mut self,
        catalog: &Catalog,
        models: &ScoreModels,
        name: &str,
    ) {
        if catalog.scores.reads_event(models, name) {
            self.state.profile.scores.stale = true;
        }
    }

    /// Marks the scores stale when engagement (an outcome) can change them.
    pub(super) fn note_engagement_for_scores(&mut self, catalog: &Catalog, models: &ScoreModels) {
        if catalog.scores.reads_engagement(models) {
            self.state.profile.scores.stale = true;
        }
    }

    /// Refreshes the customer's scores if they are due on `path`.
    pub(super) fn refresh_scores(
        &mut self,
        catalog: &Catalog,
        models: &ScoreModels,
        now: Timestamp,
        path: RefreshPath,
    ) {
        if let Some(reason) =
            catalog
                .scores
                .refresh_due(models, &self.state.profile.scores, now, path)
        {
            refresh_scores_of(
                &self.shared,
                &mut self.state,
                catalog,
                models,
                now,
                (path, reason),
            );
        }
    }
}

/// Refreshes `state`'s scores, due on `path` for `reason`
/// ([`nudge_models::scores::Scores::refresh_due`]), counting it.
pub(super) fn refresh_scores_of(
    shared: &crate::shared::Shared,
    state: &mut CustomerState,
    catalog: &Catalog,
    models: &ScoreModels,
    now: Timestamp,
    (path, reason): (RefreshPath, Staleness),
) {
    catalog
        .scores
        .refresh(models, &mut state.profile, &catalog.known_events, now);
    let path = match path {
        RefreshPath::Decision => "decision",
        RefreshPath::Background => "background",
    };
    shared.metrics.score_refreshed(path, reason.code());
}
