//! The flattening of one logged decision into the rows of the Parquet export:
//! one row per served action, with the decision's columns repeated and the
//! outcomes reported for that action joined in. Pure: no Arrow, no I/O.

use nudge_proto::v1::{LoggedDecision, LoggedOutcome, LoggedServe};
use prost_types::Timestamp;

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
    /// The fallback reason; `None` when the model scored.
    pub fallback: Option<&'a str>,
    /// The model's feature specs, in the order of [`ServeColumns::features`].
    pub feature_names: &'a [String],
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
}

/// The outcomes reported for one served action, one column per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JoinedOutcomes {
    /// The earliest time of each kind, in milliseconds since the epoch.
    pub impression_at: Option<i64>,
    pub click_at: Option<i64>,
    pub conversion_at: Option<i64>,
    pub dismiss_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    /// The sum of the rewards reported with any of them; 0 when none was.
    pub reward: f64,
    /// Whether a conversion was reported.
    pub converted: bool,
}

impl JoinedOutcomes {
    /// Joins `outcomes` (all of one decision) for the action `action_id`.
    /// Outcomes of another action are skipped, and so are the times of kinds
    /// this client does not know (a newer server); their rewards still count.
    pub fn join(action_id: &str, outcomes: &[LoggedOutcome]) -> Self {
        let mut joined = Self::default();
        for outcome in outcomes.iter().filter(|o| o.action_id == action_id) {
            joined.reward += outcome.reward;
            let slot = match outcome.outcome.as_str() {
                "impression" => &mut joined.impression_at,
                "click" => &mut joined.click_at,
                "conversion" => {
                    joined.converted = true;
                    &mut joined.conversion_at
                }
                "dismiss" => &mut joined.dismiss_at,
                "delivered" => &mut joined.delivered_at,
                "failed" => &mut joined.failed_at,
                _ => continue,
            };
            if let Some(at) = outcome.at.as_ref().map(millis) {
                *slot = Some(slot.map_or(at, |first| first.min(at)));
            }
        }
        joined
    }
}

/// A protobuf timestamp in whole milliseconds since the Unix epoch.
pub fn millis(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000)
        .saturating_add(i64::from(ts.nanos.div_euclid(1_000_000)))
}

/// Why a decision cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The server sent a decision without its time.
    #[error("decision '{0}' has no decided_at")]
    MissingDecidedAt(String),
}

/// The Parquet rows of one decision: one per served action in rank order, or
/// a single row with null action columns if it served nothing.
pub fn rows(decision: &LoggedDecision) -> Result<Vec<ExportRow<'_>>, RowError> {
    let decided_at = decision
        .decided_at
        .as_ref()
        .map(millis)
        .ok_or_else(|| RowError::MissingDecidedAt(decision.decision_id.clone()))?;
    let columns = DecisionColumns {
        decision_id: &decision.decision_id,
        customer_id: &decision.customer_id,
        decided_at,
        placement: &decision.placement,
        catalog_version: &decision.catalog_version,
        model_version: non_empty(&decision.model_version),
        variant: &decision.variant,
        fallback: non_empty(&decision.fallback),
        feature_names: &decision.feature_names,
    };
    if decision.served.is_empty() {
        return Ok(vec![ExportRow {
            decision: columns,
            serve: None,
        }]);
    }
    Ok(decision
        .served
        .iter()
        .map(|serve| ExportRow {
            decision: columns,
            serve: Some(serve_columns(serve, &decision.outcomes)),
        })
        .collect())
}

fn serve_columns<'a>(serve: &'a LoggedServe, outcomes: &[LoggedOutcome]) -> ServeColumns<'a> {
    ServeColumns {
        rank: serve.rank,
        action_id: &serve.action_id,
        channel: &serve.channel,
        category: &serve.category,
        score: serve.score,
        propensity: serve.propensity,
        selection_probability: serve.selection_probability,
        features: &serve.features,
        outcomes: JoinedOutcomes::join(&serve.action_id, outcomes),
    }
}

/// `text`, or `None` if it is empty (fields where empty means "none").
fn non_empty(text: &str) -> Option<&str> {
    if text.is_empty() { None } else { Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::export::tests::{at, outcome};

    #[test]
    fn one_row_per_served_action_with_its_outcomes() {
        let decision = LoggedDecision {
            decision_id: "d-1".into(),
            customer_id: "c-1".into(),
            decided_at: at(1_000_500),
            placement: "home".into(),
            catalog_version: "cat-1".into(),
            model_version: "m-1".into(),
            variant: "default".into(),
            fallback: String::new(),
            feature_names: vec!["bias".into(), "x".into()],
            served: vec![
                LoggedServe {
                    action_id: "a".into(),
                    channel: "in_app".into(),
                    category: "upsell".into(),
                    rank: 1,
                    score: 2.5,
                    propensity: 0.25,
                    selection_probability: 0.9,
                    features: vec![1.0, 3.0],
                },
                LoggedServe {
                    action_id: "b".into(),
                    rank: 2,
                    features: vec![1.0, 0.0],
                    ..Default::default()
                },
            ],
            outcomes: vec![
                outcome("a", "click", 2_000_000, None),
                outcome("a", "impression", 1_500_000, None),
                outcome("a", "click", 1_800_000, None),
                outcome("a", "conversion", 3_000_000, Some(20.0)),
                outcome("a", "conversion", 3_500_000, Some(5.0)),
                outcome("a", "teleported", 3_600_000, Some(1.0)),
                outcome("zzz", "click", 1_000_000, Some(7.0)),
            ],
        };
        let rows = rows(&decision).expect("complete decision");
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
                impression_at: Some(1_500_000),
                click_at: Some(1_800_000),
                conversion_at: Some(3_000_000),
                reward: 26.0,
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
            decision_id: "d-2".into(),
            decided_at: at(0),
            fallback: "model_missing".into(),
            ..Default::default()
        };
        let rows = rows(&decision).expect("complete decision");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].serve, None);
        assert_eq!(rows[0].decision.model_version, None);
        assert_eq!(rows[0].decision.fallback, Some("model_missing"));
    }

    #[test]
    fn a_decision_without_time_is_refused() {
        let decision = LoggedDecision {
            decision_id: "d-3".into(),
            ..Default::default()
        };
        assert_eq!(
            rows(&decision).map(|rows| rows.len()),
            Err(RowError::MissingDecidedAt("d-3".into()))
        );
    }

    #[test]
    fn timestamps_become_whole_milliseconds() {
        let ts = Timestamp {
            seconds: 1_714_557_600,
            nanos: 250_999_999,
        };
        assert_eq!(millis(&ts), 1_714_557_600_250);
        assert_eq!(
            millis(&Timestamp {
                seconds: -1,
                nanos: 500_000_000
            }),
            -500
        );
    }
}
