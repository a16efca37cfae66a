//! Cluster mode's view into `Admin.Topology`.

use super::to_proto_timestamp;
use crate::cluster::Topology;
use nudge_models::time::Timestamp;
use nudge_proto::v1 as proto;

/// The wire form of a node's view of the cluster.
pub fn topology(topology: Topology) -> proto::TopologyResponse {
    proto::TopologyResponse {
        node: topology.node,
        partitions: u32::from(topology.partitions),
        nodes: topology
            .nodes
            .into_iter()
            .map(|node| proto::ClusterNode {
                node: node.node,
                address: node.address,
                holds: node.holds,
                placed: node.placed,
                registered_until: Some(to_proto_timestamp(Timestamp::from_millis(
                    node.registered_until,
                ))),
                catalog_version: node.serves.catalog,
                variants: super::serving_variants(&node.serves.variants),
            })
            .collect(),
        owners: topology
            .owners
            .into_iter()
            .map(|owner| proto::PartitionOwner {
                partition: u32::from(owner.partition),
                holder: owner.holder,
                fencing_token: owner.token,
                lease_until: (owner.lease_until > 0)
                    .then(|| to_proto_timestamp(Timestamp::from_millis(owner.lease_until))),
                placed: owner.placed,
            })
            .collect(),
        budgets: topology
            .budgets
            .into_iter()
            .map(|budget| proto::SharedBudget {
                action_id: budget.action_id,
                limit: budget.limit,
                used: budget.used,
                held: budget
                    .held
                    .into_iter()
                    .map(|(node, units)| proto::BudgetHolding { node, units })
                    .collect(),
            })
            .collect(),
    }
}
