//! Global budgets shared by the nodes of a cluster (PRODUCT.md §11).
//!
//! Each node serves a budgeted action only from units the ledger in Redis
//! granted it ([`nudge_models::budget::BudgetCounters::shared`]), and the
//! ledger grants a unit only while `used + granted to any node < limit`,
//! checked in the script that grants it, so the nodes together never serve
//! past a budget. A unit a node serves leaves its grant in the same script
//! call that counts it used; the units of a node that leaves, or whose
//! registration runs out, go back to the ledger (`members.lua`).
//!
//! How many units a node holds follows its demand
//! ([`grant_target`]): every full round (a third of the lease) it asks for
//! or gives back units to hold about two rounds' worth;
//! in between, every [`QUICK_ROUND`], a node that ran short asks for more.
//! The hot path never waits on Redis for a budget: a node holding no unit
//! filters the action as used up until its next round, so at the very end
//! of a budget a serve may be refused while another node still holds a
//! unit it is about to serve.

use super::Cluster;
use crate::engine::Engine;
use crate::store::redis::{GrantChange, Granted};
use nudge_models::budget::{BudgetCounters, grant_target};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a node short of units asks for more.
pub const QUICK_ROUND: Duration = Duration::from_millis(100);

/// What this node last saw of each budget.
#[derive(Debug, Default)]
pub(super) struct Grants {
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Units taken plus reservations refused, at the last full round.
    demand_mark: u64,
    /// Units to hold, as the last full round set it.
    target: u64,
    /// Units neither used nor granted, as the ledger last said.
    free: u64,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            demand_mark: 0,
            target: 1,
            free: u64::MAX,
        }
    }
}

impl Grants {
    /// The changes of this node's grants a round asks for: a full round
    /// sets each budget's target from the demand since the last one and
    /// asks for (or gives back) the difference; a quick round only tops up
    /// a budget running short while the ledger had units free. Units given
    /// back leave `counters` here, before the ledger has them back, so
    /// none is served twice.
    fn plan(
        &self,
        budgets: &[(String, u64)],
        counters: &BudgetCounters,
        nodes: usize,
        full: bool,
    ) -> Vec<GrantChange> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut changes = Vec::new();
        // A budget gone from the catalog: its units go back.
        seen.retain(|action_id, _| {
            let kept = budgets.iter().any(|(id, _)| id == action_id);
            let units = if kept {
                0
            } else {
                counters.give_back(action_id, u64::MAX)
            };
            if units > 0 {
                changes.push(GrantChange {
                    action_id: action_id.clone(),
                    limit: 0,
                    delta: -i64::try_from(units).unwrap_or(i64::MAX),
                });
            }
            kept
        });
        for (action_id, limit) in budgets {
            let counter = counters.counter(action_id);
            let seen = seen.entry(action_id.clone()).or_default();
            let demand_now = counter.taken + counter.starved;
            let demand = demand_now.saturating_sub(seen.demand_mark);
            let target = if full {
                seen.demand_mark = demand_now;
                seen.target = grant_target(demand, seen.free, nodes);
                seen.target
            } else {
                seen.target.max(grant_target(demand, seen.free, nodes))
            };
            let delta = if full {
                i128::from(target) - i128::from(counter.granted)
            } else if seen.free > 0 && counter.granted.saturating_mul(4) < target {
                i128::from(target - counter.granted)
            } else {
                0
            };
            let delta = if delta < 0 {
                -i128::from(counters.give_back(action_id, delta.unsigned_abs() as u64))
            } else {
                delta
            };
            if delta != 0 {
                changes.push(GrantChange {
                    action_id: action_id.clone(),
                    limit: *limit,
                    delta: i64::try_from(delta).unwrap_or(i64::MAX),
                });
            }
        }
        changes
    }

    /// Takes in what the ledger answered.
    fn apply(&self, granted: Vec<Granted>, counters: &BudgetCounters) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for granted in granted {
            if granted.units > 0 {
                counters.grant(&granted.action_id, granted.units.unsigned_abs());
            }
            counters.restore(&granted.action_id, granted.used);
            seen.entry(granted.action_id).or_default().free = granted.free;
        }
    }
}

impl Cluster {
    /// Keeps this node's budget grants fitted to its demand until the
    /// engine stops: a quick round every [`QUICK_ROUND`], a full one every
    /// third of the lease. While this node's registration may have run
    /// out (no heartbeat answered for a lease time) the ledger may have
    /// taken its units back, so it serves none and asks for none.
    pub(super) async fn keep_budgets(self: std::sync::Arc<Self>) {
        let mut last_full: Option<Instant> = None;
        loop {
            let Some(engine) = self.engine.get().and_then(std::sync::Weak::upgrade) else {
                return;
            };
            let full = last_full.is_none_or(|at| at.elapsed() >= self.lease / 3);
            if full {
                last_full = Some(Instant::now());
            }
            self.budget_round(&engine, full).await;
            drop(engine);
            tokio::time::sleep(QUICK_ROUND).await;
        }
    }

    async fn budget_round(&self, engine: &Engine, full: bool) {
        let counters = &engine.shared().budgets;
        if !self.registered() {
            let dropped = counters.give_back_all();
            if !dropped.is_empty() {
                tracing::warn!(
                    budgets = dropped.len(),
                    "no heartbeat answered for a lease time: this node serves no budget unit until one is"
                );
            }
            return;
        }
        let budgets: Vec<(String, u64)> = engine
            .catalog()
            .actions
            .iter()
            .filter_map(|action| action.budget.map(|limit| (action.id.to_string(), limit)))
            .collect();
        let nodes = self.members.load().len();
        let changes = self.grants.plan(&budgets, counters, nodes, full);
        if changes.is_empty() {
            return;
        }
        match self.store.change_grants(changes).await {
            Ok(granted) => self.grants.apply(granted, counters),
            // Units asked for and maybe granted stay with this node in the
            // ledger, unserved, until it leaves: never served twice.
            Err(error) => tracing::warn!(%error, "budget grants not changed"),
        }
    }

    /// Gives every unit this node holds back to the ledger (leaving).
    pub(super) fn drop_budgets(&self) {
        if let Some(engine) = self.engine.get().and_then(std::sync::Weak::upgrade) {
            engine.shared().budgets.give_back_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Vec<(String, u64)> {
        vec![("coupon".to_owned(), 100)]
    }

    fn change(delta: i64) -> Vec<GrantChange> {
        vec![GrantChange {
            action_id: "coupon".to_owned(),
            limit: 100,
            delta,
        }]
    }

    fn answer(units: i64, used: u64, free: u64) -> Vec<Granted> {
        vec![Granted {
            action_id: "coupon".to_owned(),
            units,
            used,
            free,
        }]
    }

    #[test]
    fn a_new_node_asks_for_one_unit_then_for_its_demand() {
        let grants = Grants::default();
        let counters = BudgetCounters::shared();
        assert_eq!(grants.plan(&budgets(), &counters, 3, true), change(1));
        grants.apply(answer(1, 10, 89), &counters);
        assert_eq!(counters.counter("coupon").granted, 1);
        assert_eq!(counters.used("coupon"), 10);
        // Nothing to do while the unit is unserved.
        assert!(grants.plan(&budgets(), &counters, 3, false).is_empty());
        // Serving it, and being refused twice more, is a demand of 3: a
        // quick round asks for two rounds of it.
        assert!(counters.try_reserve("coupon", 100));
        assert!(!counters.try_reserve("coupon", 100));
        assert!(!counters.try_reserve("coupon", 100));
        assert_eq!(grants.plan(&budgets(), &counters, 3, false), change(6));
        grants.apply(answer(6, 11, 82), &counters);
        assert_eq!(counters.counter("coupon").granted, 6);
    }

    #[test]
    fn an_idle_node_gives_back_what_it_holds_past_one_unit() {
        let grants = Grants::default();
        let counters = BudgetCounters::shared();
        counters.grant("coupon", 20);
        assert_eq!(grants.plan(&budgets(), &counters, 3, true), change(-19));
        assert_eq!(
            counters.counter("coupon").granted,
            1,
            "the units leave before the ledger has them"
        );
    }

    #[test]
    fn near_the_end_an_idle_node_holds_nothing_and_a_spent_budget_is_not_asked_for() {
        let grants = Grants::default();
        let counters = BudgetCounters::shared();
        grants.apply(answer(0, 98, 2), &counters);
        counters.grant("coupon", 1);
        assert_eq!(grants.plan(&budgets(), &counters, 3, true), change(-1));
        grants.apply(answer(-1, 98, 0), &counters);
        // Refused for want of a unit, with nothing free: no quick ask.
        assert!(!counters.try_reserve("coupon", 100));
        assert!(grants.plan(&budgets(), &counters, 3, false).is_empty());
        // The full round asks again (the ledger may have units back).
        assert_eq!(grants.plan(&budgets(), &counters, 3, true), change(2));
    }

    #[test]
    fn a_budget_removed_from_the_catalog_is_forgotten() {
        let grants = Grants::default();
        let counters = BudgetCounters::shared();
        assert_eq!(grants.plan(&budgets(), &counters, 1, true), change(1));
        grants.apply(answer(1, 0, 99), &counters);
        let back = grants.plan(&[], &counters, 1, true);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].delta, -1, "its unit goes back");
        assert_eq!(counters.counter("coupon").granted, 0);
        assert!(grants.seen.lock().expect("not poisoned").is_empty());
        assert!(grants.plan(&[], &counters, 1, true).is_empty());
    }
}
