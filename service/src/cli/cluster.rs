//! `nudge cluster status`: the cluster as the node asked sees it — the
//! live nodes with where they are reached, the partitions each holds and
//! is placed, and the partitions moving or without a holder — over
//! `Admin.Topology`.

use std::fmt::Write as _;

use nudge_proto::v1::{TopologyRequest, TopologyResponse};
use serde_json::{Value as Json, json};

use super::{ClientArgs, client, render};

/// What `nudge cluster` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterAction {
    /// The nodes and the partitions' owners.
    Status,
}

/// Arguments of `nudge cluster`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  nudge cluster status                          # nodes, partitions, moves
  nudge cluster status --json                   # every partition, for scripts
  nudge cluster status --server 10.0.0.6:50051  # as another node sees it")]
pub struct ClusterArgs {
    /// status.
    #[arg(value_enum, default_value = "status")]
    pub action: ClusterAction,
}

/// Runs `nudge cluster` and renders its answer.
pub async fn run(args: &ClusterArgs, options: &ClientArgs) -> anyhow::Result<String> {
    match args.action {
        ClusterAction::Status => {
            let response = client::ask(options, TopologyRequest {}).await?;
            render(
                options,
                || status_json(&response),
                || status_text(&response),
            )
        }
    }
}

/// The topology as JSON: every node and every partition.
pub fn status_json(response: &TopologyResponse) -> Json {
    let seconds = |at: &Option<prost_types::Timestamp>| {
        at.as_ref().map_or(Json::Null, |at| {
            json!(at.seconds as f64 + f64::from(at.nanos) / 1e9)
        })
    };
    json!({
        "node": response.node,
        "partitions": response.partitions,
        "nodes": response.nodes.iter().map(|node| json!({
            "node": node.node,
            "address": node.address,
            "holds": node.holds,
            "placed": node.placed,
            "registered_until": seconds(&node.registered_until),
        })).collect::<Vec<_>>(),
        "owners": response.owners.iter().map(|owner| json!({
            "partition": owner.partition,
            "holder": owner.holder,
            "fencing_token": owner.fencing_token,
            "lease_until": seconds(&owner.lease_until),
            "placed": owner.placed,
        })).collect::<Vec<_>>(),
    })
}

/// The topology as a table of nodes, then what is moving.
pub fn status_text(response: &TopologyResponse) -> String {
    let mut text = String::new();
    let held = response
        .owners
        .iter()
        .filter(|owner| !owner.holder.is_empty())
        .count();
    let _ = writeln!(
        text,
        "cluster seen from {}: {} node{}, {held} of {} partitions held",
        response.node,
        response.nodes.len(),
        if response.nodes.len() == 1 { "" } else { "s" },
        response.partitions,
    );
    let width = response
        .nodes
        .iter()
        .map(|node| node.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        text,
        "\n  {:<width$}  {:<22}  {:>5}  {:>6}",
        "NODE", "ADDRESS", "HOLDS", "PLACED"
    );
    for node in &response.nodes {
        let _ = writeln!(
            text,
            "  {:<width$}  {:<22}  {:>5}  {:>6}",
            node.node, node.address, node.holds, node.placed
        );
    }
    let moving: Vec<_> = response
        .owners
        .iter()
        .filter(|owner| owner.holder != owner.placed)
        .collect();
    if moving.is_empty() {
        let _ = writeln!(
            text,
            "\nevery partition is held by the node placement gives it"
        );
        return text;
    }
    let _ = writeln!(
        text,
        "\n{} partition{} moving or unheld:",
        moving.len(),
        if moving.len() == 1 { "" } else { "s" }
    );
    for owner in moving.iter().take(20) {
        let holder = if owner.holder.is_empty() {
            "(no holder)"
        } else {
            owner.holder.as_str()
        };
        let _ = writeln!(
            text,
            "  partition {:>4}: {holder} -> {}",
            owner.partition,
            if owner.placed.is_empty() {
                "(no live node)"
            } else {
                owner.placed.as_str()
            }
        );
    }
    if moving.len() > 20 {
        let _ = writeln!(
            text,
            "  … and {} more (--json lists every partition)",
            moving.len() - 20
        );
    }
    text
}
