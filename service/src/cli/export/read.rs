//! Reading `nudge export` files back (what `nudge train --log` and
//! `--events` do): the Parquet decision export into
//! [`JoinedDecision`]s (its rows regrouped by decision) and the event
//! export into [`EventRecord`]s. A file of another schema or version is
//! refused by name before a row is read.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use arrow_array::cast::AsArray as _;
use arrow_array::types::ArrowPrimitiveType;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, ListArray, PrimitiveArray, RecordBatch, StringArray};
use nudge_models::log::{
    DecisionRecord, EngagementCounts, EventRecord, JoinedDecision, JoinedOutcomes, LoggedScores,
    ServedRecord, ShadowRecord,
};
use nudge_models::pipeline::FallbackReason;
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::events::EVENTS_SCHEMA;
use super::to_parquet::{DECISIONS_SCHEMA, SCHEMA_KEY};

/// Opens `path` as a Parquet export of `expected` (`nudge.decisions/2`...).
fn open(
    path: &Path,
    expected: &str,
    what: &str,
) -> anyhow::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let file =
        File::open(path).with_context(|| format!("cannot open {what} {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    let found = builder.schema().metadata().get(SCHEMA_KEY).cloned();
    let family = expected.split('/').next().unwrap_or(expected);
    match found.as_deref() {
        Some(found) if found == expected => {}
        Some(found) if found.starts_with(&format!("{family}/")) => bail!(
            "{} is a {what} of schema {found}; this nudge reads {expected}: export it again with this version's `nudge export`",
            path.display()
        ),
        Some(found) => bail!(
            "{} is a {found} export, not a {what} ({expected})",
            path.display()
        ),
        None => bail!(
            "{} has no {SCHEMA_KEY} in its metadata: not a {what} of this nudge ({expected}; files from before version 2 of the decision export have none: export again)",
            path.display()
        ),
    }
    builder
        .build()
        .with_context(|| format!("cannot read {}", path.display()))
}

/// One column of `batch` by name, or an error naming it.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> anyhow::Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(AsRef::as_ref)
        .ok_or_else(|| anyhow!("the column {name} is missing"))
}

fn wrong_type(name: &str) -> anyhow::Error {
    anyhow!("the column {name} does not have the type of the export schema")
}

fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> anyhow::Result<&'a StringArray> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| wrong_type(name))
}

fn list_column<'a>(batch: &'a RecordBatch, name: &str) -> anyhow::Result<&'a ListArray> {
    column(batch, name)?
        .as_list_opt::<i32>()
        .ok_or_else(|| wrong_type(name))
}

fn number_column<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> anyhow::Result<&'a PrimitiveArray<T>> {
    column(batch, name)?
        .as_primitive_opt::<T>()
        .ok_or_else(|| wrong_type(name))
}

/// Reads a decision export ([`DECISIONS_SCHEMA`]): one [`JoinedDecision`]
/// per decision, in file order (decision time).
pub fn decisions(path: &Path) -> anyhow::Result<Vec<JoinedDecision>> {
    let reader = open(path, DECISIONS_SCHEMA, "decision log export")?;
    let mut decisions: Vec<JoinedDecision> = Vec::new();
    let mut row_number = 0usize;
    for batch in reader {
        let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
        read_decision_batch(&batch, &mut decisions, row_number)
            .with_context(|| format!("{}: row group at row {}", path.display(), row_number + 1))?;
        row_number += batch.num_rows();
    }
    Ok(decisions)
}

fn read_decision_batch(
    batch: &RecordBatch,
    decisions: &mut Vec<JoinedDecision>,
    first_row: usize,
) -> anyhow::Result<()> {
    let text = |name| text_column(batch, name);
    let times = |name| number_column::<TimestampMillisecondType>(batch, name);
    let float = |name| number_column::<Float64Type>(batch, name);
    let decision_id = text("decision_id")?;
    let customer_id = text("customer_id")?;
    let decided_at = times("decided_at")?;
    let placement = text("placement")?;
    let catalog_version = text("catalog_version")?;
    let model_version = text("model_version")?;
    let variant = text("variant")?;
    let fallback = text("fallback")?;
    let rank = number_column::<UInt32Type>(batch, "rank")?;
    let action_id = text("action_id")?;
    let channel = text("channel")?;
    let category = text("category")?;
    let score = float("score")?;
    let propensity = float("propensity")?;
    let selection_probability = float("selection_probability")?;
    let features = list_column(batch, "features")?;
    let feature_names = list_column(batch, "feature_names")?;
    let outcome_times: Vec<_> = [
        "impression_at",
        "click_at",
        "conversion_at",
        "dismiss_at",
        "delivered_at",
        "failed_at",
    ]
    .into_iter()
    .map(times)
    .collect::<anyhow::Result<_>>()?;
    let reward = float("reward")?;
    let converted = column(batch, "converted")?
        .as_boolean_opt()
        .ok_or_else(|| wrong_type("converted"))?;
    let context = text("context")?;
    let eligible = list_column(batch, "eligible")?;
    let events_applied = number_column::<UInt64Type>(batch, "events_applied")?;
    let engagement = text("engagement")?;
    let shadow_model_version = text("shadow_model_version")?;
    let shadow_propensity = float("shadow_propensity")?;
    let shadow_choice = text("shadow_choice")?;
    let shadow_choice_propensity = float("shadow_choice_propensity")?;
    // Added within version 2: absent in earlier files, read as none.
    let scores = batch
        .column_by_name("scores")
        .map(|_| text("scores"))
        .transpose()?;
    let tiers = batch
        .column_by_name("tiers")
        .map(|_| text("tiers"))
        .transpose()?;
    let optional = |array: &StringArray, row: usize| {
        (!array.is_null(row)).then(|| array.value(row).to_owned())
    };
    let strings = |list: &ListArray, row: usize| -> Vec<String> {
        let values = list.value(row);
        values
            .as_string_opt::<i32>()
            .map_or_else(Vec::new, |values| {
                (0..values.len())
                    .map(|i| values.value(i).to_owned())
                    .collect()
            })
    };
    for row in 0..batch.num_rows() {
        let line = first_row + row + 1;
        let id = decision_id.value(row);
        let is_new = decisions
            .last()
            .is_none_or(|last| last.record.decision_id != id);
        if is_new {
            let fallback = match optional(fallback, row) {
                None => None,
                Some(code) => Some(
                    FallbackReason::from_code(&code)
                        .ok_or_else(|| anyhow!("row {line}: unknown fallback reason '{code}'"))?,
                ),
            };
            let context: BTreeMap<String, AttrValue> = serde_json::from_str(context.value(row))
                .with_context(|| {
                    format!("row {line}: the context is not a JSON object of values")
                })?;
            let engagement = read_engagement(engagement.value(row))
                .with_context(|| format!("row {line}: unreadable engagement"))?;
            let logged_scores = LoggedScores {
                values: match scores {
                    Some(scores) => serde_json::from_str(scores.value(row)).with_context(|| {
                        format!("row {line}: the scores are not a JSON object of numbers")
                    })?,
                    None => BTreeMap::new(),
                },
                tiers: match tiers {
                    Some(tiers) => serde_json::from_str(tiers.value(row)).with_context(|| {
                        format!("row {line}: the tiers are not a JSON object of names")
                    })?,
                    None => BTreeMap::new(),
                },
            };
            decisions.push(JoinedDecision {
                record: DecisionRecord {
                    decision_id: id.to_owned(),
                    customer_id: customer_id.value(row).to_owned(),
                    at: Timestamp::from_millis(decided_at.value(row)),
                    placement: placement.value(row).to_owned(),
                    catalog_version: catalog_version.value(row).to_owned(),
                    model_version: optional(model_version, row),
                    variant: variant.value(row).to_owned(),
                    fallback,
                    served: Vec::new(),
                    context,
                    eligible: strings(eligible, row),
                    events_applied: (!events_applied.is_null(row))
                        .then(|| events_applied.value(row)),
                    engagement,
                    shadow: optional(shadow_model_version, row).map(|model_version| ShadowRecord {
                        model_version,
                        propensities: Vec::new(),
                        choice: optional(shadow_choice, row),
                        choice_propensity: if shadow_choice_propensity.is_null(row) {
                            0.0
                        } else {
                            shadow_choice_propensity.value(row)
                        },
                    }),
                    scores: logged_scores,
                },
                feature_names: strings(feature_names, row),
                outcomes: Vec::new(),
            });
        }
        if action_id.is_null(row) {
            continue;
        }
        let Some(decision) = decisions.last_mut() else {
            continue;
        };
        let values = features.value(row);
        let values = values
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| wrong_type("features"))?;
        if let Some(shadow) = &mut decision.record.shadow
            && !shadow_propensity.is_null(row)
        {
            shadow.propensities.push(shadow_propensity.value(row));
        }
        decision.record.served.push(ServedRecord {
            action_id: action_id.value(row).to_owned(),
            channel: channel.value(row).to_owned(),
            category: category.value(row).to_owned(),
            rank: rank.value(row),
            score: score.value(row),
            propensity: propensity.value(row),
            selection_probability: selection_probability.value(row),
            features: values.values().to_vec(),
        });
        let at = |index: usize| {
            let array = outcome_times[index];
            (!array.is_null(row)).then(|| Timestamp::from_millis(array.value(row)))
        };
        decision.outcomes.push(JoinedOutcomes {
            impression_at: at(0),
            click_at: at(1),
            conversion_at: at(2),
            dismiss_at: at(3),
            delivered_at: at(4),
            failed_at: at(5),
            reward: if reward.is_null(row) {
                0.0
            } else {
                reward.value(row)
            },
            converted: !converted.is_null(row) && converted.value(row),
        });
    }
    Ok(())
}

/// The engagement column's JSON back into counts.
fn read_engagement(text: &str) -> anyhow::Result<BTreeMap<String, EngagementCounts>> {
    let object: BTreeMap<String, BTreeMap<String, u32>> = serde_json::from_str(text)?;
    Ok(object
        .into_iter()
        .map(|(channel, counts)| {
            let count = |name: &str| counts.get(name).copied().unwrap_or(0);
            (
                channel,
                [
                    count("sends"),
                    count("impressions"),
                    count("clicks"),
                    count("conversions"),
                    count("dismisses"),
                    count("failures"),
                ],
            )
        })
        .collect())
}

/// Reads an event export ([`EVENTS_SCHEMA`]), in file order.
pub fn events(path: &Path) -> anyhow::Result<Vec<EventRecord>> {
    let reader = open(path, EVENTS_SCHEMA, "event log export")?;
    let mut events = Vec::new();
    let mut first_row = 0usize;
    for batch in reader {
        let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
        let text = |name| text_column(&batch, name);
        let times = |name| number_column::<TimestampMillisecondType>(&batch, name);
        let customer_id = text("customer_id")?;
        let ordinal = number_column::<UInt64Type>(&batch, "ordinal")?;
        let received_at = times("received_at")?;
        let event_id = text("event_id")?;
        let name = text("name")?;
        let timestamp = times("timestamp")?;
        let properties = text("properties")?;
        for row in 0..batch.num_rows() {
            let properties: BTreeMap<String, AttrValue> =
                serde_json::from_str(properties.value(row)).with_context(|| {
                    format!(
                        "{} row {}: the properties are not a JSON object of values",
                        path.display(),
                        first_row + row + 1
                    )
                })?;
            events.push(EventRecord {
                customer_id: customer_id.value(row).to_owned(),
                ordinal: ordinal.value(row),
                received_at: Timestamp::from_millis(received_at.value(row)),
                event: Event {
                    event_id: event_id.value(row).to_owned(),
                    name: name.value(row).to_owned(),
                    timestamp: Timestamp::from_millis(timestamp.value(row)),
                    properties,
                },
            });
        }
        first_row += batch.num_rows();
    }
    Ok(events)
}
