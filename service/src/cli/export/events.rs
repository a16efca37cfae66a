//! The event log side of `nudge export --events`: one row (Parquet) or one
//! JSON object (JSON lines) per applied event, customer by customer and each
//! customer's in the order applied. Training replays them to rebuild each
//! customer's profile as it was at a logged decision.
//!
//! Columns: `customer_id`, `ordinal` (the event's number among the
//! customer's applied events, from 1), `received_at` (when the service
//! applied it, UTC ms), `event_id`, `name`, `timestamp` (the event's own
//! time), `properties` (a JSON object of strings, numbers and booleans).
//! The schema metadata names it [`EVENTS_SCHEMA`].

use std::fs::File;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{StringBuilder, TimestampMillisecondBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nudge_models::log::EventRecord;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value as Json, json};

use super::to_parquet::SCHEMA_KEY;
use crate::cli::names::timestamp_json;
use crate::convert::to_proto_timestamp;

/// The event export's schema and version.
pub const EVENTS_SCHEMA: &str = "nudge.events/1";

/// The schema of the event export, in column order.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let at = |name: &str| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        )
    };
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(
        Schema::new(vec![
            utf8("customer_id"),
            Field::new("ordinal", DataType::UInt64, false),
            at("received_at"),
            utf8("event_id"),
            utf8("name"),
            at("timestamp"),
            utf8("properties"),
        ])
        .with_metadata(
            [(SCHEMA_KEY.to_owned(), EVENTS_SCHEMA.to_owned())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        ),
    )
});

/// One event as a JSON object (the JSON lines form).
pub fn record(event: &EventRecord) -> Json {
    let time = |at| timestamp_json(Some(&to_proto_timestamp(at)));
    json!({
        "customer_id": event.customer_id,
        "ordinal": event.ordinal,
        "received_at": time(event.received_at),
        "event_id": event.event.event_id,
        "name": event.event.name,
        "timestamp": time(event.event.timestamp),
        "properties": event.event.properties,
    })
}

fn timestamps() -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::new().with_timezone("UTC")
}

/// Writes events to a Parquet file, one row group per `rows_per_group`.
#[derive(Debug)]
pub struct EventParquetSink {
    writer: ArrowWriter<File>,
    customer_id: StringBuilder,
    ordinal: UInt64Builder,
    received_at: TimestampMillisecondBuilder,
    event_id: StringBuilder,
    name: StringBuilder,
    timestamp: TimestampMillisecondBuilder,
    properties: StringBuilder,
    rows: usize,
    rows_per_group: usize,
}

impl EventParquetSink {
    /// A sink writing to `file` (empty, positioned at its start).
    pub fn new(file: File, rows_per_group: usize) -> Result<Self, parquet::errors::ParquetError> {
        let rows_per_group = rows_per_group.max(1);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        Ok(Self {
            writer: ArrowWriter::try_new(file, SCHEMA.clone(), Some(properties))?,
            customer_id: StringBuilder::new(),
            ordinal: UInt64Builder::new(),
            received_at: timestamps(),
            event_id: StringBuilder::new(),
            name: StringBuilder::new(),
            timestamp: timestamps(),
            properties: StringBuilder::new(),
            rows: 0,
            rows_per_group,
        })
    }

    /// Appends one event, writing a row group when the batch is full.
    pub fn push(&mut self, event: &EventRecord) -> anyhow::Result<()> {
        self.customer_id.append_value(&event.customer_id);
        self.ordinal.append_value(event.ordinal);
        self.received_at.append_value(event.received_at.millis());
        self.event_id.append_value(&event.event.event_id);
        self.name.append_value(&event.event.name);
        self.timestamp.append_value(event.event.timestamp.millis());
        self.properties
            .append_value(serde_json::to_string(&event.event.properties)?);
        self.rows += 1;
        if self.rows >= self.rows_per_group {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> anyhow::Result<()> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer_id.finish()),
            Arc::new(self.ordinal.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.properties.finish()),
        ];
        self.writer
            .write(&RecordBatch::try_new(SCHEMA.clone(), columns)?)?;
        Ok(())
    }

    /// Writes the last rows and the footer, and hands the file back.
    pub fn finish(mut self) -> anyhow::Result<File> {
        if self.rows > 0 {
            self.write_batch()?;
        }
        Ok(self.writer.into_inner()?)
    }
}
