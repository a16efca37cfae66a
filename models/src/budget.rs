//! Global budgets: an action's serves across all customers ("at most 1,000
//! coupons"). Shared by every customer actor, so the counters are synchronized.

use std::collections::HashMap;
use std::sync::Mutex;

/// Serves so far per budgeted action.
#[derive(Debug, Default)]
pub struct BudgetCounters {
    used: Mutex<HashMap<String, u64>>,
}

impl BudgetCounters {
    /// Serves of `action_id` so far.
    pub fn used(&self, action_id: &str) -> u64 {
        self.lock().get(action_id).copied().unwrap_or(0)
    }

    /// Sets the units of `action_id` used so far, as a durable ledger holds
    /// them (at start).
    pub fn restore(&self, action_id: &str, used: u64) {
        self.lock().insert(action_id.to_owned(), used);
    }

    /// Takes one unit of `action_id`'s budget if fewer than `limit` are used.
    pub fn try_reserve(&self, action_id: &str, limit: u64) -> bool {
        let mut used = self.lock();
        let count = used.entry(action_id.to_owned()).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Gives one unit back (a failed delivery).
    pub fn release(&self, action_id: &str) {
        if let Some(count) = self.lock().get_mut(action_id) {
            *count = count.saturating_sub(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every update is a single integer write), so a poisoned lock is reused.
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reserves_past_the_limit_and_release_reopens() {
        let budgets = BudgetCounters::default();
        assert!(budgets.try_reserve("coupon", 2));
        assert!(budgets.try_reserve("coupon", 2));
        assert!(!budgets.try_reserve("coupon", 2));
        assert_eq!(budgets.used("coupon"), 2);
        budgets.release("coupon");
        assert!(budgets.try_reserve("coupon", 2));
        assert_eq!(budgets.used("other"), 0);
        budgets.restore("other", 5);
        assert_eq!(budgets.used("other"), 5);
        assert!(!budgets.try_reserve("other", 5));
    }
}
