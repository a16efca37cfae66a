//! The journey metrics, recorded from what a customer's journeys did. Their
//! label values are journey and step ids from the catalog and fixed codes,
//! so the number of series is bounded by the catalog.

use super::*;
use crate::journeys::{Book, DropOff, Offered, step_exit};
use nudge_models::journey::{Happened, Outcome};

/// Every ending a run can have, as its code.
const ENDINGS: [&str; 7] = [
    "completed",
    "converted",
    "exited",
    "exit_step",
    "cancelled",
    "removed",
    "failed",
];

impl Metrics {
    /// Registers the series of `catalog`'s journeys at zero — runs started
    /// and ended by every ending, sends of every send step — so they are
    /// exported (and alerts can rate them) before the first run.
    pub fn journeys_declared(&self, catalog: &nudge_models::catalog::Catalog) {
        if !catalog.journeys.is_empty() {
            // Registered, so its buckets are exported before the first timer.
            let _ = metrics::histogram!(JOURNEY_TIMER_LATENESS_SECONDS);
            metrics::gauge!(JOURNEY_DISPATCH_SUBSCRIBERS).set(0.0);
        }
        for journey in &catalog.journeys {
            let id = journey.id.to_string();
            metrics::counter!(JOURNEY_ENTRIES_TOTAL, JOURNEY => id.clone(), RESULT => "started")
                .increment(0);
            for channel in &journey.channels {
                for result in ["handed_out", "not_taken"] {
                    metrics::counter!(
                        JOURNEY_DISPATCHES_TOTAL,
                        CHANNEL => channel.clone(),
                        RESULT => result
                    )
                    .increment(0);
                }
                for result in ["delivered", "failed"] {
                    metrics::counter!(
                        JOURNEY_DELIVERIES_TOTAL,
                        JOURNEY => id.clone(),
                        CHANNEL => channel.clone(),
                        RESULT => result
                    )
                    .increment(0);
                }
            }
            for ending in ENDINGS {
                metrics::counter!(JOURNEY_RUNS_ENDED_TOTAL, JOURNEY => id.clone(), ENDING => ending)
                    .increment(0);
            }
            for step in &journey.steps {
                if step.kind.code() == "send" {
                    metrics::counter!(
                        JOURNEY_SENDS_TOTAL,
                        JOURNEY => id.clone(),
                        STEP => step.id.clone(),
                        RESULT => "sent",
                        CAUSE => ""
                    )
                    .increment(0);
                }
            }
        }
    }

    /// Counts every history entry and refused trigger of `outcome`, and
    /// sets the drop-off ratios that changed.
    pub fn journeys(&self, outcome: &Outcome, book: &Book, drop_offs: &[DropOff]) {
        for refusal in &outcome.refused {
            metrics::counter!(
                JOURNEY_ENTRIES_TOTAL,
                JOURNEY => refusal.journey.clone(),
                RESULT => refusal.reason.code()
            )
            .increment(1);
        }
        for report in &outcome.reports {
            let journey = &report.journey;
            if let Some(exit) = step_exit(report, book) {
                left(journey, exit.step, &exit.how, exit.in_step_ms);
            }
            match &report.entry.what {
                Happened::Started { .. } => {
                    metrics::counter!(JOURNEY_ENTRIES_TOTAL, JOURNEY => journey.clone(), RESULT => "started")
                        .increment(1);
                }
                Happened::Sent { step, .. } => send(journey, step, "sent", ""),
                Happened::Deferred { step, cause, .. } => send(journey, step, "deferred", cause),
                Happened::Blocked { step, cause, .. } => send(journey, step, "blocked", cause),
                Happened::Ended { ending, .. } => {
                    metrics::counter!(
                        JOURNEY_RUNS_ENDED_TOTAL,
                        JOURNEY => journey.clone(),
                        ENDING => ending.code()
                    )
                    .increment(1);
                }
                Happened::Delivered { channel, .. } => delivery(journey, channel, "delivered"),
                Happened::DeliveryFailed { channel, .. } => delivery(journey, channel, "failed"),
                Happened::FailedOver { from_channel, .. } => {
                    delivery(journey, from_channel, "failed_over");
                }
                Happened::Undelivered { channel, .. } => delivery(journey, channel, "undelivered"),
                Happened::Withdrawn { channel, .. } => delivery(journey, channel, "withdrawn"),
                Happened::Moved { .. } | Happened::Updated { .. } | Happened::RuleFailed { .. } => {
                }
            }
        }
        for drop_off in drop_offs {
            metrics::gauge!(
                JOURNEY_STEP_DROPOFF_RATIO,
                JOURNEY => drop_off.journey.clone(),
                STEP => drop_off.step.clone()
            )
            .set(drop_off.ratio);
        }
    }

    /// A customer's journey runs due since `late` moved.
    pub fn journey_timer_fired(&self, late: std::time::Duration) {
        metrics::histogram!(JOURNEY_TIMER_LATENESS_SECONDS).record(late.as_secs_f64());
    }

    /// Customers with journey runs scheduled to move, held by a paused
    /// journey, and holding dispatches for want of a delivery service.
    pub fn journey_timers(&self, due: usize, parked: usize, waiting: usize) {
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!(JOURNEY_TIMERS, STATE => "due").set(due as f64);
            metrics::gauge!(JOURNEY_TIMERS, STATE => "parked").set(parked as f64);
            metrics::gauge!(JOURNEY_DISPATCH_WAITING).set(waiting as f64);
        }
    }

    /// A handed-out dispatch was offered to the subscriptions.
    pub fn dispatch_offered(&self, channel: &str, redelivery: bool, offered: Offered) {
        let result = match (offered, redelivery) {
            (Offered::NotTaken, _) => "not_taken",
            (Offered::Taken, false) => "handed_out",
            (Offered::Taken, true) => "redelivered",
        };
        dispatches(channel, result);
    }

    /// A delivery service acknowledged a dispatch on `channel`.
    pub fn dispatch_acknowledged(&self, channel: &str) {
        dispatches(channel, "acknowledged");
    }

    /// Delivery services subscribed now.
    pub fn dispatch_subscribers(&self, subscribers: usize) {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(JOURNEY_DISPATCH_SUBSCRIBERS).set(subscribers as f64);
    }
}

fn dispatches(channel: &str, result: &'static str) {
    metrics::counter!(
        JOURNEY_DISPATCHES_TOTAL,
        CHANNEL => channel.to_owned(),
        RESULT => result
    )
    .increment(1);
}

fn delivery(journey: &str, channel: &str, result: &'static str) {
    metrics::counter!(
        JOURNEY_DELIVERIES_TOTAL,
        JOURNEY => journey.to_owned(),
        CHANNEL => channel.to_owned(),
        RESULT => result
    )
    .increment(1);
}

fn send(journey: &str, step: &str, result: &'static str, cause: &str) {
    metrics::counter!(
        JOURNEY_SENDS_TOTAL,
        JOURNEY => journey.to_owned(),
        STEP => step.to_owned(),
        RESULT => result,
        CAUSE => cause.to_owned()
    )
    .increment(1);
}

fn left(journey: &str, step: &str, how: &str, in_step_ms: i64) {
    metrics::counter!(
        JOURNEY_STEP_EXITS_TOTAL,
        JOURNEY => journey.to_owned(),
        STEP => step.to_owned(),
        HOW => how.to_owned()
    )
    .increment(1);
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!(
        JOURNEY_STEP_SECONDS,
        JOURNEY => journey.to_owned(),
        STEP => step.to_owned()
    )
    .record(in_step_ms.max(0) as f64 / 1_000.0);
}
