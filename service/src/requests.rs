//! The service's calls and answers as plain Rust types: what a gRPC handler
//! converts a request into ([`crate::convert`]) and what the engine answers.
//! Shared by the engine, which routes them, and the customer actor, which
//! applies them.

use crate::stats::LatencySummary;
use nudge_models::customer::{ConsentState, SuppressionReason};
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::Decision;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;

/// A validated Decide call.
#[derive(Debug, Clone)]
pub struct DecideInput {
    /// Customer id.
    pub customer_id: String,
    /// Placement id.
    pub placement: String,
    /// Request context.
    pub context: BTreeMap<String, AttrValue>,
    /// Candidate ids (empty: the placement's actions).
    pub candidates: Vec<String>,
    /// Actions to serve (0: the placement's slots).
    pub limit: u32,
    /// Record nothing.
    pub dry_run: bool,
    /// Return every filtered candidate.
    pub explain: bool,
    /// Caller's id for tracing.
    pub request_id: String,
}

/// A validated ReportOutcome call.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeInput {
    /// The customer.
    pub customer_id: String,
    /// The decision that served the action.
    pub decision_id: String,
    /// The served action.
    pub action_id: String,
    /// What happened.
    pub outcome: OutcomeKind,
    /// Optional finite reward.
    pub reward: Option<f64>,
    /// When it happened (`None`: the service's time).
    pub at: Option<Timestamp>,
}

/// A validated SetConsent call.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInput {
    /// The customer.
    pub customer_id: String,
    /// The channel.
    pub channel: String,
    /// The new state (`None`: clear it).
    pub state: Option<ConsentState>,
}

/// A validated Suppress or Unsuppress call.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionInput {
    /// The customer.
    pub customer_id: String,
    /// The channel, `None` for every channel.
    pub channel: Option<String>,
    /// The reason (`None` when lifting every reason).
    pub reason: Option<SuppressionReason>,
    /// Operator's note.
    pub note: String,
    /// Lift rather than add.
    pub lift: bool,
}

/// A Decide answer.
#[derive(Debug, Clone)]
pub struct DecideReply {
    /// The decision id (`None` for a dry run).
    pub decision_id: Option<String>,
    /// The pipeline's decision.
    pub decision: Decision,
    /// Catalog version used.
    pub catalog_version: String,
    /// Experiment variant.
    pub variant: String,
    /// Whether nothing was recorded.
    pub dry_run: bool,
}

/// Counters and gauges for `Admin.Stats`.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Live actors.
    pub live_customers: u64,
    /// Decisions.
    pub decisions: u64,
    /// Fallback decisions.
    pub fallbacks: u64,
    /// Fallback decisions by reason code, non-zero only.
    pub fallbacks_by_reason: Vec<(String, u64)>,
    /// Decisions by experiment variant, most first.
    pub variants: Vec<(String, u64)>,
    /// Decide latency over the recent window.
    pub latency: LatencySummary,
    /// Events applied.
    pub events: u64,
    /// Duplicate events.
    pub duplicate_events: u64,
    /// Outcomes applied.
    pub outcomes: u64,
    /// Filtered candidates by reason code.
    pub filtered: Vec<(String, u64)>,
    /// Serves per action.
    pub served: Vec<(String, u64)>,
    /// Catalog version.
    pub catalog_version: String,
    /// Model version (empty when none).
    pub model_version: String,
    /// Activations.
    pub activations: u64,
    /// Passivations.
    pub passivations: u64,
    /// Refused calls.
    pub rejected: u64,
}
