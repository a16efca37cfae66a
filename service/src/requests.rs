//! The service's calls and answers as plain Rust types: what a gRPC handler
//! converts a request into ([`crate::convert`]) and what the engine answers.
//! Shared by the engine, which routes them, and the customer actor, which
//! applies them.

use crate::error::{BudgetedCall, ServiceError, Stage};
use crate::stats::LatencySummary;
use nudge_models::customer::{ConsentState, SuppressionReason};
use nudge_models::ledger::OutcomeKind;
use nudge_models::pipeline::Decision;
use nudge_models::time::Timestamp;
use nudge_models::value::AttrValue;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// When a call's answer is due: the sooner of the client's deadline and the
/// service budget, and which of the two it is. Only the client's own
/// deadline passing is DEADLINE_EXCEEDED; the budget running out is
/// overload ([`ServiceError::BudgetExhausted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The instant.
    pub at: Instant,
    /// Its distance from the call's start, in milliseconds.
    pub ms: u64,
    /// Whether it is the client's deadline (otherwise the budget, shorter).
    pub client: bool,
}

impl Deadline {
    /// The deadline of a call that started at `started`: the client's
    /// (`client`, from its `grpc-timeout`) when no longer than `budget`,
    /// else the budget.
    pub fn new(started: Instant, client: Option<Duration>, budget: Duration) -> Self {
        let (length, client) = match client {
            Some(client) if client <= budget => (client, true),
            _ => (budget, false),
        };
        Self {
            at: started + length,
            ms: u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
            client,
        }
    }

    /// Whether it has passed at `now`.
    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// The time left at `now`.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// The error of `call` when this deadline passed at `stage`.
    pub fn exceeded(&self, call: BudgetedCall, stage: Stage) -> ServiceError {
        if self.client {
            ServiceError::DeadlineExceeded {
                deadline_ms: self.ms,
            }
        } else {
            ServiceError::BudgetExhausted {
                budget_ms: self.ms,
                call,
                stage,
            }
        }
    }
}

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
    /// For a journey's dispatch: the attempt it is about, when named.
    pub dispatch_id: Option<String>,
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
    /// For each served action, in order: its suggested send time (outbound
    /// channels under the catalog's `[send_time]`).
    pub send_at: Vec<Option<nudge_models::send_time::SendTime>>,
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
    /// Decisions and outcomes by experiment variant, most decisions first.
    pub variants: Vec<crate::stats::VariantTotals>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn only_the_clients_own_deadline_passing_is_deadline_exceeded() {
        let started = Instant::now();
        let budget = Duration::from_millis(100);
        // The client waits longer than the budget: the budget applies, and
        // running out of it is overload, never DEADLINE_EXCEEDED.
        let budgeted = Deadline::new(started, Some(Duration::from_secs(10)), budget);
        assert_eq!((budgeted.ms, budgeted.client), (100, false));
        assert_eq!(budgeted.at, started + budget);
        let queued = budgeted.exceeded(BudgetedCall::Decide, Stage::Queued);
        assert_eq!(queued.code(), Code::ResourceExhausted, "{queued}");
        let storing = budgeted.exceeded(BudgetedCall::Track, Stage::Storing);
        assert_eq!(storing.code(), Code::Unavailable, "{storing}");
        assert!(storing.to_string().contains("same event id"), "{storing}");
        // No client deadline: the budget too.
        assert!(!Deadline::new(started, None, budget).client);
        // The client's deadline is the shorter: its passing is the client's.
        let client = Deadline::new(started, Some(Duration::from_millis(30)), budget);
        assert_eq!((client.ms, client.client), (30, true));
        for stage in Stage::ALL {
            let error = client.exceeded(BudgetedCall::Outcome, stage);
            assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
        }
        assert!(client.passed(started + Duration::from_millis(30)));
        assert!(!client.passed(started + Duration::from_millis(29)));
        assert_eq!(
            client.remaining(started + Duration::from_millis(10)),
            Duration::from_millis(20)
        );
    }
}
