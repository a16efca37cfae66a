//! All of one customer's journeys: the runs in progress (and the last few
//! ended, for the audit trail) and what the entry rules remember.
//!
//! [`CustomerJourneys::on_event`] applies an event in this order: goals and
//! exits end the runs they match, at once; runs waiting for the event go on;
//! then journeys the event triggers start, each only if its entry rules let
//! the customer in ([`Refused`] says why not). [`CustomerJourneys::on_time`]
//! fires the runs that are due, the highest journey priority first, so when
//! two sends compete for the last slot of a cap the higher priority takes
//! it. A run keeps the journey version it started on, looked up through
//! [`Versions`]. The outbox of sends waiting for delivery services, and what
//! they report, is the other half of [`CustomerJourneys`], in `outbox.rs`.

use super::dispatch::Dispatch;
use super::history::{Ending, Entry};
use super::run::{Host, Run};
use super::{Journey, JourneyPolicy};
use crate::profile::Event;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ended runs kept per customer for the audit trail, newest kept.
pub const KEPT_ENDED_RUNS: usize = 10;

/// The journey versions runs may be on (the catalog's, and the earlier
/// ones that still have runs), and which journeys are paused: an operator
/// pauses and resumes a journey, every version of it, without a catalog
/// change.
pub trait Versions {
    /// Journey `id` as of `version`, if known.
    fn version(&self, id: &str, version: u32) -> Option<&Journey>;
    /// Whether journey `id` is paused.
    fn paused(&self, id: &str) -> bool;
}

/// The catalog's journeys alone: their versions, paused as declared.
impl Versions for Vec<Arc<Journey>> {
    fn version(&self, id: &str, version: u32) -> Option<&Journey> {
        self.iter()
            .find(|journey| journey.id.as_ref() == id && journey.version == version)
            .map(AsRef::as_ref)
    }

    fn paused(&self, id: &str) -> bool {
        self.iter()
            .any(|journey| journey.id.as_ref() == id && journey.is_paused())
    }
}

/// What the entry rules remember of one journey for one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMemory {
    /// When the customer last entered it.
    pub last_entered: Timestamp,
    /// How many times.
    pub entries: u32,
    /// Whether a run of it converted.
    pub converted: bool,
}

/// Why an event that triggers a journey did not start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The journey is paused.
    Paused,
    /// The customer is in it already.
    AlreadyIn,
    /// A customer enters it once.
    OnceOnly,
    /// The re-entry throttle: not before this.
    TooSoon {
        /// The earliest next entry.
        until: Timestamp,
    },
    /// The customer already reached its goal.
    GoalReached,
    /// The entry rule does not hold.
    EntryRule,
    /// The entry rule could not be evaluated.
    EntryRuleFailed {
        /// Why.
        reason: String,
    },
    /// The customer is in `max_concurrent` journeys already.
    TooManyJourneys {
        /// The limit.
        max: usize,
    },
}

impl Refused {
    /// A short code: `paused`, `already_in`, `once_only`, `too_soon`,
    /// `goal_reached`, `entry_rule`, `entry_rule_failed` or
    /// `too_many_journeys`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::AlreadyIn => "already_in",
            Self::OnceOnly => "once_only",
            Self::TooSoon { .. } => "too_soon",
            Self::GoalReached => "goal_reached",
            Self::EntryRule => "entry_rule",
            Self::EntryRuleFailed { .. } => "entry_rule_failed",
            Self::TooManyJourneys { .. } => "too_many_journeys",
        }
    }
}

/// One history entry of one run, as a call returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The journey.
    pub journey: String,
    /// The run's version.
    pub version: u32,
    /// What happened.
    pub entry: Entry,
}

/// A trigger that did not start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The journey.
    pub journey: String,
    /// Why.
    pub reason: Refused,
}

/// What one call changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Every history entry added, in order.
    pub reports: Vec<Report>,
    /// Triggers that did not start a run.
    pub refused: Vec<Refusal>,
}

impl Outcome {
    fn add(&mut self, run: &Run, entries: Vec<Entry>) {
        self.reports.extend(entries.into_iter().map(|entry| Report {
            journey: run.journey.clone(),
            version: run.version,
            entry,
        }));
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty() && self.refused.is_empty()
    }
}

/// One customer's journeys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerJourneys {
    /// Runs in progress, then up to [`KEPT_ENDED_RUNS`] ended ones.
    pub runs: Vec<Run>,
    /// By journey id.
    pub memory: BTreeMap<String, EntryMemory>,
    /// Sends waiting for a delivery service's outcome ([`super::dispatch`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Dispatch>,
}

impl CustomerJourneys {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.memory.is_empty() && self.outbox.is_empty()
    }

    /// Whether nothing of it can ever be due: no run (ended ones included:
    /// a run can end with a send still in the outbox) and no dispatch.
    pub fn is_idle(&self) -> bool {
        self.runs.is_empty() && self.outbox.is_empty()
    }

    /// The runs in progress.
    pub fn active(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|run| !run.is_ended())
    }

    /// When a run or a dispatch is next due (a paused journey's runs are
    /// not: resuming it makes them due), if any is.
    pub fn next_due(&self, versions: &dyn Versions) -> Option<Timestamp> {
        self.active()
            .filter(|run| !versions.paused(&run.journey))
            .filter_map(Run::due)
            .chain(
                self.outbox
                    .iter()
                    .filter(|dispatch| !versions.paused(&dispatch.journey))
                    .map(|dispatch| dispatch.due),
            )
            .min()
    }

    /// When a run or a dispatch is next due, paused journeys' runs
    /// included: what a durable timer index keeps (pausing and resuming
    /// change no state).
    pub fn earliest_due(&self) -> Option<Timestamp> {
        self.active()
            .filter_map(Run::due)
            .chain(self.outbox_due())
            .min()
    }

    /// Whether a run in progress is held by a paused journey.
    pub fn has_paused(&self, versions: &dyn Versions) -> bool {
        self.active().any(|run| versions.paused(&run.journey))
            || self
                .outbox
                .iter()
                .any(|dispatch| versions.paused(&dispatch.journey))
    }

    /// The customer did `event` at `now`. `journeys` are the catalog's (the
    /// versions new entries take); `versions` resolves the versions runs are
    /// on.
    pub fn on_event(
        &mut self,
        journeys: &[Arc<Journey>],
        versions: &dyn Versions,
        policy: &JourneyPolicy,
        event: &Event,
        now: Timestamp,
        host: &mut dyn Host,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for index in self.by_priority(versions) {
            let run = &mut self.runs[index];
            let Some(journey) = versions.version(&run.journey, run.version) else {
                let entries = run.end(unknown_version(run), now);
                outcome.add(run, entries);
                continue;
            };
            let paused = versions.paused(&run.journey);
            let entries = run.on_event(journey, paused, event, now, host);
            outcome.add(run, entries);
            if matches!(
                run.state,
                super::RunState::Ended {
                    ending: Ending::Converted { .. },
                    ..
                }
            ) && let Some(memory) = self.memory.get_mut(&run.journey)
            {
                memory.converted = true;
            }
        }
        // Before any new run: its history is where a new send is noted.
        self.withdraw_ended(now, &mut outcome);
        for journey in journeys {
            if journey.trigger.event != event.name {
                continue;
            }
            if let Some(rule) = &journey.trigger.when {
                // A trigger whose condition does not hold did not fire; one
                // that cannot be evaluated did not either.
                if !matches!(host.holds(rule, Some(event)), Ok(true)) {
                    continue;
                }
            }
            match self.admit(journey, versions, policy, event, now, host) {
                Err(reason) => outcome.refused.push(Refusal {
                    journey: journey.id.to_string(),
                    reason,
                }),
                Ok(()) => {
                    let memory = self
                        .memory
                        .entry(journey.id.to_string())
                        .or_insert(EntryMemory {
                            last_entered: now,
                            entries: 0,
                            converted: false,
                        });
                    memory.last_entered = now;
                    memory.entries = memory.entries.saturating_add(1);
                    let (mut run, mut entries) = Run::start(journey, event, now);
                    entries.extend(run.advance(journey, false, now, host));
                    outcome.add(&run, entries);
                    self.runs.push(run);
                }
            }
        }
        self.prune();
        outcome
    }

    /// Time is `now`: every run that is due moves, the highest journey
    /// priority first.
    pub fn on_time(
        &mut self,
        versions: &dyn Versions,
        now: Timestamp,
        host: &mut dyn Host,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for index in self.by_priority(versions) {
            let run = &mut self.runs[index];
            if run.due().is_none_or(|due| due > now) {
                continue;
            }
            let paused = versions.paused(&run.journey);
            let entries = match versions.version(&run.journey, run.version) {
                Some(journey) => run.advance(journey, paused, now, host),
                None => run.end(unknown_version(run), now),
            };
            outcome.add(run, entries);
        }
        self.prune();
        outcome
    }

    /// The customer opted out of, or was suppressed on, `channel`: every
    /// run of a journey that sends on it ends at once.
    pub fn remove_for_channel(
        &mut self,
        channel: &str,
        reason: &str,
        versions: &dyn Versions,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for run in self.runs.iter_mut().filter(|run| !run.is_ended()) {
            let affected = versions
                .version(&run.journey, run.version)
                .is_some_and(|journey| journey.channels.contains(channel));
            if affected {
                let entries = run.end(
                    Ending::Removed {
                        reason: reason.to_owned(),
                    },
                    now,
                );
                outcome.add(run, entries);
            }
        }
        self.withdraw_ended(now, &mut outcome);
        self.prune();
        outcome
    }

    /// Ends the customer's run of `journey_id` (an operator's cancel);
    /// empty when there is none.
    pub fn cancel(&mut self, journey_id: &str, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        for run in self
            .runs
            .iter_mut()
            .filter(|run| !run.is_ended() && run.journey == journey_id)
        {
            let entries = run.end(Ending::Cancelled, now);
            outcome.add(run, entries);
        }
        self.withdraw_ended(now, &mut outcome);
        self.prune();
        outcome
    }

    /// Whether the entry rules let the customer into `journey` now.
    fn admit(
        &self,
        journey: &Journey,
        versions: &dyn Versions,
        policy: &JourneyPolicy,
        event: &Event,
        now: Timestamp,
        host: &dyn Host,
    ) -> Result<(), Refused> {
        if versions.paused(&journey.id) {
            return Err(Refused::Paused);
        }
        if self.active().any(|run| run.journey == journey.id.as_ref()) {
            return Err(Refused::AlreadyIn);
        }
        let memory = self.memory.get(journey.id.as_ref());
        if let Some(memory) = memory {
            match journey.reentry_after {
                None => return Err(Refused::OnceOnly),
                Some(after) => {
                    let until = memory.last_entered.plus(after);
                    if now < until {
                        return Err(Refused::TooSoon { until });
                    }
                }
            }
        }
        if journey.skip_if_goal_reached
            && (memory.is_some_and(|memory| memory.converted)
                || journey.goals.iter().any(|goal| host.has_done(&goal.event)))
        {
            return Err(Refused::GoalReached);
        }
        if let Some(rule) = &journey.entry {
            match host.holds(rule, Some(event)) {
                Ok(true) => {}
                Ok(false) => return Err(Refused::EntryRule),
                Err(error) => {
                    return Err(Refused::EntryRuleFailed {
                        reason: error.to_string(),
                    });
                }
            }
        }
        if self.active().count() >= policy.max_concurrent {
            return Err(Refused::TooManyJourneys {
                max: policy.max_concurrent,
            });
        }
        Ok(())
    }

    /// The positions of the runs in progress, the highest journey priority
    /// first, then the one due first, then the oldest.
    fn by_priority(&self, versions: &dyn Versions) -> Vec<usize> {
        let mut order: Vec<(i32, Option<Timestamp>, usize)> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, run)| !run.is_ended())
            .map(|(index, run)| {
                let priority = versions
                    .version(&run.journey, run.version)
                    .map_or(i32::MIN, |journey| journey.priority);
                (priority, run.due(), index)
            })
            .collect();
        order.sort_by(|left, right| {
            right
                .0
                .cmp(&left.0)
                .then_with(|| left.1.cmp(&right.1))
                .then_with(|| left.2.cmp(&right.2))
        });
        order.into_iter().map(|(_, _, index)| index).collect()
    }

    /// Keeps the runs in progress and the newest [`KEPT_ENDED_RUNS`] ended.
    fn prune(&mut self) {
        let ended = self.runs.iter().filter(|run| run.is_ended()).count();
        let mut surplus = ended.saturating_sub(KEPT_ENDED_RUNS);
        if surplus == 0 {
            return;
        }
        // Runs are in the order they started: the oldest ended go first.
        self.runs.retain(|run| {
            if surplus > 0 && run.is_ended() {
                surplus -= 1;
                return false;
            }
            true
        });
    }
}

/// The ending of a run whose journey version is no longer known.
fn unknown_version(run: &Run) -> Ending {
    Ending::Failed {
        reason: format!(
            "version {} of journey '{}' is no longer known",
            run.version, run.journey
        ),
    }
}
