//! Training rows from the decision log: one row per served action of a
//! logged decision, labelled by whether it converted, with its logged
//! selection probability (for off-policy evaluation) and its action id.
//!
//! The features come one of two ways:
//!
//! - **as logged** ([`Features::Logged`]): the values the serving model
//!   scored, for the feature specs of the newest model in the log; rows
//!   scored by a model with other specs, and fallback rows (nothing was
//!   scored), are left out and counted;
//! - **replayed** ([`Features::Replayed`]): any feature specs, computed by
//!   the service's own feature code from each customer's profile as it was
//!   at the decision, rebuilt from the event log ([`nudge_models::replay`]),
//!   the decision's context and engagement, and the catalog's actions. Every
//!   row whose decision also logged values for the same specs is checked
//!   against them: [`LogSummary::replay_checked`] and
//!   [`LogSummary::replay_mismatches`] say how faithful the replay is.

use crate::Error;
use crate::dataset::Dataset;
use ndarray::Array2;
use nudge_models::catalog::{Catalog, Exploration};
use nudge_models::features::{FeatureInput, FeatureSet};
use nudge_models::log::{EventRecord, JoinedDecision};
use nudge_models::replay::Replay;
use serde::Serialize;
use std::collections::BTreeMap;

/// One logged decision's first slot as off-policy evaluation sees it: the
/// actions the logging policy chose among, which one it served with what
/// probability, and what came of it.
#[derive(Debug, Clone)]
pub struct LoggedChoice {
    /// The decision's time (ms since the epoch).
    pub at: i64,
    /// Whether the served action converted (1) or not (0).
    pub reward: f64,
    /// The probability with which the logging policy served it.
    pub logging_probability: f64,
    /// Its position in `candidates`.
    pub logged: usize,
    /// The eligible actions' ids.
    pub candidates: Vec<String>,
    /// Each candidate's V·L·C in the decision's placement (its priority is
    /// the model's propensity times this).
    pub weights: Vec<f64>,
    /// Each candidate's features, one row per candidate, replayed.
    pub features: Array2<f64>,
    /// The placement's exploration, which a policy serving there uses.
    pub exploration: Exploration,
    /// The decision's placement.
    pub placement: String,
}

/// Where a log dataset's features come from.
#[derive(Debug, Clone, Copy)]
pub enum Features<'a> {
    /// The values logged with each decision.
    Logged,
    /// Computed from the replayed profile.
    Replayed {
        /// The feature specs to compute.
        features: &'a FeatureSet,
        /// Every customer's applied events (any order).
        events: &'a [EventRecord],
        /// The catalog whose actions the action terms read.
        catalog: &'a Catalog,
    },
}

/// What became of the log's decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    /// Decisions read.
    pub decisions: usize,
    /// Rows made (served actions kept).
    pub rows: usize,
    /// Served actions left out: the fallback ladder answered, so no model
    /// scored (logged features only).
    pub skipped_fallback: usize,
    /// Served actions left out: scored by a model with other feature specs
    /// (logged features only).
    pub skipped_other_features: usize,
    /// Served actions left out: the customer's event history is incomplete
    /// (retention) or the decision predates the event log (replay only),
    /// with the first reason seen.
    pub skipped_unreplayable: usize,
    /// Why the first unreplayable decision could not be replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreplayable_reason: Option<String>,
    /// Served actions left out: the action is not in the catalog (replay
    /// only).
    pub skipped_unknown_action: usize,
    /// Replayed rows compared with the values logged for the same specs.
    pub replay_checked: usize,
    /// Of those, rows where any value differed.
    pub replay_mismatches: usize,
    /// Decisions kept for off-policy evaluation (replay only).
    pub choices: usize,
}

/// The training rows of `decisions` (in time order, as exported).
pub fn dataset(
    source: &str,
    decisions: &[JoinedDecision],
    features: Features<'_>,
) -> Result<(Dataset, LogSummary), Error> {
    let mut summary = LogSummary {
        decisions: decisions.len(),
        ..LogSummary::default()
    };
    let specs: Vec<String> = match features {
        Features::Logged => decisions
            .iter()
            .rev()
            .find(|decision| !decision.feature_names.is_empty())
            .map(|decision| decision.feature_names.clone())
            .ok_or_else(|| Error::Log {
                file: source.to_owned(),
                reason: "no decision in the log was scored by a model, so no features were logged: give --events (and --features) to compute them by replay".to_owned(),
            })?,
        Features::Replayed { features, .. } => features
            .specs()
            .iter()
            .map(|spec| spec.text().to_owned())
            .collect(),
    };
    // One feature row per served action, by (decision, served) position.
    let mut computed: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    let mut choices = Err(
        "no off-policy evaluation: the log holds features only for the served actions; give --events so the other eligible actions' features are replayed".to_owned(),
    );
    match features {
        Features::Logged => {
            for (index, decision) in decisions.iter().enumerate() {
                for (position, served) in decision.record.served.iter().enumerate() {
                    if decision.record.model_version.is_none() || served.features.is_empty() {
                        summary.skipped_fallback += 1;
                    } else if decision.feature_names != specs {
                        summary.skipped_other_features += 1;
                    } else {
                        computed.insert((index, position), served.features.clone());
                    }
                }
            }
        }
        Features::Replayed {
            features,
            events,
            catalog,
        } => {
            let mut kept = Vec::new();
            replay(
                decisions,
                &Replaying {
                    features,
                    events,
                    catalog,
                    specs: &specs,
                },
                &mut computed,
                &mut kept,
                &mut summary,
            );
            kept.sort_by_key(|choice: &LoggedChoice| choice.at);
            summary.choices = kept.len();
            choices = Ok(kept);
        }
    }
    let columns = specs.len();
    let mut x = Array2::zeros((computed.len(), columns));
    let mut y = Vec::with_capacity(computed.len());
    let mut times = Vec::with_capacity(computed.len());
    let mut action_ids = Vec::with_capacity(computed.len());
    let mut propensities = Vec::with_capacity(computed.len());
    for (row, ((index, position), values)) in computed.into_iter().enumerate() {
        let decision = &decisions[index];
        let served = &decision.record.served[position];
        for (cell, value) in x.row_mut(row).iter_mut().zip(values) {
            *cell = value;
        }
        y.push(
            decision
                .outcomes
                .get(position)
                .is_some_and(|outcomes| outcomes.converted),
        );
        times.push(decision.record.at.millis());
        action_ids.push(served.action_id.clone());
        propensities.push(served.selection_probability);
    }
    summary.rows = y.len();
    if y.is_empty() {
        return Err(Error::Log {
            file: source.to_owned(),
            reason: format!(
                "no served action is left to train on ({} decisions; {} fallback, {} scored with other features, {} not replayable{})",
                summary.decisions,
                summary.skipped_fallback,
                summary.skipped_other_features,
                summary.skipped_unreplayable,
                summary
                    .unreplayable_reason
                    .as_ref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default()
            ),
        });
    }
    let dataset = Dataset {
        source: source.to_owned(),
        features: specs,
        x,
        y,
        times: Some(times),
        action_ids: Some(action_ids),
        propensities: Some(propensities),
        columns: Vec::new(),
        choices,
    };
    Ok((dataset, summary))
}

/// What a replay reads.
struct Replaying<'a> {
    features: &'a FeatureSet,
    events: &'a [EventRecord],
    catalog: &'a Catalog,
    specs: &'a [String],
}

/// Computes the features of every served action by replaying each
/// customer's events, checking rows against logged values of the same
/// specs; keeps each model-scored decision's first slot, with every
/// eligible action's features, for off-policy evaluation.
fn replay(
    decisions: &[JoinedDecision],
    replaying: &Replaying<'_>,
    computed: &mut BTreeMap<(usize, usize), Vec<f64>>,
    choices: &mut Vec<LoggedChoice>,
    summary: &mut LogSummary,
) {
    let Replaying {
        features,
        events,
        catalog,
        specs,
    } = *replaying;
    let mut by_customer: BTreeMap<&str, Vec<EventRecord>> = BTreeMap::new();
    for event in events {
        by_customer
            .entry(event.customer_id.as_str())
            .or_default()
            .push(event.clone());
    }
    let mut decisions_by_customer: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, decision) in decisions.iter().enumerate() {
        decisions_by_customer
            .entry(decision.record.customer_id.as_str())
            .or_default()
            .push(index);
    }
    for (customer, mut indices) in decisions_by_customer {
        // Oldest first, so each event is applied once.
        indices.sort_by_key(|&index| {
            let record = &decisions[index].record;
            (record.events_applied, record.at)
        });
        let mut replay = Replay::new(by_customer.remove(customer).unwrap_or_default());
        for index in indices {
            let decision = &decisions[index];
            let record = &decision.record;
            let profile = match replay.profile_at(record) {
                Ok(profile) => profile,
                Err(error) => {
                    summary.skipped_unreplayable += record.served.len();
                    summary
                        .unreplayable_reason
                        .get_or_insert_with(|| error.to_string());
                    continue;
                }
            };
            let input = FeatureInput {
                profile,
                context: &record.context,
                now: record.at,
            };
            for (position, served) in record.served.iter().enumerate() {
                let Some(action) = catalog.action(&served.action_id) else {
                    summary.skipped_unknown_action += 1;
                    continue;
                };
                let values = features.extract_one(&input, action);
                if decision.feature_names == specs && !served.features.is_empty() {
                    summary.replay_checked += 1;
                    if served.features != values {
                        summary.replay_mismatches += 1;
                    }
                }
                computed.insert((index, position), values);
            }
            if let Some(choice) = logged_choice(decision, features, catalog, &input) {
                choices.push(choice);
            }
        }
    }
}

/// The first slot of a model-scored decision, with every eligible action's
/// features; `None` when the decision cannot be evaluated (a fallback,
/// nothing served, no eligible list, an action or placement no longer in
/// the catalog).
fn logged_choice(
    decision: &JoinedDecision,
    features: &FeatureSet,
    catalog: &Catalog,
    input: &FeatureInput<'_>,
) -> Option<LoggedChoice> {
    let record = &decision.record;
    if record.fallback.is_some() || record.model_version.is_none() {
        return None;
    }
    let served = record.served.first()?;
    let logged = record
        .eligible
        .iter()
        .position(|id| *id == served.action_id)?;
    let placement = catalog.placement(&record.placement)?;
    let actions: Vec<_> = record
        .eligible
        .iter()
        .map(|id| catalog.action(id))
        .collect::<Option<_>>()?;
    let mut matrix = Array2::zeros((actions.len(), features.len()));
    for (mut row, action) in matrix.rows_mut().into_iter().zip(&actions) {
        for (cell, value) in row.iter_mut().zip(features.extract_one(input, action)) {
            *cell = value;
        }
    }
    Some(LoggedChoice {
        at: record.at.millis(),
        reward: if decision.outcomes.first().is_some_and(|o| o.converted) {
            1.0
        } else {
            0.0
        },
        logging_probability: served.selection_probability,
        logged,
        candidates: record.eligible.clone(),
        weights: actions
            .iter()
            .map(|action| placement.value_lever_context(action.index))
            .collect(),
        features: matrix,
        exploration: placement.exploration,
        placement: record.placement.clone(),
    })
}
