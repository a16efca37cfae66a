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
            "catalog_version": node.catalog_version,
            "variants": super::model::variants_json(&node.variants),
        })).collect::<Vec<_>>(),
        "owners": response.owners.iter().map(|owner| json!({
            "partition": owner.partition,
            "holder": owner.holder,
            "fencing_token": owner.fencing_token,
            "lease_until": seconds(&owner.lease_until),
            "placed": owner.placed,
        })).collect::<Vec<_>>(),
        "budgets": response.budgets.iter().map(|budget| json!({
            "action_id": budget.action_id,
            "limit": budget.limit,
            "used": budget.used,
            "held": budget.held.iter().map(|holding| json!({
                "node": holding.node,
                "units": holding.units,
            })).collect::<Vec<_>>(),
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
    let catalog_width = response
        .nodes
        .iter()
        .map(|node| node.catalog_version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        text,
        "\n  {:<width$}  {:<22}  {:>5}  {:>6}  {:<catalog_width$}  MODELS",
        "NODE", "ADDRESS", "HOLDS", "PLACED", "CATALOG"
    );
    for node in &response.nodes {
        let _ = writeln!(
            text,
            "  {:<width$}  {:<22}  {:>5}  {:>6}  {:<catalog_width$}  {}",
            node.node,
            node.address,
            node.holds,
            node.placed,
            if node.catalog_version.is_empty() {
                "-"
            } else {
                &node.catalog_version
            },
            models_text(&node.variants),
        );
    }
    let mut served: Vec<(&str, String)> = response
        .nodes
        .iter()
        .filter(|node| !node.catalog_version.is_empty())
        .map(|node| (node.catalog_version.as_str(), models_text(&node.variants)))
        .collect();
    served.sort();
    served.dedup();
    if served.len() > 1 {
        let _ = writeln!(
            text,
            "\nthe nodes serve different catalogs or models: each node loads its own, so reload the catalog and load, promote or roll back models on every node"
        );
    }
    budgets_text(&mut text, response);
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

/// A node's models: the one model serving everyone, or each variant with
/// its share.
fn models_text(variants: &[nudge_proto::v1::ServingVariant]) -> String {
    match variants {
        [] => "-".to_owned(),
        [only] if only.share_percent == 100 => only.model_version.clone(),
        variants => super::model::variants_text(variants),
    }
}

/// The shared budgets: used, held by nodes, and left to grant.
fn budgets_text(text: &mut String, response: &TopologyResponse) {
    if response.budgets.is_empty() {
        return;
    }
    let width = response
        .budgets
        .iter()
        .map(|budget| budget.action_id.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        text,
        "\n  {:<width$}  {:>8}  {:>8}  {:>6}  HELD BY",
        "BUDGET", "LIMIT", "USED", "HELD"
    );
    for budget in &response.budgets {
        let held: u64 = budget.held.iter().map(|holding| holding.units).sum();
        let holders: Vec<String> = budget
            .held
            .iter()
            .map(|holding| format!("{} {}", holding.node, holding.units))
            .collect();
        let limit = if budget.limit == 0 {
            "-".to_owned()
        } else {
            budget.limit.to_string()
        };
        let _ = writeln!(
            text,
            "  {:<width$}  {limit:>8}  {:>8}  {held:>6}  {}",
            budget.action_id,
            budget.used,
            if holders.is_empty() {
                "-".to_owned()
            } else {
                holders.join(", ")
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{BudgetHolding, ClusterNode, SharedBudget};

    fn response() -> TopologyResponse {
        TopologyResponse {
            node: "node-a".to_owned(),
            partitions: 0,
            nodes: vec![ClusterNode {
                node: "node-a".to_owned(),
                address: "10.0.0.5:50051".to_owned(),
                ..Default::default()
            }],
            owners: Vec::new(),
            budgets: vec![
                SharedBudget {
                    action_id: "trial_discount_email".to_owned(),
                    limit: 1000,
                    used: 412,
                    held: vec![
                        BudgetHolding {
                            node: "node-a".to_owned(),
                            units: 6,
                        },
                        BudgetHolding {
                            node: "node-b".to_owned(),
                            units: 2,
                        },
                    ],
                },
                SharedBudget {
                    action_id: "retired".to_owned(),
                    limit: 0,
                    used: 3,
                    held: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn the_status_table_shows_each_shared_budget_and_who_holds_its_units() {
        let text = status_text(&response());
        assert!(
            text.contains("trial_discount_email      1000       412       8  node-a 6, node-b 2"),
            "{text}"
        );
        assert!(
            text.contains("retired                      -         3       0  -"),
            "{text}"
        );
        let json = status_json(&response());
        assert_eq!(json["budgets"][0]["held"][1]["units"], 2);
        assert_eq!(json["budgets"][1]["limit"], 0);
    }

    #[test]
    fn the_status_table_shows_what_each_node_serves_and_says_when_they_differ() {
        use nudge_proto::v1::ServingVariant;
        let variant = |name: &str, model: &str, share| ServingVariant {
            name: name.to_owned(),
            model_version: model.to_owned(),
            share_percent: share,
        };
        let node = |name: &str, catalog: &str, variants: Vec<ServingVariant>| ClusterNode {
            node: name.to_owned(),
            address: "10.0.0.5:50051".to_owned(),
            catalog_version: catalog.to_owned(),
            variants,
            ..Default::default()
        };
        let mut response = TopologyResponse {
            node: "node-a".to_owned(),
            nodes: vec![
                node(
                    "node-a",
                    "demo-2026-11",
                    vec![variant("default", "m1", 100)],
                ),
                node(
                    "node-b",
                    "demo-2026-11",
                    vec![variant("default", "m1", 100)],
                ),
                node("node-c", "", Vec::new()),
            ],
            ..Default::default()
        };
        let text = status_text(&response);
        assert!(text.contains("CATALOG       MODELS"), "{text}");
        assert!(text.contains("demo-2026-11  m1"), "{text}");
        // A node that has not said yet shows dashes and is not a
        // disagreement.
        assert!(text.contains("-             -"), "{text}");
        assert!(!text.contains("different catalogs or models"), "{text}");

        response.nodes[1].variants = vec![variant("control", "m1", 90), variant("m2", "m2", 10)];
        let text = status_text(&response);
        assert!(text.contains("control m1 90 %, m2 m2 10 %"), "{text}");
        assert!(
            text.contains("the nodes serve different catalogs or models"),
            "{text}"
        );
        let json = status_json(&response);
        assert_eq!(json["nodes"][0]["catalog_version"], "demo-2026-11");
        assert_eq!(json["nodes"][1]["variants"][1]["model_version"], "m2");
        assert_eq!(json["nodes"][1]["variants"][1]["share_percent"], 10);
    }
}
