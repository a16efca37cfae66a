//! The JSON lines side of `nudge export`: one JSON object per decision, its
//! served actions and outcomes nested, timestamps RFC 3339, written through a
//! buffer so memory holds one decision at a time.

use std::fs::File;
use std::io::{BufWriter, Write as _};

use nudge_models::log::LoggedDecision;
use serde_json::{Value as Json, json};

use crate::cli::names::timestamp_json;
use crate::convert::to_proto_timestamp;

/// One decision as a JSON object: the log record's fields by name,
/// `model_version` and `fallback` `null` when there is none, an outcome's
/// `reward` `null` when none was reported.
pub fn record(decision: &LoggedDecision) -> Json {
    let record = &decision.record;
    let time = |at| timestamp_json(Some(&to_proto_timestamp(at)));
    let served: Vec<Json> = record
        .served
        .iter()
        .map(|serve| {
            json!({
                "rank": serve.rank,
                "action_id": serve.action_id,
                "channel": serve.channel,
                "category": serve.category,
                "score": serve.score,
                "propensity": serve.propensity,
                "selection_probability": serve.selection_probability,
                "features": serve.features,
            })
        })
        .collect();
    let outcomes: Vec<Json> = decision
        .outcomes
        .iter()
        .map(|outcome| {
            json!({
                "action_id": outcome.action_id,
                "outcome": outcome.outcome.name(),
                "at": time(outcome.at),
                "reward": outcome.reward,
            })
        })
        .collect();
    json!({
        "decision_id": record.decision_id,
        "customer_id": record.customer_id,
        "decided_at": time(record.at),
        "placement": record.placement,
        "catalog_version": record.catalog_version,
        "model_version": record.model_version,
        "variant": record.variant,
        "fallback": record.fallback.map(|reason| reason.code()),
        "feature_names": decision.feature_names,
        "served": served,
        "outcomes": outcomes,
        "context": record.context,
        "eligible": record.eligible,
        "events_applied": record.events_applied,
        "engagement": super::to_parquet::engagement_json(&record.engagement),
        "shadow": record.shadow.as_ref().map(|shadow| json!({
            "model_version": shadow.model_version,
            "propensities": shadow.propensities,
            "choice": shadow.choice,
            "choice_propensity": shadow.choice_propensity,
        })),
        "scores": record.scores.values,
        "tiers": record.scores.tiers,
    })
}

/// Writes one line per decision.
#[derive(Debug)]
pub struct JsonlSink {
    out: BufWriter<File>,
}

impl JsonlSink {
    /// A sink writing to `file` (empty, positioned at its start).
    pub fn new(file: File) -> Self {
        Self {
            out: BufWriter::new(file),
        }
    }

    /// Appends the decision's line.
    pub fn push(&mut self, decision: &LoggedDecision) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, &record(decision))?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Appends one JSON object as a line.
    pub fn push_json(&mut self, value: &Json) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes the buffer and hands the file back.
    pub fn finish(self) -> anyhow::Result<File> {
        Ok(self.out.into_inner().map_err(|e| e.into_error())?)
    }
}
