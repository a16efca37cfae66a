//! [`Topology`]: the cluster as one node sees it, for `Admin.Topology` and
//! `nudge cluster status`.

use super::Cluster;
use crate::store::StoreError;
use crate::store::redis::{BudgetView, Serves};
use nudge_models::cluster::{NodeId, assignment};
use std::collections::BTreeMap;

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
    /// The shared global budgets, by action.
    pub budgets: Vec<BudgetLine>,
}

/// One shared global budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    /// The budgeted action.
    pub action_id: String,
    /// Its budget in this node's catalog (0: no longer budgeted).
    pub limit: u64,
    /// Units used across the cluster.
    pub used: u64,
    /// Units each node holds, by node.
    pub held: Vec<(String, u64)>,
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
    /// What it serves, as it registered it (default: it did not say yet).
    pub serves: Serves,
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
    let names: Vec<String> = members.iter().map(|member| member.node.clone()).collect();
    let budgets = budgets(cluster, cluster.store.budgets(&names)?);
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
            serves: serde_json::from_str(&member.serving).unwrap_or_default(),
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
        budgets,
    })
}

/// The ledger's budgets with this node's catalog's limits: every budgeted
/// action, counted or not yet.
fn budgets(cluster: &Cluster, ledger: Vec<BudgetView>) -> Vec<BudgetLine> {
    let limits: Vec<(String, u64)> = cluster
        .engine
        .get()
        .and_then(std::sync::Weak::upgrade)
        .map(|engine| {
            engine
                .catalog()
                .actions
                .iter()
                .filter_map(|action| action.budget.map(|limit| (action.id.to_string(), limit)))
                .collect()
        })
        .unwrap_or_default();
    let mut lines: BTreeMap<String, BudgetLine> = limits
        .into_iter()
        .map(|(action_id, limit)| {
            (
                action_id.clone(),
                BudgetLine {
                    action_id,
                    limit,
                    used: 0,
                    held: Vec::new(),
                },
            )
        })
        .collect();
    for view in ledger {
        let line = lines
            .entry(view.action_id.clone())
            .or_insert_with(|| BudgetLine {
                action_id: view.action_id,
                limit: 0,
                used: 0,
                held: Vec::new(),
            });
        line.used = view.used;
        line.held = view.held;
    }
    lines.into_values().collect()
}
