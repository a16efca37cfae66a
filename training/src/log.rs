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
use nudge_models::catalog::Catalog;
use nudge_models::features::{FeatureInput, FeatureSet};
use nudge_models::log::{EventRecord, JoinedDecision};
use nudge_models::replay::Replay;
use serde::Serialize;
use std::collections::BTreeMap;

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
        } => replay(
            decisions,
            features,
            events,
            catalog,
            &specs,
            &mut computed,
            &mut summary,
        ),
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
    };
    Ok((dataset, summary))
}

/// Computes `features` for every served action by replaying each
/// customer's events, checking rows against logged values of the same
/// specs.
fn replay(
    decisions: &[JoinedDecision],
    features: &FeatureSet,
    events: &[EventRecord],
    catalog: &Catalog,
    specs: &[String],
    computed: &mut BTreeMap<(usize, usize), Vec<f64>>,
    summary: &mut LogSummary,
) {
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
        }
    }
}
