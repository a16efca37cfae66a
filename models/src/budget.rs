//! Global budgets: an action's serves across all customers ("at most 1,000
//! coupons"). Shared by every customer actor, so the counters are synchronized.
//!
//! Two ways to hold them:
//! - **alone** ([`BudgetCounters::default`]): this process sees every serve,
//!   so a unit is taken while fewer than the limit are used;
//! - **shared** ([`BudgetCounters::shared`]): several nodes of a cluster serve
//!   the same budgets. A node takes a unit only from units the cluster's
//!   ledger granted it, and the ledger grants only units that neither were
//!   used nor are held by another node, so the nodes together never serve
//!   past the limit. How many units a node asks to hold is
//!   [`grant_target`].

use std::collections::HashMap;
use std::sync::Mutex;

/// Most units of one budget a node holds at a time.
pub const MOST_HELD: u64 = 256;

/// One budget's counters on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Units used so far. Shared: across the cluster as last read, plus the
    /// units this node took since.
    pub used: u64,
    /// Shared: units granted to this node and not taken yet.
    pub granted: u64,
    /// Units this node has taken since it started.
    pub taken: u64,
    /// Shared: reservations refused since start because this node held no
    /// unit (the demand a grant did not cover).
    pub starved: u64,
}

/// Serves so far per budgeted action.
#[derive(Debug, Default)]
pub struct BudgetCounters {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    shared: bool,
    counters: HashMap<String, Counter>,
}

impl BudgetCounters {
    /// Counters of budgets shared with other nodes: a unit is taken only
    /// from the units [granted](Self::grant) to this node.
    pub fn shared() -> Self {
        Self {
            inner: Mutex::new(Inner {
                shared: true,
                counters: HashMap::new(),
            }),
        }
    }

    /// Whether units come from grants ([`BudgetCounters::shared`]).
    pub fn is_shared(&self) -> bool {
        self.lock().shared
    }

    /// Serves of `action_id` so far.
    pub fn used(&self, action_id: &str) -> u64 {
        self.counter(action_id).used
    }

    /// The counters of `action_id`.
    pub fn counter(&self, action_id: &str) -> Counter {
        self.lock()
            .counters
            .get(action_id)
            .copied()
            .unwrap_or_default()
    }

    /// Sets the units of `action_id` used so far, as a durable ledger holds
    /// them (at start, and for shared budgets whenever the ledger is read).
    pub fn restore(&self, action_id: &str, used: u64) {
        self.lock()
            .counters
            .entry(action_id.to_owned())
            .or_default()
            .used = used;
    }

    /// Takes one unit of `action_id`'s budget if fewer than `limit` are used
    /// and, for shared budgets, a granted unit is left.
    pub fn try_reserve(&self, action_id: &str, limit: u64) -> bool {
        let mut inner = self.lock();
        let shared = inner.shared;
        let counter = inner.counters.entry(action_id.to_owned()).or_default();
        if counter.used >= limit {
            return false;
        }
        if shared {
            if counter.granted == 0 {
                counter.starved += 1;
                return false;
            }
            counter.granted -= 1;
        }
        counter.used += 1;
        counter.taken += 1;
        true
    }

    /// Gives one unit back (a failed delivery). A shared budget's unit goes
    /// back to the ledger, for any node, not to this node's grant.
    pub fn release(&self, action_id: &str) {
        if let Some(counter) = self.lock().counters.get_mut(action_id) {
            counter.used = counter.used.saturating_sub(1);
        }
    }

    /// Adds `units` the ledger granted this node.
    pub fn grant(&self, action_id: &str, units: u64) {
        let mut inner = self.lock();
        let counter = inner.counters.entry(action_id.to_owned()).or_default();
        counter.granted = counter.granted.saturating_add(units);
    }

    /// Takes back up to `at_most` granted units not taken yet, to return
    /// them to the ledger; how many.
    pub fn give_back(&self, action_id: &str, at_most: u64) -> u64 {
        let mut inner = self.lock();
        let Some(counter) = inner.counters.get_mut(action_id) else {
            return 0;
        };
        let units = counter.granted.min(at_most);
        counter.granted -= units;
        units
    }

    /// Takes back every granted unit (the ledger took them back, or is
    /// about to); how many per action.
    pub fn give_back_all(&self) -> Vec<(String, u64)> {
        let mut inner = self.lock();
        let mut returned: Vec<(String, u64)> = inner
            .counters
            .iter_mut()
            .filter(|(_, counter)| counter.granted > 0)
            .map(|(action_id, counter)| (action_id.clone(), std::mem::take(&mut counter.granted)))
            .collect();
        returned.sort();
        returned
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every update is a single integer write), so a poisoned lock is reused.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many units of one shared budget a node should hold: enough for about
/// two rounds at the demand it saw in the last round (`demand`: units taken
/// plus reservations refused for want of a unit), at most [`MOST_HELD`].
/// A node without demand holds one unit while the ledger has one `free`
/// for each of the `nodes` (so a first serve needs no round trip), and
/// none when fewer are left, so the last units go to the nodes that serve.
pub fn grant_target(demand: u64, free: u64, nodes: usize) -> u64 {
    if demand > 0 {
        return demand.saturating_mul(2).min(MOST_HELD);
    }
    u64::from(free >= u64::try_from(nodes.max(1)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reserves_past_the_limit_and_release_reopens() {
        let budgets = BudgetCounters::default();
        assert!(!budgets.is_shared());
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

    #[test]
    fn a_shared_budget_takes_only_granted_units() {
        let budgets = BudgetCounters::shared();
        assert!(budgets.is_shared());
        assert!(!budgets.try_reserve("coupon", 10), "nothing granted yet");
        budgets.grant("coupon", 2);
        assert!(budgets.try_reserve("coupon", 10));
        assert!(budgets.try_reserve("coupon", 10));
        assert!(!budgets.try_reserve("coupon", 10), "the grant is spent");
        assert_eq!(
            budgets.counter("coupon"),
            Counter {
                used: 2,
                granted: 0,
                taken: 2,
                starved: 2,
            }
        );
        // A released unit goes back to the ledger, not to this node.
        budgets.release("coupon");
        assert!(!budgets.try_reserve("coupon", 10));
        assert_eq!(budgets.used("coupon"), 1);
    }

    #[test]
    fn a_grant_does_not_pass_the_limit_as_last_read() {
        let budgets = BudgetCounters::shared();
        budgets.grant("coupon", 5);
        budgets.restore("coupon", 9);
        assert!(budgets.try_reserve("coupon", 10));
        assert!(!budgets.try_reserve("coupon", 10));
        assert_eq!(budgets.counter("coupon").granted, 4);
    }

    #[test]
    fn units_given_back_leave_the_node() {
        let budgets = BudgetCounters::shared();
        budgets.grant("coupon", 5);
        budgets.grant("voucher", 1);
        assert_eq!(budgets.give_back("coupon", 3), 3);
        assert_eq!(budgets.give_back("coupon", 9), 2);
        assert_eq!(budgets.give_back("unknown", 9), 0);
        budgets.grant("coupon", 1);
        assert_eq!(
            budgets.give_back_all(),
            vec![("coupon".to_owned(), 1), ("voucher".to_owned(), 1)]
        );
        assert!(!budgets.try_reserve("coupon", 10));
        assert!(budgets.give_back_all().is_empty());
    }

    #[test]
    fn a_node_holds_for_its_demand_and_idles_on_one_unit_only_while_plenty_is_left() {
        assert_eq!(grant_target(10, 0, 3), 20);
        assert_eq!(grant_target(1_000, 5_000, 3), MOST_HELD);
        assert_eq!(grant_target(0, 3, 3), 1);
        assert_eq!(grant_target(0, 2, 3), 0);
        assert_eq!(grant_target(0, 0, 1), 0);
        assert_eq!(grant_target(0, 1, 0), 1);
    }
}
