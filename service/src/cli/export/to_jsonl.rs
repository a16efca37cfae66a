//! The JSON lines side of `nudge export`: one JSON object per decision, its
//! served actions and outcomes nested, timestamps RFC 3339, written through a
//! buffer so memory holds one decision at a time.

use std::fs::File;
use std::io::{BufWriter, Write as _};

use nudge_proto::v1::LoggedDecision;
use serde_json::{Value as Json, json};

use crate::cli::names::timestamp_json;

/// `text`, or `null` if it is empty (fields where empty means "none").
fn string_or_null(text: &str) -> Json {
    if text.is_empty() {
        Json::Null
    } else {
        text.into()
    }
}

/// One decision as a JSON object: the proto's fields by name, `model_version`
/// and `fallback` `null` when empty, an outcome's `reward` `null` when none was
/// reported.
pub fn record(decision: &LoggedDecision) -> Json {
    let served: Vec<Json> = decision
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
                "outcome": outcome.outcome,
                "at": timestamp_json(outcome.at.as_ref()),
                "reward": outcome.has_reward.then_some(outcome.reward),
            })
        })
        .collect();
    json!({
        "decision_id": decision.decision_id,
        "customer_id": decision.customer_id,
        "decided_at": timestamp_json(decision.decided_at.as_ref()),
        "placement": decision.placement,
        "catalog_version": decision.catalog_version,
        "model_version": string_or_null(&decision.model_version),
        "variant": decision.variant,
        "fallback": string_or_null(&decision.fallback),
        "feature_names": decision.feature_names,
        "served": served,
        "outcomes": outcomes,
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

    /// Flushes the buffer and hands the file back.
    pub fn finish(self) -> anyhow::Result<File> {
        Ok(self.out.into_inner().map_err(|e| e.into_error())?)
    }
}
