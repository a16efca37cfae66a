//! Journeys through the engine: the operator's calls (list with analytics,
//! a customer's runs, cancel, pause, resume), waking customers whose
//! journeys are due ([`Engine::fire_journey_timers`], the timer task
//! `server::run` runs on the service clock), and the delivery services'
//! side: subscribing to dispatches, acknowledging them.

use super::Engine;
use crate::actors::customer::{AckDispatch, CancelRun, WAKE_RETRY, Wake};
use crate::error::ServiceError;
use crate::journeys::{Book, Handed, JourneyFigures, Subscription, TimerEntry};
use nudge_models::journey::{Acknowledged, CustomerJourneys, Journey, Versions};
use nudge_models::time::Span;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Most wake-ups in flight at once: enough to keep every arbiter busy, few
/// enough that a burst of due timers does not crowd out calls.
const WAKES_IN_FLIGHT: usize = 256;

/// Most customers taken from the schedule in one go.
const TAKEN_AT_ONCE: usize = 1_024;

/// The longest the task sleeps without looking at the schedule (a clock
/// set back, say).
const LONGEST_SLEEP: Span = Span(1_000);

/// One journey as an operator sees it.
#[derive(Debug, Clone)]
pub struct JourneyView {
    /// The version new runs take.
    pub journey: Arc<Journey>,
    /// Paused (by the catalog or an operator).
    pub paused: bool,
    /// Paused by an operator.
    pub paused_by_operator: bool,
    /// Its analytics since the service started.
    pub figures: JourneyFigures,
}

impl Engine {
    /// The running catalog's journeys with their analytics.
    pub fn journeys(&self) -> Vec<JourneyView> {
        let book = self.shared.journeys.load();
        book.current()
            .iter()
            .map(|journey| JourneyView {
                journey: journey.clone(),
                paused: book.paused(&journey.id),
                paused_by_operator: book.paused_by_operator().contains(journey.id.as_ref()),
                figures: self.shared.journey_stats.of(&journey.id),
            })
            .collect()
    }

    /// A customer's runs, and the versions they are on.
    pub async fn customer_journeys(
        &self,
        customer_id: &str,
    ) -> Result<(CustomerJourneys, Arc<Book>), ServiceError> {
        let state = self.profile(customer_id).await?;
        Ok((state.journeys, self.shared.journeys.load()))
    }

    /// Ends the customer's run of `journey_id`; whether one was in
    /// progress. Answers once the change is durable.
    pub async fn cancel_journey_run(
        &self,
        customer_id: &str,
        journey_id: &str,
    ) -> Result<bool, ServiceError> {
        self.known_journey(journey_id)?;
        self.call_durable(customer_id, |_| CancelRun {
            journey_id: journey_id.to_owned(),
        })
        .await
    }

    /// Pauses journey `journey_id` (no new entries, runs hold); whether it
    /// was not paused by an operator already.
    pub fn pause_journey(&self, journey_id: &str) -> Result<bool, ServiceError> {
        self.known_journey(journey_id)?;
        let changed = self.shared.journeys.set_paused(journey_id, true)?;
        if changed {
            tracing::warn!(journey = journey_id, "journey paused by an operator");
        }
        Ok(changed)
    }

    /// Lifts an operator's pause of `journey_id`: the customers whose runs
    /// held are woken to go on. Returns whether it was paused, and how many
    /// customers were woken.
    pub fn resume_journey(&self, journey_id: &str) -> Result<(bool, usize), ServiceError> {
        self.known_journey(journey_id)?;
        let changed = self.shared.journeys.set_paused(journey_id, false)?;
        let woken = if changed {
            tracing::info!(journey = journey_id, "journey resumed by an operator");
            self.shared.timers.unpark_all(self.shared.clock.now())
        } else {
            0
        };
        Ok((changed, woken))
    }

    /// Refuses a journey id the running catalog does not have.
    fn known_journey(&self, journey_id: &str) -> Result<(), ServiceError> {
        let book = self.shared.journeys.load();
        if book
            .current()
            .iter()
            .any(|journey| journey.id.as_ref() == journey_id)
        {
            Ok(())
        } else {
            Err(ServiceError::UnknownJourney(journey_id.to_owned()))
        }
    }

    /// Moves the customer's due journey runs now and hands out its due
    /// dispatches: once the change is durable, each is offered to a
    /// delivery service's subscription (one not taken is handed out again
    /// after the acknowledgement timeout). Replies how many history entries
    /// that added.
    pub async fn wake(&self, customer_id: &str) -> Result<usize, ServiceError> {
        let woken = self.call_durable(customer_id, |_| Wake).await?;
        if !woken.handed.is_empty() {
            let customer_id: Arc<str> = Arc::from(customer_id);
            for dispatch in woken.handed {
                let redelivery = dispatch.handed_out > 1;
                let channel = dispatch.channel.clone();
                let offered = self.shared.dispatches.offer(Handed {
                    customer_id: customer_id.clone(),
                    dispatch,
                });
                self.shared
                    .metrics
                    .dispatch_offered(&channel, redelivery, offered);
            }
        }
        Ok(woken.entries)
    }

    /// A delivery service subscribes for `channels` (`None`: every
    /// channel): customers holding dispatches for them are woken now.
    pub fn subscribe_dispatches(
        &self,
        channels: Option<HashSet<String>>,
    ) -> Result<Subscription, ServiceError> {
        for channel in channels.iter().flatten() {
            self.check_channel("channels", channel)?;
        }
        let (subscription, woken) = self
            .shared
            .dispatches
            .subscribe(channels)
            .map_err(|_| ServiceError::ShuttingDown)?;
        let now = self.shared.clock.now();
        self.shared
            .timers
            .restore(woken.into_iter().map(|customer_id| (customer_id, now)));
        self.shared
            .metrics
            .dispatch_subscribers(self.shared.dispatches.subscribers());
        Ok(subscription)
    }

    /// A delivery service took dispatch `dispatch_id` of `customer_id`:
    /// answers once that is durable.
    pub async fn ack_dispatch(
        &self,
        customer_id: &str,
        dispatch_id: &str,
    ) -> Result<Acknowledged, ServiceError> {
        let (acknowledged, channel) = self
            .call_durable(customer_id, |_| AckDispatch {
                dispatch_id: dispatch_id.to_owned(),
            })
            .await?;
        if let (Acknowledged::Taken, Some(channel)) = (acknowledged, channel) {
            self.shared.metrics.dispatch_acknowledged(&channel);
        }
        Ok(acknowledged)
    }

    /// Wakes every customer whose journeys are due, as the service clock
    /// reaches them, for as long as it runs. A wake-up that fails (the
    /// store refuses writes) is tried again [`WAKE_RETRY`] later.
    pub async fn fire_journey_timers(self: Arc<Self>) {
        let shared = self.shared.clone();
        let clock = shared.clock.clone();
        let in_flight = Arc::new(Semaphore::new(WAKES_IN_FLIGHT));
        let mut wakes = JoinSet::new();
        loop {
            let now = clock.now();
            let due = shared.timers.take_due(now, TAKEN_AT_ONCE);
            let (scheduled, parked) = shared.timers.len();
            let hub = &shared.dispatches;
            shared
                .metrics
                .journey_timers(scheduled, parked, hub.waiting());
            // Subscriptions end without telling anyone: counted here too.
            shared.metrics.dispatch_subscribers(hub.subscribers());
            if due.is_empty() {
                let until = shared
                    .timers
                    .next_due()
                    .map_or(now.plus(LONGEST_SLEEP), |due| {
                        due.min(now.plus(LONGEST_SLEEP))
                    });
                tokio::select! {
                    () = clock.sleep_until(until) => {}
                    () = shared.timers.earlier_set() => {}
                }
                while wakes.try_join_next().is_some() {}
                continue;
            }
            for customer_id in due {
                // A cluster node fires only its own partitions' timers; a
                // partition taken later brings its timers along.
                if !self.serves(&customer_id) {
                    continue;
                }
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let engine = self.clone();
                wakes.spawn(async move {
                    let _permit = permit;
                    if let Err(error) = engine.wake(&customer_id).await {
                        tracing::debug!(%error, "journey wake-up failed; tried again shortly");
                        let retry = engine.shared.clock.now().plus(WAKE_RETRY);
                        engine
                            .shared
                            .timers
                            .set(&customer_id, TimerEntry::Due(retry));
                    }
                });
            }
            while wakes.try_join_next().is_some() {}
        }
    }
}
