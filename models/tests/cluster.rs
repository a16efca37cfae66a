//! Cluster ownership as properties: rendezvous placement moves only what a
//! membership change must move, and under any interleaving of lease
//! requests, pauses and writes the fencing rule admits only the current
//! holder's writes, so one partition never has two writers.

use nudge_models::cluster::{FencingToken, Lease, NodeId, Partitions, assignment, moves, owner};
use nudge_models::time::{Span, Timestamp};
use proptest::prelude::*;

fn node_ids(count: usize) -> Vec<NodeId> {
    (0..count)
        .map(|index| NodeId::new(&format!("node-{index}")))
        .collect()
}

proptest! {
    #[test]
    fn membership_changes_move_only_the_changed_nodes_partitions(
        count in 1usize..8,
        extra in 0usize..8,
        partitions in 1u16..600,
    ) {
        let partitions = Partitions::new(partitions).expect("1..600 partitions");
        let before = node_ids(count);
        let mut after = before.clone();
        let joining = NodeId::new(&format!("joining-{extra}"));
        after.push(joining.clone());
        for step in moves(partitions, &before, &after) {
            prop_assert_eq!(step.to.as_ref(), Some(&joining));
        }
        // The node leaving again: exactly its partitions go back.
        let owned = assignment(partitions, &after)
            .iter()
            .filter(|owner| **owner == joining)
            .count();
        prop_assert_eq!(moves(partitions, &after, &before).len(), owned);
        // Every partition has an owner, one of the nodes.
        for partition in partitions.all() {
            let found = owner(partition, &after);
            prop_assert!(found.is_some_and(|node| after.contains(node)));
        }
    }
}

/// What one node of the simulation does next.
#[derive(Debug, Clone)]
enum Step {
    /// Asks for (or renews) the lease.
    Acquire(usize),
    /// Writes with the token it last got, whether or not it still holds
    /// the lease (a paused node wakes up and carries on).
    Write(usize),
    /// Gives the lease up.
    Release(usize),
    /// Time passes.
    Wait(i64),
}

fn step(nodes: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..nodes).prop_map(Step::Acquire),
        (0..nodes).prop_map(Step::Write),
        (0..nodes).prop_map(Step::Release),
        (0i64..8_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn only_the_current_generation_writes(steps in prop::collection::vec(step(3), 1..80)) {
        let nodes = node_ids(3);
        let ttl = Span(5_000);
        let mut now = Timestamp(0);
        let mut lease: Option<Lease> = None;
        // The token each node got last, if any.
        let mut held: Vec<Option<FencingToken>> = vec![None; nodes.len()];
        let mut last_admitted: Option<(usize, FencingToken)> = None;
        for step in steps {
            match step {
                Step::Wait(ms) => now = now.plus(Span(ms)),
                Step::Acquire(index) => {
                    match Lease::acquire(lease.as_ref(), &nodes[index], now, ttl) {
                        Ok(next) => {
                            if let Some(previous) = &lease {
                                // A new holder, or the same after expiry: a larger token.
                                if previous.holder != next.holder || !previous.is_live(now) {
                                    prop_assert!(next.token > previous.token);
                                } else {
                                    prop_assert_eq!(next.token, previous.token);
                                }
                            }
                            held[index] = Some(next.token);
                            lease = Some(next);
                        }
                        Err(refused) => {
                            let current = lease.as_ref().expect("a refusal names a lease");
                            prop_assert!(current.is_live(now));
                            prop_assert_ne!(&refused.holder, &nodes[index]);
                        }
                    }
                }
                Step::Write(index) => {
                    let (Some(token), Some(current)) = (held[index], lease.as_ref()) else {
                        continue;
                    };
                    let admitted = current.admits(token).is_ok();
                    // Admitted exactly when the writer is the latest holder.
                    prop_assert_eq!(admitted, current.holder == nodes[index] && current.token == token);
                    if admitted {
                        // Writes never go back a generation.
                        if let Some((_, before)) = last_admitted {
                            prop_assert!(token >= before);
                        }
                        last_admitted = Some((index, token));
                    }
                }
                Step::Release(index) => {
                    let (Some(token), Some(current)) = (held[index], lease.as_ref()) else {
                        continue;
                    };
                    if let Ok(released) = current.release(token, now) {
                        prop_assert!(!released.is_live(now));
                        prop_assert_eq!(released.token, current.token);
                        lease = Some(released);
                    }
                }
            }
        }
    }
}
