//! The Parquet side of `nudge export`: the schema (the training input, one row
//! per served action, documented column by column in the README's "Decision
//! log export"), the Arrow column builders the rows of [`super::rows`] are
//! appended to, and the writer that turns every full batch into a row group.
//!
//! The schema carries its version in its metadata ([`SCHEMA_KEY`] =
//! [`DECISIONS_SCHEMA`]), so a reader refuses a file of another version by
//! name instead of misreading it. Version 2 added the columns after
//! `converted` (context, eligible actions, events applied, engagement); a
//! file without the key is version 1. The profile scores and tiers (JSON
//! objects, last) came later within version 2: a reader takes a file
//! without them as having none.

use std::fs::File;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::rows::ExportRow;
use nudge_models::log::JoinedOutcomes;
use nudge_models::time::Timestamp;

/// A UTC timestamp in milliseconds.
fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The element of the `features` list: a value is never null.
fn feature_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Float64, false))
}

/// The element of the `feature_names` list: a name is never null.
fn feature_name_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Utf8, false))
}

/// The schema metadata key that names an export's schema and version.
pub const SCHEMA_KEY: &str = "nudge.schema";
/// The decision export's schema and version.
pub const DECISIONS_SCHEMA: &str = "nudge.decisions/2";

/// The element of the `eligible` list: an action id is never null.
fn eligible_item() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Utf8, false))
}

/// The schema of the export, in column order.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utf8 = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let at = |name: &str, nullable: bool| Field::new(name, timestamp(), nullable);
    let float = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(
        Schema::new(vec![
            utf8("decision_id", false),
            utf8("customer_id", false),
            at("decided_at", false),
            utf8("placement", false),
            utf8("catalog_version", false),
            utf8("model_version", true),
            utf8("variant", false),
            utf8("fallback", true),
            Field::new("rank", DataType::UInt32, true),
            utf8("action_id", true),
            utf8("channel", true),
            utf8("category", true),
            float("score"),
            float("propensity"),
            float("selection_probability"),
            Field::new("features", DataType::List(feature_item()), true),
            Field::new("feature_names", DataType::List(feature_name_item()), false),
            at("impression_at", true),
            at("click_at", true),
            at("conversion_at", true),
            at("dismiss_at", true),
            at("delivered_at", true),
            at("failed_at", true),
            float("reward"),
            Field::new("converted", DataType::Boolean, true),
            utf8("context", false),
            Field::new("eligible", DataType::List(eligible_item()), false),
            Field::new("events_applied", DataType::UInt64, true),
            utf8("engagement", false),
            utf8("shadow_model_version", true),
            float("shadow_propensity"),
            utf8("shadow_choice", true),
            float("shadow_choice_propensity"),
            utf8("scores", false),
            utf8("tiers", false),
        ])
        .with_metadata(
            [(SCHEMA_KEY.to_owned(), DECISIONS_SCHEMA.to_owned())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        ),
    )
});

/// The column builders of one batch, in [`SCHEMA`] order.
#[derive(Debug)]
struct Columns {
    decision_id: StringBuilder,
    customer_id: StringBuilder,
    decided_at: TimestampMillisecondBuilder,
    placement: StringBuilder,
    catalog_version: StringBuilder,
    model_version: StringBuilder,
    variant: StringBuilder,
    fallback: StringBuilder,
    rank: UInt32Builder,
    action_id: StringBuilder,
    channel: StringBuilder,
    category: StringBuilder,
    score: Float64Builder,
    propensity: Float64Builder,
    selection_probability: Float64Builder,
    features: ListBuilder<Float64Builder>,
    feature_names: ListBuilder<StringBuilder>,
    impression_at: TimestampMillisecondBuilder,
    click_at: TimestampMillisecondBuilder,
    conversion_at: TimestampMillisecondBuilder,
    dismiss_at: TimestampMillisecondBuilder,
    delivered_at: TimestampMillisecondBuilder,
    failed_at: TimestampMillisecondBuilder,
    reward: Float64Builder,
    converted: BooleanBuilder,
    context: StringBuilder,
    eligible: ListBuilder<StringBuilder>,
    events_applied: UInt64Builder,
    engagement: StringBuilder,
    scores: StringBuilder,
    tiers: StringBuilder,
    shadow_model_version: StringBuilder,
    shadow_propensity: Float64Builder,
    shadow_choice: StringBuilder,
    shadow_choice_propensity: Float64Builder,
    /// Rows appended since the last [`Columns::finish`].
    rows: usize,
}

fn timestamps() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

impl Columns {
    fn new() -> Self {
        Self {
            decision_id: StringBuilder::new(),
            customer_id: StringBuilder::new(),
            decided_at: timestamps(),
            placement: StringBuilder::new(),
            catalog_version: StringBuilder::new(),
            model_version: StringBuilder::new(),
            variant: StringBuilder::new(),
            fallback: StringBuilder::new(),
            rank: UInt32Builder::new(),
            action_id: StringBuilder::new(),
            channel: StringBuilder::new(),
            category: StringBuilder::new(),
            score: Float64Builder::new(),
            propensity: Float64Builder::new(),
            selection_probability: Float64Builder::new(),
            features: ListBuilder::new(Float64Builder::new()).with_field(feature_item()),
            feature_names: ListBuilder::new(StringBuilder::new()).with_field(feature_name_item()),
            impression_at: timestamps(),
            click_at: timestamps(),
            conversion_at: timestamps(),
            dismiss_at: timestamps(),
            delivered_at: timestamps(),
            failed_at: timestamps(),
            reward: Float64Builder::new(),
            converted: BooleanBuilder::new(),
            context: StringBuilder::new(),
            eligible: ListBuilder::new(StringBuilder::new()).with_field(eligible_item()),
            events_applied: UInt64Builder::new(),
            engagement: StringBuilder::new(),
            scores: StringBuilder::new(),
            tiers: StringBuilder::new(),
            shadow_model_version: StringBuilder::new(),
            shadow_propensity: Float64Builder::new(),
            shadow_choice: StringBuilder::new(),
            shadow_choice_propensity: Float64Builder::new(),
            rows: 0,
        }
    }

    fn append(&mut self, row: &ExportRow<'_>) {
        let decision = &row.decision;
        self.decision_id.append_value(decision.decision_id);
        self.customer_id.append_value(decision.customer_id);
        self.decided_at.append_value(decision.decided_at);
        self.placement.append_value(decision.placement);
        self.catalog_version.append_value(decision.catalog_version);
        self.model_version.append_option(decision.model_version);
        self.variant.append_value(decision.variant);
        self.fallback.append_option(decision.fallback);
        self.feature_names.append_value(
            decision
                .feature_names
                .iter()
                .map(|name| Some(name.as_str())),
        );
        self.context
            .append_value(serde_json::to_string(decision.context).unwrap_or_default());
        self.eligible
            .append_value(decision.eligible.iter().map(|id| Some(id.as_str())));
        self.events_applied.append_option(decision.events_applied);
        self.engagement
            .append_value(engagement_json(decision.engagement).to_string());
        self.scores
            .append_value(serde_json::to_string(&decision.scores.values).unwrap_or_default());
        self.tiers
            .append_value(serde_json::to_string(&decision.scores.tiers).unwrap_or_default());
        self.shadow_model_version
            .append_option(decision.shadow.map(|shadow| shadow.model_version.as_str()));
        self.shadow_choice
            .append_option(decision.shadow.and_then(|shadow| shadow.choice.as_deref()));
        self.shadow_choice_propensity
            .append_option(decision.shadow.map(|shadow| shadow.choice_propensity));
        self.shadow_propensity
            .append_option(row.serve.as_ref().and_then(|serve| serve.shadow_propensity));
        match &row.serve {
            Some(serve) => {
                self.rank.append_value(serve.rank);
                self.action_id.append_value(serve.action_id);
                self.channel.append_value(serve.channel);
                self.category.append_value(serve.category);
                self.score.append_value(serve.score);
                self.propensity.append_value(serve.propensity);
                self.selection_probability
                    .append_value(serve.selection_probability);
                self.features.values().append_slice(serve.features);
                self.features.append(true);
                self.append_outcomes(Some(&serve.outcomes));
            }
            None => {
                self.rank.append_null();
                self.action_id.append_null();
                self.channel.append_null();
                self.category.append_null();
                self.score.append_null();
                self.propensity.append_null();
                self.selection_probability.append_null();
                self.features.append_null();
                self.append_outcomes(None);
            }
        }
        self.rows += 1;
    }

    fn append_outcomes(&mut self, outcomes: Option<&JoinedOutcomes>) {
        let time = |pick: fn(&JoinedOutcomes) -> Option<Timestamp>| {
            outcomes.and_then(pick).map(Timestamp::millis)
        };
        self.impression_at.append_option(time(|o| o.impression_at));
        self.click_at.append_option(time(|o| o.click_at));
        self.conversion_at.append_option(time(|o| o.conversion_at));
        self.dismiss_at.append_option(time(|o| o.dismiss_at));
        self.delivered_at.append_option(time(|o| o.delivered_at));
        self.failed_at.append_option(time(|o| o.failed_at));
        self.reward.append_option(outcomes.map(|o| o.reward));
        self.converted.append_option(outcomes.map(|o| o.converted));
    }

    /// The rows appended so far as one batch; the builders start empty again.
    fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.decision_id.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.decided_at.finish()),
            Arc::new(self.placement.finish()),
            Arc::new(self.catalog_version.finish()),
            Arc::new(self.model_version.finish()),
            Arc::new(self.variant.finish()),
            Arc::new(self.fallback.finish()),
            Arc::new(self.rank.finish()),
            Arc::new(self.action_id.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.propensity.finish()),
            Arc::new(self.selection_probability.finish()),
            Arc::new(self.features.finish()),
            Arc::new(self.feature_names.finish()),
            Arc::new(self.impression_at.finish()),
            Arc::new(self.click_at.finish()),
            Arc::new(self.conversion_at.finish()),
            Arc::new(self.dismiss_at.finish()),
            Arc::new(self.delivered_at.finish()),
            Arc::new(self.failed_at.finish()),
            Arc::new(self.reward.finish()),
            Arc::new(self.converted.finish()),
            Arc::new(self.context.finish()),
            Arc::new(self.eligible.finish()),
            Arc::new(self.events_applied.finish()),
            Arc::new(self.engagement.finish()),
            Arc::new(self.shadow_model_version.finish()),
            Arc::new(self.shadow_propensity.finish()),
            Arc::new(self.shadow_choice.finish()),
            Arc::new(self.shadow_choice_propensity.finish()),
            Arc::new(self.scores.finish()),
            Arc::new(self.tiers.finish()),
        ];
        RecordBatch::try_new(SCHEMA.clone(), columns)
    }
}

/// Engagement as a JSON object: channel → its counts by name.
pub fn engagement_json(
    engagement: &std::collections::BTreeMap<String, nudge_models::log::EngagementCounts>,
) -> serde_json::Value {
    engagement
        .iter()
        .map(|(channel, counts)| {
            let [sends, impressions, clicks, conversions, dismisses, failures] = counts;
            (
                channel.clone(),
                serde_json::json!({
                    "sends": sends,
                    "impressions": impressions,
                    "clicks": clicks,
                    "conversions": conversions,
                    "dismisses": dismisses,
                    "failures": failures,
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Writes rows to a Parquet file (Snappy, dictionary encoding where Parquet
/// finds it pays), one row group per `rows_per_group` rows: memory holds at
/// most one row group, whatever the size of the export.
#[derive(Debug)]
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    columns: Columns,
    rows_per_group: usize,
}

impl ParquetSink {
    /// A sink writing to `file` (empty, positioned at its start).
    pub fn new(file: File, rows_per_group: usize) -> Result<Self, parquet::errors::ParquetError> {
        let rows_per_group = rows_per_group.max(1);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        Ok(Self {
            writer: ArrowWriter::try_new(file, SCHEMA.clone(), Some(properties))?,
            columns: Columns::new(),
            rows_per_group,
        })
    }

    /// Appends `rows`, writing a row group whenever a batch is full.
    pub fn push(&mut self, rows: &[ExportRow<'_>]) -> anyhow::Result<()> {
        for row in rows {
            self.columns.append(row);
            if self.columns.rows >= self.rows_per_group {
                self.write_batch()?;
            }
        }
        Ok(())
    }

    fn write_batch(&mut self) -> anyhow::Result<()> {
        let batch = self.columns.finish()?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Writes the last rows and the footer, and hands the file back.
    pub fn finish(mut self) -> anyhow::Result<File> {
        if self.columns.rows > 0 {
            self.write_batch()?;
        }
        Ok(self.writer.into_inner()?)
    }
}
