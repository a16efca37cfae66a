//! The service's source of time. Production reads the system clock; tests use a
//! [`ManualClock`] and move time forward explicitly (windows, cooldowns, quiet
//! hours, passivation), never by sleeping.
//!
//! Background work (the idle sweeper, decision-log retention) waits on the
//! same clock through [`Clock::sleep_until`]: on the system clock it sleeps on
//! tokio time; on a manual clock it wakes when `advance` or `set` moves time
//! past the due instant, and not before.

use nudge_models::time::{Span, Timestamp};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::watch;

/// A wait on a [`Clock`], as returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;

    /// Completes once [`Clock::now`] has reached `due` (at once if it
    /// already has). Needs a tokio runtime with time enabled.
    fn sleep_until(&self, due: Timestamp) -> Sleep;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            });
        Timestamp::from_millis(millis)
    }

    fn sleep_until(&self, due: Timestamp) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            // Re-checked after each sleep: the wall clock may be stepped back
            // while we sleep on the monotonic one.
            loop {
                let remaining = due.millis().saturating_sub(clock.now().millis());
                let Ok(remaining @ 1..) = u64::try_from(remaining) else {
                    return;
                };
                tokio::time::sleep(std::time::Duration::from_millis(remaining)).await;
            }
        })
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// The current time in milliseconds (read on every decision, so an atomic
    /// rather than the channel below).
    millis: Arc<AtomicI64>,
    /// Signalled after every move of time, so sleepers re-check their due
    /// instant.
    moved: Arc<watch::Sender<()>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(start.millis())),
            moved: Arc::new(watch::Sender::new(())),
        }
    }

    /// Moves time forward by `span`, waking the sleepers it makes due.
    pub fn advance(&self, span: Span) {
        self.millis.fetch_add(span.millis(), Ordering::SeqCst);
        self.moved.send_replace(());
    }

    /// Sets the time, waking the sleepers it makes due.
    pub fn set(&self, now: Timestamp) {
        self.millis.store(now.millis(), Ordering::SeqCst);
        self.moved.send_replace(());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, due: Timestamp) -> Sleep {
        let clock = self.clone();
        // Subscribed before the first check: a move after it is not missed.
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            while clock.now() < due {
                // The sender lives in `clock`, so this only fails if it is
                // gone, which it cannot be while `clock` is held.
                if moved.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const START: Timestamp = Timestamp::from_millis(1_000_000);

    /// Whether `sleep` completes within a short real-time bound.
    async fn completes(sleep: &mut Sleep) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sleep)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_once_time_reaches_its_due_instant() {
        let clock = ManualClock::new(START);
        let mut sleep = clock.sleep_until(START.plus(Span(10_000)));
        assert!(!completes(&mut sleep).await, "time has not moved");
        clock.advance(Span(9_999));
        assert!(!completes(&mut sleep).await, "one millisecond early");
        clock.clone().advance(Span(1));
        assert!(completes(&mut sleep).await, "due: a clone moved the time");
    }

    #[tokio::test]
    async fn a_manual_sleeper_wakes_when_time_is_set_past_its_due_instant() {
        let clock = ManualClock::new(START);
        let mut sleep = clock.sleep_until(START.plus(Span::days(1)));
        clock.set(START.plus(Span::days(2)));
        assert!(completes(&mut sleep).await);
        let mut past = clock.sleep_until(START);
        assert!(completes(&mut past).await, "already due");
    }

    #[tokio::test]
    async fn a_system_sleeper_waits_for_the_wall_clock() {
        let clock = SystemClock;
        let mut sleep = clock.sleep_until(clock.now().plus(Span(60_000)));
        assert!(!completes(&mut sleep).await);
        let mut past = clock.sleep_until(clock.now().minus(Span(1)));
        assert!(completes(&mut past).await, "already due");
    }
}
