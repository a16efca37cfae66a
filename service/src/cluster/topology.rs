//! [`Topology`]: the cluster as one node sees it, for `Admin.Topology` and
//! `nudge cluster status`.

use super::Cluster;
use crate::store::StoreError;
use nudge_models::cluster::{NodeId, assignment};

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The node answering.
    pub node: String,
    /// How many partitions there are.
    pub partitions: u16,
    /// The live members, in node order.
    pub nodes: Vec<NodeView>,
    /// Every partition, in order.
    pub owners: Vec<PartitionView>,
}

/// One live member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Its name.
    pub node: String,
    /// Where calls are forwarded to it.
    pub address: String,
    /// Partitions whose lease it holds now.
    pub holds: u32,
    /// Partitions placement gives it.
    pub placed: u32,
    /// When its registration ends unless renewed (ms, Redis's clock).
    pub registered_until: i64,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Its number.
    pub partition: u16,
    /// The node holding its lease now (empty: none, or expired).
    pub holder: String,
    /// The lease's fencing token.
    pub token: u64,
    /// When the lease ends unless renewed (ms, Redis's clock).
    pub lease_until: i64,
    /// The node placement gives it.
    pub placed: String,
}

pub(super) fn read(cluster: &Cluster) -> Result<Topology, StoreError> {
    let members = cluster.store.members_now()?;
    let leases = cluster.store.leases()?;
    // Whether a lease still runs, on this node's clock (close to Redis's;
    // the table shows when each lease ends anyway).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    let nodes: Vec<NodeId> = members
        .iter()
        .map(|member| NodeId::new(&member.node))
        .collect();
    let placed = assignment(cluster.partitions, &nodes);
    let owners: Vec<PartitionView> = leases
        .into_iter()
        .enumerate()
        .map(|(index, lease)| {
            let (holder, token, lease_until) = lease.map_or((String::new(), 0, 0), |lease| {
                let live = lease.expires_at > now;
                (
                    if live { lease.holder } else { String::new() },
                    lease.token.0,
                    lease.expires_at,
                )
            });
            PartitionView {
                partition: index as u16,
                holder,
                token,
                lease_until,
                placed: placed
                    .get(index)
                    .map_or_else(String::new, |node| node.0.to_string()),
            }
        })
        .collect();
    let nodes = members
        .into_iter()
        .map(|member| NodeView {
            holds: owners
                .iter()
                .filter(|owner| owner.holder == member.node)
                .count() as u32,
            placed: owners
                .iter()
                .filter(|owner| owner.placed == member.node)
                .count() as u32,
            node: member.node,
            address: member.address,
            registered_until: member.until,
        })
        .collect();
    Ok(Topology {
        node: cluster.node.clone(),
        partitions: cluster.partitions.count(),
        nodes,
        owners,
    })
}
