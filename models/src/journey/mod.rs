//! Journeys: multi-step plans that a customer's actor runs, started by an
//! event — the trial-conversion sequence, churn prevention routed by risk
//! tier — declared in the catalog file and validated with it.
//!
//! - the definitions are the catalog's ([`Journey`], [`Step`],
//!   [`StepKind`], re-exported here); this file has [`holds`], which
//!   evaluates a journey's CEL rules over `profile` and `event`, and
//!   [`split_arm`];
//! - [`history`]: what happens to a run, as entries of its audit trail;
//! - [`run`]: one run of one journey for one customer and the engine that
//!   moves it ([`Run::advance`] as time passes, [`Run::on_event`] when the
//!   customer does something), through a [`Host`] that performs sends and
//!   updates and answers rules;
//! - [`customer`]: all of one customer's runs ([`CustomerJourneys`]): entry
//!   rules, goals and exits, timers fired in priority order, opt-out;
//! - [`host`]: the host the service runs them on ([`PipelineHost`]), whose
//!   sends decide through the full pipeline;
//! - [`dispatch`]: the outbox of sends handed to delivery services, with
//!   redelivery, a retry and channel failover.
//!
//! Like the rest of the domain nothing here reads a clock or does I/O: every
//! call takes `now`, and the service's actor is the host.

pub mod customer;
pub mod dispatch;
pub mod history;
pub mod host;
mod outbox;
pub mod run;

pub use crate::catalog::journeys::{
    BranchCase, EventMatch, Journey, JourneyPolicy, JourneyStatus, Next, SendAt, SendTarget,
    SplitArm, Step, StepKind,
};
pub use customer::{CustomerJourneys, EntryMemory, Outcome, Refusal, Refused, Report, Versions};
pub use dispatch::{ATTEMPTS_PER_CHANNEL, Acknowledged, Dispatch, DispatchPolicy};
pub use history::{Ending, Entry, Happened, Via};
pub use host::{PipelineHost, Sent};
pub use run::{Host, Run, RunState, SendAttempt, SendRequest};

use crate::Error;
use crate::catalog::Rule;
use crate::profile::{Event, Profile};
use crate::rule_vars::JourneyVars;
use crate::time::Timestamp;
use std::sync::Arc;

/// Whether `rule` holds over the customer's `profile` and, for a rule about
/// an event (a trigger, a goal, an exit, a `wait_for`), that event's
/// properties as `event`. An error (a missing key, a value that is not a
/// bool) is not a verdict: callers decide what it means, and journeys take
/// it as "does not hold" and note it in the run's history. `env` is the
/// catalog's CEL environment ([`crate::catalog::Catalog::cel_env`]): a rule
/// of a common shape is read directly, any other runs in it.
pub fn holds(
    env: &Arc<cel::Env>,
    rule: &Rule,
    profile: &Profile,
    known_events: &[String],
    event: Option<&Event>,
    now: Timestamp,
) -> Result<bool, Error> {
    let vars = JourneyVars::new(
        profile,
        known_events,
        event.map(|event| &event.properties),
        now,
    );
    if let Some(verdict) = rule.direct_verdict(&vars) {
        return Ok(verdict);
    }
    let mut context = cel::Context::with_env(env.clone());
    context.set_variable_resolver(&vars);
    rule.evaluate(&context)
}

/// The arm of `arms` that `customer_id` falls in for this journey's step:
/// the same for the same customer, journey and step, spread by weight.
pub fn split_arm(arms: &[SplitArm], customer_id: &str, journey_id: &str, step_id: &str) -> usize {
    let total: u64 = arms.iter().map(|arm| u64::from(arm.weight)).sum();
    if total == 0 {
        return 0;
    }
    let hash = crate::hash::fnv1a(
        journey_id
            .bytes()
            .chain(std::iter::once(0xff))
            .chain(step_id.bytes())
            .chain(std::iter::once(0xff))
            .chain(customer_id.bytes()),
    );
    // The high bits mix best.
    let mut point = (hash >> 16) % total;
    for (index, arm) in arms.iter().enumerate() {
        let weight = u64::from(arm.weight);
        if point < weight {
            return index;
        }
        point -= weight;
    }
    arms.len() - 1
}
