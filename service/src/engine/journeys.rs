//! Waking customers whose journeys are due: [`Engine::fire_journey_timers`]
//! is the timer task `server::run` runs on the service clock.

use super::Engine;
use crate::actors::customer::{WAKE_RETRY, Wake};
use crate::error::ServiceError;
use crate::journeys::TimerEntry;
use nudge_models::time::Span;
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

impl Engine {
    /// Moves the customer's due journey runs now; replies how many history
    /// entries that added, once their changes are durable.
    pub async fn wake(&self, customer_id: &str) -> Result<usize, ServiceError> {
        self.call_durable(customer_id, |_| Wake).await
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
