//! The decision log's records, shared by the service (which writes them), its
//! exports and the training jobs (which read them): one [`DecisionRecord`] per
//! recorded (non-dry-run) decision, one [`OutcomeRecord`] per applied outcome,
//! joined as a [`LoggedDecision`], and the join that turns one logged decision
//! into training rows ([`LoggedDecision::training_rows`]).
//!
//! Records are serde types: the embedded store keeps them as MessagePack with
//! field names, so a field can be added later without rewriting old entries.
//! Outcome kinds and fallback reasons are enums written as their lowercase
//! codes (`click`, `model_missing`).

use crate::catalog::{Catalog, Exploration};
use crate::ledger::OutcomeKind;
use crate::pipeline::{Decision, FallbackReason};
use crate::profile::{ChannelEngagement, Event, Profile};
use crate::time::Timestamp;
use crate::value::AttrValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One served action, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedRecord {
    /// The action.
    pub action_id: String,
    /// Its channel.
    pub channel: String,
    /// Its category.
    pub category: String,
    /// 1-based rank.
    pub rank: u32,
    /// Priority P·V·L·C.
    pub score: f64,
    /// Model propensity (0 in a fallback).
    pub propensity: f64,
    /// Probability that the logging policy chose it for its slot: what
    /// off-policy evaluation divides by.
    pub selection_probability: f64,
    /// The feature values the model scored (empty in a fallback), in the
    /// order of the model's feature specs. Stored in the narrowest form that
    /// keeps each value exactly ([`narrow_floats`]).
    #[serde(serialize_with = "narrow_floats")]
    pub features: Vec<f64>,
}

/// Serializes floats in the narrowest form that reads back as the same
/// `f64`: a whole number as an integer (one byte for 0 to 127 in
/// MessagePack, against nine for a double), a value a single-precision float
/// holds exactly as one, anything else as a double. Features are mostly
/// counts, flags and days, so a decision's log record shrinks from ~2.3 KB
/// to well under 1 KB; reading needs nothing special, since a double field
/// accepts integers and single-precision floats. Text formats (JSON) get
/// plain doubles: their shortest decimal form of a single-precision float
/// need not read back as the same double.
fn narrow_floats<S: serde::Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    if serializer.is_human_readable() {
        return values.serialize(serializer);
    }
    /// Beyond 2^53 not every whole number is a double.
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    let mut sequence = serializer.serialize_seq(Some(values.len()))?;
    for &value in values {
        let negative_zero = value == 0.0 && value.is_sign_negative();
        if value.fract() == 0.0 && value.abs() < EXACT_INTEGERS && !negative_zero {
            // Exact: a whole number below 2^53 in magnitude.
            #[allow(clippy::cast_possible_truncation)]
            sequence.serialize_element(&(value as i64))?;
        } else if f64::from(value as f32) == value {
            #[allow(clippy::cast_possible_truncation)]
            sequence.serialize_element(&(value as f32))?;
        } else {
            sequence.serialize_element(&value)?;
        }
    }
    sequence.end()
}

/// One recorded decision, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The decision id.
    pub decision_id: String,
    /// The customer.
    pub customer_id: String,
    /// When it was made.
    pub at: Timestamp,
    /// The placement.
    pub placement: String,
    /// The catalog version used.
    pub catalog_version: String,
    /// The model that scored, `None` for the fallback ladder.
    pub model_version: Option<String>,
    /// The experiment variant.
    pub variant: String,
    /// Why the fallback ladder answered, if it did.
    pub fallback: Option<FallbackReason>,
    /// The served actions, best first.
    pub served: Vec<ServedRecord>,
    /// The request context the decision saw (what `ctx(...)` features read).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, AttrValue>,
    /// The actions that passed the hard filters and competed for the first
    /// slot, best first under the logging policy: the choices a policy being
    /// evaluated off-line had. Kept only when the model ranked and the
    /// placement explores (a log that never explored cannot evaluate another
    /// policy, so the ids would only cost bytes); empty otherwise and in
    /// records written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible: Vec<String>,
    /// How many events the customer's profile had applied when it was
    /// decided ([`Profile::events_applied`]): a replay of the event log
    /// applies exactly the events numbered up to it. `None` in records
    /// written before the event log was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_applied: Option<u64>,
    /// The customer's engagement per channel when it was decided, as
    /// [`EngagementCounts`]: counts the service's own serves and the reported
    /// outcomes made, which a replay of the event log cannot rebuild.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engagement: BTreeMap<String, EngagementCounts>,
    /// What the shadow model (a challenger scoring every decision silently)
    /// made of it, when one is set and the model ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowRecord>,
    /// The customer's profile scores and tiers the decision saw (what
    /// `score(...)` and `tier(...)` features read, which a replay of the
    /// event log does not recompute).
    #[serde(default, skip_serializing_if = "LoggedScores::is_empty")]
    pub scores: LoggedScores,
}

/// A customer's profile scores and tiers at a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedScores {
    /// Each computed score by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    /// Each tier's band by tier id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, String>,
}

impl LoggedScores {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.tiers.is_empty()
    }

    /// The scores and tiers on a score board.
    pub fn of(board: &crate::scores::ScoreBoard) -> Self {
        Self {
            values: board
                .values
                .iter()
                .map(|(id, value)| (id.to_owned(), *value))
                .collect(),
            tiers: board
                .tiers
                .iter()
                .map(|(id, band)| (id.to_owned(), band.clone()))
                .collect(),
        }
    }
}

/// A shadow model's view of one decision: its propensity for each served
/// action, and the action its own policy would have put first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRecord {
    /// The shadow model's version.
    pub model_version: String,
    /// Its propensity for each served action, in rank order.
    pub propensities: Vec<f64>,
    /// The eligible action its priority (its propensity × V·L·C) ranks
    /// first; `None` when nothing was eligible.
    pub choice: Option<String>,
    /// Its propensity for that action.
    pub choice_propensity: f64,
}

/// One channel's engagement as logged: sends, impressions, clicks,
/// conversions, dismisses, failures (a fixed order keeps the record small).
pub type EngagementCounts = [u32; 6];

/// The logged form of a channel's engagement.
pub fn engagement_counts(engagement: &ChannelEngagement) -> EngagementCounts {
    [
        engagement.sends,
        engagement.impressions,
        engagement.clicks,
        engagement.conversions,
        engagement.dismisses,
        engagement.failures,
    ]
}

/// A channel's engagement from its logged form.
pub fn engagement_from_counts(counts: EngagementCounts) -> ChannelEngagement {
    let [sends, impressions, clicks, conversions, dismisses, failures] = counts;
    ChannelEngagement {
        sends,
        impressions,
        clicks,
        conversions,
        dismisses,
        failures,
    }
}

/// What a decision was made for, besides the pipeline's answer: the
/// customer's profile before it was recorded, the request context, and the
/// shadow model that scores it silently.
#[derive(Debug, Clone, Copy)]
pub struct DecidedFor<'a> {
    /// The customer's profile as the pipeline read it.
    pub profile: &'a Profile,
    /// The request context.
    pub context: &'a BTreeMap<String, AttrValue>,
    /// The decision time.
    pub now: Timestamp,
    /// The shadow model, if one is set.
    pub shadow: Option<&'a crate::model::Model>,
}

/// The shadow model's scores of a model-ranked decision: every action that
/// competed for the first slot (served, or left with a priority) scored as
/// the serving model scored them, ranked by the shadow's priority.
fn shadow_record(
    shadow: &crate::model::Model,
    catalog: &Catalog,
    placement: &str,
    decided_for: &DecidedFor<'_>,
    decision: &Decision,
) -> ShadowRecord {
    let input = crate::features::FeatureInput {
        profile: decided_for.profile,
        context: decided_for.context,
        now: decided_for.now,
    };
    let eligible: Vec<&crate::catalog::Action> = decision
        .served
        .iter()
        .map(|served| served.action_id.as_str())
        .chain(
            decision
                .filtered
                .iter()
                .filter(|filtered| filtered.score.is_some())
                .map(|filtered| &*filtered.action_id),
        )
        .filter_map(|id| catalog.action(id))
        .collect();
    let scores = shadow.score_candidates(catalog, &input, &eligible);
    let placement = catalog.placement(placement);
    let weight = |action: &crate::catalog::Action| {
        placement.map_or(1.0, |placement| placement.value_lever_context(action.index))
    };
    let choice = eligible
        .iter()
        .zip(&scores.propensities)
        .max_by(|(a, pa), (b, pb)| {
            (*pa * weight(a))
                .total_cmp(&(*pb * weight(b)))
                .then_with(|| b.id.cmp(&a.id))
        });
    let propensity_of = |id: &str| {
        eligible
            .iter()
            .position(|action| &*action.id == id)
            .and_then(|position| scores.propensities.get(position).copied())
            .unwrap_or(f64::NAN)
    };
    ShadowRecord {
        model_version: shadow.version().to_owned(),
        propensities: decision
            .served
            .iter()
            .map(|served| propensity_of(&served.action_id))
            .collect(),
        choice: choice.map(|(action, _)| action.id.to_string()),
        choice_propensity: choice.map_or(0.0, |(_, propensity)| *propensity),
    }
}

impl DecisionRecord {
    /// The log record of `decision`, made for `customer_id` at `at`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        decision_id: &str,
        customer_id: &str,
        at: Timestamp,
        placement: &str,
        catalog: &Catalog,
        variant: &str,
        decision: &Decision,
        decided_for: DecidedFor<'_>,
    ) -> Self {
        let shadow = decided_for
            .shadow
            .filter(|_| decision.fallback.is_none() && decision.model_version.is_some())
            .map(|shadow| shadow_record(shadow, catalog, placement, &decided_for, decision));
        // Everything that reached the slot-1 pool was served or left it
        // with a priority (ranked below the limit, capped or of a served
        // category after a pick, out of budget); hard-filtered candidates
        // have none.
        let explores = decision.fallback.is_none()
            && catalog
                .placement(placement)
                .is_some_and(|placement| placement.exploration != Exploration::None);
        let eligible = if explores {
            decision
                .served
                .iter()
                .map(|served| served.action_id.clone())
                .chain(
                    decision
                        .filtered
                        .iter()
                        .filter(|filtered| filtered.score.is_some())
                        .map(|filtered| filtered.action_id.to_string()),
                )
                .collect()
        } else {
            Vec::new()
        };
        Self {
            decision_id: decision_id.to_owned(),
            customer_id: customer_id.to_owned(),
            at,
            placement: placement.to_owned(),
            catalog_version: catalog.version.clone(),
            model_version: decision.model_version.clone(),
            variant: variant.to_owned(),
            fallback: decision.fallback,
            context: decided_for.context.clone(),
            eligible,
            events_applied: Some(decided_for.profile.events_applied()),
            engagement: decided_for
                .profile
                .engagement
                .iter()
                .map(|(channel, engagement)| (channel.to_owned(), engagement_counts(engagement)))
                .collect(),
            shadow,
            scores: LoggedScores::of(&decided_for.profile.scores),
            served: decision
                .served
                .iter()
                .map(|served| ServedRecord {
                    action_id: served.action_id.clone(),
                    channel: served.channel.clone(),
                    category: served.category.clone(),
                    rank: served.rank,
                    score: served.score,
                    propensity: served.propensity,
                    selection_probability: served.selection_probability,
                    features: served.features.clone(),
                })
                .collect(),
        }
    }
}

/// One applied outcome, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The decision that served the action.
    pub decision_id: String,
    /// When that decision was made (the log is ordered by it).
    pub decision_at: Timestamp,
    /// The customer.
    pub customer_id: String,
    /// The action.
    pub action_id: String,
    /// What happened.
    pub outcome: OutcomeKind,
    /// When it happened.
    pub at: Timestamp,
    /// The reward reported with it.
    pub reward: Option<f64>,
}

/// One applied event, as logged: what a replay of the customer's profile
/// applies, in `ordinal` order, each at its `received_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The customer.
    pub customer_id: String,
    /// Its number among the customer's applied events, from 1
    /// ([`Profile::events_applied`] once it was applied).
    pub ordinal: u64,
    /// When the service applied it: the time its counters were kept
    /// against (an event older than the counter horizon then counts in no
    /// window).
    pub received_at: Timestamp,
    /// The event.
    pub event: Event,
}

/// An entry for the decision log.
// Decisions are most of the entries: boxing them would cost an allocation
// per decision to save bytes on the rarer events and outcomes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LogEntry {
    /// A decision, and the feature specs of the model that scored it (so the
    /// log can name the features of every model version it holds).
    Decision {
        /// The decision.
        record: DecisionRecord,
        /// The scoring model's feature specs, in order; `None` for a fallback.
        feature_names: Option<Arc<[String]>>,
    },
    /// An outcome.
    Outcome(OutcomeRecord),
    /// An applied event (the event log, kept for point-in-time replay).
    Event(EventRecord),
}

/// A decision joined with its outcomes: what an export holds and training
/// reads.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    /// The decision.
    pub record: DecisionRecord,
    /// The feature specs of its model (empty for a fallback).
    pub feature_names: Vec<String>,
    /// Its outcomes, in the order they happened.
    pub outcomes: Vec<OutcomeRecord>,
}

/// A logged decision with each served action's outcomes joined: what the
/// Parquet export holds of one decision, and what training reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedDecision {
    /// The decision.
    pub record: DecisionRecord,
    /// The feature specs of its model (empty for a fallback).
    pub feature_names: Vec<String>,
    /// The outcomes of each served action, in the order of
    /// [`DecisionRecord::served`].
    pub outcomes: Vec<JoinedOutcomes>,
}

/// The outcomes reported for one served action, one field per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JoinedOutcomes {
    /// The earliest impression.
    pub impression_at: Option<Timestamp>,
    /// The earliest click.
    pub click_at: Option<Timestamp>,
    /// The earliest conversion.
    pub conversion_at: Option<Timestamp>,
    /// The earliest dismissal.
    pub dismiss_at: Option<Timestamp>,
    /// The earliest delivery.
    pub delivered_at: Option<Timestamp>,
    /// The earliest delivery failure.
    pub failed_at: Option<Timestamp>,
    /// The sum of the rewards reported with any of them; 0 when none was.
    pub reward: f64,
    /// Whether a conversion was reported: the training label.
    pub converted: bool,
}

impl JoinedOutcomes {
    /// Joins the outcomes of `action_id` among `outcomes` (all of one
    /// decision); outcomes of other actions are skipped.
    pub fn join(action_id: &str, outcomes: &[OutcomeRecord]) -> Self {
        let mut joined = Self::default();
        for outcome in outcomes.iter().filter(|o| o.action_id == action_id) {
            joined.reward += outcome.reward.unwrap_or(0.0);
            if outcome.outcome == OutcomeKind::Conversion {
                joined.converted = true;
            }
            let slot = joined.slot(outcome.outcome);
            *slot = Some(slot.map_or(outcome.at, |first| first.min(outcome.at)));
        }
        joined
    }

    fn slot(&mut self, kind: OutcomeKind) -> &mut Option<Timestamp> {
        match kind {
            OutcomeKind::Impression => &mut self.impression_at,
            OutcomeKind::Click => &mut self.click_at,
            OutcomeKind::Conversion => &mut self.conversion_at,
            OutcomeKind::Dismiss => &mut self.dismiss_at,
            OutcomeKind::Delivered => &mut self.delivered_at,
            OutcomeKind::Failed => &mut self.failed_at,
        }
    }
}

/// One served action of a logged decision with what came of it: a row of the
/// export and of the training data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRow<'a> {
    /// The decision.
    pub decision: &'a DecisionRecord,
    /// The feature specs naming [`ServedRecord::features`].
    pub feature_names: &'a [String],
    /// The served action.
    pub served: &'a ServedRecord,
    /// Its outcomes.
    pub outcomes: JoinedOutcomes,
}

impl LoggedDecision {
    /// One row per served action, in rank order (none if nothing was served).
    pub fn training_rows(&self) -> impl Iterator<Item = TrainingRow<'_>> {
        self.record.served.iter().map(|served| TrainingRow {
            decision: &self.record,
            feature_names: &self.feature_names,
            served,
            outcomes: JoinedOutcomes::join(&served.action_id, &self.outcomes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(action: &str, kind: OutcomeKind, at: i64, reward: Option<f64>) -> OutcomeRecord {
        OutcomeRecord {
            decision_id: "d1".to_owned(),
            decision_at: Timestamp::from_millis(1_000),
            customer_id: "alice".to_owned(),
            action_id: action.to_owned(),
            outcome: kind,
            at: Timestamp::from_millis(at),
            reward,
        }
    }

    fn served(action: &str, rank: u32) -> ServedRecord {
        ServedRecord {
            action_id: action.to_owned(),
            channel: "in_app".to_owned(),
            category: "upsell".to_owned(),
            rank,
            score: 0.5,
            propensity: 0.25,
            selection_probability: 0.9,
            features: vec![1.0, 2.0],
        }
    }

    #[test]
    fn text_formats_keep_features_as_plain_doubles() {
        let mut record = served("a", 1);
        record.features = vec![0.0, 1.0, 0.30000001192092896, 0.1];
        let json = serde_json::to_string(&record).expect("encodes");
        assert!(json.contains("[0.0,1.0,0.30000001192092896,0.1]"), "{json}");
        let back: ServedRecord = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, record);
    }

    fn logged(outcomes: Vec<OutcomeRecord>) -> LoggedDecision {
        LoggedDecision {
            record: DecisionRecord {
                decision_id: "d1".to_owned(),
                customer_id: "alice".to_owned(),
                at: Timestamp::from_millis(1_000),
                placement: "home_banner".to_owned(),
                catalog_version: "v1".to_owned(),
                model_version: Some("m1".to_owned()),
                variant: "default".to_owned(),
                fallback: None,
                served: vec![served("a", 1), served("b", 2)],
                context: BTreeMap::new(),
                eligible: vec!["a".to_owned(), "b".to_owned()],
                events_applied: Some(0),
                engagement: BTreeMap::new(),
                shadow: None,
                scores: Default::default(),
            },
            feature_names: vec!["f1".to_owned(), "f2".to_owned()],
            outcomes,
        }
    }

    #[test]
    fn rows_join_each_actions_own_outcomes_earliest_time_and_summed_reward() {
        let decision = logged(vec![
            outcome("a", OutcomeKind::Impression, 1_500, None),
            outcome("a", OutcomeKind::Conversion, 3_500, Some(5.0)),
            outcome("a", OutcomeKind::Conversion, 3_000, Some(20.0)),
            outcome("b", OutcomeKind::Dismiss, 2_000, None),
        ]);
        let rows: Vec<_> = decision.training_rows().collect();
        assert_eq!(rows.len(), 2);
        let a = rows[0].outcomes;
        assert_eq!(a.impression_at, Some(Timestamp::from_millis(1_500)));
        assert_eq!(a.conversion_at, Some(Timestamp::from_millis(3_000)));
        assert!((a.reward - 25.0).abs() < 1e-12);
        assert!(a.converted);
        let b = rows[1].outcomes;
        assert_eq!(b.dismiss_at, Some(Timestamp::from_millis(2_000)));
        assert!(!b.converted);
        assert_eq!(rows[1].served.rank, 2);
        assert_eq!(rows[1].feature_names, ["f1", "f2"]);
    }

    #[test]
    fn a_decision_that_served_nothing_has_no_training_rows() {
        let mut decision = logged(Vec::new());
        decision.record.served.clear();
        assert_eq!(decision.training_rows().count(), 0);
    }

    #[test]
    fn kinds_and_reasons_are_stored_as_their_lowercase_codes() {
        for kind in OutcomeKind::ALL {
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        for reason in FallbackReason::ALL {
            let json = serde_json::to_string(&reason).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
    }
}
