//! Which node owns which partition: rendezvous hashing. Each (node,
//! partition) pair gets a pseudo-random weight; a partition's owner is the
//! live node with the highest weight for it. Every node computes the same
//! answer from the same membership, with no table to agree on, and when a
//! node joins it takes only the partitions it now wins (about 1/n of them),
//! when it leaves only its own partitions move, each to its runner-up.

use super::partition::{Partition, Partitions};
use crate::hash;
use std::fmt;
use std::sync::Arc;

/// A node's id, as it registers in the membership (e.g. `nudge-a:50051`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub Arc<str>);

impl NodeId {
    /// The id `id`.
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The weight of `node` for `partition` (stable: every node and version
/// computes the same).
fn weight(node: &NodeId, partition: Partition) -> u64 {
    let node_hash = hash::fnv1a(node.0.bytes());
    hash::mix(node_hash ^ hash::mix(u64::from(partition.0).wrapping_add(1)))
}

/// The owner of `partition` among `nodes` (`None` without nodes). Ties,
/// which need equal 64-bit weights, go to the smaller id.
pub fn owner(partition: Partition, nodes: &[NodeId]) -> Option<&NodeId> {
    nodes.iter().max_by(|a, b| {
        weight(a, partition)
            .cmp(&weight(b, partition))
            .then_with(|| b.cmp(a))
    })
}

/// The owner of every partition, by partition index (empty without nodes).
pub fn assignment(partitions: Partitions, nodes: &[NodeId]) -> Vec<NodeId> {
    if nodes.is_empty() {
        return Vec::new();
    }
    partitions
        .all()
        .filter_map(|partition| owner(partition, nodes).cloned())
        .collect()
}

/// A partition changing owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The partition.
    pub partition: Partition,
    /// Its owner before (`None`: there were no nodes).
    pub from: Option<NodeId>,
    /// Its owner after (`None`: no nodes are left).
    pub to: Option<NodeId>,
}

/// The partitions whose owner differs between membership `before` and
/// `after`, in partition order.
pub fn moves(partitions: Partitions, before: &[NodeId], after: &[NodeId]) -> Vec<Move> {
    partitions
        .all()
        .filter_map(|partition| {
            let from = owner(partition, before);
            let to = owner(partition, after);
            (from != to).then(|| Move {
                partition,
                from: from.cloned(),
                to: to.cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<NodeId> {
        ids.iter().map(|id| NodeId::new(id)).collect()
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_nodes_are_listed_in() {
        let forward = nodes(&["a", "b", "c"]);
        let backward = nodes(&["c", "b", "a"]);
        for partition in Partitions::DEFAULT.all() {
            assert_eq!(owner(partition, &forward), owner(partition, &backward));
        }
        assert_eq!(owner(Partition(0), &[]), None);
        assert!(assignment(Partitions::DEFAULT, &[]).is_empty());
    }

    #[test]
    fn three_nodes_share_the_partitions_about_evenly() {
        let three = nodes(&["nudge-a:50051", "nudge-b:50051", "nudge-c:50051"]);
        let owners = assignment(Partitions::DEFAULT, &three);
        assert_eq!(owners.len(), 256);
        for node in &three {
            let owned = owners.iter().filter(|owner| *owner == node).count();
            assert!((60..=110).contains(&owned), "{node} owns {owned}");
        }
    }

    #[test]
    fn a_joining_node_takes_partitions_only_for_itself() {
        let before = nodes(&["a", "b", "c"]);
        let after = nodes(&["a", "b", "c", "d"]);
        let moved = moves(Partitions::DEFAULT, &before, &after);
        assert!(!moved.is_empty());
        assert!(moved.iter().all(|step| step.to == Some(NodeId::new("d"))));
        let back = moves(Partitions::DEFAULT, &after, &before);
        assert_eq!(back.len(), moved.len());
        assert!(back.iter().all(|step| step.from == Some(NodeId::new("d"))));
    }
}
