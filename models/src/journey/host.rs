//! The host a customer's journeys run on in the service: sends decide
//! through the full pipeline ([`decide_and_record`]) against the customer's
//! state, so consent, suppression, eligibility, caps, cooldowns, quiet hours
//! and budgets all apply, and a send that only time stops is deferred to
//! the moment [`next_allowed`] gives rather than dropped.
//!
//! A send for a placement is the placement's best action, as `Decide` would
//! choose it; a send of one action decides in the journey's own placement
//! (`journey/<id>`, every channel, one slot). What went out is kept in
//! [`PipelineHost::sent`], with the decision-log entry and the budget units
//! the caller makes durable with the customer's new state.

use super::run::{Host, SendAttempt, SendRequest};
use super::{SendTarget, holds};
use crate::Error;
use crate::catalog::Rule;
use crate::catalog::journeys::journey_placement_id;
use crate::customer::CustomerState;
use crate::log::LogEntry;
use crate::model::Model;
use crate::pipeline::{
    Decision, DecisionRequest, Environment, RecordAs, Recorded, Scoring, decide_and_record,
    next_allowed,
};
use crate::profile::{Attribute, Event, NEVER_DAYS};
use crate::send_time::{Basis, Placement, PopulationClock, SendTimeEstimate};
use crate::time::{Span, Timestamp};
use crate::value::AttrValue;
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// One send that went out.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The journey.
    pub journey: String,
    /// Its version.
    pub version: u32,
    /// The send step.
    pub step: String,
    /// The placement it decided in.
    pub placement: String,
    /// The decision's id.
    pub decision_id: String,
    /// The decision (its one served action first).
    pub decision: Decision,
    /// Its decision-log entry.
    pub log: Option<LogEntry>,
    /// Budget units it took, one entry per unit.
    pub budget_taken: Vec<String>,
}

/// The service's host: the customer's state and what the pipeline reads.
pub struct PipelineHost<'a> {
    /// Catalog, model, budgets.
    pub env: Environment<'a>,
    /// The customer's state (its journeys taken out while they run).
    pub state: &'a mut CustomerState,
    /// The customer.
    pub customer_id: &'a str,
    /// The experiment variant the customer is in.
    pub variant: &'a str,
    /// A shadow model, scored silently beside the serving one.
    pub shadow: Option<&'a Model>,
    /// Now.
    pub now: Timestamp,
    /// A new decision id for each send.
    pub new_decision_id: &'a mut dyn FnMut() -> String,
    /// The population's engagement by hour of week: what a send at the
    /// customer's best time falls back on when their own history is thin.
    pub population: &'a PopulationClock,
    /// The sends that went out, in order.
    pub sent: Vec<Sent>,
}

impl std::fmt::Debug for PipelineHost<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PipelineHost")
            .field("customer_id", &self.customer_id)
            .field("now", &self.now)
            .field("sent", &self.sent.len())
            .finish_non_exhaustive()
    }
}

impl PipelineHost<'_> {
    /// What to answer when `decision` served nothing: deferred to the
    /// earliest moment a candidate stopped only by time could go, else
    /// blocked with the first reason.
    fn not_served(&self, decision: &Decision) -> SendAttempt {
        let catalog = self.env.catalog;
        let later = decision
            .filtered
            .iter()
            .filter(|filtered| filtered.reason.lifts_with_time())
            .filter_map(|filtered| {
                let action = catalog.action(&filtered.action_id)?;
                let until = next_allowed(catalog, self.state, action, self.now)?;
                Some((until, filtered))
            })
            .min_by_key(|(until, _)| *until);
        if let Some((until, filtered)) = later {
            return SendAttempt::Deferred {
                until,
                reason: format!("{}: {}", filtered.action_id, filtered.message),
                cause: filtered.reason.code().to_owned(),
            };
        }
        match decision.filtered.first() {
            Some(filtered) => SendAttempt::Blocked {
                reason: format!("{}: {}", filtered.action_id, filtered.message),
                cause: filtered.reason.code().to_owned(),
            },
            None => SendAttempt::Blocked {
                reason: "no action is eligible".to_owned(),
                cause: "nothing_eligible".to_owned(),
            },
        }
    }
}

impl Host for PipelineHost<'_> {
    fn customer_id(&self) -> &str {
        self.customer_id
    }

    fn timezone(&self) -> Tz {
        self.env.catalog.timezone_of(&self.state.profile)
    }

    fn holds(&self, rule: &Rule, event: Option<&Event>) -> Result<bool, Error> {
        holds(
            self.env.catalog.cel_env(),
            rule,
            &self.state.profile,
            &self.env.catalog.known_events,
            event,
            self.now,
        )
    }

    fn has_done(&self, event: &str) -> bool {
        self.state.profile.days_since(event, self.now) < NEVER_DAYS
    }

    /// For one action: its suggested send time (caps, cooldowns, quiet
    /// hours and blackouts close hours). For a placement, whose action is
    /// chosen when the moment comes: the customer's best hour, the
    /// pipeline deferring it then if policy says later.
    fn best_time(
        &mut self,
        request: &SendRequest<'_>,
        within: Option<Span>,
    ) -> Option<(Timestamp, String)> {
        let catalog = self.env.catalog;
        let settings = catalog.send_time.as_ref()?;
        let window = within.unwrap_or(settings.policy.window);
        let suggested = match request.target {
            SendTarget::Action(id) => {
                let action = catalog.action(id)?;
                crate::send_time::suggest(
                    catalog,
                    self.state,
                    action,
                    self.population,
                    self.now,
                    Some(window),
                )?
            }
            SendTarget::Placement(_) => {
                let estimate = SendTimeEstimate::new(
                    &self.state.profile.send_times,
                    self.population,
                    &settings.policy,
                );
                let timezone = catalog.timezone_of(&self.state.profile);
                estimate.best_time(timezone, self.now, window, |_| None)?
            }
        };
        let whose = match suggested.basis {
            Basis::Personal => "the customer's own",
            Basis::Population => "the population's (thin history)",
        };
        let moved = match suggested.placement {
            Placement::Best => "",
            Placement::Moved { .. } => "; a better hour was closed by policy",
            Placement::AfterWindow => "; the whole window was closed by policy",
        };
        let reason = format!(
            "waiting for the best time, {} local, by {whose} engagement pattern{moved}",
            suggested.hour
        );
        Some((suggested.at, reason))
    }

    fn send(&mut self, request: &SendRequest<'_>) -> SendAttempt {
        let catalog = self.env.catalog;
        let excluded = request.exclude_channels;
        let on_channel_left = |id: &str| {
            catalog
                .action(id)
                .is_some_and(|action| !excluded.contains(&action.channel))
        };
        let (placement, candidates) = match request.target {
            SendTarget::Action(action) if excluded.is_empty() => (
                journey_placement_id(&request.journey.id),
                vec![action.to_string()],
            ),
            // A failover: the step's failover actions on the channels left.
            SendTarget::Action(action) => {
                let failover = match &request.step.kind {
                    super::StepKind::Send { failover, .. } => failover.as_slice(),
                    _ => &[],
                };
                let left: Vec<String> = std::iter::once(action)
                    .chain(failover)
                    .filter(|id| on_channel_left(id))
                    .map(ToString::to_string)
                    .collect();
                (journey_placement_id(&request.journey.id), left)
            }
            SendTarget::Placement(placement) if excluded.is_empty() => {
                (placement.clone(), Vec::new())
            }
            // A failover: the placement's actions on the channels left.
            SendTarget::Placement(placement) => {
                let left: Vec<String> =
                    catalog.placement(placement).map_or_else(Vec::new, |found| {
                        found
                            .candidates
                            .iter()
                            .filter_map(|position| catalog.actions.get(*position))
                            .filter(|action| !excluded.contains(&action.channel))
                            .map(|action| action.id.to_string())
                            .collect()
                    });
                (placement.clone(), left)
            }
        };
        if !excluded.is_empty() && candidates.is_empty() {
            return SendAttempt::Blocked {
                reason: format!(
                    "no channel left to fail over to (failed: {})",
                    excluded.join(", ")
                ),
                cause: "no_failover".to_owned(),
            };
        }
        let decision_id = (self.new_decision_id)();
        let context = BTreeMap::new();
        let decision_request = DecisionRequest {
            placement: &placement,
            context: &context,
            candidates: &candidates,
            limit: 1,
            dry_run: false,
            scoring: Scoring::Model,
            seed: crate::hash::fnv1a(decision_id.bytes()),
            now: self.now,
        };
        // Decided on a copy: a send that does not go leaves the state as it
        // was (a decision that serves nothing is not logged either).
        let mut state = self.state.clone();
        let recorded = decide_and_record(
            &self.env,
            &mut state,
            &decision_request,
            Some(RecordAs {
                decision_id: &decision_id,
                customer_id: self.customer_id,
                variant: self.variant,
                shadow: self.shadow,
            }),
            || true,
        );
        let Recorded {
            decision,
            log,
            budget_taken,
        } = match recorded {
            Ok(Some(recorded)) => recorded,
            Ok(None) => {
                return SendAttempt::Blocked {
                    reason: "the decision was withdrawn".to_owned(),
                    cause: "withdrawn".to_owned(),
                };
            }
            Err(error) => {
                return SendAttempt::Blocked {
                    reason: error.to_string(),
                    cause: "error".to_owned(),
                };
            }
        };
        let Some(served) = decision.served.first() else {
            return self.not_served(&decision);
        };
        let attempt = SendAttempt::Sent {
            decision_id: decision_id.clone(),
            action: served.action_id.clone(),
            channel: served.channel.clone(),
        };
        *self.state = state;
        self.sent.push(Sent {
            journey: request.journey.id.to_string(),
            version: request.journey.version,
            step: request.step.id.clone(),
            placement,
            decision_id,
            decision,
            log,
            budget_taken,
        });
        attempt
    }

    fn update(&mut self, attribute: &str, value: &AttrValue) {
        self.state.profile.attributes.insert(
            attribute,
            Attribute {
                value: value.clone(),
                set_at: self.now,
            },
        );
    }
}
