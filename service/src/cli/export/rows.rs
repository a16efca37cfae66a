//! The flattening of one logged decision into the rows of the Parquet export:
//! one row per served action, with the decision's columns repeated and the
//! outcomes reported for that action joined in (the domain's
//! [`LoggedDecision::training_rows`] join). Pure: no Arrow, no I/O, no wire
//! types.

use std::collections::BTreeMap;

use nudge_models::log::{
    EngagementCounts, JoinedOutcomes, LoggedDecision, LoggedScores, ShadowRecord,
};
use nudge_models::value::AttrValue;

/// One row of the Parquet export, borrowing its text from the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow<'a> {
    /// The decision's columns, the same in each of its rows.
    pub decision: DecisionColumns<'a>,
    /// The served action and what came of it; `None` in the one row of a
    /// decision that served nothing (its action columns are null).
    pub serve: Option<ServeColumns<'a>>,
}

/// The columns that describe the decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionColumns<'a> {
    pub decision_id: &'a str,
    pub customer_id: &'a str,
    /// Milliseconds since the Unix epoch, UTC.
    pub decided_at: i64,
    pub placement: &'a str,
    pub catalog_version: &'a str,
    /// `None` when no model scored (the fallback ladder answered).
    pub model_version: Option<&'a str>,
    pub variant: &'a str,
    /// The fallback reason's code; `None` when the model scored.
    pub fallback: Option<&'static str>,
    /// The model's feature specs, in the order of [`ServeColumns::features`].
    pub feature_names: &'a [String],
    /// The request context.
    pub context: &'a BTreeMap<String, AttrValue>,
    /// The actions that competed for the first slot.
    pub eligible: &'a [String],
    /// Events the profile had applied; `None` before the event log.
    pub events_applied: Option<u64>,
    /// Engagement per channel.
    pub engagement: &'a BTreeMap<String, EngagementCounts>,
    /// What the shadow model made of the decision.
    pub shadow: Option<&'a ShadowRecord>,
    /// The customer's profile scores and tiers.
    pub scores: &'a LoggedScores,
}

/// The columns of one served action, its outcomes joined.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeColumns<'a> {
    pub rank: u32,
    pub action_id: &'a str,
    pub channel: &'a str,
    pub category: &'a str,
    pub score: f64,
    pub propensity: f64,
    pub selection_probability: f64,
    /// Empty in a fallback.
    pub features: &'a [f64],
    pub outcomes: JoinedOutcomes,
    /// The shadow model's propensity for this action.
    pub shadow_propensity: Option<f64>,
}

/// The Parquet rows of one decision: one per served action in rank order, or
/// a single row with null action columns if it served nothing.
pub fn rows(decision: &LoggedDecision) -> Vec<ExportRow<'_>> {
    let record = &decision.record;
    let columns = DecisionColumns {
        decision_id: &record.decision_id,
        customer_id: &record.customer_id,
        decided_at: record.at.millis(),
        placement: &record.placement,
        catalog_version: &record.catalog_version,
        model_version: record.model_version.as_deref(),
        variant: &record.variant,
        fallback: record.fallback.map(|reason| reason.code()),
        feature_names: &decision.feature_names,
        context: &record.context,
        eligible: &record.eligible,
        events_applied: record.events_applied,
        engagement: &record.engagement,
        shadow: record.shadow.as_ref(),
        scores: &record.scores,
    };
    if record.served.is_empty() {
        return vec![ExportRow {
            decision: columns,
            serve: None,
        }];
    }
    decision
        .training_rows()
        .map(|row| ExportRow {
            decision: columns,
            serve: Some(ServeColumns {
                rank: row.served.rank,
                action_id: &row.served.action_id,
                channel: &row.served.channel,
                category: &row.served.category,
                score: row.served.score,
                propensity: row.served.propensity,
                selection_probability: row.served.selection_probability,
                features: &row.served.features,
                outcomes: row.outcomes,
                shadow_propensity: record.shadow.as_ref().and_then(|shadow| {
                    let position = usize::try_from(row.served.rank.saturating_sub(1)).ok()?;
                    shadow.propensities.get(position).copied()
                }),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_models::ledger::OutcomeKind;
    use nudge_models::log::{DecisionRecord, OutcomeRecord, ServedRecord};
    use nudge_models::pipeline::FallbackReason;
    use nudge_models::time::Timestamp;

    fn outcome(action: &str, kind: OutcomeKind, at: i64, reward: Option<f64>) -> OutcomeRecord {
        OutcomeRecord {
            decision_id: "d-1".into(),
            decision_at: Timestamp::from_millis(1_000_500),
            customer_id: "c-1".into(),
            action_id: action.into(),
            outcome: kind,
            at: Timestamp::from_millis(at),
            reward,
        }
    }

    fn served(action: &str, rank: u32, features: Vec<f64>) -> ServedRecord {
        ServedRecord {
            action_id: action.into(),
            channel: "in_app".into(),
            category: "upsell".into(),
            rank,
            score: 2.5,
            propensity: 0.25,
            selection_probability: 0.9,
            features,
        }
    }

    fn record(served: Vec<ServedRecord>, fallback: Option<FallbackReason>) -> DecisionRecord {
        DecisionRecord {
            decision_id: "d-1".into(),
            customer_id: "c-1".into(),
            at: Timestamp::from_millis(1_000_500),
            placement: "home".into(),
            catalog_version: "cat-1".into(),
            model_version: fallback.is_none().then(|| "m-1".into()),
            variant: "default".into(),
            fallback,
            served,
            context: std::collections::BTreeMap::new(),
            eligible: Vec::new(),
            events_applied: None,
            engagement: std::collections::BTreeMap::new(),
            shadow: None,
            scores: Default::default(),
        }
    }

    #[test]
    fn one_row_per_served_action_with_its_outcomes() {
        let decision = LoggedDecision {
            record: record(
                vec![
                    served("a", 1, vec![1.0, 3.0]),
                    served("b", 2, vec![1.0, 0.0]),
                ],
                None,
            ),
            feature_names: vec!["bias".into(), "x".into()],
            outcomes: vec![
                outcome("a", OutcomeKind::Impression, 1_500_000, None),
                outcome("a", OutcomeKind::Click, 1_800_000, None),
                outcome("a", OutcomeKind::Click, 2_000_000, None),
                outcome("a", OutcomeKind::Conversion, 3_000_000, Some(20.0)),
                outcome("a", OutcomeKind::Conversion, 3_500_000, Some(5.0)),
                outcome("zzz", OutcomeKind::Click, 1_000_000, Some(7.0)),
            ],
        };
        let rows = rows(&decision);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].decision.decided_at, 1_000_500);
        assert_eq!(rows[0].decision.model_version, Some("m-1"));
        assert_eq!(rows[0].decision.fallback, None);
        assert_eq!(rows[0].decision, rows[1].decision);
        let a = rows[0].serve.as_ref().expect("served");
        assert_eq!((a.rank, a.action_id, a.features), (1, "a", &[1.0, 3.0][..]));
        assert_eq!(
            a.outcomes,
            JoinedOutcomes {
                impression_at: Some(Timestamp::from_millis(1_500_000)),
                click_at: Some(Timestamp::from_millis(1_800_000)),
                conversion_at: Some(Timestamp::from_millis(3_000_000)),
                reward: 25.0,
                converted: true,
                ..JoinedOutcomes::default()
            }
        );
        let b = rows[1].serve.as_ref().expect("served");
        assert_eq!(b.action_id, "b");
        assert_eq!(b.outcomes, JoinedOutcomes::default());
    }

    #[test]
    fn a_decision_that_served_nothing_is_one_row_without_action() {
        let decision = LoggedDecision {
            record: record(Vec::new(), Some(FallbackReason::ModelMissing)),
            feature_names: Vec::new(),
            outcomes: Vec::new(),
        };
        let rows = rows(&decision);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].serve, None);
        assert_eq!(rows[0].decision.model_version, None);
        assert_eq!(rows[0].decision.fallback, Some("model_missing"));
    }
}
