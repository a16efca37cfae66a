//! When each customer's journeys are next due, in memory, earliest first:
//! the engine's timer task takes what is due and wakes those customers.
//!
//! Actors keep it current: after any change to a customer's runs the actor
//! sets the customer's next due moment, or parks the customer when its only
//! runs are held by a paused journey (resuming the journey wakes the parked
//! customers), or clears it. At start it is filled from the store's index
//! of earliest due runs.

use nudge_models::time::Timestamp;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// Where one customer stands in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerEntry {
    /// Due at this moment.
    Due(Timestamp),
    /// Runs held by a paused journey, nothing else due.
    Parked,
    /// Nothing due.
    None,
}

#[derive(Debug, Default)]
struct Schedule {
    by_due: BTreeSet<(Timestamp, Arc<str>)>,
    due_of: HashMap<Arc<str>, Timestamp>,
    parked: HashSet<Arc<str>>,
}

impl Schedule {
    fn unset(&mut self, customer_id: &str) {
        if let Some((customer_id, due)) = self.due_of.remove_entry(customer_id) {
            self.by_due.remove(&(due, customer_id));
        }
        self.parked.remove(customer_id);
    }
}

/// Every customer's next journey moment.
#[derive(Debug, Default)]
pub struct JourneyTimers {
    schedule: Mutex<Schedule>,
    /// Told when a moment earlier than the earliest is set.
    earlier: Notify,
}

impl JourneyTimers {
    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets where `customer_id` stands.
    pub fn set(&self, customer_id: &Arc<str>, entry: TimerEntry) {
        let mut schedule = self.schedule();
        let earliest = schedule.by_due.first().map(|(due, _)| *due);
        schedule.unset(customer_id);
        match entry {
            TimerEntry::Due(due) => {
                schedule.due_of.insert(customer_id.clone(), due);
                schedule.by_due.insert((due, customer_id.clone()));
                if earliest.is_none_or(|earliest| due < earliest) {
                    drop(schedule);
                    self.earlier.notify_one();
                }
            }
            TimerEntry::Parked => {
                schedule.parked.insert(customer_id.clone());
            }
            TimerEntry::None => {}
        }
    }

    /// Adds what the store's index holds at start: each customer's earliest
    /// due run (paused journeys' runs included; their actors park them).
    pub fn restore(&self, entries: impl IntoIterator<Item = (Arc<str>, Timestamp)>) {
        {
            let mut schedule = self.schedule();
            for (customer_id, due) in entries {
                schedule.unset(&customer_id);
                schedule.due_of.insert(customer_id.clone(), due);
                schedule.by_due.insert((due, customer_id));
            }
        }
        self.earlier.notify_one();
    }

    /// Takes up to `max` customers due at or before `now`, earliest first.
    /// Each leaves the schedule until its actor sets it again.
    pub fn take_due(&self, now: Timestamp, max: usize) -> Vec<Arc<str>> {
        let mut schedule = self.schedule();
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some((due, _)) = schedule.by_due.first() else {
                break;
            };
            if *due > now {
                break;
            }
            if let Some((_, customer_id)) = schedule.by_due.pop_first() {
                schedule.due_of.remove(&customer_id);
                taken.push(customer_id);
            }
        }
        taken
    }

    /// The earliest moment set.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.schedule().by_due.first().map(|(due, _)| *due)
    }

    /// Makes every parked customer due at `now` (a journey was resumed);
    /// returns how many.
    pub fn unpark_all(&self, now: Timestamp) -> usize {
        let parked: Vec<Arc<str>> = self.schedule().parked.iter().cloned().collect();
        let count = parked.len();
        self.restore(parked.into_iter().map(|customer_id| (customer_id, now)));
        count
    }

    /// How many customers have a moment set, and how many are parked.
    pub fn len(&self) -> (usize, usize) {
        let schedule = self.schedule();
        (schedule.due_of.len(), schedule.parked.len())
    }

    /// Waits until a moment earlier than the earliest is set (or
    /// [`JourneyTimers::restore`] adds some).
    pub async fn earlier_set(&self) {
        self.earlier.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    #[test]
    fn customers_come_out_earliest_first_once_due_and_leave_the_schedule() {
        let timers = JourneyTimers::default();
        timers.set(&id("b"), TimerEntry::Due(Timestamp(200)));
        timers.set(&id("a"), TimerEntry::Due(Timestamp(100)));
        timers.set(&id("c"), TimerEntry::Due(Timestamp(300)));
        assert_eq!(timers.next_due(), Some(Timestamp(100)));
        assert!(timers.take_due(Timestamp(99), 10).is_empty());
        assert_eq!(timers.take_due(Timestamp(250), 10), [id("a"), id("b")]);
        assert_eq!(timers.take_due(Timestamp(250), 10), Vec::<Arc<str>>::new());
        assert_eq!(timers.len(), (1, 0));
    }

    #[test]
    fn setting_a_customer_again_replaces_its_moment() {
        let timers = JourneyTimers::default();
        timers.set(&id("a"), TimerEntry::Due(Timestamp(100)));
        timers.set(&id("a"), TimerEntry::Due(Timestamp(500)));
        assert_eq!(timers.next_due(), Some(Timestamp(500)));
        timers.set(&id("a"), TimerEntry::None);
        assert_eq!(timers.next_due(), None);
        assert_eq!(timers.len(), (0, 0));
    }

    #[test]
    fn at_most_max_are_taken_at_once() {
        let timers = JourneyTimers::default();
        timers.restore((0..10).map(|index| (id(&format!("c{index}")), Timestamp(index))));
        assert_eq!(timers.take_due(Timestamp(100), 4).len(), 4);
        assert_eq!(timers.take_due(Timestamp(100), 100).len(), 6);
    }

    #[test]
    fn parked_customers_are_due_when_a_journey_resumes() {
        let timers = JourneyTimers::default();
        timers.set(&id("a"), TimerEntry::Due(Timestamp(100)));
        timers.set(&id("a"), TimerEntry::Parked);
        assert_eq!(timers.next_due(), None);
        assert_eq!(timers.len(), (0, 1));
        assert_eq!(timers.unpark_all(Timestamp(700)), 1);
        assert_eq!(timers.len(), (1, 0));
        assert_eq!(timers.take_due(Timestamp(700), 10), [id("a")]);
    }
}
