//! Journey analytics, counted from the history entries the customer actors
//! report ([`nudge_models::journey::Outcome`]): per journey, triggers that
//! started a run or were refused (by reason), runs started and ended (by
//! ending), sends made, deferred and blocked (by cause: `quiet_hours`,
//! `cap_channel`, `opted_out`, …); per step, runs entered, runs that left
//! (by how: `done`, `timeout`, `case_0`, …, or the ending that took them out
//! while in it: `converted`, `removed`, …) and the time they spent in it.
//!
//! Counted since the service started, in memory: `Admin.ListJourneys` and
//! `nudge journeys` read them, and the same counts go to Prometheus.

use super::Book;
use hdrhistogram::Histogram;
use nudge_models::journey::{Ending, Happened, Outcome, Report, Versions};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// How many of the last runs to leave a step its drop-off ratio is over.
pub const DROP_OFF_WINDOW: usize = 200;

/// Endings that are a drop-off when they take a run out of a step: the
/// customer left the journey without finishing or converting.
const DROPPED: [&str; 4] = ["exited", "removed", "cancelled", "failed"];

/// A step's drop-off ratio after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct DropOff {
    /// The journey.
    pub journey: String,
    /// The step.
    pub step: String,
    /// Dropped among the last runs to leave it (at most [`DROP_OFF_WINDOW`]).
    pub ratio: f64,
}

/// The longest time in a step the histograms hold (a year, in
/// milliseconds); longer is counted as this.
const LONGEST_MS: u64 = 366 * 24 * 3_600 * 1_000;

/// One step's figures.
#[derive(Debug, Clone)]
pub struct StepFigures {
    /// Runs that entered it.
    pub entered: u64,
    /// Runs that left it, by how.
    pub exited: BTreeMap<String, u64>,
    /// Sends that went out from it.
    pub sent: u64,
    /// Sends it put off.
    pub deferred: u64,
    /// Sends that could not go.
    pub blocked: u64,
    /// Milliseconds runs spent in it before leaving (at least 1).
    in_step: Histogram<u64>,
    /// Whether each of the last runs to leave dropped out there.
    recent: VecDeque<bool>,
}

impl StepFigures {
    fn new() -> Self {
        Self {
            entered: 0,
            exited: BTreeMap::new(),
            sent: 0,
            deferred: 0,
            blocked: 0,
            in_step: Histogram::new_with_bounds(1, LONGEST_MS, 2)
                .expect("constant bounds are valid"),
            recent: VecDeque::with_capacity(DROP_OFF_WINDOW),
        }
    }

    /// Dropped among the last runs to leave it (0 before any left).
    pub fn drop_off(&self) -> f64 {
        let dropped = self.recent.iter().filter(|dropped| **dropped).count();
        #[allow(clippy::cast_precision_loss)]
        if self.recent.is_empty() {
            0.0
        } else {
            dropped as f64 / self.recent.len() as f64
        }
    }

    /// The median time runs spent in the step before leaving it, in
    /// seconds; `None` before any left.
    pub fn median_seconds(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (!self.in_step.is_empty()).then(|| self.in_step.value_at_quantile(0.5) as f64 / 1_000.0)
    }

    fn left(&mut self, how: &str, in_step_ms: i64) {
        *self.exited.entry(how.to_owned()).or_insert(0) += 1;
        if self.recent.len() == DROP_OFF_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(DROPPED.contains(&how));
        let millis = u64::try_from(in_step_ms).unwrap_or(0);
        self.in_step.saturating_record(millis.clamp(1, LONGEST_MS));
    }
}

/// One journey's figures.
#[derive(Debug, Clone, Default)]
pub struct JourneyFigures {
    /// Runs started.
    pub started: u64,
    /// Triggers that did not start a run, by reason.
    pub refused: BTreeMap<String, u64>,
    /// Runs ended, by ending.
    pub ended: BTreeMap<String, u64>,
    /// Sends that went out.
    pub sent: u64,
    /// Sends put off, by cause.
    pub deferred: BTreeMap<String, u64>,
    /// Sends that could not go, by cause.
    pub blocked: BTreeMap<String, u64>,
    /// Sends delivery services reported delivered.
    pub delivered: u64,
    /// Deliveries reported failed, by channel.
    pub failed_deliveries: BTreeMap<String, u64>,
    /// Sends that failed over to another channel.
    pub failed_over: u64,
    /// Dispatches that left the outbox without an outcome.
    pub undelivered: u64,
    /// Sends withdrawn before a delivery service took them (their run
    /// ended by a goal, an exit, a cancel or a removal).
    pub withdrawn: u64,
    /// By step id.
    pub steps: BTreeMap<String, StepFigures>,
}

impl JourneyFigures {
    /// Triggers that fired: runs started and entries refused.
    pub fn triggered(&self) -> u64 {
        self.started + self.refused.values().sum::<u64>()
    }

    /// Runs ended, every way.
    pub fn ended_total(&self) -> u64 {
        self.ended.values().sum()
    }

    /// Runs ended as `code`.
    pub fn ended_as(&self, code: &str) -> u64 {
        self.ended.get(code).copied().unwrap_or(0)
    }

    /// Runs started and not ended since the service started.
    pub fn active(&self) -> u64 {
        self.started.saturating_sub(self.ended_total())
    }

    /// Converted runs among the ended ones (0 before any ended).
    pub fn conversion_rate(&self) -> f64 {
        let ended = self.ended_total();
        #[allow(clippy::cast_precision_loss)]
        if ended == 0 {
            0.0
        } else {
            self.ended_as("converted") as f64 / ended as f64
        }
    }

    fn step(&mut self, id: &str) -> &mut StepFigures {
        self.steps
            .entry(id.to_owned())
            .or_insert_with(StepFigures::new)
    }
}

/// A run leaving a step, as one history entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepExit<'a> {
    /// The step left.
    pub step: &'a str,
    /// How: the [`Via`](nudge_models::journey::Via) code of a move, or the
    /// code of the ending that took the run out while in it.
    pub how: String,
    /// How long the run was in the step, in milliseconds.
    pub in_step_ms: i64,
}

/// The step `report` says a run left, if it says one: a move leaves its
/// step; an ending leaves the step the run was in, except a completed
/// run's, which left its last step by moving on (a move, counted then).
pub fn step_exit<'a>(report: &'a Report, book: &'a Book) -> Option<StepExit<'a>> {
    match &report.entry.what {
        Happened::Moved {
            from,
            via,
            in_step_ms,
            ..
        } => Some(StepExit {
            step: from,
            how: via.code(),
            in_step_ms: *in_step_ms,
        }),
        Happened::Ended {
            ending,
            step,
            in_step_ms,
        } if *ending != Ending::Completed => {
            let journey = book.version(&report.journey, report.version)?;
            Some(StepExit {
                step: &journey.steps.get(*step)?.id,
                how: ending.code().to_owned(),
                in_step_ms: *in_step_ms,
            })
        }
        _ => None,
    }
}

/// Every journey's figures since the service started.
#[derive(Debug, Default)]
pub struct JourneyStats {
    journeys: Mutex<BTreeMap<String, JourneyFigures>>,
}

impl JourneyStats {
    /// Counts what one call changed; returns the drop-off ratios of the
    /// steps runs left.
    pub fn record(&self, outcome: &Outcome, book: &Book) -> Vec<DropOff> {
        let mut drop_offs = Vec::new();
        if outcome.is_empty() {
            return drop_offs;
        }
        let mut journeys = self.journeys.lock().unwrap_or_else(PoisonError::into_inner);
        for refusal in &outcome.refused {
            let figures = journeys.entry(refusal.journey.clone()).or_default();
            *figures
                .refused
                .entry(refusal.reason.code().to_owned())
                .or_insert(0) += 1;
        }
        for report in &outcome.reports {
            let figures = journeys.entry(report.journey.clone()).or_default();
            if let Some(exit) = step_exit(report, book) {
                let left = figures.step(exit.step);
                left.left(&exit.how, exit.in_step_ms);
                drop_offs.push(DropOff {
                    journey: report.journey.clone(),
                    step: exit.step.to_owned(),
                    ratio: left.drop_off(),
                });
            }
            match &report.entry.what {
                Happened::Started { step, .. } => {
                    figures.started += 1;
                    figures.step(step).entered += 1;
                }
                Happened::Sent { step, .. } => {
                    figures.sent += 1;
                    figures.step(step).sent += 1;
                }
                Happened::Deferred { step, cause, .. } => {
                    *figures.deferred.entry(cause.clone()).or_insert(0) += 1;
                    figures.step(step).deferred += 1;
                }
                Happened::Blocked { step, cause, .. } => {
                    *figures.blocked.entry(cause.clone()).or_insert(0) += 1;
                    figures.step(step).blocked += 1;
                }
                Happened::Moved { to, .. } => {
                    if let Some(to) = to {
                        figures.step(to).entered += 1;
                    }
                }
                Happened::Ended { ending, .. } => {
                    *figures.ended.entry(ending.code().to_owned()).or_insert(0) += 1;
                }
                Happened::Delivered { .. } => figures.delivered += 1,
                Happened::DeliveryFailed { channel, .. } => {
                    *figures
                        .failed_deliveries
                        .entry(channel.clone())
                        .or_insert(0) += 1;
                }
                Happened::FailedOver { .. } => figures.failed_over += 1,
                Happened::Undelivered { .. } => figures.undelivered += 1,
                Happened::Withdrawn { .. } => figures.withdrawn += 1,
                Happened::Updated { .. } | Happened::RuleFailed { .. } => {}
            }
        }
        drop_offs
    }

    /// The figures of journey `id` (empty before anything happened in it).
    pub fn of(&self, id: &str) -> JourneyFigures {
        self.journeys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .unwrap_or_default()
    }
}
